"""The asyncio side: aget and await, cancellation, async groups, native and threaded twins."""

from __future__ import annotations

import asyncio
import threading
import tracemalloc
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from resultstore import (
    AsyncResultBackend,
    BackendConfig,
    Capability,
    ConfigurationError,
    Options,
    ResultBackend,
    ResultStore,
    ResultTimeoutError,
    Serializer,
    State,
    ThreadedAsyncBackend,
    build_hooks,
    connect,
    hookimpl,
)
from resultstore.api.aio import AsyncResultStore, async_backend_for, connect_async
from resultstore.api.waiting import WaitHub
from resultstore.backends.memory import MemoryBackend, MemoryListener
from resultstore.concepts.models import StoreOutcome, TaskResult, utcnow
from resultstore.concepts.urls import parse_url

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'results.db'}"


async def watched(hub: WaitHub, task_ids: Sequence[str]) -> None:
    """Yield to the loop until every id is waited on, then until the hub applied it."""
    for _ in range(10_000):
        if set(task_ids) <= hub.watched_ids():
            break
        await asyncio.sleep(0.002)
    assert await asyncio.to_thread(hub.flush, 30)


def hub_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("resultstore-hub")]


# -- aget and await ---------------------------------------------------------------------------


def test_aget_and_await_return_a_value_stored_before_the_wait(url: str) -> None:
    async def main() -> None:
        async with await connect_async(url) as store:
            await store.mark_as_done("t", {"n": 1})
            handle = store.result("t")
            assert await handle.aget(timeout=5) == {"n": 1}
            assert await store.result("t") == {"n": 1}

    run(main())


def test_aget_wakes_for_a_result_stored_after_the_wait_began(url: str) -> None:
    async def main() -> None:
        async with await connect_async(url) as store:
            waiting = asyncio.create_task(store.result("t").aget(timeout=10))
            await watched(store.sync.hub, ["t"])
            await store.mark_as_done("t", "late")
            assert await waiting == "late"
            assert store.sync.hub.watched == 0

    run(main())


def test_aget_from_a_sync_store_handle(url: str) -> None:
    async def main(store: ResultStore) -> Any:
        waiting = asyncio.create_task(store.result("t").aget(timeout=10))
        await watched(store.hub, ["t"])
        await asyncio.to_thread(store.mark_as_done, "t", 7)
        return await waiting

    with connect(url) as store:
        assert run(main(store)) == 7


def test_aget_timeout_names_the_task(url: str) -> None:
    async def main() -> None:
        async with await connect_async(url) as store:
            with pytest.raises(ResultTimeoutError, match=r"task 'slow'.*timeout=0\.1s"):
                await store.result("slow").aget(timeout=0.1)
            assert store.sync.hub.watched == 0

    run(main())


def test_aget_propagates_or_returns_the_exception(url: str) -> None:
    async def main() -> None:
        async with await connect_async(url) as store:
            await store.mark_as_failure("t", ValueError("bad"))
            with pytest.raises(ValueError, match="bad"):
                await store.result("t")
            value = await store.result("t").aget(propagate=False)
            assert isinstance(value, ValueError)

    run(main())


def test_cancelling_a_waiter_leaves_no_subscription_and_no_task() -> None:
    async def main() -> None:
        async with await connect_async("memory://") as store:
            hub = store.sync.hub
            waiter = asyncio.create_task(store.result("t").aget())
            await watched(hub, ["t"])
            listener = hub.listener
            assert isinstance(listener, MemoryListener)
            assert listener.subscriptions == {"t"}
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert hub.watched == 0
            assert await asyncio.to_thread(hub.flush, 10)
            assert listener.subscriptions == frozenset()
            assert asyncio.all_tasks() == {asyncio.current_task()}

    run(main())


def test_cancelling_a_group_wait_leaves_no_subscription() -> None:
    async def main() -> None:
        async with await connect_async("memory://") as store:
            hub = store.sync.hub
            await store.mark_as_done("a", 1)
            joining = asyncio.create_task(store.group_result("g", ["a", "b", "c"]).ajoin())
            await watched(hub, ["b", "c"])
            joining.cancel()
            with pytest.raises(asyncio.CancelledError):
                await joining
            assert await asyncio.to_thread(hub.flush, 10)
            listener = hub.listener
            assert isinstance(listener, MemoryListener)
            assert listener.subscriptions == frozenset()

    run(main())


# -- async groups ------------------------------------------------------------------------------


