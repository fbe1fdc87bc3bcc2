"""memcached on free loopback ports: one server, a ring of several, or a unix socket."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._process import LOOPBACK, Server, ServerProcess, connect, free_port, which


def _memcached_version(address: tuple[str, int]) -> bool:
    with connect(address) as sock:
        sock.sendall(b"version\r\n")
        return sock.recv(128).startswith(b"VERSION ")


def _unix_version(path: Path) -> bool:
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2.0)
        sock.connect(str(path))
        sock.sendall(b"version\r\n")
        return sock.recv(128).startswith(b"VERSION ")


def _bytes(size: str) -> int:
    """``64k``, ``2m`` or a plain number of bytes, as memcached's ``-I`` reads them."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    text = size.strip().lower()
    if text and text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def _argv(memory_mb: int, item_size: str | None) -> list[str]:
    binary = which("memcached", "memcached", "memcached")
    argv = [binary, "-U", "0", "-m", str(memory_mb)]
    if item_size is not None:
        # -I: the largest item the server takes (default 1m). Below 1m the slab
        # chunk (512k by default) must shrink too, or memcached refuses to start.
        argv += ["-I", item_size]
        if _bytes(item_size) < 1024 * 1024:
            argv += ["-o", f"slab_chunk_max={_bytes(item_size) // 2}"]
    if os.geteuid() == 0:
        # memcached refuses to run as root unless told which user to be.
        argv += ["-u", "root"]
    return argv


@contextlib.contextmanager
def start_memcached(
    workdir: Path,
    *,
    memory_mb: int = 64,
    item_size: str | None = None,
    unix_socket: bool = False,
    timeout: float = 10.0,
) -> Iterator[Server]:
    """One memcached, TCP only (or only a unix socket in ``workdir``).

    ``item_size`` is memcached's ``-I`` (``"64k"``, ``"2m"``): the largest item it takes.
    """
    argv = _argv(memory_mb, item_size)
    if unix_socket:
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / "memcached.sock"
        argv += ["-s", str(path)]
        with ServerProcess("memcached", argv, workdir=workdir) as process:
            process.wait_ready(lambda: _unix_version(path), timeout)
            yield Server(
                kind="memcached",
                host="",
                port=0,
                url=f"memcached+unix://{path}",
                pids=(process.pid,),
                workdir=workdir,
                extra={"socket": str(path)},
            )
        return
    port = free_port()
    argv += ["-l", LOOPBACK, "-p", str(port)]
    with ServerProcess("memcached", argv, workdir=workdir) as process:
        process.wait_ready(lambda: _memcached_version((LOOPBACK, port)), timeout)
        yield Server(
            kind="memcached",
            host=LOOPBACK,
            port=port,
            url=f"memcached://{LOOPBACK}:{port}",
            pids=(process.pid,),
            workdir=workdir,
            nodes=((LOOPBACK, port),),
        )


@contextlib.contextmanager
def start_memcached_ring(
    workdir: Path, *, servers: int = 3, memory_mb: int = 32, timeout: float = 10.0
) -> Iterator[Server]:
    """``servers`` independent memcacheds; the URL names them all (``h:p;h:p;...``),
    the way a client-side ring of memcached is configured."""
    with contextlib.ExitStack() as stack:
        members = [
            stack.enter_context(
                start_memcached(workdir / f"node{i}", memory_mb=memory_mb, timeout=timeout)
            )
            for i in range(servers)
        ]
        nodes = tuple((m.host, m.port) for m in members)
        yield Server(
            kind="memcached-ring",
            host=LOOPBACK,
            port=members[0].port,
            url="memcached://" + ";".join(f"{h}:{p}" for h, p in nodes) + "/",
            pids=tuple(pid for m in members for pid in m.pids),
            workdir=workdir,
            nodes=nodes,
        )


# -- session fixtures (registered by the contract plugin) --------------------------


@pytest.fixture(scope="session")
def memcached_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A memcached on a free loopback port."""
    with start_memcached(tmp_path_factory.mktemp("memcached")) as server:
        yield server


@pytest.fixture(scope="session")
def memcached_ring_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Three memcacheds on free loopback ports, named together in ``server.url``."""
    with start_memcached_ring(tmp_path_factory.mktemp("memcached-ring")) as server:
        yield server
