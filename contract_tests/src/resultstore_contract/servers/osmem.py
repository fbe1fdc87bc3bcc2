"""osmem-server, an in-memory OpenSearch-API emulator: a fast extra target, never the only one."""

from __future__ import annotations

import contextlib
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._process import LOOPBACK, Server, ServerProcess, free_port, missing, python_module_path

# The pin matches scripts/install-servers.sh.
OSMEM_SPEC = "osmem-server==0.1.6"


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


@contextlib.contextmanager
def start_osmem(workdir: Path, *, timeout: float = 15.0) -> Iterator[Server]:
    """One in-memory osmem-server speaking the OpenSearch REST API."""
    binary = python_module_path("osmem_server", OSMEM_SPEC, "osmem") / "bin" / "osmem-server"
    if not os.access(binary, os.X_OK):
        raise missing(str(binary), f"PyPI {OSMEM_SPEC} (a platform wheel)", "osmem")
    port = free_port()
    argv = [str(binary), "-addr", f"{LOOPBACK}:{port}", "-no-stdin-watch", "-no-ja"]
    url = f"http://{LOOPBACK}:{port}"
    with ServerProcess("osmem", argv, workdir=workdir) as process:
        process.wait_ready(lambda: _http_ok(url + "/"), timeout)
        yield Server(
            kind="osmem",
            host=LOOPBACK,
            port=port,
            url=url,
            pids=(process.pid,),
            workdir=workdir,
            nodes=((LOOPBACK, port),),
        )


# -- session fixtures (registered by the contract plugin) --------------------------


@pytest.fixture(scope="session")
def osmem_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An in-memory OpenSearch-API server (osmem-server); ``opensearch_server`` is the real one."""
    with start_osmem(tmp_path_factory.mktemp("osmem")) as server:
        yield server