def test_ajoin_returns_values_in_group_order(url: str) -> None:
    async def main() -> None:
        async with await connect_async(url) as store:
            ids = [f"t{i}" for i in range(6)]
            await store.mark_as_done("t4", 4)
            group = store.group_result("g", ids)
            joining = asyncio.create_task(group.ajoin(timeout=10))
            await watched(store.sync.hub, [i for i in ids if i != "t4"])
            for i in (5, 3, 1, 0, 2):
                await store.mark_as_done(f"t{i}", i)
            assert await joining == list(range(6))
            assert await store.group_result("g", ids) == list(range(6))

    run(main())


def test_ajoin_propagates_the_first_failure(url: str) -> None:
    async def main() -> None:
        async with await connect_async(url) as store:
            await store.mark_as_failure("b", KeyError("b"))
            with pytest.raises(KeyError):
                await store.group_result("g", ["a", "b"]).ajoin(timeout=30)
            values = await store.group_result("g", ["b"]).ajoin(propagate=False)
            assert isinstance(values[0], KeyError)

    run(main())


def test_ajoin_timeout_names_the_group(url: str) -> None:
    async def main() -> None:
        async with await connect_async(url) as store:
            with pytest.raises(ResultTimeoutError, match="group 'g'"):
                await store.group_result("g", ["x"]).ajoin(timeout=0.1)

    run(main())


def test_aas_completed_yields_in_finishing_order(url: str) -> None:
    async def main() -> None:
        async with await connect_async(url) as store:
            await store.mark_as_done("c", "c")
            seen: list[str] = []
            stream = store.group_result("g", ["a", "b", "c"]).aas_completed(timeout=10)
            seen.append((await anext(stream)).task_id)
            for task_id in ("b", "a"):
                await store.mark_as_done(task_id, task_id)
                seen.append((await anext(stream)).task_id)
            with pytest.raises(StopAsyncIteration):
                await anext(stream)
            assert seen == ["c", "b", "a"]

    run(main())


def test_closing_aas_completed_early_stops_the_wait() -> None:
    async def main() -> None:
        async with await connect_async("memory://") as store:
            hub = store.sync.hub
            stream = store.group_result("g", ["a", "b"]).aas_completed()
            step = asyncio.create_task(anext(stream))
            await watched(hub, ["a", "b"])
            await store.mark_as_done("a", 1)
            assert (await step).task_id == "a"
            assert hub.watched_ids() == {"b"}
            await stream.aclose()
            assert hub.watched == 0

    run(main())


# -- connect_async and the twins ------------------------------------------------------------------


def test_connect_async_drives_a_sync_backend_through_threads(url: str) -> None:
    stored: list[str] = []

    class Observer:
        @hookimpl
        def resultstore_on_store(self, url: str, result: TaskResult, outcome: StoreOutcome) -> None:
            stored.append(result.task_id)

    async def main() -> None:
        async with await connect_async(url, plugins=[Observer()]) as store:
            assert not store.native
            assert isinstance(store.backend, ThreadedAsyncBackend)
            assert Capability.NATIVE_ASYNC not in store.backend.capabilities
            await store.mark_as_started("t")
            await store.update_state("t", "PROGRESS", {"current": 1})
            assert (await store.get("t")) == TaskResult("t", "PROGRESS", {"current": 1})
            outcome = await store.mark_as_done("t", 1)
            assert outcome.stored
            refused = await store.mark_as_started("t")
            assert not refused.stored
            assert refused.state == State.SUCCESS
            assert await store.get_many(["t", "missing"]) == {
                "t": await store.get("t"),
                "missing": None,
            }
            await store.save_group("g", ["t"])
            group = await store.restore_group("g")
            assert group is not None
            assert await group.ajoin() == [1]
            await store.delete_group("g")
            assert await store.get_group("g") is None
            await store.set_chord_size("c", 1)
            part = TaskResult("p", State.SUCCESS, 2, date_done=utcnow())
            chord = await store.chord_part_return("c", 0, part)
            assert chord.complete
            progress = await store.get_chord("c")
            assert progress is not None
            assert progress.completed
            await store.forget("t")
            assert await store.get("t") is None
            assert await store.cleanup() == 0

    run(main())
    assert stored == ["t", "t", "t", "t"]


