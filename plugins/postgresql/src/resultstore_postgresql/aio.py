"""The native asyncio twin of the PostgreSQL backend, over psycopg's ``AsyncConnectionPool``.

Same tables, same statements, same retry rules as
:mod:`resultstore_postgresql.backend`; only the connections differ. Groups,
chords and waiting stay on the sync backend: asyncio waiters are woken by
the result API's hub, whose one LISTEN connection serves threads and event
loops alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from resultstore import Retry, StoreOutcome, TaskResult
from resultstore.plugin.retrying import time_left

from resultstore_postgresql.outcomes import outcome, refused, transient

if TYPE_CHECKING:
    from resultstore_postgresql.backend import PostgreSQLBackend

__all__ = ["AsyncPostgreSQLBackend"]

T = TypeVar("T")
AsyncConn = psycopg.AsyncConnection[tuple[Any, ...]]


class AsyncPostgreSQLBackend:
    """An :class:`~resultstore.plugin.protocols.AsyncResultBackend` for one
    PostgreSQLBackend's tables, with a pool of its own (opened on first use)."""

    def __init__(self, backend: PostgreSQLBackend) -> None:
        self._sync = backend
        self.capabilities = backend.capabilities
        self.settings = backend.settings
        self.tables = backend.tables
        # The same policy, but a refused login is told apart by an awaited
        # probe (see _connection), never by the sync backend's blocking one.
        self.retry = Retry(
            "PostgreSQL",
            server=self.settings.server,
            total=self.settings.retry_total,
            retry_on=transient,
            translate=backend.refusal,
            secret=self.settings.password,
        )
        self._pool: AsyncConnectionPool[AsyncConn] | None = None
        self._pid = os.getpid()
        self._opening: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"<AsyncPostgreSQLBackend {self.settings.server!r}>"

    async def pool(self) -> AsyncConnectionPool[AsyncConn]:
        """The twin's pool, opened in the running loop on first use."""
        self.retry.check_open()
        if os.getpid() != self._pid:
            # A forked child shares the parent's sockets: leave them alone.
            self._pool, self._opening, self._pid = None, None, os.getpid()
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                pool: AsyncConnectionPool[AsyncConn] = AsyncConnectionPool(
                    self.settings.conninfo,
                    **self.settings.pool_arguments(),
                    name=f"resultstore-async-{self.settings.server}",
                    open=False,
                )
                # wait=False: a down server is the first call's retry's business.
                await pool.open(wait=False)
                self._pool = pool
            return self._pool

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConn]:
        pool = await self.pool()
        left = time_left()
        bound = self.settings.retry_total if left is None else left
        # Half the time left: the retry cancels a try at its deadline, and the
        # probe below needs time to tell a refused login from a down server.
        wait = min(bound / 2, self.settings.pool_timeout)
        try:
            async with pool.connection(timeout=wait) as conn:
                if not self._sync.tables_ready:
                    await self._create_tables(conn)
                yield conn
        except PoolTimeout as exc:
            # The pool only logs why it cannot connect; one direct try tells a
            # refused login (final, translated by the retry) from a down server.
            raise await self._why_no_connection() or exc from None

    async def _why_no_connection(self) -> psycopg.OperationalError | None:
        left = time_left()
        timeout = max(1, int(min(2.0, left if left is not None else 2.0)))
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.settings.conninfo, connect_timeout=timeout
            )
        except psycopg.OperationalError as exc:
            return exc
        await conn.close()
        return None

    async def _create_tables(self, conn: AsyncConn) -> None:
        async with conn.transaction():
            await conn.execute(self.tables.lock_schema, {"key": self.tables.lock_key})
            for statement in self.tables.ddl():
                await conn.execute(statement)
        self._sync.tables_created()

    async def _run(self, call: Callable[[AsyncConn], Awaitable[T]]) -> T:
        async def once() -> T:
            async with self._connection() as conn:
                return await call(conn)

        return await self.retry.run_async(once)

    # -- AsyncResultBackend --------------------------------------------------------

    async def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        sync = self._sync
        payload = sync.encode(result)
        tries = itertools.count(1)

        async def call(conn: AsyncConn) -> StoreOutcome:
            now = sync.now()
            # A later try may meet the row an earlier one committed, its reply lost.
            again = next(tries) > 1
            params = sync.store_params(
                result, payload, now, overwrite, str(result.state), again=again
            )
            row = await (await conn.execute(self.tables.store, params)).fetchone()
            told = outcome(row, result)
            if told is not None:
                return told
            # Another writer inserted the row meanwhile (rare): read what it kept.
            cursor = await conn.execute(
                self.tables.current_state, {"task_id": result.task_id, "now": sync.now()}
            )
            return refused(result, await cursor.fetchone())

        return await self._run(call)

    async def get(self, task_id: str) -> TaskResult | None:
        params = {"task_id": task_id, "now": self._sync.now()}

        async def call(conn: AsyncConn) -> tuple[Any, ...] | None:
            return await (await conn.execute(self.tables.get, params)).fetchone()

        row = await self._run(call)
        return None if row is None else self._sync.decode(row[0])

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        wanted = list(dict.fromkeys(task_ids))
        if not wanted:
            return {}
        params = {"task_ids": wanted, "now": self._sync.now()}

        async def call(conn: AsyncConn) -> list[tuple[Any, ...]]:
            return await (await conn.execute(self.tables.get_many, params)).fetchall()

        payloads: dict[str, bytes] = {str(t): p for t, p in await self._run(call)}
        return {
            task_id: None if (p := payloads.get(task_id)) is None else self._sync.decode(p)
            for task_id in wanted
        }

    async def forget(self, task_id: str) -> None:
        async def call(conn: AsyncConn) -> None:
            await conn.execute(self.tables.forget, {"task_id": task_id})

        await self._run(call)

    async def close(self) -> None:
        self.retry.close()
        pool, self._pool = self._pool, None
        if pool is not None and os.getpid() == self._pid:
            await pool.close()
