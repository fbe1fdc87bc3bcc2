"""Issue 10 on a real redis-server: timeouts while it is down, forged
announcements, and the rule after ``close()``."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import resultstore
from resultstore import BackendUnavailableError, ResultTimeoutError
from resultstore_contract.servers import Server, redis_command, start_redis
from resultstore_contract.support import wait_until
from resultstore_redis.backend import RedisBackend

#: what a call bounded by a 0.5 s timeout may take on a loaded 2-core machine
#: (before the fix these calls took retry_total, 20 s).
BOUND = 3.0


def _prefix() -> str:
    return f"h{uuid.uuid4().hex[:12]}:"


@pytest.fixture(scope="module")
def dead_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of a redis-server that was started, then stopped: its port refuses."""
    with start_redis(tmp_path_factory.mktemp("dead-redis")) as server:
        return server.url


@pytest.fixture
def dead_store(dead_url: str) -> Iterator[resultstore.ResultStore]:
    store = resultstore.connect(dead_url, retry_total=20, key_prefix=_prefix())
    yield store
    store.close()


def _elapsed(started: float) -> float:
    return time.monotonic() - started


def test_get_with_a_timeout_is_bounded_by_it_while_the_server_is_down(
    dead_store: resultstore.ResultStore,
) -> None:
    started = time.monotonic()
    with pytest.raises(ResultTimeoutError) as info:
        dead_store.result("a").get(timeout=0.5)
    assert _elapsed(started) < BOUND
    assert "did not answer" in str(info.value)
    assert isinstance(info.value.__cause__, ResultTimeoutError | BackendUnavailableError)


def test_join_and_chord_get_are_bounded_by_their_timeout(
    dead_store: resultstore.ResultStore,
) -> None:
    started = time.monotonic()
    with pytest.raises(ResultTimeoutError):
        dead_store.group_result("g", ["a", "b"]).join(timeout=0.5)
    assert _elapsed(started) < BOUND
    started = time.monotonic()
    with pytest.raises(ResultTimeoutError):
        list(dead_store.group_result("g", ["a", "b"]).as_completed(timeout=0.5))
    assert _elapsed(started) < BOUND
    started = time.monotonic()
    with pytest.raises(ResultTimeoutError):
        dead_store.chord_result("g", ["a"], "cb").get(timeout=0.5)
    assert _elapsed(started) < BOUND


def test_aget_and_ajoin_are_bounded_by_their_timeout(dead_url: str) -> None:
    async def run() -> None:
        async with await resultstore.connect_async(
            dead_url, retry_total=20, key_prefix=_prefix()
        ) as astore:
            assert astore.native
            started = time.monotonic()
            with pytest.raises(ResultTimeoutError):
                await astore.result("a").aget(timeout=0.5)
            assert _elapsed(started) < BOUND
            started = time.monotonic()
            with pytest.raises(ResultTimeoutError):
                await astore.group_result("g", ["a", "b"]).ajoin(timeout=0.5)
            assert _elapsed(started) < BOUND
            # Through a sync store's handle, read in the default executor.
            started = time.monotonic()
            with pytest.raises(ResultTimeoutError):
                await astore.sync.result("a").aget(timeout=0.5)
            assert _elapsed(started) < BOUND

    asyncio.run(run())


def test_without_a_timeout_retry_total_bounds_the_call(dead_url: str) -> None:
    with resultstore.connect(dead_url, retry_total=0.5) as store:
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError) as info:
            store.result("a").get()
        assert _elapsed(started) < BOUND
        assert "retry_total" in str(info.value)


def test_retry_total_bounds_a_tls_handshake_with_a_plaintext_port(redis_server: Server) -> None:
    """A plaintext server never answers a TLS hello: the handshake waited out
    socket_timeout (10 s) per call, whatever retry_total said."""
    url = redis_server.url.replace("redis://", "rediss://")
    with resultstore.connect(url, retry_total=2, ssl_cert_reqs="none") as store:
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(BackendUnavailableError):
                store.get("a")
            assert _elapsed(started) < 2 + BOUND


