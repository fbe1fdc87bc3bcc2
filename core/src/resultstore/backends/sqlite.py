"""``sqlite://``: the embedded default backend, one SQLite file shared by processes.

The file is in WAL mode, so readers never wait for writers; every write that
must be atomic (the ready-state rule, chord completion) runs in one
``BEGIN IMMEDIATE`` transaction, which SQLite serializes across threads and
processes on one machine.
"""

from __future__ import annotations

import math
import os
import random
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from resultstore.concepts.errors import BackendUnavailableError, ChordError, InvalidURLError
from resultstore.concepts.models import ChordOutcome, ChordState, Group, StoreOutcome, TaskResult
from resultstore.concepts.states import READY_STATES, state_from_str
from resultstore.concepts.urls import BackendURL, parse_url
from resultstore.payloads.codecs import Serializer
from resultstore.plugin.config import BackendConfig
from resultstore.plugin.protocols import Capability

__all__ = ["SCHEMA_VERSION", "SQLiteBackend", "database_path", "missing_database"]

#: jitter for retries: a generator of our own, so that the application's (and
#: hypothesis's) global ``random`` state is never read or moved by a retry;
#: reseeded in a forked child, as the global one is, so forks do not jitter alike.
_JITTER = random.Random()
os.register_at_fork(after_in_child=_JITTER.seed)

Clock = Callable[[], float]

#: the layout this module writes, kept in the file's ``PRAGMA user_version``.
SCHEMA_VERSION = 1

DEFAULT_TIMEOUT = 30.0

# Well under SQLite's bound-variable limit (999 before 3.32), whatever the build.
_CHUNK = 500

# Built from the enum, never from input, so inlining it in SQL is safe.
_READY_SQL = ", ".join(f"'{state}'" for state in sorted(READY_STATES))

_TABLES = ("results", "groups", "chords", "chord_parts")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS results (
        task_id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        payload BLOB NOT NULL,
        date_done REAL,
        group_id TEXT,
        expires_at REAL
    )""",
    # Partial indexes: rows that never expire or belong to no group cost nothing.
    """CREATE INDEX IF NOT EXISTS results_expires_at
        ON results (expires_at) WHERE expires_at IS NOT NULL""",
    """CREATE INDEX IF NOT EXISTS results_group_id
        ON results (group_id) WHERE group_id IS NOT NULL""",
    """CREATE TABLE IF NOT EXISTS groups (
        group_id TEXT PRIMARY KEY,
        payload BLOB NOT NULL,
        expires_at REAL
    )""",
    """CREATE INDEX IF NOT EXISTS groups_expires_at
        ON groups (expires_at) WHERE expires_at IS NOT NULL""",
    # completed: 0 open; 1 complete, body sent (or completed before bodies
    # were tracked); 2 complete, body not sent; 3 + t: as 2, sending claimed at t.
    """CREATE TABLE IF NOT EXISTS chords (
        group_id TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        completed INTEGER NOT NULL DEFAULT 0,
        expires_at REAL
    )""",
    """CREATE INDEX IF NOT EXISTS chords_expires_at
        ON chords (expires_at) WHERE expires_at IS NOT NULL""",
    # Parts live and die with their chord row, so they carry no expiry of their own.
    """CREATE TABLE IF NOT EXISTS chord_parts (
        group_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        payload BLOB NOT NULL,
        PRIMARY KEY (group_id, idx)
    ) WITHOUT ROWID""",
)

_UPSERT_RESULT = f"""
    INSERT INTO results (task_id, state, payload, date_done, group_id, expires_at)
    VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (task_id) DO UPDATE SET
        state = excluded.state,
        payload = excluded.payload,
        date_done = excluded.date_done,
        group_id = excluded.group_id,
        expires_at = excluded.expires_at
    WHERE ? OR results.state NOT IN ({_READY_SQL})
        OR (results.expires_at IS NOT NULL AND results.expires_at <= ?)
