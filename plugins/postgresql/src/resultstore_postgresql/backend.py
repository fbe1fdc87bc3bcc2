"""``postgresql://``: results, groups and chords in PostgreSQL tables, over a psycopg pool.

Every rule that must be atomic is one statement (the ready-state upsert, a
chord part and its count) or one short transaction; stores announce the id
with ``pg_notify`` inside that same statement, which :mod:`.listener` hears.
The pool is per process: a child after ``fork`` opens its own and leaves the
parent's sockets alone.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout
from resultstore import (
    READY_STATES,
    BackendConfig,
    ChordError,
    ChordOutcome,
    ChordState,
    ConfigurationError,
    Group,
    PushListener,
    Serializer,
    StoreOutcome,
    TaskResult,
)
from resultstore.plugin.retrying import Retry, scrub, time_left

from resultstore_postgresql.client import Settings, settings_from_config
from resultstore_postgresql.listener import CARRY_LIMIT, NotifyListener
from resultstore_postgresql.outcomes import first_ready, landed, outcome, own, refused, transient
from resultstore_postgresql.plugin import CAPABILITIES
from resultstore_postgresql.schema import BODY_UNSENT, SCHEMA_VERSION, Tables

if TYPE_CHECKING:
    from resultstore_postgresql.aio import AsyncPostgreSQLBackend

__all__ = ["PostgreSQLBackend"]

T = TypeVar("T")
Conn = psycopg.Connection[tuple[Any, ...]]


def _column(text: str | None) -> str | None:
    """A metadata value for its queryable text column, which cannot hold NUL.

    The payload keeps the exact value; the column is for queries, so a NUL
    becomes U+FFFD there (and a lone surrogate, which UTF-8 cannot carry, "?").
    """
    if text is None:
        return None
    text = text.replace("\x00", "\ufffd")
    return text.encode("utf-8", "replace").decode("utf-8") if not text.isascii() else text


class PostgreSQLBackend:
    """Results, groups and chords in PostgreSQL; safe for threads and processes.

    Options (URL query or keywords): ``schema`` (default ``public``),
    ``table_prefix`` (default ``resultstore_``), ``pool_min`` / ``pool_max``
    (connections per process, default 1 / 10), ``pool_timeout`` (seconds to
    wait for a free connection, default 30), ``retry_total`` (seconds a call
    keeps retrying after connection errors, default 10), ``batch_size``
    (rows per cleanup statement, default 1000), ``notify`` (announce stores
    for push waiting, default true), ``notify_results`` (announce small
    ready results with their payload, and wake waiters with it without a
    read; default false: only where no one who can connect may forge a
    NOTIFY or should not read results), ``prepare_threshold`` (executions of a
    statement before a connection prepares it, default 5 as psycopg's;
    ``none`` never prepares, for PgBouncer before 1.21 in transaction mode),
    ``clock`` (a callable returning seconds, for tests of expiry); any other
    option is a libpq connection parameter.
    """

    capabilities = CAPABILITIES

    def __init__(self, config: BackendConfig) -> None:
        self.settings: Settings = settings_from_config(config)
        self.tables: Tables = self.settings.tables
        self._serializer: Serializer = config.serializer
        self._expires = config.expires
        self._clock = self.settings.clock
        self.retry = Retry(
            "PostgreSQL",
            server=self.settings.server,
            total=self.settings.retry_total,
            retry_on=transient,
            translate=self._translate,
            secret=self.settings.password,
        )
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._pool: ConnectionPool[Conn] | None = None
        self._inherited: list[ConnectionPool[Conn]] = []
        self._ready = False

    def __repr__(self) -> str:
        return f"<PostgreSQLBackend {self.settings.server!r}>"

    # -- connections ---------------------------------------------------------

    def _translate(self, exc: BaseException) -> BaseException | None:
        if isinstance(exc, PoolTimeout):
            # The pool connects in the background and only logs why it failed;
            # one direct try tells a refused login (final) from a down server.
            exc = self._why_no_connection() or exc
        return self.refusal(exc)

    def refusal(self, exc: BaseException) -> BaseException | None:
        """The ConfigurationError a refused login or a missing database means, else None."""
        if isinstance(exc, psycopg.OperationalError) and not isinstance(exc, PoolTimeout):
            text = scrub(str(exc), self.settings.password).lower()
            if "password authentication failed" in text or "no password supplied" in text:
                return ConfigurationError(
                    f"PostgreSQL at {self.settings.server} refused the login "
                    f"(password authentication failed); check the user and password in the URL"
                )
            if "does not exist" in text and ("database" in text or "role" in text):
                return ConfigurationError(
                    f"PostgreSQL at {self.settings.server}: "
                    f"{scrub(str(exc), self.settings.password).strip()}; "
                    f"create it or fix the URL"
                )
        return None

    def _why_no_connection(self) -> psycopg.OperationalError | None:
        left = time_left()
        timeout = max(1, int(min(2.0, left if left is not None else 2.0)))
        try:
            psycopg.connect(self.settings.conninfo, connect_timeout=timeout).close()
        except psycopg.OperationalError as exc:
            return exc
        return None

    def pool(self) -> ConnectionPool[Conn]:
        """This process's pool (opened on first use, and again in a forked child)."""
        self.retry.check_open()
        if os.getpid() != self._pid:
            # The parent's sockets are shared with it: keep them referenced and
            # untouched (closing would send a Terminate on the parent's links).
            if self._pool is not None:
                self._inherited.append(self._pool)
            self._pool = None
            self._lock = threading.Lock()
            self._pid = os.getpid()
        pool = self._pool
        if pool is not None:
            return pool
        with self._lock:
            if self._pool is None:
                self.retry.check_open()
                self._pool = ConnectionPool(
                    self.settings.conninfo,
                    **self.settings.pool_arguments(),
                    name=f"resultstore-{self.settings.server}",
                    open=True,
                )
            return self._pool

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        """A pooled connection for one try (bounded by the retry's time left)."""
        left = time_left()
        # A first try (no deadline yet) waits no longer than the whole retry may.
        bound = self.settings.retry_total if left is None else left
        timeout = min(bound, self.settings.pool_timeout)
        with self.pool().connection(timeout=timeout) as conn:
            if not self._ready:
                self._create_tables(conn)
            yield conn

    def run(self, call: Callable[[Conn], T]) -> T:
        """``call(conn)`` on a pooled connection, retried after connection errors."""

        def once() -> T:
            with self.connection() as conn:
                return call(conn)

        return self.retry(once)

    def _create_tables(self, conn: Conn) -> None:
        """Create the schema once per process; concurrent creators wait on an advisory lock."""
        with conn.transaction():
            conn.execute(self.tables.lock_schema, {"key": self.tables.lock_key})
            for statement in self.tables.ddl():
                conn.execute(statement)
        self._ready = True

    @property
    def tables_ready(self) -> bool:
        """Whether this process made sure the tables exist (the asyncio twin asks)."""
        return self._ready

    def tables_created(self) -> None:
        """Note that the tables exist (the asyncio twin created them)."""
        self._ready = True

    def migrate(self) -> str:
        """Create the tables and indexes now (they are also created on first use);
        safe to run again and concurrently (``resultstore migrate URL``)."""
        self.run(self._create_tables)
        return f"schema version {SCHEMA_VERSION} in {self.tables.schema}.{self.tables.prefix}*"

    def close(self) -> None:
        self.retry.close()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and os.getpid() == self._pid:
            pool.close()

    # -- helpers -------------------------------------------------------------

    def now(self) -> float:
        """Seconds since the epoch on the backend's clock (the ``clock`` option)."""
        return self._clock()

    def encode(self, result: TaskResult) -> bytes:
        return self._serializer.dumps(result)

    def decode(self, payload: bytes) -> TaskResult:
        return self._serializer.loads(payload, TaskResult)

    def _expiry(self, now: float) -> float | None:
        return None if self._expires is None else now + self._expires

    def store_params(
        self,
        result: TaskResult,
        payload: bytes,
        now: float,
        overwrite: bool,
        state: str,
        *,
        again: bool = False,
    ) -> dict[str, Any]:
        """The parameters of :attr:`Tables.store` for ``result`` (shared with the twin);
        ``again``: an earlier try of this store may have committed, its reply lost."""
        return {
            "task_id": result.task_id,
            "state": state,
            "payload": payload,
            "date_done": result.date_done,
            "name": _column(result.name),
            "worker": _column(result.worker),
            "queue": _column(result.queue),
            "group_id": result.group_id,
            "expires_at": self._expiry(now),
            "overwrite": overwrite,
            "again": again and not overwrite,
            "now": now,
            "channel": self.tables.channel,
            "notify": self.settings.notify,
            # NOTIFY takes under 8000 bytes: a larger result is announced by id alone.
            "carry": self.settings.notify_results
            and state in READY_STATES
            and len(payload) <= CARRY_LIMIT,
        }

    def _outcome(self, conn: Conn, row: tuple[Any, ...] | None, result: TaskResult) -> StoreOutcome:
        told = outcome(row, result)
        if told is not None:
            return told
        # Another writer inserted the row between our snapshot and our
        # upsert: read what it kept (the rare path, never the common one).
        found = conn.execute(
            self.tables.current_state, {"task_id": result.task_id, "now": self._clock()}
        ).fetchone()
        return refused(result, found)

    def plant_payload(self, task_id: str, payload: bytes, state: str = "SUCCESS") -> None:
        """Put raw bytes where a result would be (tests of corrupt payloads)."""
        params = self.store_params(TaskResult(task_id), payload, self._clock(), True, str(state))
        self.run(lambda conn: conn.execute(self.tables.store, params))

    # -- ResultBackend -------------------------------------------------------

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        payload = self._serializer.dumps(result)
        tries = itertools.count(1)

        def call(conn: Conn) -> StoreOutcome:
            again = next(tries) > 1
            params = self.store_params(
                result, payload, self._clock(), overwrite, str(result.state), again=again
            )
            row = conn.execute(self.tables.store, params).fetchone()
            return self._outcome(conn, row, result)

        return self.run(call)

    def store_many(
        self, results: Sequence[TaskResult], *, overwrite: bool = False
    ) -> list[StoreOutcome]:
        # Encode everything first: a bad value then writes nothing.
        payloads = [self._serializer.dumps(result) for result in results]
        if not payloads:
            return []
        tries = itertools.count(1)
        # On a retry, only each task's first ready state may find its own row.
        mine = first_ready(results)

        def call(conn: Conn) -> list[StoreOutcome]:
            now = self._clock()
            again = next(tries) > 1
            params = [
                self.store_params(
                    result, payload, now, overwrite, str(result.state), again=again and n in mine
                )
                for n, (result, payload) in enumerate(zip(results, payloads, strict=True))
            ]
            rows: list[tuple[Any, ...] | None] = []
            # One transaction, pipelined: every upsert goes out in one round trip.
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(self.tables.store, params, returning=True)
                while True:
                    rows.append(cur.fetchone())
                    if not cur.nextset():
                        break
                outcomes = [
                    self._outcome(conn, row, result)
                    for row, result in zip(rows, results, strict=True)
                ]
            # The batch is one transaction: where a try that landed is found, it
            # stored the task's earlier steps of the batch as well.
            owned = [n for n, row in enumerate(rows) if row is not None and own(row)]
            return landed(results, outcomes, owned)

        return self.run(call)

    def get(self, task_id: str) -> TaskResult | None:
        params = {"task_id": task_id, "now": self._clock()}
        row = self.run(lambda conn: conn.execute(self.tables.get, params).fetchone())
        return None if row is None else self._serializer.loads(row[0], TaskResult)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        return self._serializer.loads_many(self.get_payloads(task_ids))

    def get_payloads(self, task_ids: Sequence[str]) -> dict[str, bytes | None]:
        wanted = list(dict.fromkeys(task_ids))
        if not wanted:
            return {}
        params = {"task_ids": wanted, "now": self._clock()}
        rows = self.run(lambda conn: conn.execute(self.tables.get_many, params).fetchall())
        payloads: dict[str, bytes] = {str(task_id): bytes(payload) for task_id, payload in rows}
        return {task_id: payloads.get(task_id) for task_id in wanted}

    def forget(self, task_id: str) -> None:
        self.run(lambda conn: conn.execute(self.tables.forget, {"task_id": task_id}))

    # -- groups --------------------------------------------------------------

    def save_group(self, group: Group) -> None:
        params = {
            "group_id": group.group_id,
            "payload": self._serializer.dumps(group),
            "expires_at": self._expiry(self._clock()),
        }
        self.run(lambda conn: conn.execute(self.tables.save_group, params))

    def get_group(self, group_id: str) -> Group | None:
        params = {"group_id": group_id, "now": self._clock()}
        row = self.run(lambda conn: conn.execute(self.tables.get_group, params).fetchone())
        return None if row is None else self._serializer.loads(row[0], Group)

    def delete_group(self, group_id: str) -> None:
        self.run(lambda conn: conn.execute(self.tables.delete_group, {"group_id": group_id}))

    # -- chords --------------------------------------------------------------

    def set_chord_size(self, group_id: str, size: int) -> None:
        if size < 0:
            raise ChordError(f"chord size must be >= 0, got {size}")

        def call(conn: Conn) -> None:
            now = self._clock()
            params = {"group_id": group_id, "size": size, "now": now}
            with conn.transaction():
                for statement in self.tables.reset_dead_chord():
                    conn.execute(statement, params)
                conn.execute(
                    self.tables.set_chord_size,
                    {**params, "expires_at": self._expiry(now)},
                )

        self.run(call)

    def chord_part_return(self, group_id: str, index: int, result: TaskResult) -> ChordOutcome:
        payload = self._serializer.dumps(result)

        def call(conn: Conn) -> tuple[Any, ...]:
            now = self._clock()
            params = {
                "group_id": group_id,
                "idx": index,
                "payload": payload,
                "now": now,
                "expires_at": self._expiry(now),
            }
            row = conn.execute(self.tables.chord_part, params).fetchone()
            assert row is not None
            size, seen, counted, _ = row
            parts: list[bytes] = []
            if counted is not None and counted == size:
                # The completing UPDATE held the chord row until every earlier
                # part's statement committed, so a fresh read sees all parts.
                parts = [
                    p
                    for (p,) in conn.execute(
                        self.tables.chord_parts,
                        {"group_id": group_id},
                    )
                ]
            return (size, seen, counted, parts)

        size, seen, counted, parts = self.run(call)
        if size is None:
            raise ChordError(
                f"chord {group_id!r} has no size set (or it expired); call "
                f"set_chord_size({group_id!r}, n) before its parts return"
            )
        if not 0 <= index < size:
            raise ChordError(f"chord {group_id!r} part index {index} is out of range 0..{size - 1}")
        duplicate = counted is None
        complete = not duplicate and counted == size
        results = tuple(self._serializer.loads(p, TaskResult) for p in parts) if complete else None
        return ChordOutcome(
            group_id=group_id,
            index=index,
            complete=complete,
            duplicate=duplicate,
            received=int(seen if duplicate else counted),
            size=int(size),
            results=results,
        )

    def get_chord(self, group_id: str) -> ChordState | None:
        params = {"group_id": group_id, "now": self._clock()}
        row = self.run(lambda conn: conn.execute(self.tables.get_chord, params).fetchone())
        if row is None:
            return None
        return ChordState(group_id, int(row[0]), frozenset(int(i) for i in row[2]), bool(row[1]))

    def claim_chord_body(self, group_id: str, lease: float) -> ChordOutcome | None:
        def call(conn: Conn) -> tuple[int, list[bytes]] | int | None:
            now = self._clock()
            params = {"group_id": group_id, "now": now}
            with conn.transaction():
                row = conn.execute(self.tables.lock_chord, params).fetchone()
                if row is None or int(row[1]) < BODY_UNSENT:
                    return None  # unknown, open, or its body was sent
                size, _, claimed = int(row[0]), row[1], row[2]
                taken = claimed is not None and now - float(claimed) >= lease
                if claimed is None or taken:
                    conn.execute(self.tables.claim_chord, params)
                if not taken:
                    return size
                parts = [p for (p,) in conn.execute(self.tables.chord_parts, params)]
                return (size, parts)

        got = self.run(call)
        if got is None:
            return None
        if isinstance(got, int):
            return ChordOutcome(group_id, -1, received=got, size=got)
        size, parts = got
        results = tuple(self._serializer.loads(p, TaskResult) for p in parts)
        return ChordOutcome(
            group_id, -1, complete=True, received=len(results), size=size, results=results
        )

    def mark_chord_body_sent(self, group_id: str) -> None:
        self.run(lambda conn: conn.execute(self.tables.mark_chord_sent, {"group_id": group_id}))

    # -- cleanup -------------------------------------------------------------

    def cleanup(self) -> int:
        """Delete expired rows in batches of ``batch_size``, each its own statement,
        so a large sweep never holds many row locks or one long transaction."""
        now = self._clock()
        params = {"now": now, "batch": self.settings.batch_size}
        t = self.tables
        deleted = 0
        for table, key, counts in (
            (t.results, "task_id", True),
            (t.groups, "group_id", False),
            (t.chords, "group_id", False),
        ):
            statement = t.sweep(table, key)
            while True:
                gone = self._rowcount(statement, params)
                if counts:
                    deleted += max(gone, 0)
                if gone < self.settings.batch_size:
                    break
        while self._rowcount(t.orphan_parts, params) > 0:
            pass
        return deleted

    def _rowcount(self, statement: str, params: dict[str, Any]) -> int:
        return self.run(lambda conn: conn.execute(statement, params).rowcount)

    # -- push ----------------------------------------------------------------

    def listener(self) -> PushListener:
        self.retry.check_open()
        decode = self.decode if self.settings.notify_results else None
        return NotifyListener(self.settings, self.retry, decode)

    # -- asyncio -------------------------------------------------------------

    def async_backend(self) -> AsyncPostgreSQLBackend:
        """The native asyncio twin (psycopg's AsyncConnectionPool), configured like this backend."""
        from resultstore_postgresql.aio import AsyncPostgreSQLBackend

        return AsyncPostgreSQLBackend(self)
