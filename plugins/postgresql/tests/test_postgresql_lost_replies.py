"""A store committed on the server, its reply lost: the retry is not refused by its own row.

The connection below really runs every statement against the real
PostgreSQL; only the reply to the commit is lost: the link is closed just
after the server committed, and the backend meets the error a dropped
connection raises, so its retry loop sends the store again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
import pytest
import resultstore
from resultstore import State, TaskResult
from resultstore_contract.servers import Server

_LOST = "server closed the connection unexpectedly (test: after the commit, before its reply)"


def _url(server: Server) -> str:
    return f"{server.url}?table_prefix=l{uuid.uuid4().hex[:10]}_"


class _LosesReply:
    """A pooled connection whose first commit lands but whose reply is lost: an
    autocommitted ``execute`` or a ``transaction()`` block commits, then the
    connection is closed and the caller gets a dropped link's error."""

    def __init__(self, conn: Any, lost: list[bool]) -> None:
        self._conn = conn
        self._lost = lost
        self._depth = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def _lose(self) -> None:
        if not self._lost:
            self._lost.append(True)
            self._conn.close()
            raise psycopg.OperationalError(_LOST)

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        cursor = self._conn.execute(*args, **kwargs)
        if self._depth == 0:
            self._lose()
        return cursor

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        self._depth += 1
        try:
            with self._conn.transaction() as tx:
                yield tx
        finally:
            self._depth -= 1
        self._lose()


def _lose_next_reply(monkeypatch: pytest.MonkeyPatch, store: resultstore.ResultStore) -> list[bool]:
    backend: Any = store.backend
    real = backend.connection
    lost: list[bool] = []

    @contextmanager
    def connection() -> Iterator[Any]:
        with real() as conn:
            yield _LosesReply(conn, lost)

    monkeypatch.setattr(backend, "connection", connection)
    return lost


def test_a_ready_store_whose_reply_was_lost_finds_its_own_row(
    postgresql_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upsert stored SUCCESS and committed, its reply was lost: the retry meets a
    ready row, which is its own payload, so the store reports stored, not refused."""
    ours = TaskResult("t", State.SUCCESS, "ours")
    with resultstore.connect(_url(postgresql_server)) as store:
        assert store.mark_as_started("t").stored
        lost = _lose_next_reply(monkeypatch, store)
        done = store.store(ours)
        assert lost
        assert (done.stored, done.state) == (True, State.SUCCESS)
        monkeypatch.undo()
        assert store.get("t") == ours
        late = store.store(TaskResult("t", State.FAILURE))
        assert (late.stored, late.state) == (False, State.SUCCESS)
        # A first try never takes an equal ready row for its own.
        same = store.store(ours)
        assert (same.stored, same.state) == (False, State.SUCCESS)


def test_a_batch_whose_commit_reply_was_lost_finds_its_own_rows(
    postgresql_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's transaction committed, the reply to COMMIT was lost: the retried
    batch reports what the landed one did (its unready steps before a ready state
    of its own stored too, a second equal ready state refused), not refusals by
    its own rows."""
    batch = [
        TaskResult("a", State.STARTED),
        TaskResult("a", State.SUCCESS, "ours"),
        TaskResult("a", State.SUCCESS, "ours"),
        TaskResult("b", State.FAILURE),
        TaskResult("c", State.STARTED),
    ]
    expected = [
        (True, State.STARTED, None),
        (True, State.SUCCESS, State.STARTED),
        (False, State.SUCCESS, State.SUCCESS),
        (True, State.FAILURE, None),
        (True, State.STARTED, State.STARTED),
    ]
    with resultstore.connect(_url(postgresql_server)) as store:
        assert store.mark_as_started("b").stored
        assert store.mark_as_started("c").stored
        lost = _lose_next_reply(monkeypatch, store)
        outcomes = store.store_many(batch)
        assert lost
        # b's previous state was in the lost reply: unknown (None); a's SUCCESS
        # came after the batch's own STARTED, so that one is known.
        assert [(o.stored, o.state, o.previous_state) for o in outcomes] == expected
        monkeypatch.undo()
        rows = store.get_many(["a", "b", "c"])
        assert rows == {"a": batch[1], "b": batch[3], "c": batch[4]}
        # The same batch again, on the first try: every ready row is someone's now.
        again = store.store_many(batch[1:4])
        assert [(o.stored, o.state) for o in again] == [
            (False, State.SUCCESS),
            (False, State.SUCCESS),
            (False, State.FAILURE),
        ]


def test_the_asyncio_twin_finds_its_own_row_after_a_lost_reply(
    postgresql_server: Server,
) -> None:
    asyncio.run(_twin_after_a_lost_reply(_url(postgresql_server)))


class _AsyncLosesReply:
    """:class:`_LosesReply` for the twin's connections (autocommitted statements)."""

    def __init__(self, conn: Any, lost: list[bool]) -> None:
        self._conn = conn
        self._lost = lost

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        cursor = await self._conn.execute(*args, **kwargs)
        if not self._lost:
            self._lost.append(True)
            await self._conn.close()
            raise psycopg.OperationalError(_LOST)
        return cursor


async def _twin_after_a_lost_reply(url: str) -> None:
    ours = TaskResult("t", State.SUCCESS, "ours")
    async with await resultstore.connect_async(url) as astore:
        assert astore.native
        assert (await astore.mark_as_started("t")).stored
        twin: Any = astore.backend
        real = twin._connection
        lost: list[bool] = []

        @asynccontextmanager
        async def connection() -> AsyncIterator[Any]:
            async with real() as conn:
                yield _AsyncLosesReply(conn, lost)

        twin._connection = connection
        done = await astore.store(ours)
        assert lost
        assert (done.stored, done.state) == (True, State.SUCCESS)
        del twin._connection
        assert await astore.get("t") == ours
        same = await astore.store(ours)
        assert (same.stored, same.state) == (False, State.SUCCESS)
