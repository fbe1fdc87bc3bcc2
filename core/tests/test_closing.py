"""One rule after ``close()``, on every built-in backend: the documented
BackendUnavailableError, from the store and from its backend used directly."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import resultstore
from resultstore import BackendUnavailableError, State, TaskResult
from resultstore.concepts.models import Group, utcnow
from resultstore_contract.support import wait_until


def _url(scheme: str, tmp_path: Path) -> str:
    return "memory://" if scheme == "memory" else f"sqlite:///{tmp_path / 'results.db'}"


def _store_calls(store: resultstore.ResultStore) -> list[Callable[[], Any]]:
    return [
        lambda: store.get("a"),
        lambda: store.get_many(["a", "b"]),
        lambda: store.mark_as_done("b", 2),
        lambda: store.store_many([TaskResult("c", State.STARTED)]),
        lambda: store.forget("a"),
        lambda: store.save_group("g", ["a"]),
        lambda: store.get_group("g"),
        lambda: store.set_chord_size("g", 1),
        lambda: store.get_chord("g"),
        store.cleanup,
        lambda: store.result("a").get(timeout=5),
        lambda: store.result("a").state,
        lambda: store.group_result("g", ["a"]).join(timeout=5),
        lambda: store.hub,
    ]


def _backend_calls(backend: Any) -> list[Callable[[], Any]]:
    return [
        lambda: backend.get("a"),
        lambda: backend.get_many(["a"]),
        lambda: backend.store(TaskResult("c", State.STARTED)),
        lambda: backend.forget("a"),
        lambda: backend.save_group(Group("g", ("a",), utcnow())),
        lambda: backend.get_chord("g"),
        backend.cleanup,
    ]


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_every_call_after_close_raises_backend_unavailable(tmp_path: Path, scheme: str) -> None:
    url = _url(scheme, tmp_path)
    store = resultstore.connect(url)
    store.mark_as_done("a", 1)
    backend = store.backend
    store.close()
    store.close()  # closing twice is no error
    backend.close()  # nor is closing the backend again
    for call in [*_store_calls(store), *_backend_calls(backend)]:
        with pytest.raises(BackendUnavailableError, match="closed"):
            call()
    # The capabilities are still there to ask.
    assert store.supports(resultstore.Capability.GROUPS)


def test_closing_one_memory_client_leaves_the_shared_data_to_the_others() -> None:
    first = resultstore.connect("memory://closing-shared")
    second = resultstore.connect("memory://closing-shared")
    try:
        first.mark_as_done("a", 1)
        first.close()
        result = second.get("a")
        assert result is not None
        assert result.result == 1
    finally:
        second.close()


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_the_asyncio_api_after_close_raises_backend_unavailable(
    tmp_path: Path, scheme: str
) -> None:
    url = _url(scheme, tmp_path)

    async def main() -> None:
        astore = await resultstore.connect_async(url)
        twin = astore.backend
        await astore.mark_as_done("a", 1)
        await astore.close()
        await astore.close()
        for call in (
            lambda: astore.get("a"),
            lambda: astore.store(TaskResult("b", State.STARTED)),
            lambda: astore.get_group("g"),
            lambda: astore.result("a").aget(timeout=5),
            # The threaded twin, kept from before the close.
            lambda: twin.get("a"),
            lambda: twin.store(TaskResult("b", State.STARTED)),
        ):
            with pytest.raises(BackendUnavailableError, match="closed"):
                await call()

    asyncio.run(main())


def test_a_waiter_cut_off_by_close_gets_backend_unavailable() -> None:
    store = resultstore.connect("memory://")
    handle = store.result("never")
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            handle.get(timeout=10)
        except BaseException as exc:  # what the waiter got is the point
            errors.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    wait_until(lambda: store.hub.watched > 0, "the waiter to wait")
    store.close()
    waiter.join(10)
    assert len(errors) == 1
    assert isinstance(errors[0], BackendUnavailableError)
