"""The asyncio side: :func:`connect_async` and :class:`AsyncResultStore`.

A backend that declares ``Capability.NATIVE_ASYNC`` offers its own asyncio
twin through ``async_backend()`` (:class:`~resultstore.SupportsNativeAsync`);
any other backend is driven through a thread pool
(:class:`~resultstore.ThreadedAsyncBackend`). Waiting
goes through the same per-process hub as sync waiters, so one process holds
one push listener (or one poller) per store whatever mix of threads and
event loops waits on it.
"""

from __future__ import annotations

import asyncio
import functools
import traceback as tb
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar, cast

from resultstore.api.result import AsyncResult, ChordResult, GroupResult
from resultstore.api.store import ResultStore, connect
from resultstore.backends.threaded import ThreadedAsyncBackend
from resultstore.concepts.errors import ConfigurationError
from resultstore.concepts.models import (
    ChordOutcome,
    ChordState,
    Group,
    StoreOutcome,
    TaskResult,
    utcnow,
)
from resultstore.concepts.remote import describe_exception
from resultstore.concepts.states import State
from resultstore.concepts.validation import (
    check_result,
    check_results,
    check_task_id,
    check_task_ids,
)
from resultstore.plugin.hooks import Hooks
from resultstore.plugin.protocols import AsyncResultBackend, Capability, SupportsNativeAsync
from resultstore.plugin.retrying import Closed

__all__ = ["AsyncResultStore", "async_backend_for", "connect_async"]

T = TypeVar("T")


def async_backend_for(store: ResultStore) -> AsyncResultBackend:
    """The asyncio twin of ``store``'s backend: native if declared, else threaded."""
    backend = store.backend
    if Capability.NATIVE_ASYNC in backend.capabilities:
        if not isinstance(backend, SupportsNativeAsync):
            raise ConfigurationError(
                f"the {store.url.scheme}:// backend declares the 'native_async' capability "
                f"but has no async_backend() method; the plugin must add one or stop "
                f"declaring the capability"
            )
        return backend.async_backend()
    return ThreadedAsyncBackend(backend)


async def connect_async(
    url: str | None = None,
    *,
    plugins: Iterable[object] = (),
    hooks: Hooks | None = None,
    allowed_exceptions: Iterable[type[BaseException]] = (),
    **options: Any,
) -> AsyncResultStore:
    """:func:`resultstore.connect` for asyncio code; use ``async with``.

    Building the backend may touch the network or disk, so it runs in a
    thread; the asyncio twin is then made inside the running loop.
    """
    store = await asyncio.to_thread(
        functools.partial(
            connect,
            url,
            plugins=plugins,
            hooks=hooks,
            allowed_exceptions=allowed_exceptions,
            **options,
        )
    )
    try:
        return AsyncResultStore(store)
    except BaseException:
        store.close()
        raise


