"""Issue 10 on a real MongoDB wire server (SecantusDB): timeouts while it is
down, a bounded ``close()``, and the rule after ``close()``."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import resultstore
from resultstore import BackendUnavailableError, ResultTimeoutError
from resultstore.concepts.models import Group, utcnow
from resultstore_contract.servers import Server, start_mongodb
from resultstore_mongodb.backend import MongoBackend

#: what a call bounded by a 0.5 s timeout may take on a loaded 2-core machine
#: (before the fix these calls took retry_total, 20 s).
BOUND = 3.0


def _database() -> str:
    return f"h{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def stores_of_a_dead_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[resultstore.ResultStore]]:
    """Stores connected while the server ran; it was stopped since."""
    opened: list[resultstore.ResultStore] = []
    with start_mongodb(tmp_path_factory.mktemp("dead-mongodb")) as server:
        for _ in range(3):
            store = resultstore.connect(server.url, retry_total=20, database=_database())
            store.mark_as_started("warm")
            opened.append(store)
    yield opened
    for store in opened:
        store.close()


def _elapsed(started: float) -> float:
    return time.monotonic() - started


def test_get_join_and_chord_get_are_bounded_by_their_timeout(
    stores_of_a_dead_server: list[resultstore.ResultStore],
) -> None:
    store = stores_of_a_dead_server[0]
    waits: dict[str, Callable[[], object]] = {
        "get": lambda: store.result("a").get(timeout=0.5),
        "join": lambda: store.group_result("g", ["a", "b"]).join(timeout=0.5),
        "chord get": lambda: store.chord_result("g", ["a"], "cb").get(timeout=0.5),
    }
    for name, wait in waits.items():
        started = time.monotonic()
        with pytest.raises(ResultTimeoutError, match="MongoDB at"):
            wait()
        assert _elapsed(started) < BOUND, name


def test_aget_and_ajoin_are_bounded_by_their_timeout(
    stores_of_a_dead_server: list[resultstore.ResultStore],
) -> None:
    store = stores_of_a_dead_server[1]

    async def run() -> list[float]:
        astore = resultstore.AsyncResultStore(store)
        assert astore.native
        waits = (
            lambda: astore.result("a").aget(timeout=0.5),
            lambda: astore.group_result("g", ["a", "b"]).ajoin(timeout=0.5),
            lambda: store.result("a").aget(timeout=0.5),  # read in the default executor
        )
        took = []
        try:
            for wait in waits:
                started = time.monotonic()
                with pytest.raises(ResultTimeoutError):
                    await wait()
                took.append(_elapsed(started))
        finally:
            started = time.monotonic()
            await astore.backend.close()
            took.append(_elapsed(started))
        return took

    assert all(seconds < BOUND for seconds in asyncio.run(run()))


def test_close_is_bounded_while_the_server_is_down(
    stores_of_a_dead_server: list[resultstore.ResultStore],
) -> None:
    """pymongo's close() ends the client's sessions, waiting for a server
    for serverSelectionTimeoutMS (here retry_total, 20 s)."""
    store = stores_of_a_dead_server[2]
    started = time.monotonic()
    store.close()
    assert _elapsed(started) < BOUND
    with pytest.raises(BackendUnavailableError, match="closed"):
        store.get("warm")


def test_without_a_timeout_retry_total_bounds_the_call(tmp_path: Path) -> None:
    with start_mongodb(tmp_path) as server:
        store = resultstore.connect(server.url, retry_total=1, database=_database())
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError, match="retry_total"):
            store.result("a").get()
        assert _elapsed(started) < 1 + BOUND
    finally:
        store.close()


def test_after_close_every_call_raises_backend_unavailable(mongodb_server: Server) -> None:
    store = resultstore.connect(mongodb_server.url, database=_database())
    store.mark_as_done("a", 1)
    backend = store.backend
    assert isinstance(backend, MongoBackend)
    store.close()
    store.close()  # twice is fine
    # The store refuses every call (the core's rule, tested there); the backend
    # used directly refuses too, where pymongo raised its own InvalidOperation.
    for call in (
        lambda: store.get("a"),
        lambda: backend.store(resultstore.TaskResult("c", resultstore.State.STARTED)),
        lambda: backend.save_group(Group("g", ("a",), utcnow())),
        backend.cleanup,
        backend.listener,
    ):
        with pytest.raises(BackendUnavailableError, match="closed"):
            call()
