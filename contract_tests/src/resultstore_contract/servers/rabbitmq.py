"""A RabbitMQ node whose files, cookie and epmd stay in a temp folder."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from ._process import LOOPBACK, Server, ServerProcess, connect, free_port, which

#: AMQP 0-9-1 protocol header; a ready broker answers with a Connection.Start frame.
AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


def _amqp_hello(address: tuple[str, int]) -> bool:
    with connect(address) as sock:
        sock.sendall(AMQP_HEADER)
        frame = sock.recv(11)
        # frame type 1 (method) on channel 0, then class 10 method 10: Connection.Start.
        return (
            len(frame) >= 11
            and frame[0] == 1
            and frame[1:3] == b"\x00\x00"
            and frame[7:11] == b"\x00\x0a\x00\x0a"
        )


class RabbitMQNode:
    """One RabbitMQ node in ``workdir`` that can be stopped and started again.

    The ports, node name and data folder stay the same across restarts, so
    durable queues and persistent messages survive them, as on a real server.
    """

    def __init__(self, workdir: Path, *, timeout: float = 90.0) -> None:
        lib = "/usr/lib/rabbitmq/bin"
        server = which("rabbitmq-server", "rabbitmq-server", "rabbitmq", f"{lib}/rabbitmq-server")
        # The direct script lives beside its tools; PATH may only hold the wrapper.
        server = (
            f"{lib}/rabbitmq-server" if os.access(f"{lib}/rabbitmq-server", os.X_OK) else server
        )
        ctl = f"{lib}/rabbitmqctl" if os.access(f"{lib}/rabbitmqctl", os.X_OK) else None
        self.ctl = ctl or which("rabbitmqctl", "rabbitmq-server", "rabbitmq")
        self.epmd = which("epmd", "erlang-base", "rabbitmq")
        self.timeout = timeout
        self.port, dist_port, epmd_port = free_port(), free_port(), free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "rabbitmq.conf"
        config.write_text(
            f"listeners.tcp.default = {LOOPBACK}:{self.port}\n"
            "loopback_users.guest = true\n"
            "log.console = true\nlog.file = false\n"
        )
        plugins = workdir / "enabled_plugins"
        plugins.write_text("[].\n")
        self.env = {
            "HOME": str(workdir),
            "RABBITMQ_NODENAME": f"rabbit{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": LOOPBACK,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(workdir / "log"),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_PID_FILE": str(workdir / "rabbit.pid"),
            "ERL_EPMD_ADDRESS": LOOPBACK,
            "ERL_EPMD_PORT": str(epmd_port),
        }
        self.process = ServerProcess("rabbitmq", [server], workdir=workdir, env=self.env)
        self.server = Server(
            kind="rabbitmq",
            host=LOOPBACK,
            port=self.port,
            url=f"amqp://guest:guest@{LOOPBACK}:{self.port}//",
            pids=(),
            workdir=workdir,
            username="guest",
            password="guest",
            nodes=((LOOPBACK, self.port),),
            extra={"nodename": self.env["RABBITMQ_NODENAME"], "epmd_port": str(epmd_port)},
        )

    def start(self) -> Server:
        """Start the node (again) and wait until it speaks AMQP."""
        self.process.start()
        self.process.wait_ready(lambda: _amqp_hello((LOOPBACK, self.port)), self.timeout)
        return attrs.evolve(self.server, pids=(self.process.pid,))

    def _ctl(self, *args: str) -> None:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                [self.ctl, "-n", self.env["RABBITMQ_NODENAME"], *args],
                env={**os.environ, **self.env},
                capture_output=True,
                timeout=60,
                check=False,
            )

    def stop(self) -> None:
        """Stop the node cleanly (``rabbitmqctl stop``), then by PID if it is left."""
        self._ctl("stop")
        self.process.stop()

    def restart(self) -> Server:
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the node and its epmd."""
        self.stop()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                [self.epmd, "-kill"],
                env={**os.environ, **self.env},
                capture_output=True,
                timeout=30,
                check=False,
            )


@contextlib.contextmanager
def start_rabbitmq(workdir: Path, *, timeout: float = 90.0) -> Iterator[Server]:
    """One RabbitMQ node whose files, Erlang cookie and epmd all stay in ``workdir``.

    It runs the direct server script, not Debian's wrapper, which would switch
    user and use /var/lib; it is stopped with ``rabbitmqctl stop`` and its
    epmd with ``epmd -kill``, then by PID if either is left. For a node to
    restart under a test, use :func:`start_rabbitmq_node`.
    """
    with start_rabbitmq_node(workdir, timeout=timeout) as node:
        yield attrs.evolve(node.server, pids=(node.process.pid,))


@contextlib.contextmanager
def start_rabbitmq_node(workdir: Path, *, timeout: float = 90.0) -> Iterator[RabbitMQNode]:
    """A started :class:`RabbitMQNode` (``stop()``, ``start()``, ``restart()``), closed at exit."""
    node = RabbitMQNode(workdir, timeout=timeout)
    try:
        node.start()
        yield node
    finally:
        node.close()


# -- session fixtures (registered by the contract plugin) --------------------------


@pytest.fixture(scope="session")
def rabbitmq_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A RabbitMQ node (about 8 s to start), user guest/guest on loopback."""
    with start_rabbitmq(tmp_path_factory.mktemp("rabbitmq")) as server:
        yield server
