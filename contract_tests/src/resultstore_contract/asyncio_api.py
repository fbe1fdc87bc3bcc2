"""The asyncio API against the same store as the sync API.

Whatever one API writes, the other reads; the asyncio twin (native when the
backend declares NATIVE_ASYNC, else the core's thread pool) keeps the same
rules, and asyncio waiters wake, time out and cancel cleanly. The tests run
their own event loop, so the suite needs no asyncio pytest plugin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import pytest
import resultstore
from resultstore import (
    READY_STATES,
    AsyncResultBackend,
    AsyncResultStore,
    Capability,
    ResultStore,
    ResultTimeoutError,
    State,
    StoreOutcome,
    TaskResult,
    ThreadedAsyncBackend,
    connect_async,
    hookimpl,
)
from resultstore.payloads.codecs import DecodeRequest

from resultstore_contract.support import (
    ContractBase,
    IdFactory,
    ManualClock,
    StoreFactory,
    requires,
    wait_until,
)

__all__ = ["AsyncContract"]

WAIT = 30.0
T = TypeVar("T")

AsyncConnect = Callable[[], Awaitable[AsyncResultStore]]


async def _until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout} s")
        await asyncio.sleep(0.005)


class _PayloadHeaders:
    """A plugin that notes the header line of each payload a reader decodes."""

    def __init__(self) -> None:
        self.current = ""
        self.seen: dict[str, bytes] = {}

    @hookimpl(tryfirst=True)
    def resultstore_decode(self, request: DecodeRequest) -> Any:
        self.seen.setdefault(self.current, bytes(request.payload[:200]).split(b"\n", 1)[0])
        return None  # decoding is left to the others


class AsyncContract(ContractBase):
    """``resultstore.api.aio`` over the store under test, next to the sync API."""

    def test_async_and_sync_apis_share_one_store(
        self, store: ResultStore, connect_async_store: AsyncConnect, new_id: IdFactory
    ) -> None:
        done, pending, missing = new_id(), new_id(), new_id("missing")

        async def scenario() -> None:
            async with await connect_async_store() as astore:
                assert astore.native == (Capability.NATIVE_ASYNC in store.capabilities)
                result = TaskResult(done, State.SUCCESS, {"via": "asyncio"})
                assert await astore.store(result) == StoreOutcome(True, State.SUCCESS, None)
                assert store.get(done) == result, "the sync API must read what asyncio wrote"
                progress = TaskResult(pending, "PROGRESS", {"via": "sync"})
                store.store(progress)
                assert await astore.get(pending) == progress
                refused = await astore.store(TaskResult(done, State.STARTED))
                assert refused == StoreOutcome(False, State.SUCCESS, State.SUCCESS)
                assert await astore.get_many([done, pending, missing]) == {
                    done: result,
                    pending: progress,
                    missing: None,
                }
                await astore.forget(done)
                assert store.get(done) is None
                assert await astore.get(done) is None

        asyncio.run(scenario())

    def test_async_twin_keeps_the_store_options(
        self,
        *,
        resultstore_url: str,
        store_options: Mapping[str, Any],
        store_plugins: Sequence[object],
        connect_store: StoreFactory,
        clock_option: str | None,
        new_id: IdFactory,
    ) -> None:
        """Expiry, codec, compression and clock: the twin writes and reads as the store does."""
        clock = ManualClock() if clock_option is not None else None
        # On real time, the reads below must not race the expiry: a long one here,
        # a short one for the expiry check at the end.
        expires = 60.0 if clock is not None else 600.0
        options: dict[str, Any] = {
            **store_options,
            "expires": expires,
            # bytes need msgpack: a twin that fell back to json cannot encode them.
            "codec": "msgpack",
            "compression": "zlib",
            "compress_threshold": 1024,
        }
        if clock is not None and clock_option is not None:
            options[clock_option] = clock
        sync = connect_store(**options)
        value = {"blob": b"\x00\x01resultstore" * 8192, "n": 1}
        by_async, by_sync = new_id(), new_id()
        written = TaskResult(by_async, State.SUCCESS, value)
        read_back: list[TaskResult | None] = []

        async def write_and_read() -> None:
            astore = await connect_async(resultstore_url, plugins=store_plugins, **options)
            async with astore:
                outcome = await astore.store(written)
                assert outcome.stored, f"the asyncio twin did not store: {outcome}"
                sync.store(TaskResult(by_sync, State.SUCCESS, value))
                read_back.append(await astore.get(by_sync))

        asyncio.run(write_and_read())
        assert sync.get(by_async) == written, "the sync API reads the twin's write differently"
        assert read_back == [TaskResult(by_sync, State.SUCCESS, value)], (
            "the asyncio twin reads the sync API's write differently"
        )
        # Codec and compression: a reader that notes each payload's header line sees
        # the same header on what the twin wrote as on what the sync API wrote.
        headers = _PayloadHeaders()
        reader = resultstore.connect(resultstore_url, plugins=[*store_plugins, headers], **options)
        try:
            for task_id in (by_sync, by_async):
                headers.current = task_id
                assert reader.get(task_id) is not None
        finally:
            reader.close()
        assert headers.seen.get(by_async) == headers.seen.get(by_sync), (
            f"the asyncio twin wrote a payload headed {headers.seen.get(by_async)!r}, the "
            f"sync API {headers.seen.get(by_sync)!r}: the twin dropped the codec or "
            f"compression options"
        )
        # Expiry and clock: what the twin wrote expires on the store's clock, when it should.
        if clock is None:
            short, quick = 2.0, new_id()

            async def write_short() -> None:
                astore = await connect_async(
                    resultstore_url, plugins=store_plugins, **{**options, "expires": short}
                )
                async with astore:
                    assert (await astore.store(TaskResult(quick, State.SUCCESS, 1))).stored

            asyncio.run(write_short())
            wait_until(
                lambda: sync.get(quick) is None,
                f"the twin's write to expire (expires={short:g} s)",
                timeout=short + 8.0,
            )
            return
        clock.advance(expires - 2.0)
        assert sync.get(by_async) is not None, "the twin's write expired early"
        clock.advance(3.0)
        assert sync.get(by_async) is None, (
            "the twin's write outlived the store's expiry on the store's clock: the "
            "twin dropped the expires or clock option"
        )

        async def after_expiry() -> TaskResult | None:
            astore = await connect_async(resultstore_url, plugins=store_plugins, **options)
            async with astore:
                return await astore.get(by_sync)

        assert asyncio.run(after_expiry()) is None, (
            "the asyncio twin reads a result past its expiry on the store's clock"
        )

    def test_async_twin_keeps_a_ready_state_final_under_concurrency(
        self, store: ResultStore, new_id: IdFactory
    ) -> None:
        task_id = new_id()

        async def scenario() -> list[StoreOutcome]:
            twin = ThreadedAsyncBackend(store.backend, max_workers=4)
            try:
                offers = [
                    TaskResult(task_id, (State.SUCCESS, State.FAILURE, State.STARTED)[i % 3], i)
                    for i in range(24)
                ]
                return list(await asyncio.gather(*(twin.store(r) for r in offers)))
            finally:
                await twin.close()

        outcomes = asyncio.run(scenario())
        winners = [o for o in outcomes if o.stored and o.state in READY_STATES]
        assert len(winners) == 1, f"{len(winners)} ready states were stored; one may win"
        final = store.get(task_id)
        assert final is not None
        assert final.state == winners[0].state
        assert all(o.state == final.state for o in outcomes if not o.stored)

    @requires(Capability.NATIVE_ASYNC)
    def test_async_native_twin_is_an_async_backend(
        self, connect_async_store: AsyncConnect, new_id: IdFactory
    ) -> None:
        async def scenario() -> None:
            async with await connect_async_store() as astore:
                assert astore.native, "NATIVE_ASYNC is declared but the thread pool is used"
                assert isinstance(astore.backend, AsyncResultBackend)
                task_id = new_id()
                await astore.backend.store(TaskResult(task_id, State.SUCCESS, 1))
                refused = await astore.backend.store(TaskResult(task_id, State.STARTED))
                assert not refused.stored

        asyncio.run(scenario())

    def test_async_waiter_wakes_on_a_later_store(
        self, store: ResultStore, connect_async_store: AsyncConnect, new_id: IdFactory
    ) -> None:
        early, late = new_id(), new_id()
        store.store(TaskResult(early, State.SUCCESS, "early"))

        async def scenario() -> tuple[Any, Any]:
            async with await connect_async_store() as astore:
                first = await astore.result(early).aget(timeout=WAIT)
                waiter = asyncio.ensure_future(astore.result(late).aget(timeout=WAIT))
                hub = astore.sync.hub
                await _until(lambda: late in hub.watched_ids(), "the asyncio waiter to register")
                await asyncio.to_thread(hub.flush, WAIT)
                await asyncio.to_thread(store.store, TaskResult(late, State.STARTED))
                await asyncio.to_thread(store.store, TaskResult(late, State.SUCCESS, "late"))
                return first, await waiter

        assert asyncio.run(scenario()) == ("early", "late")

    def test_async_waiter_times_out_and_cancels_cleanly(
        self, connect_async_store: AsyncConnect, new_id: IdFactory
    ) -> None:
        slow, cancelled = new_id("never-stored"), new_id("never-stored")

        async def scenario() -> None:
            async with await connect_async_store() as astore:
                hub = astore.sync.hub
                with pytest.raises(ResultTimeoutError) as caught:
                    await astore.result(slow).aget(timeout=0.2)
                assert slow in str(caught.value)
                waiter = asyncio.ensure_future(astore.result(cancelled).aget(timeout=WAIT))
                await _until(lambda: cancelled in hub.watched_ids(), "the waiter to register")
                waiter.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiter
                assert not hub.watched_ids() & {slow, cancelled}, "a waiter left its watch"

        asyncio.run(scenario())