class AsyncResultStore:
    """A :class:`~resultstore.ResultStore` for asyncio code.

    Reads and writes of results use the asyncio twin (``backend``); groups,
    chords and cleanup run the sync store's calls in the twin's threads when
    it is threaded, in the default executor otherwise. Observer hooks fire
    as they do for the sync store. ``sync`` is the sync store underneath.
    """

    def __init__(self, store: ResultStore, backend: AsyncResultBackend | None = None) -> None:
        self.sync = store
        self.backend = backend if backend is not None else async_backend_for(store)
        self.url = store.url
        self.hooks = store.hooks

    def __repr__(self) -> str:
        return f"<AsyncResultStore {self.url.redacted()}>"

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.sync.capabilities

    def supports(self, capability: Capability) -> bool:
        return self.sync.supports(capability)

    @property
    def native(self) -> bool:
        """True when the asyncio twin is the backend's own, not a thread pool."""
        return not isinstance(self.backend, ThreadedAsyncBackend)

    async def _sync_call(self, call: Callable[[], T]) -> T:
        if isinstance(self.backend, ThreadedAsyncBackend):
            return await self.backend.call(call)
        return await asyncio.get_running_loop().run_in_executor(None, call)

    def _observe(self, result: TaskResult, outcome: StoreOutcome) -> None:
        if self.hooks.observes():
            self.hooks.on_store(self.url.redacted(), result, outcome)

    # -- storing -------------------------------------------------------------------

    async def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        """Store a result; a ready state already stored is kept unless ``overwrite``."""
        check_result(result)
        outcome = await self.backend.store(result, overwrite=overwrite)
        self._observe(result, outcome)
        return outcome

    async def store_many(
        self, results: Sequence[TaskResult], *, overwrite: bool = False
    ) -> list[StoreOutcome]:
        check_results(results)
        return [await self.store(result, overwrite=overwrite) for result in results]

    async def mark_as_started(self, task_id: str, **fields: Any) -> StoreOutcome:
        return await self.store(TaskResult(task_id, State.STARTED, **fields))

    async def mark_as_done(self, task_id: str, value: Any, **fields: Any) -> StoreOutcome:
        return await self.store(
            TaskResult(task_id, State.SUCCESS, value, date_done=utcnow(), **fields)
        )

    async def mark_as_failure(
        self, task_id: str, exc: BaseException, *, state: str = State.FAILURE, **fields: Any
    ) -> StoreOutcome:
        trace = fields.pop("traceback", None)
        if trace is None and exc.__traceback__ is not None:
            trace = "".join(tb.format_exception(exc))
        ready = state in (State.FAILURE, State.REVOKED)
        return await self.store(
            TaskResult(
                task_id,
                state,
                exception=describe_exception(exc),
                traceback=trace,
                date_done=utcnow() if ready else None,
                **fields,
            )
        )

    async def update_state(
        self, task_id: str, state: str, meta: Any = None, **fields: Any
    ) -> StoreOutcome:
        return await self.store(TaskResult(task_id, state, meta, **fields))

    # -- reading ---------------------------------------------------------------------

    async def get(self, task_id: str) -> TaskResult | None:
        return await self.backend.get(check_task_id(task_id))

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        check_task_ids(task_ids)
        return await self.backend.get_many(task_ids)

    async def forget(self, task_id: str) -> None:
        await self.backend.forget(check_task_id(task_id))
        if self.hooks.observes():
            self.hooks.on_forget(self.url.redacted(), task_id)

    def result(self, task_id: str) -> AsyncResult:
        """A handle whose asyncio reads go through this store's twin."""
        return AsyncResult(task_id, self.sync, astore=self)

    def group_result(self, group_id: str, task_ids: Sequence[str]) -> GroupResult:
        return GroupResult(group_id, task_ids, self.sync, astore=self)

    async def restore_group(self, group_id: str) -> GroupResult | None:
        group = await self.get_group(group_id)
        return None if group is None else self.group_result(group_id, group.task_ids)

    def chord_result(
        self, group_id: str, header_ids: Sequence[str], callback_id: str
    ) -> ChordResult:
        return ChordResult(group_id, header_ids, callback_id, self.sync, astore=self)

    # -- groups, chords, housekeeping (the sync store's calls, off the loop) --------

    async def save_group(self, group_id: str, task_ids: Sequence[str]) -> Group:
        return await self._sync_call(functools.partial(self.sync.save_group, group_id, task_ids))

    async def get_group(self, group_id: str) -> Group | None:
        return await self._sync_call(functools.partial(self.sync.get_group, group_id))

    async def delete_group(self, group_id: str) -> None:
        await self._sync_call(functools.partial(self.sync.delete_group, group_id))

    async def set_chord_size(self, group_id: str, size: int) -> None:
        await self._sync_call(functools.partial(self.sync.set_chord_size, group_id, size))

    async def chord_part_return(
        self, group_id: str, index: int, result: TaskResult
    ) -> ChordOutcome:
        return await self._sync_call(
            functools.partial(self.sync.chord_part_return, group_id, index, result)
        )

    async def get_chord(self, group_id: str) -> ChordState | None:
        return await self._sync_call(functools.partial(self.sync.get_chord, group_id))

    async def cleanup(self) -> int:
        return await self._sync_call(self.sync.cleanup)

    async def close(self) -> None:
        """Close the asyncio twin, then the sync store (which stops its waiting hub).

        Closing again does nothing; any other call afterwards raises
        :class:`~resultstore.BackendUnavailableError`.
        """
        backend = self.backend
        if isinstance(backend, Closed):
            return
        self.backend = cast(
            AsyncResultBackend, Closed(repr(self), capabilities=backend.capabilities)
        )
        try:
            await backend.close()
        finally:
            await asyncio.to_thread(self.sync.close)

    aclose = close

    async def __aenter__(self) -> AsyncResultStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
