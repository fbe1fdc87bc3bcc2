"""The tables, indexes and statements of the PostgreSQL backend, for one schema and prefix.

Everything is built from validated identifiers (never from user data), so
the statements are plain strings with ``%(name)s`` parameters. Expiry times
are seconds since the epoch from the backend's clock (a ``double
precision``), so that tests can drive them with a manual clock.
"""

from __future__ import annotations

import re

import attrs
from resultstore import READY_STATES, ConfigurationError

__all__ = ["SCHEMA_VERSION", "Tables", "check_identifier"]

#: the layout this module writes (kept in the ``meta`` table).
SCHEMA_VERSION = 1

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,39}")
# Built from the enum, never from input, so inlining it in SQL is safe.
_READY_SQL = ", ".join(f"'{state}'" for state in sorted(READY_STATES))
_LIVE = "(expires_at IS NULL OR expires_at > %(now)s)"
#: chords.completed: 0 open; 1 complete and body sent; 2 complete, body not sent;
#: 3 complete, body sending claimed at claimed_at.
BODY_SENT = 1
BODY_UNSENT = 2
BODY_CLAIMED = 3


def check_identifier(option: str, value: str, *, empty: bool = False) -> str:
    """``value`` if it is a safe lower-case SQL identifier (part), else a ConfigurationError."""
    if (empty and value == "") or _IDENTIFIER.fullmatch(value):
        return value
    raise ConfigurationError(
        f"{option}={value!r} is not a plain lower-case SQL name: use letters a-z, digits and "
        f"_ (not first a digit), at most 40 characters, for example {option}=resultstore"
    )


