"""An :class:`~resultstore.AsyncResultBackend` that drives any sync backend in threads.

Backends whose client library has no asyncio API get their asyncio twin
from here: every call runs in a small thread pool, so the event loop never
blocks on the store. The sync backend must be thread-safe (all built-in
ones are).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

from resultstore.concepts.errors import BackendUnavailableError
from resultstore.concepts.models import StoreOutcome, TaskResult
from resultstore.plugin.protocols import Capability, ResultBackend, SupportsBulkGet

__all__ = ["DEFAULT_MAX_WORKERS", "ThreadedAsyncBackend"]

#: threads per pool: enough to overlap a few round trips, few enough for 2-core hosts.
DEFAULT_MAX_WORKERS = 4

T = TypeVar("T")


class ThreadedAsyncBackend:
    """The asyncio twin of ``backend``, running each call in a thread pool.

    ``close()`` shuts down the pool it made (not one passed in) and closes
    the sync backend only when ``close_backend`` is true: usually a
    :class:`~resultstore.ResultStore` owns that backend and closes it.
    """

    def __init__(
        self,
        backend: ResultBackend,
        *,
        executor: concurrent.futures.Executor | None = None,
        max_workers: int = DEFAULT_MAX_WORKERS,
        close_backend: bool = False,
    ) -> None:
        self.backend = backend
        # The twin is not native, whatever the backend says of its own.
        self.capabilities = backend.capabilities - {Capability.NATIVE_ASYNC}
        self._owns_executor = executor is None
        self._executor = executor or concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="resultstore-aio"
        )
        self._close_backend = close_backend
        self._closed = False

    def __repr__(self) -> str:
        return f"<ThreadedAsyncBackend over {self.backend!r}>"

    async def _run(self, call: Callable[[], T]) -> T:
        if self._closed:
            raise BackendUnavailableError(f"{self!r} was closed; connect() again to use it")
        # With this task's context: a caller's deadline reaches the backend's retries.
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self._executor, context.run, call)

    async def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        return await self._run(functools.partial(self.backend.store, result, overwrite=overwrite))

    async def get(self, task_id: str) -> TaskResult | None:
        return await self._run(functools.partial(self.backend.get, task_id))

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        ids = list(task_ids)
        if Capability.BULK_GET in self.backend.capabilities:
            bulk = cast(SupportsBulkGet, self.backend)
            return await self._run(functools.partial(bulk.get_many, ids))
        return await self._run(lambda: {task_id: self.backend.get(task_id) for task_id in ids})

    async def forget(self, task_id: str) -> None:
        await self._run(functools.partial(self.backend.forget, task_id))

    async def call(self, function: Callable[[], T]) -> T:
        """Run any other sync call of the backend (groups, chords...) in the pool."""
        return await self._run(function)

    async def close(self) -> None:
        if self._closed:
            return
        if self._close_backend:
            await self._run(self.backend.close)
        self._closed = True
        if self._owns_executor:
            # Waiting for the threads in a thread keeps the loop responsive.
            await asyncio.get_running_loop().run_in_executor(
                None, functools.partial(self._executor.shutdown, wait=True)
            )
