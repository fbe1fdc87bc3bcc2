"""The tables, their creation on first use, and every statement the backend prepares.

Three tables in the keyspace (names are options)::

    resultstore_taskmeta   one row per task: queryable columns + the payload blob
    resultstore_groupmeta  one row per group
    resultstore_chordmeta  one partition per chord: static size/expiry/completer,
                           one clustering row per header part

Every write carries ``USING TTL`` from the store's ``expires``, so Cassandra
deletes what expired by itself; ``expires_at`` repeats the moment in a
column, so a reader (and a test's manual clock) can tell an expired row from
a live one before compaction drops it.
"""

from __future__ import annotations

import threading
from typing import Any

from resultstore_cassandra._driver import ConsistencyLevel, PreparedStatement, Session
from resultstore_cassandra.client import Settings

__all__ = ["RESULT_COLUMNS", "Statements", "ensure_schema", "table_ddl"]

#: the columns of a task row a store writes, in the order of the store statement.
RESULT_COLUMNS = (
    "state",
    "date_done",
    "name",
    "worker",
    "queue",
    "retries",
    "parent_id",
    "group_id",
    "payload",
    "expires_at",
    "writer",
)

_ensured: set[tuple[str, str]] = set()
_ensured_lock = threading.Lock()


def table_ddl(settings: Settings) -> list[str]:
    """``CREATE TABLE IF NOT EXISTS`` for the three tables (also printed in the docs)."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {settings.table(settings.taskmeta_table)} (
    task_id text PRIMARY KEY,
    state text,
    date_done timestamp,
    name text,
    worker text,
    queue text,
    retries int,
    parent_id text,
    group_id text,
    payload blob,
    expires_at timestamp,
    writer text
) WITH comment = 'resultstore: one row per task'""",
        f"""CREATE TABLE IF NOT EXISTS {settings.table(settings.groupmeta_table)} (
    group_id text PRIMARY KEY,
    date_done timestamp,
    payload blob,
    expires_at timestamp
) WITH comment = 'resultstore: one row per group'""",
        f"""CREATE TABLE IF NOT EXISTS {settings.table(settings.chordmeta_table)} (
    group_id text,
    epoch text,
    part int,
    current text static,
    size int static,
    expires_at timestamp static,
    done text static,
    writer text,
    payload blob,
    PRIMARY KEY ((group_id), epoch, part)
) WITH comment = 'resultstore: one partition per chord, one row per header part'""",
    ]


def ensure_schema(session: Session, settings: Settings, *, now: bool = False) -> None:
    """Create the keyspace (when asked) and the tables, once per process and keyspace;
    ``now`` (``migrate()``) creates the tables whatever ``create_tables`` says, again."""
    key = (settings.server, settings.keyspace)
    with _ensured_lock:
        if key in _ensured and not now:
            return
    if settings.create_keyspace and settings.replication is not None:
        replication = ", ".join(
            f"'{name}': {value if isinstance(value, int) else repr(value)}"
            for name, value in settings.replication.items()
        )
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {settings.keyspace} "
            f"WITH replication = {{{replication}}}"
        )
    if settings.create_tables or now:
        for ddl in table_ddl(settings):
            session.execute(ddl)
    with _ensured_lock:
        _ensured.add(key)