class DirectAsync:
    """A native asyncio twin for tests: it calls the memory backend inline, without threads."""

    def __init__(self, backend: MemoryBackend) -> None:
        self.backend = backend
        self.capabilities = backend.capabilities
        self.calls = 0
        self.closed = False

    async def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        self.calls += 1
        return self.backend.store(result, overwrite=overwrite)

    async def get(self, task_id: str) -> TaskResult | None:
        self.calls += 1
        return self.backend.get(task_id)

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        self.calls += 1
        return self.backend.get_many(task_ids)

    async def forget(self, task_id: str) -> None:
        self.calls += 1
        self.backend.forget(task_id)

    async def close(self) -> None:
        self.closed = True


class NativeBackend(MemoryBackend):
    capabilities = MemoryBackend.capabilities | {Capability.NATIVE_ASYNC}

    def async_backend(self) -> DirectAsync:
        self.twin = DirectAsync(self)
        return self.twin


class LyingBackend(MemoryBackend):
    """Declares native asyncio but has no async_backend(): a plugin bug."""

    capabilities = MemoryBackend.capabilities | {Capability.NATIVE_ASYNC}


def make_store(backend_class: type[MemoryBackend]) -> ResultStore:
    url = parse_url("memory://")
    hooks = build_hooks(entry_points=False)
    serializer = Serializer(hooks=hooks)
    backend = backend_class(BackendConfig(url, serializer, Options({}, source="test"), None))
    return ResultStore(backend, url=url, hooks=hooks, serializer=serializer)


def test_a_backend_declaring_native_async_is_used_natively() -> None:
    async def main() -> None:
        async with AsyncResultStore(make_store(NativeBackend)) as store:
            assert store.native
            twin = store.backend
            assert isinstance(twin, DirectAsync)
            assert isinstance(twin, AsyncResultBackend)
            await store.mark_as_done("t", 3)
            assert await store.result("t") == 3
            assert await store.group_result("g", ["t"]).ametas() == [await store.get("t")]
            assert twin.calls >= 3
        assert twin.closed

    run(main())


def test_declaring_native_async_without_the_method_is_a_configuration_error() -> None:
    with (
        make_store(LyingBackend) as store,
        pytest.raises(ConfigurationError, match="async_backend"),
    ):
        async_backend_for(store)


def test_threaded_twin_reads_one_by_one_without_bulk_get() -> None:
    class OneByOne(MemoryBackend):
        capabilities = MemoryBackend.capabilities - {Capability.BULK_GET}

    async def main(backend: ResultBackend) -> dict[str, TaskResult | None]:
        twin = ThreadedAsyncBackend(backend, close_backend=True)
        try:
            await twin.store(TaskResult("a", State.SUCCESS, 1, date_done=utcnow()))
            return await twin.get_many(["a", "b"])
        finally:
            await twin.close()

    with make_store(OneByOne) as store:
        found = run(main(store.backend))
        # The twin closed the backend, so the values are checked as they came back.
        assert set(found) == {"a", "b"}
        assert found["a"] is not None
        assert found["a"].result == 1
        assert found["b"] is None


# -- many waiters --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_ten_thousand_waiters_share_one_hub_in_bounded_memory(kind: str, tmp_path: Path) -> None:
    count = 10_000
    url = "memory://" if kind == "memory" else f"sqlite:///{tmp_path / 'r.db'}"

    async def main() -> None:
        async with await connect_async(url) as store:
            hub = store.sync.hub
            ids = [f"t{i}" for i in range(count)]
            handles = [store.result(task_id) for task_id in ids]
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                waiters = [asyncio.create_task(h.aget(timeout=120)) for h in handles]
                await watched(hub, ids)
                per_waiter = (tracemalloc.get_traced_memory()[0] - before) / count
            finally:
                tracemalloc.stop()
            # Measured at about 2-3 kB (task, coroutine, future, watch); the bound is generous.
            assert per_waiter < 12_000, f"{per_waiter:.0f} bytes per waiter"
            assert len(hub_threads()) == 1
            if kind == "memory":
                assert hub.listener_opens == 1
                listener = hub.listener
                assert isinstance(listener, MemoryListener)
                assert listener.subscriptions == set(ids)
            else:
                assert hub.mode == "poll"
                assert hub.listener is None
            results = [
                TaskResult(t, State.SUCCESS, i, date_done=utcnow()) for i, t in enumerate(ids)
            ]
            await asyncio.to_thread(store.sync.store_many, results)
            assert await asyncio.gather(*waiters) == list(range(count))
            assert hub.watched == 0

    run(main())
