"""Real Celery workers on a real Redis broker, with the bridge as their result backend.

One worker per store (SQLite on a prefork pool, resultstore-redis and, when
resultstore-mongodb or resultstore-postgresql is installed, MongoDB and
PostgreSQL on thread pools) serves the whole session; ``bridge`` runs a test
on each, ``redis_bridge`` and ``sqlite_bridge`` on one. Each worker has a
broker database of its own.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from resultstore_contract.servers import (
    Server,
    ServerProcess,
    mongodb_server,
    postgresql_server,
    redis_server,
)

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

import bridge_app  # noqa: E402  # importable only once the tests folder is on sys.path

__all__ = [
    "STORES",
    "Bridge",
    "Bridges",
    "backend_url",
    "big_chord_bridge",
    "bridge",
    "bridges",
    "mongodb_server",
    "postgresql_server",
    "redis_bridge",
    "redis_server",
    "sqlite_bridge",
    "start_worker",
    "store_servers",
]

#: stores whose plugin may be missing, each with the session fixture of its server.
OPTIONAL_STORES = {"mongodb": "mongodb_server", "postgresql": "postgresql_server"}
STORES = [
    "sqlite",
    "redis",
    *(name for name in OPTIONAL_STORES if importlib.util.find_spec(f"resultstore_{name}")),
]
# 4 and 5 + STORES.index(store) are test_redelivery's.
_BROKER_DB = {"sqlite": 1, "redis": 2, "mongodb": 3, "postgresql": 12}


@attrs.define
class Bridge:
    """A running worker and a client app sending to it, both on the same stores."""

    store: str
    app: Any
    backend_url: str
    log_dir: Path
    worker: ServerProcess

    def task(self, name: str) -> Any:
        return self.app.tasks[f"bridge.{name}"]

    def log(self) -> str:
        """A fresh file name under the log folder, for one test's records."""
        return f"{uuid.uuid4().hex}.log"

    def lines(self, name: str) -> list[str]:
        path = self.log_dir / name
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def start_worker(
    workdir: Path,
    name: str,
    *,
    broker: str,
    backend: str,
    log_dir: Path,
    pool: str = "threads",
    concurrency: int = 4,
    acks_late: bool = False,
    extra_env: dict[str, str] | None = None,
) -> ServerProcess:
    """Start ``celery -A bridge_app worker`` and wait until it answers a ping.

    ``extra_env`` adds variables bridge_app reads (fault injection, settings).
    """
    env = {
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "BRIDGE_BROKER": broker,
        "BRIDGE_BACKEND": backend,
        "BRIDGE_LOG_DIR": str(log_dir),
        "BRIDGE_ACKS_LATE": "1" if acks_late else "0",
        **(extra_env or {}),
    }
    node = f"{name}-{uuid.uuid4().hex[:6]}@localhost"
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bridge_app",
        "worker",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--hostname",
        node,
        "--loglevel",
        "INFO",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
    ]
    process = ServerProcess(f"worker-{name}", argv, workdir=workdir, env=env).start()
    client = bridge_app.make_app(broker, backend)
    try:
        process.wait_ready(lambda: bool(client.control.ping([node], timeout=0.5)), 60)
    except BaseException:
        process.stop()
        raise
    finally:
        client.backend.close()
    return process


def backend_url(store: str, tmp: Path, servers: dict[str, Server]) -> str:
    """A fresh ``resultstore+...`` URL on ``store``: a file under ``tmp``, a new prefix or db."""
    name = f"bridge{uuid.uuid4().hex[:8]}"
    if store == "sqlite":
        return f"resultstore+sqlite:///{tmp / 'results.db'}"
    if store == "redis":
        return f"resultstore+{servers['redis'].url}?key_prefix={name}:"
    if store == "postgresql":
        return f"resultstore+{servers['postgresql'].url}?table_prefix={name}_"
    base, _, query = servers["mongodb"].url.partition("?")
    return f"resultstore+{base.rstrip('/')}/{name}?{query}"


def store_servers(request: pytest.FixtureRequest, stores: list[str]) -> dict[str, Server]:
    """The servers of the optional ``stores`` (started on first request, kept for the session)."""
    return {
        name: request.getfixturevalue(fixture)
        for name, fixture in OPTIONAL_STORES.items()
        if name in stores
    }


class Bridges:
    """Starts each store's worker on first use and keeps it for the session."""

    def __init__(self, servers: dict[str, Server], tmp_path_factory: pytest.TempPathFactory):
        self._servers = servers
        self._tmp = tmp_path_factory
        self._made: dict[str, Bridge] = {}

    def get(self, store: str) -> Bridge:
        if store not in self._made:
            self._made[store] = self._start(store)
        return self._made[store]

    def _start(self, store: str) -> Bridge:
        redis = self._servers["redis"]
        tmp = self._tmp.mktemp(f"bridge-{store}")
        log_dir = tmp / "logs"
        log_dir.mkdir()
        backend = backend_url(store, tmp, self._servers)
        broker = f"redis://{redis.host}:{redis.port}/{_BROKER_DB[store]}"
        # Prefork on SQLite: each pool process opens the store after fork().
        pool, concurrency = ("prefork", 2) if store == "sqlite" else ("threads", 4)
        worker = start_worker(
            tmp,
            store,
            broker=broker,
            backend=backend,
            log_dir=log_dir,
            pool=pool,
            concurrency=concurrency,
        )
        return Bridge(store, bridge_app.make_app(broker, backend), backend, log_dir, worker)

    def close(self) -> None:
        for made in self._made.values():
            try:
                made.app.backend.close()
            finally:
                made.worker.stop()


#: worker log lines attached to a failed test's report (a hang is told by them only).
LOG_TAIL = 80


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach the end of each bridge worker's log to a failed test's report."""
    report = yield
    if report.failed and call.when == "call":
        funcargs = getattr(item, "funcargs", {})
        for value in funcargs.values():
            if isinstance(value, Bridge) and value.worker.log_path.exists():
                lines = value.worker.log_path.read_text("utf-8", "replace").splitlines()
                title = f"worker-{value.store} log (last {LOG_TAIL} lines)"
                report.sections.append((title, "\n".join(lines[-LOG_TAIL:])))
    return report


@pytest.fixture(scope="session")
def bridges(
    request: pytest.FixtureRequest,
    redis_server: Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Bridges]:
    servers = {"redis": redis_server, **store_servers(request, STORES)}
    made = Bridges(servers, tmp_path_factory)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(params=STORES)
def bridge(request: pytest.FixtureRequest, bridges: Bridges) -> Bridge:
    """A worker and a client on each store in turn."""
    return bridges.get(request.param)


# The 1,000-part chord runs here only: on SecantusDB each chord part of
# resultstore-mongodb costs more as the chord grows, making it minutes long.
@pytest.fixture(params=[store for store in STORES if store != "mongodb"])
def big_chord_bridge(request: pytest.FixtureRequest, bridges: Bridges) -> Bridge:
    return bridges.get(request.param)


@pytest.fixture
def redis_bridge(bridges: Bridges) -> Bridge:
    return bridges.get("redis")


@pytest.fixture
def sqlite_bridge(bridges: Bridges) -> Bridge:
    return bridges.get("sqlite")
