"""A SecantusDB on a port the test chooses, so that it can be killed and started there again."""

from __future__ import annotations

import sys
from pathlib import Path

from resultstore_contract.servers import LOOPBACK, ServerProcess, mongodb_command


def secantus_on(port: int, workdir: Path, *, standalone: bool = False) -> ServerProcess:
    """An in-memory SecantusDB on ``port`` (a one-member replica set unless ``standalone``);
    call ``start()`` and ``wait_ready(lambda: ready(port, standalone), 30)``."""
    argv = [sys.executable, "-m", "secantus", "--host", LOOPBACK, "--port", str(port)]
    argv += ["--storage-path", ":memory:", "--log-level", "WARNING"]
    if standalone:
        argv.append("--standalone")
    return ServerProcess(f"secantus-{port}", argv, workdir=workdir)


def ready(port: int, standalone: bool = False) -> bool:
    reply = mongodb_command((LOOPBACK, port), {"hello": 1})
    return reply.get("ok") == 1.0 and (standalone or reply.get("isWritablePrimary") is True)


def url(port: int, standalone: bool = False) -> str:
    return f"mongodb://{LOOPBACK}:{port}/" + ("" if standalone else "?replicaSet=secantus")