@attrs.frozen
class Tables:
    """Qualified table names and every statement the backend runs."""

    schema: str
    prefix: str

    def name(self, table: str) -> str:
        return f'"{self.schema}"."{self.prefix}{table}"'

    @property
    def results(self) -> str:
        return self.name("results")

    @property
    def groups(self) -> str:
        return self.name("groups")

    @property
    def chords(self) -> str:
        return self.name("chords")

    @property
    def parts(self) -> str:
        return self.name("chord_parts")

    @property
    def lock_key(self) -> str:
        """The advisory-lock text that serialises creating these tables."""
        return f"resultstore:{self.schema}.{self.prefix}"

    @property
    def lock_schema(self) -> str:
        """Taken inside the transaction that creates the tables (``key``: :attr:`lock_key`)."""
        return "SELECT pg_advisory_xact_lock(hashtext(%(key)s))"

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel stores on these tables announce on."""
        return f"resultstore_{self.schema}_{self.prefix}"[:63]

    def ddl(self) -> list[str]:
        """Every statement that creates the schema (idempotent)."""
        p = self.prefix
        return [
            f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"',
            f"""CREATE TABLE IF NOT EXISTS {self.results} (
                task_id text PRIMARY KEY,
                state text NOT NULL,
                payload bytea NOT NULL,
                date_done timestamptz,
                name text,
                worker text,
                queue text,
                group_id text,
                expires_at double precision
            )""",
            # Partial indexes: rows that never expire or belong to no group cost nothing.
            f"""CREATE INDEX IF NOT EXISTS "{p}results_expires_at"
                ON {self.results} (expires_at) WHERE expires_at IS NOT NULL""",
            f"""CREATE INDEX IF NOT EXISTS "{p}results_group_id"
                ON {self.results} (group_id) WHERE group_id IS NOT NULL""",
            f"""CREATE INDEX IF NOT EXISTS "{p}results_state_date_done"
                ON {self.results} (state, date_done)""",
            f"""CREATE INDEX IF NOT EXISTS "{p}results_name"
                ON {self.results} (name) WHERE name IS NOT NULL""",
            f"""CREATE TABLE IF NOT EXISTS {self.groups} (
                group_id text PRIMARY KEY,
                payload bytea NOT NULL,
                expires_at double precision
            )""",
            f"""CREATE INDEX IF NOT EXISTS "{p}groups_expires_at"
                ON {self.groups} (expires_at) WHERE expires_at IS NOT NULL""",
            f"""CREATE TABLE IF NOT EXISTS {self.chords} (
                group_id text PRIMARY KEY,
                size integer NOT NULL,
                received integer NOT NULL DEFAULT 0,
                completed smallint NOT NULL DEFAULT 0,
                claimed_at double precision,
                expires_at double precision
            )""",
            f"""CREATE INDEX IF NOT EXISTS "{p}chords_expires_at"
                ON {self.chords} (expires_at) WHERE expires_at IS NOT NULL""",
            # Parts live and die with their chord row, so they carry no expiry of their own.
            f"""CREATE TABLE IF NOT EXISTS {self.parts} (
                group_id text NOT NULL,
                idx integer NOT NULL,
                payload bytea NOT NULL,
                PRIMARY KEY (group_id, idx)
            )""",
        ]

    # -- results ---------------------------------------------------------------

    @property
    def store(self) -> str:
        """Ready-is-final in one statement: the upsert's WHERE keeps ready states.

        The ``prev`` CTE locks the row that is there (if any) so the
        previous state it reports is the one the upsert decided on; the
        NOTIFY rides in the same statement, hence the same transaction. It
        says the task id, and with ``carry`` also, after a newline (never in
        an id), the payload in base64.

        ``again`` says an earlier try of this call may have committed and lost
        its reply: a row holding byte for byte this payload is then the call's
        own, reported in the fourth column (``own``) and left as it is, so the
        retry is not refused by its own ready state nor announced twice.
        """
        return f"""
        WITH prev AS (
            SELECT state, {_LIVE} AS live, %(again)s AND payload = %(payload)s AS own
            FROM {self.results} WHERE task_id = %(task_id)s FOR UPDATE
        ), up AS (
            INSERT INTO {self.results}
                (task_id, state, payload, date_done, name, worker, queue, group_id, expires_at)
            VALUES (%(task_id)s, %(state)s, %(payload)s, %(date_done)s, %(name)s, %(worker)s,
                    %(queue)s, %(group_id)s, %(expires_at)s)
            ON CONFLICT (task_id) DO UPDATE SET
                state = excluded.state,
                payload = excluded.payload,
                date_done = excluded.date_done,
                name = excluded.name,
                worker = excluded.worker,
                queue = excluded.queue,
                group_id = excluded.group_id,
                expires_at = excluded.expires_at
            WHERE %(overwrite)s OR {self.results}.state NOT IN ({_READY_SQL})
                OR ({self.results}.expires_at IS NOT NULL
                    AND {self.results}.expires_at <= %(now)s)
            RETURNING 1
        ), note AS (
            SELECT pg_notify(%(channel)s, CASE WHEN %(carry)s
                THEN %(task_id)s || chr(10) || encode(%(payload)s, 'base64')
                ELSE %(task_id)s END)
            FROM up WHERE %(notify)s
        )
        SELECT (SELECT state FROM prev WHERE live), EXISTS (SELECT 1 FROM up),
               (SELECT count(*) FROM note), EXISTS (SELECT 1 FROM prev WHERE own)
        """

    @property
    def current_state(self) -> str:
        return f"SELECT state FROM {self.results} WHERE task_id = %(task_id)s AND {_LIVE}"

    @property
    def get(self) -> str:
        return f"SELECT payload FROM {self.results} WHERE task_id = %(task_id)s AND {_LIVE}"

    @property
    def get_many(self) -> str:
        return (
            f"SELECT task_id, payload FROM {self.results} "
            f"WHERE task_id = ANY(%(task_ids)s) AND {_LIVE}"
        )

    @property
    def forget(self) -> str:
        return f"DELETE FROM {self.results} WHERE task_id = %(task_id)s"

    # -- groups ----------------------------------------------------------------

    @property
    def save_group(self) -> str:
        return f"""
        INSERT INTO {self.groups} (group_id, payload, expires_at)
        VALUES (%(group_id)s, %(payload)s, %(expires_at)s)
        ON CONFLICT (group_id) DO UPDATE SET
            payload = excluded.payload, expires_at = excluded.expires_at
        """

    @property
    def get_group(self) -> str:
        return f"SELECT payload FROM {self.groups} WHERE group_id = %(group_id)s AND {_LIVE}"

    @property
    def delete_group(self) -> str:
        return f"DELETE FROM {self.groups} WHERE group_id = %(group_id)s"

    # -- chords ----------------------------------------------------------------

    def reset_dead_chord(self) -> list[str]:
        """An expired chord that cleanup() has not reached yet starts afresh."""
        dead = f"group_id = %(group_id)s AND NOT {_LIVE}"
        return [
            f"""DELETE FROM {self.parts} WHERE group_id IN
                (SELECT group_id FROM {self.chords} WHERE {dead})""",
            f"DELETE FROM {self.chords} WHERE {dead}",
        ]

    @property
    def set_chord_size(self) -> str:
        return f"""
        INSERT INTO {self.chords} (group_id, size, expires_at)
        VALUES (%(group_id)s, %(size)s, %(expires_at)s)
        ON CONFLICT (group_id) DO UPDATE SET
            size = excluded.size, expires_at = excluded.expires_at
        """

    @property
    def chord_part(self) -> str:
        """Record a part and count it, in one statement.

        The part goes in only when the chord is live and the index in range;
        the unique key turns a duplicate into a no-op; the counting UPDATE
        locks the chord row, so concurrent parts are counted one after the
        other and exactly one of them sees ``received = size``.
        """
        return f"""
        WITH c AS (
            SELECT size, received FROM {self.chords}
            WHERE group_id = %(group_id)s AND {_LIVE}
        ), p AS (
            INSERT INTO {self.parts} (group_id, idx, payload)
            SELECT %(group_id)s, %(idx)s, %(payload)s FROM c
            WHERE %(idx)s >= 0 AND %(idx)s < c.size
            ON CONFLICT (group_id, idx) DO NOTHING
            RETURNING 1
        ), u AS (
            UPDATE {self.chords} SET
                received = received + 1,
                completed = CASE WHEN received + 1 = size THEN {BODY_UNSENT} ELSE completed END,
                expires_at = %(expires_at)s
            WHERE group_id = %(group_id)s AND EXISTS (SELECT 1 FROM p)
            RETURNING received, size
        )
        SELECT (SELECT size FROM c), (SELECT received FROM c),
               (SELECT received FROM u), (SELECT size FROM u)
        """

    @property
    def chord_parts(self) -> str:
        return f"SELECT payload FROM {self.parts} WHERE group_id = %(group_id)s ORDER BY idx"

    @property
    def get_chord(self) -> str:
        return f"""
        SELECT size, completed,
            ARRAY(SELECT idx FROM {self.parts} WHERE group_id = %(group_id)s)
        FROM {self.chords} WHERE group_id = %(group_id)s AND {_LIVE}
        """

    @property
    def lock_chord(self) -> str:
        return f"""
        SELECT size, completed, claimed_at FROM {self.chords}
        WHERE group_id = %(group_id)s AND {_LIVE} FOR UPDATE
        """

    @property
    def claim_chord(self) -> str:
        return f"""
        UPDATE {self.chords} SET completed = {BODY_CLAIMED}, claimed_at = %(now)s
        WHERE group_id = %(group_id)s
        """

    @property
    def mark_chord_sent(self) -> str:
        return f"""
        UPDATE {self.chords} SET completed = {BODY_SENT}, claimed_at = NULL
        WHERE group_id = %(group_id)s AND completed >= {BODY_UNSENT}
        """

    # -- cleanup ---------------------------------------------------------------

    def sweep(self, table: str, key: str) -> str:
        """Delete one batch of expired rows (others sweeping at once skip them)."""
        return f"""
        DELETE FROM {table} WHERE {key} IN (
            SELECT {key} FROM {table}
            WHERE expires_at IS NOT NULL AND expires_at <= %(now)s
            LIMIT %(batch)s FOR UPDATE SKIP LOCKED
        )
        """

    @property
    def orphan_parts(self) -> str:
        return f"""
        DELETE FROM {self.parts} WHERE group_id IN (
            SELECT DISTINCT p.group_id FROM {self.parts} p
            LEFT JOIN {self.chords} c USING (group_id)
            WHERE c.group_id IS NULL LIMIT %(batch)s
        )
        """
