"""What every test server shares: free ports, a process runner stopped by PID, and `Server`."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

import attrs

LOOPBACK = "127.0.0.1"
INSTALL_SCRIPT = "bash scripts/install-servers.sh"


class ServerError(RuntimeError):
    """A test server could not be provided."""


class ServerNotInstalledError(ServerError):
    """The server's program is not installed; the message says how to install it."""


class ServerStartError(ServerError):
    """The server exited or did not answer in time; the message holds its log."""


def free_port(host: str = LOOPBACK) -> int:
    """A port that was free on ``host`` a moment ago (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def missing(program: str, package: str, name: str) -> ServerNotInstalledError:
    return ServerNotInstalledError(
        f"{program} is not installed; it comes with {package}. "
        f"Install it with: {INSTALL_SCRIPT} {name}"
    )


def which(program: str, package: str, name: str, *candidates: str) -> str:
    """The path of ``program`` (on PATH, else one of ``candidates``) or a loud failure."""
    found = shutil.which(program)
    if found:
        return found
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    raise missing(program, f"the Debian package {package}", name)


def python_module_path(module: str, spec: str, name: str) -> Path:
    """The folder of an installed module, found without importing it."""
    found = importlib.util.find_spec(module)
    if found is None or found.origin is None:
        raise missing(f"the Python package {module}", f"PyPI {spec}", name)
    return Path(found.origin).parent


class ServerProcess:
    """One server process, started in a session of its own and stopped by its PID.

    Output goes to ``<workdir>/<name>.log``, which :class:`ServerStartError`
    quotes when the server dies or never gets ready.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        workdir: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.workdir = workdir
        self.env = dict(env) if env is not None else None
        self.log_path = workdir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ServerError(f"{self.name} was not started")
        return self._proc.pid

    def start(self) -> ServerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        env = {**os.environ, **self.env} if self.env is not None else None
        try:
            # A session of its own makes the PID a process-group id, so helpers
            # the server forks can be killed with it and never outlive a test.
            self._proc = subprocess.Popen(
                self.argv,
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            self._log.close()
            raise ServerStartError(f"cannot run {self.argv[0]}: {exc}") from exc
        return self

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def failure(self, why: str) -> ServerStartError:
        return ServerStartError(
            f"{self.name} {why}\n  command: {' '.join(self.argv)}\n"
            f"  log {self.log_path} (last lines):\n{self.log_tail()}"
        )

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> None:
        """Call ``probe`` until it returns true; fail if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while True:
            if not self.running():
                code = self._proc.returncode if self._proc is not None else None
                raise self.failure(f"exited with status {code} before it was ready")
            try:
                if probe():
                    return
            except (OSError, ValueError) as exc:
                last = exc
            if time.monotonic() > deadline:
                why = f" (last probe error: {last})" if last is not None else ""
                raise self.failure(f"was not ready after {timeout:g} s{why}")
            time.sleep(0.05)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the PID, SIGKILL its process group after ``grace`` seconds."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    _kill_group(proc.pid)
                    proc.wait(grace)
            # The group id stays reserved while any member lives, so this can
            # only reach helpers this server forked.
            _kill_group(proc.pid)
        finally:
            if self._log is not None:
                self._log.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@attrs.frozen
class Server:
    """A running server: where to reach it and how to log in.

    ``url`` may hold the password, so neither it nor ``password`` is in the repr.
    """

    #: what it is: "redis", "memcached", "rabbitmq", "mongodb", "opensearch".
    kind: str
    host: str
    port: int
    url: str = attrs.field(repr=False)
    #: every process behind this server, in start order.
    pids: tuple[int, ...]
    workdir: Path
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    #: the CA certificate to trust when the server speaks TLS.
    ca_file: Path | None = None
    #: every node's (host, port), for servers made of several (cluster, sentinel).
    nodes: tuple[tuple[str, int], ...] = ()
    #: anything else a client needs (replica-set name, sentinel master name...).
    extra: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


def connect(address: tuple[str, int], timeout: float = 2.0) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)


def new_password() -> str:
    """A fresh random password for a test server."""
    return secrets.token_urlsafe(18)