def test_a_forged_announcement_is_neither_returned_nor_cached(redis_server: Server) -> None:
    """Anyone allowed to PUBLISH (Redis ACLs can grant it without write) must
    not be able to answer a waiter with a value that is not stored."""
    prefix = _prefix()
    with resultstore.connect(redis_server.url, key_prefix=prefix) as store:
        backend = store.backend
        assert isinstance(backend, RedisBackend)
        handle = store.result("victim")
        outcome: list[object] = []

        def wait() -> None:
            try:
                outcome.append(handle.get(timeout=1.5))
            except ResultTimeoutError as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=wait)
        waiter.start()
        wait_until(lambda: "victim" in store.hub.watched_ids(), "the waiter to subscribe")
        assert store.hub.flush(5)
        # A well-formed value, as the store script would publish it.
        forged = b"SUCCESS\0" + store.serializer.dumps(
            resultstore.TaskResult("victim", resultstore.State.SUCCESS, "forged")
        )
        receivers = redis_command(
            redis_server.address, "PUBLISH", backend.channel("victim"), forged
        )
        assert receivers == 1
        waiter.join(10)
        assert len(outcome) == 1
        assert isinstance(outcome[0], ResultTimeoutError), outcome
        assert store.get("victim") is None
        assert handle.state == "PENDING"
        assert not handle.ready()


def test_a_real_store_still_wakes_the_waiter(redis_server: Server) -> None:
    with resultstore.connect(redis_server.url, key_prefix=_prefix()) as store:
        handle = store.result("real")
        got: list[object] = []
        waiter = threading.Thread(target=lambda: got.append(handle.get(timeout=10)))
        waiter.start()
        wait_until(lambda: "real" in store.hub.watched_ids(), "the waiter to subscribe")
        assert store.hub.flush(5)
        store.mark_as_done("real", {"ok": 1})
        waiter.join(10)
        assert got == [{"ok": 1}]


def test_after_close_every_call_raises_backend_unavailable(redis_server: Server) -> None:
    store = resultstore.connect(redis_server.url, key_prefix=_prefix())
    store.mark_as_done("a", 1)
    backend = store.backend
    assert isinstance(backend, RedisBackend)
    store.close()
    store.close()  # twice is fine
    # The store refuses every call (the core's rule, tested there); redis-py
    # itself would reconnect, so the backend used directly must refuse too.
    part = resultstore.TaskResult("p", resultstore.State.SUCCESS, 1)
    for call in (
        lambda: store.result("a").get(timeout=1),
        lambda: backend.get("a"),
        lambda: backend.get_many(["a", "b"]),
        lambda: backend.chord_part_return("g", 0, part),
        backend.listener,
    ):
        with pytest.raises(BackendUnavailableError, match="closed"):
            call()


def test_after_close_the_asyncio_twin_raises_backend_unavailable(redis_server: Server) -> None:
    async def run() -> None:
        astore = await resultstore.connect_async(redis_server.url, key_prefix=_prefix())
        await astore.mark_as_done("a", 1)
        await astore.close()
        with pytest.raises(BackendUnavailableError, match="closed"):
            await astore.get("a")
        with pytest.raises(BackendUnavailableError, match="closed"):
            await astore.result("a").aget(timeout=1)

    asyncio.run(run())


def test_the_dead_server_fixture_really_refuses(dead_url: str) -> None:
    """The tests above rely on a closed port, not on a slow one."""
    host, port = dead_url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    with pytest.raises(ConnectionRefusedError):
        redis_command((host, int(port)), "PING", timeout=1)


def test_a_server_that_stops_answering_holds_no_call_past_its_bound(tmp_path: Path) -> None:
    """SIGSTOP: connections stay open but no reply comes. A connection made
    before waited socket_timeout (10 s) for its reply, whatever the bound."""
    with start_redis(tmp_path) as server:
        store = resultstore.connect(server.url, retry_total=1, key_prefix=_prefix())
        try:
            store.mark_as_started("a")  # this thread's connection is open now
            os.kill(server.pids[0], signal.SIGSTOP)
            try:
                started = time.monotonic()
                with pytest.raises(ResultTimeoutError):
                    store.result("a").get(timeout=0.5)
                assert _elapsed(started) < BOUND
                started = time.monotonic()
                with pytest.raises(BackendUnavailableError, match="retry_total"):
                    store.get("a")
                assert _elapsed(started) < 1 + BOUND
            finally:
                os.kill(server.pids[0], signal.SIGCONT)
        finally:
            store.close()
