"""The native asyncio twin of the Cassandra backend, on the driver's ``execute_async`` futures.

The driver runs its own event loop thread (libev); each request's
``ResponseFuture`` calls back into the asyncio loop with
``call_soon_threadsafe``, so no thread is held per request. The store runs
the same compare-and-set steps as :class:`~resultstore_cassandra.backend.CassandraBackend`,
awaited; groups, chords and waiting stay on the sync backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any

from resultstore import StoreOutcome, TaskResult

from resultstore_cassandra._driver import PreparedStatement
from resultstore_cassandra.backend import Step, live
from resultstore_cassandra.client import LWT_PROFILE

if TYPE_CHECKING:
    from resultstore_cassandra.backend import CassandraBackend

__all__ = ["AsyncCassandraBackend", "execute_async"]


def _settle(future: asyncio.Future[list[Any]], value: Any, failed: bool) -> None:
    if future.done():  # cancelled meanwhile (the caller's timeout)
        return
    if failed:
        future.set_exception(value)
    else:
        future.set_result(list(value))


def execute_async(
    backend: CassandraBackend,
    statement: PreparedStatement,
    params: Sequence[Any],
    profile: str | None = None,
) -> asyncio.Future[list[Any]]:
    """One request as an asyncio future (its rows: the first page, all a backend reads)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[list[Any]] = loop.create_future()
    if profile is None:
        response = backend.session.execute_async(statement, params)
    else:
        response = backend.session.execute_async(statement, params, execution_profile=profile)
    response.add_callbacks(
        lambda rows: loop.call_soon_threadsafe(_settle, future, rows, False),
        lambda exc: loop.call_soon_threadsafe(_settle, future, exc, True),
    )
    return future


class AsyncCassandraBackend:
    """An :class:`~resultstore.AsyncResultBackend` over one CassandraBackend's session."""

    def __init__(self, backend: CassandraBackend) -> None:
        self._sync = backend
        self.capabilities = backend.capabilities

    async def _run_steps(self, steps: Callable[[], Generator[Step, list[Any], Any]]) -> Any:
        async def once() -> Any:
            generator = steps()
            rows: list[Any] | None = None
            try:
                while True:
                    statement, params, profile = (
                        next(generator) if rows is None else generator.send(rows)
                    )
                    rows = await execute_async(self._sync, statement, params, profile)
            except StopIteration as stop:
                return stop.value

        return await self._sync.retry.run_async(once)

    async def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        sync = self._sync
        plan = sync.plan(result, overwrite)
        outcome: StoreOutcome = await self._run_steps(lambda: sync.store_steps(plan))
        return outcome

    async def _row(self, task_id: str) -> list[Any]:
        return await execute_async(self._sync, self._sync.statements.get, (task_id,))

    async def get(self, task_id: str) -> TaskResult | None:
        sync = self._sync
        rows = await sync.retry.run_async(lambda: self._row(task_id))
        return self._decode(task_id, rows, sync.now())

    def _decode(self, task_id: str, rows: list[Any], now: float) -> TaskResult | None:
        if not rows:
            return None
        state, payload, expires_at = rows[0]
        if state is None or not live(expires_at, now):
            return None
        return self._sync.load_result(payload, task_id)

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        sync = self._sync
        ids = list(dict.fromkeys(task_ids))
        statement, requests = sync.bulk_requests(ids)
        limit = asyncio.Semaphore(sync.settings.concurrency)

        async def one(params: tuple[Any, ...]) -> list[Any]:
            async with limit:
                return await execute_async(sync, statement, params)

        async def all_of() -> list[list[Any]]:
            return list(await asyncio.gather(*(one(params) for params in requests)))

        replies = await sync.retry.run_async(all_of)
        return sync.bulk_results(ids, replies)

    async def forget(self, task_id: str) -> None:
        sync = self._sync
        await sync.retry.run_async(
            lambda: execute_async(sync, sync.statements.forget, (task_id,), LWT_PROFILE)
        )
        sync.forget_known(task_id)

    async def close(self) -> None:
        # The session belongs to the sync backend, which the caller closes.
        return None