"""

_LIVE = "(expires_at IS NULL OR expires_at > ?)"
# chords.completed beyond 1: the body is not sent yet, and (from 3 on) when
# its sending was last claimed (SupportsChordBody).
_BODY_UNSENT = 2
_BODY_CLAIMED = 3


def database_path(url: BackendURL) -> Path:
    """The absolute file path a ``sqlite://`` URL names, or :class:`InvalidURLError`.

    ``sqlite:///rel/path.db`` is relative to the current folder and
    ``sqlite:////abs/path.db`` absolute, as in SQLAlchemy; the path is
    percent-decoded like any URL path.
    """
    if url.host or url.port or url.username:
        raise InvalidURLError(
            f"{url.redacted()!r} has a host part, but an SQLite database is a local file: "
            f"write sqlite:///relative/path.db (three slashes, relative to the current "
            f"folder) or sqlite:////absolute/path.db (four slashes)"
        )
    raw = urllib.parse.unquote(url.path[1:] if url.path.startswith("/") else url.path)
    if not raw:
        raise InvalidURLError(
            f"{url.redacted()!r} names no database file; the embedded backend is a file "
            f"shared by processes, so give one: sqlite:///results.db (relative) or "
            f"sqlite:////var/lib/app/results.db (absolute). For a private in-process "
            f"store use memory:// instead"
        )
    if ":memory:" in raw or raw.startswith("file:") or url.query.get("mode") == "memory":
        raise InvalidURLError(
            f"{url.redacted()!r} asks for an in-memory SQLite database, but the embedded "
            f"backend is a file shared by processes; use memory:// for an in-process "
            f"store, or name a file such as sqlite:///results.db"
        )
    return Path(os.path.abspath(raw))


def missing_database(url: str) -> str | None:
    """None when the file a ``sqlite://`` URL names exists, else what is missing.

    The ``missing_store`` probe of the sqlite:// ``BackendSpec``: reading
    commands call it so that a mistyped path is an error, never a new file.
    """
    path = database_path(parse_url(url))
    if path.is_file():
        return None
    if path.exists():
        return f"{path} is not a file"
    return f"the SQLite database file {path} does not exist"


class SQLiteBackend:
    """Results, groups and chords in one SQLite file; safe for threads and processes.

    Options: ``timeout`` (seconds a write waits for another writer's lock,
    default 30) and ``clock`` (a callable returning seconds, for tests of
    expiry). Each thread gets its own connection; :meth:`close` closes all.
    """

    capabilities = frozenset(
        {
            Capability.BULK_GET,
            Capability.BULK_PAYLOADS,
            Capability.BATCH_STORE,
            Capability.CLEANUP,
            Capability.GROUPS,
            Capability.CHORDS,
            Capability.PERSISTENT,
            Capability.SHARED,
            Capability.MIGRATE,
        }
    )

    def __init__(self, config: BackendConfig) -> None:
        # The URL first: a wrong URL explains more than the options left over from it.
        self.path = database_path(config.url)
        self._serializer: Serializer = config.serializer
        self._expires = config.expires
        self._clock: Clock = config.options.take("clock", _callable, time.time)
        self.timeout: float = config.options.take("timeout", _timeout, DEFAULT_TIMEOUT)
        config.options.finish()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        # Connections inherited through fork(): SQLite forbids using them in the
        # child, and closing them there could disturb the parent's locks, so the
        # child keeps them referenced and never touches them.
        self._inherited: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._closed = False
        # Open now so that a bad path fails at connect() rather than at first use.
        self._conn()

    def __repr__(self) -> str:
        return f"<SQLiteBackend {str(self.path)!r}>"

    # -- connections ---------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:
            self._after_fork()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        self._check_open()
        conn = self._open()
        with self._lock:
            try:
                self._check_open()  # close() may have run while this thread opened
            except BackendUnavailableError:
                conn.close()
                raise
            # Threads that ended leave their connection behind; close those here.
            alive = [(t, c) for t, c in self._connections if t.is_alive()]
            for thread, dead in self._connections:
                if not thread.is_alive():
                    dead.close()
            alive.append((threading.current_thread(), conn))
            self._connections = alive
        self._local.conn = conn
        return conn

    def _check_open(self) -> None:
        if self._closed:
            raise BackendUnavailableError(
                f"this sqlite:// backend for {self.path} was closed; connect() again to use it"
            )

    def _after_fork(self) -> None:
        self._inherited.extend(conn for _, conn in self._connections)
        self._connections = []
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _open(self) -> sqlite3.Connection:
        path = self.path
        if path.is_dir():
            raise BackendUnavailableError(
                f"cannot use {path} as the SQLite database: it is a directory; name a file "
                f"inside it, for example sqlite:///{path / 'results.db'}"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailableError(
                f"cannot create the folder {path.parent} for the SQLite database {path} "
                f"({exc.strerror or exc}); create it yourself or choose a writable location"
            ) from exc
        with self._errors():
            # isolation_level=None: no implicit transactions; this module issues
            # BEGIN IMMEDIATE itself wherever atomicity matters.
            conn = sqlite3.connect(
                path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        try:
            with self._errors():
                _prepare_patiently(conn, path, self.timeout)
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (sqlite3.ProgrammingError, sqlite3.IntegrityError):
            raise  # bugs in this module, not the state of the file
        except sqlite3.DatabaseError as exc:
            raise _unavailable(exc, self.path, self.timeout) from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: the write lock is taken before the first read."""
        conn = self._conn()
        with self._errors():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A deferred transaction, so reads spread over several queries see one snapshot."""
        conn = self._conn()
        with self._errors():
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for _, conn in connections:
            conn.close()
        self._local = threading.local()

    # -- helpers -------------------------------------------------------------

    def _expiry(self, now: float) -> float | None:
        return None if self._expires is None else now + self._expires

    def plant_payload(self, task_id: str, payload: bytes, state: str = "SUCCESS") -> None:
        """Put raw bytes where a result would be (tests of corrupt payloads)."""
        now = self._clock()
        with self._write() as conn:
            conn.execute(
                _UPSERT_RESULT,
                (task_id, str(state), payload, None, None, self._expiry(now), True, now),
            )

    def _store_one(
        self,
        conn: sqlite3.Connection,
        result: TaskResult,
        payload: bytes,
        now: float,
        overwrite: bool,
    ) -> StoreOutcome:
        row = conn.execute(
            f"SELECT state FROM results WHERE task_id = ? AND {_LIVE}", (result.task_id, now)
        ).fetchone()
        previous = None if row is None else state_from_str(row[0])
        date_done = None if result.date_done is None else result.date_done.timestamp()
        # The WHERE of the upsert is what enforces the rule; the SELECT above
        # only reports what was there, and both run under the same write lock.
        cursor = conn.execute(
            _UPSERT_RESULT,
            (
                result.task_id,
                str(result.state),
                payload,
                date_done,
                result.group_id,
                self._expiry(now),
                overwrite,
                now,
            ),
        )
        if cursor.rowcount == 0:
            kept = previous if previous is not None else result.state
            return StoreOutcome(stored=False, state=kept, previous_state=previous)
        return StoreOutcome(stored=True, state=result.state, previous_state=previous)

    # -- ResultBackend -------------------------------------------------------

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        payload = self._serializer.dumps(result)
        with self._write() as conn:
            return self._store_one(conn, result, payload, self._clock(), overwrite)

    def store_many(
        self, results: Sequence[TaskResult], *, overwrite: bool = False
    ) -> list[StoreOutcome]:
        # Encode everything first: a bad value then writes nothing and the
        # write lock is not held while encoding.
        payloads = [self._serializer.dumps(result) for result in results]
        if not payloads:
            return []
        with self._write() as conn:
            now = self._clock()
            return [
                self._store_one(conn, result, payload, now, overwrite)
                for result, payload in zip(results, payloads, strict=True)
            ]

    def get(self, task_id: str) -> TaskResult | None:
        conn = self._conn()
        with self._errors():
            row = conn.execute(
                f"SELECT payload FROM results WHERE task_id = ? AND {_LIVE}",
                (task_id, self._clock()),
            ).fetchone()
        return None if row is None else self._serializer.loads(row[0], TaskResult)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        return self._serializer.loads_many(self.get_payloads(task_ids))

    def get_payloads(self, task_ids: Sequence[str]) -> dict[str, bytes | None]:
        wanted = list(dict.fromkeys(task_ids))
        payloads: dict[str, bytes] = {}
        now = self._clock()
        with self._read() as conn:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT task_id, payload FROM results WHERE task_id IN ({marks}) AND {_LIVE}",
                    (*chunk, now),
                )
                payloads.update(rows)
        return {task_id: payloads.get(task_id) for task_id in wanted}

    def forget(self, task_id: str) -> None:
        conn = self._conn()
        with self._errors():
            conn.execute("DELETE FROM results WHERE task_id = ?", (task_id,))

    # -- groups --------------------------------------------------------------

    def save_group(self, group: Group) -> None:
        payload = self._serializer.dumps(group)
        conn = self._conn()
        with self._errors():
            conn.execute(
                "INSERT OR REPLACE INTO groups (group_id, payload, expires_at) VALUES (?, ?, ?)",
                (group.group_id, payload, self._expiry(self._clock())),
            )

    def get_group(self, group_id: str) -> Group | None:
        conn = self._conn()
        with self._errors():
            row = conn.execute(
                f"SELECT payload FROM groups WHERE group_id = ? AND {_LIVE}",
                (group_id, self._clock()),
            ).fetchone()
        return None if row is None else self._serializer.loads(row[0], Group)

    def delete_group(self, group_id: str) -> None:
        conn = self._conn()
        with self._errors():
            conn.execute("DELETE FROM groups WHERE group_id = ?", (group_id,))

    # -- chords --------------------------------------------------------------

    def set_chord_size(self, group_id: str, size: int) -> None:
        if size < 0:
            raise ChordError(f"chord size must be >= 0, got {size}")
        now = self._clock()
        with self._write() as conn:
            # An expired chord that cleanup() has not reached yet starts afresh.
            dead = conn.execute(
                f"SELECT 1 FROM chords WHERE group_id = ? AND NOT {_LIVE}", (group_id, now)
            ).fetchone()
            if dead is not None:
                conn.execute("DELETE FROM chord_parts WHERE group_id = ?", (group_id,))
                conn.execute("DELETE FROM chords WHERE group_id = ?", (group_id,))
            conn.execute(
                """INSERT INTO chords (group_id, size, completed, expires_at) VALUES (?, ?, 0, ?)
                ON CONFLICT (group_id) DO UPDATE SET
                    size = excluded.size, expires_at = excluded.expires_at""",
                (group_id, size, self._expiry(now)),
            )

    def chord_part_return(self, group_id: str, index: int, result: TaskResult) -> ChordOutcome:
        payload = self._serializer.dumps(result)
        parts: list[bytes] = []
        now = self._clock()
        with self._write() as conn:
            row = conn.execute(
                f"SELECT size, completed FROM chords WHERE group_id = ? AND {_LIVE}",
                (group_id, now),
            ).fetchone()
            if row is None:
                raise ChordError(
                    f"chord {group_id!r} has no size set (or it expired); call "
                    f"set_chord_size({group_id!r}, n) before its parts return"
                )
            size, completed = int(row[0]), bool(row[1])
            if not 0 <= index < size:
                raise ChordError(
                    f"chord {group_id!r} part index {index} is out of range 0..{size - 1}"
                )
            conn.execute(
                "UPDATE chords SET expires_at = ? WHERE group_id = ?",
                (self._expiry(now), group_id),
            )
            inserted = conn.execute(
                "INSERT OR IGNORE INTO chord_parts (group_id, idx, payload) VALUES (?, ?, ?)",
                (group_id, index, payload),
            ).rowcount
            duplicate = inserted == 0
            (received,) = conn.execute(
                "SELECT count(*) FROM chord_parts WHERE group_id = ?", (group_id,)
            ).fetchone()
            complete = not duplicate and not completed and received == size
            if complete:
                conn.execute(
                    f"UPDATE chords SET completed = {_BODY_UNSENT} WHERE group_id = ?", (group_id,)
                )
                parts = [
                    p
                    for (p,) in conn.execute(
                        "SELECT payload FROM chord_parts WHERE group_id = ? ORDER BY idx",
                        (group_id,),
                    )
                ]
        results = tuple(self._serializer.loads(p, TaskResult) for p in parts) if complete else None
        return ChordOutcome(
            group_id=group_id,
            index=index,
            complete=complete,
            duplicate=duplicate,
            received=int(received),
            size=size,
            results=results,
        )

    def get_chord(self, group_id: str) -> ChordState | None:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT size, completed FROM chords WHERE group_id = ? AND {_LIVE}",
                (group_id, self._clock()),
            ).fetchone()
            if row is None:
                return None
            received = frozenset(
                int(i)
                for (i,) in conn.execute(
                    "SELECT idx FROM chord_parts WHERE group_id = ?", (group_id,)
                )
            )
        return ChordState(group_id, int(row[0]), received, bool(row[1]))

    def claim_chord_body(self, group_id: str, lease: float) -> ChordOutcome | None:
        now = self._clock()
        parts: list[bytes] = []
        with self._write() as conn:
            row = conn.execute(
                f"SELECT size, completed FROM chords WHERE group_id = ? AND {_LIVE}",
                (group_id, now),
            ).fetchone()
            if row is None or float(row[1]) < _BODY_UNSENT:
                return None  # unknown, open, or its body was sent
            size, mark = int(row[0]), float(row[1])
            claimed = None if mark == _BODY_UNSENT else mark - _BODY_CLAIMED
            taken = claimed is not None and now - claimed >= lease
            if claimed is None or taken:
                conn.execute(
                    "UPDATE chords SET completed = ? WHERE group_id = ?",
                    (_BODY_CLAIMED + max(now, 0.0), group_id),
                )
            if taken:
                parts = [
                    p
                    for (p,) in conn.execute(
                        "SELECT payload FROM chord_parts WHERE group_id = ? ORDER BY idx",
                        (group_id,),
                    )
                ]
        if not taken:
            return ChordOutcome(group_id, -1, received=size, size=size)
        results = tuple(self._serializer.loads(p, TaskResult) for p in parts)
        return ChordOutcome(
            group_id, -1, complete=True, received=len(results), size=size, results=results
        )

    def mark_chord_body_sent(self, group_id: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE chords SET completed = 1 WHERE group_id = ? AND completed >= ?",
                (group_id, _BODY_UNSENT),
            )

    # -- cleanup -------------------------------------------------------------

    def migrate(self) -> str:
        # Every connection creates or checks the schema when it opens.
        self._conn()
        return f"schema version {SCHEMA_VERSION} in {self.path}"

    def cleanup(self) -> int:
        now = self._clock()
        expired = "expires_at IS NOT NULL AND expires_at <= ?"
        with self._write() as conn:
            deleted = conn.execute(f"DELETE FROM results WHERE {expired}", (now,)).rowcount
            conn.execute(f"DELETE FROM groups WHERE {expired}", (now,))
            conn.execute(f"DELETE FROM chords WHERE {expired}", (now,))
            # Also catches parts whose chord row went any other way.
            conn.execute(
                "DELETE FROM chord_parts WHERE group_id NOT IN (SELECT group_id FROM chords)"
            )
        return int(deleted)


def _prepare_patiently(conn: sqlite3.Connection, path: Path, timeout: float) -> None:
    """:func:`_prepare`, retried while another connection is opening the same file.

    Switching to WAL needs an exclusive lock, and when several connections
    open a fresh file at once SQLite answers "locked" at once instead of
    calling the busy handler (waiting could deadlock), so the wait is here.
    """
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            _prepare(conn, path)
        except sqlite3.OperationalError as exc:
            remaining = deadline - time.monotonic()
            if not _is_busy(exc) or remaining <= 0:
                raise
            # Jitter so that the openers do not retry in lockstep.
            time.sleep(min(remaining, delay * _JITTER.uniform(0.5, 1.5)))
            delay = min(delay * 2, 0.1)
        else:
            return


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    """Set the per-connection pragmas and create or check the schema."""
    # WAL is a property of the file: switch only when needed, since the switch
    # takes an exclusive lock that would make concurrent first opens wait.
    (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    if str(mode).lower() != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    # NORMAL is durable against process crashes in WAL mode; only a power
    # loss can drop the last transactions, which is fine for results.
    conn.execute("PRAGMA synchronous = NORMAL")
    version = _user_version(conn)
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise _newer_schema(path, version)
    # Two processes may open a fresh file at once: the write lock makes one
    # create the schema, and the other re-reads the version under the lock.
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _user_version(conn)
        if version == 0:
            _create_schema(conn, path)
        elif version > SCHEMA_VERSION:
            raise _newer_schema(path, version)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _user_version(conn: sqlite3.Connection) -> int:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)


def _create_schema(conn: sqlite3.Connection, path: Path) -> None:
    names = ", ".join("?" * len(_TABLES))
    clash = conn.execute(
        f"SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ({names})", _TABLES
    ).fetchall()
    if clash:
        # Our tables are created together with user_version, so finding them
        # with version 0 means another program's tables of the same name.
        raise BackendUnavailableError(
            f"{path} already has table(s) {', '.join(sorted(n for (n,) in clash))} that "
            f"resultstore did not create; point the URL at a file of its own, "
            f"for example {path.with_name('results.db')}"
        )
    for statement in _SCHEMA:
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _newer_schema(path: Path, version: int) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"{path} was written by a newer resultstore (schema version {version}, this one "
        f"knows {SCHEMA_VERSION}); upgrade resultstore in this environment"
    )


def _unavailable(exc: sqlite3.DatabaseError, path: Path, timeout: float) -> BackendUnavailableError:
    text = str(exc)
    lowered = text.lower()
    if _is_busy(exc):
        advice = (
            f"the SQLite database {path} stayed locked by another connection for more than "
            f"the {timeout:g} s timeout ({text}); a long transaction elsewhere holds it. "
            f"Raise the timeout option (for example ?timeout=60), or use a server backend "
            f"such as redis:// or postgresql:// when many processes write at once"
        )
    elif "not a database" in lowered or "malformed" in lowered or "encrypted" in lowered:
        advice = (
            f"{path} is not an SQLite database or is damaged ({text}); point the URL at a "
            f"new file, or move that file out of the way"
        )
    elif "readonly" in lowered or "read-only" in lowered:
        advice = (
            f"the SQLite database {path} is read-only ({text}); make the file and its "
            f"folder writable by this user, or choose another path"
        )
    elif "unable to open" in lowered:
        advice = (
            f"cannot open or create the SQLite database {path} ({text}); check that its "
            f"folder exists and is writable by this user, or choose another path"
        )
    else:
        advice = (
            f"SQLite failed on {path} ({text}); check the file, its folder's permissions "
            f"and free disk space"
        )
    return BackendUnavailableError(advice)


def _callable(value: Any) -> Clock:
    if not callable(value):
        raise ValueError("clock must be a callable returning seconds (like time.time)")
    clock: Clock = value
    return clock


def _timeout(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number of seconds, got {value!r}")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of seconds such as 30, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"expected a finite number of seconds >= 0, got {value!r}")
    return seconds
