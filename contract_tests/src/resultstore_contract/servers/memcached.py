"""memcached on a free loopback port."""

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


@contextlib.contextmanager
def start_memcached(
    workdir: Path, *, memory_mb: int = 64, timeout: float = 10.0
) -> Iterator[Server]:
    """One memcached, TCP only."""
    binary = which("memcached", "memcached", "memcached")
    port = free_port()
    argv = [binary, "-l", LOOPBACK, "-p", str(port), "-U", "0", "-m", str(memory_mb)]
    if os.geteuid() == 0:
        # memcached refuses to run as root unless told which user to be.
        argv += ["-u", "root"]
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


# -- session fixtures (registered by the contract plugin) --------------------------


@pytest.fixture(scope="session")
def memcached_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A memcached on a free loopback port."""
    with start_memcached(tmp_path_factory.mktemp("memcached")) as server:
        yield server