class Statements:
    """Every statement the backend runs, prepared once per backend."""

    def __init__(self, session: Session, settings: Settings) -> None:
        tasks = settings.table(settings.taskmeta_table)
        groups = settings.table(settings.groupmeta_table)
        chords = settings.table(settings.chordmeta_table)
        read, write = settings.read_consistency, settings.write_consistency
        serial = settings.serial_consistency

        def prepare(cql: str, consistency: int, *, idempotent: bool) -> PreparedStatement:
            statement: PreparedStatement = session.prepare(cql)
            statement.consistency_level = consistency
            statement.serial_consistency_level = serial
            # Idempotent statements may be sent again by the driver after a
            # timeout; the conditional ones are made safe by their writer tokens.
            statement.is_idempotent = idempotent
            return statement

        assignments = ", ".join(f"{column} = ?" for column in RESULT_COLUMNS)
        #: the compare-and-set of a task row on (state, writer, expires_at).
        self.store = prepare(
            f"UPDATE {tasks} USING TTL ? SET {assignments} WHERE task_id = ? "
            f"IF state = ? AND writer = ? AND expires_at = ?",
            write,
            idempotent=False,
        )
        self.get = prepare(
            f"SELECT state, payload, expires_at FROM {tasks} WHERE task_id = ?",
            read,
            idempotent=True,
        )
        self.get_in = prepare(
            f"SELECT task_id, state, payload, expires_at FROM {tasks} WHERE task_id IN ?",
            read,
            idempotent=True,
        )
        self.current = prepare(
            f"SELECT state, writer, expires_at FROM {tasks} WHERE task_id = ?",
            read,
            idempotent=True,
        )
        self.forget = prepare(
            f"DELETE FROM {tasks} WHERE task_id = ? IF EXISTS", write, idempotent=True
        )
        self.save_group = prepare(
            f"INSERT INTO {groups} (group_id, date_done, payload, expires_at) "
            f"VALUES (?, ?, ?, ?) USING TTL ?",
            write,
            idempotent=True,
        )
        self.get_group = prepare(
            f"SELECT payload, expires_at FROM {groups} WHERE group_id = ?", read, idempotent=True
        )
        self.delete_group = prepare(
            f"DELETE FROM {groups} WHERE group_id = ?", write, idempotent=True
        )
        # Chords: every write to a chord's partition is a lightweight transaction,
        # so none of them is ordered by client clocks against Paxos ballots.
        # Read at a quorum whatever read_consistency says: the call that records
        # the last part must see every other part (see CassandraBackend), and a
        # part must find the size its chord was given.
        quorum = _quorum_for(serial)
        self.chord_head = prepare(
            f"SELECT current, size, expires_at, done FROM {chords} WHERE group_id = ? LIMIT 1",
            quorum,
            idempotent=True,
        )
        self.chord_size = prepare(
            f"UPDATE {chords} USING TTL ? SET size = ?, expires_at = ?, current = ? "
            f"WHERE group_id = ? IF current = ? AND expires_at = ?",
            write,
            idempotent=False,
        )
        self.chord_restart = prepare(
            f"UPDATE {chords} USING TTL ? SET size = ?, expires_at = ?, current = ?, done = null "
            f"WHERE group_id = ? IF current = ? AND expires_at = ?",
            write,
            idempotent=False,
        )
        self.chord_part = prepare(
            f"BEGIN BATCH "
            f"INSERT INTO {chords} (group_id, epoch, part, writer, payload) "
            f"VALUES (?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?; "
            f"UPDATE {chords} USING TTL ? SET expires_at = ?, size = ?, current = ? "
            f"WHERE group_id = ? IF current = ? AND size = ?; "
            f"APPLY BATCH",
            write,
            idempotent=False,
        )
        self.chord_parts = prepare(
            f"SELECT part FROM {chords} WHERE group_id = ? AND epoch = ?",
            quorum,
            idempotent=True,
        )
        self.chord_payloads = prepare(
            f"SELECT part, payload FROM {chords} WHERE group_id = ? AND epoch = ?",
            quorum,
            idempotent=True,
        )
        self.chord_claim = prepare(
            f"UPDATE {chords} USING TTL ? SET done = ? WHERE group_id = ? "
            f"IF current = ? AND done = null",
            write,
            idempotent=False,
        )


def _quorum_for(serial: int) -> int:
    local = serial == ConsistencyLevel.LOCAL_SERIAL
    level: Any = ConsistencyLevel.LOCAL_QUORUM if local else ConsistencyLevel.QUORUM
    return int(level)
