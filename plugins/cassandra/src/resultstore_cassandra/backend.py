"""The Cassandra backend: one row per task, ready-is-final by lightweight transactions.

A store is a compare-and-set on the task row: ``UPDATE ... IF state = ? AND
writer = ? AND expires_at = ?`` with the row it expects (all null for "no
row"). Each store writes a fresh ``writer`` token, so the three columns name
one version of the row. When the row differs, Cassandra answers with the
row it found: a live ready state ends the store (refused, truthfully), any
other state is the next expectation. A first guess that is usually right
makes most stores a single Paxos round: the version this process wrote last
(a worker stores STARTED, then SUCCESS), else "no row" for states whose
stores usually find none, else a plain read first. A store whose reply was
lost is tried again with the same token; finding its own token means it had
been applied.

Chords live in one partition each: a static head (size, the current epoch,
expiry, the completer's token) and one row per part, inserted with ``IF NOT
EXISTS`` in a conditional batch that also checks the head is still the one
this process saw (epoch and size) and refreshes its expiry. The
call that inserted a part then reads the epoch's parts at a quorum; if all
are there it claims completion with ``IF done = null``, which exactly one
call wins. The last part's insert is the last Paxos round on the partition,
and Paxos commits every earlier round on a quorum before it, so its quorum
read sees every part: some call always claims.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import os
import threading
import uuid
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from resultstore import (
    READY_STATES,
    BackendConfig,
    Capability,
    ChordError,
    ChordOutcome,
    ChordState,
    ConfigurationError,
    CorruptPayloadError,
    EncodeError,
    Group,
    Serializer,
    StoreOutcome,
    TaskResult,
)
from resultstore.plugin.retrying import time_left

from resultstore_cassandra._driver import (
    UNSET_VALUE,
    Cluster,
    PreparedStatement,
    Session,
    execute_concurrent_with_args,
)
from resultstore_cassandra.client import (
    LWT_PROFILE,
    MAX_TTL,
    Retrier,
    Settings,
    build_cluster,
)
from resultstore_cassandra.schema import Statements, ensure_schema

if TYPE_CHECKING:
    from resultstore_cassandra.aio import AsyncCassandraBackend

__all__ = [
    "ABSENT",
    "CAPABILITIES",
    "PAYLOAD_LIMIT",
    "CassandraBackend",
    "Head",
    "Plan",
    "Step",
    "Version",
]

CAPABILITIES = frozenset(
    {
        Capability.BULK_GET,
        Capability.BATCH_STORE,
        Capability.AUTO_EXPIRY,
        Capability.GROUPS,
        Capability.CHORDS,
        Capability.PERSISTENT,
        Capability.SHARED,
        Capability.NATIVE_ASYNC,
        Capability.MIGRATE,
    }
)
#: Cassandra refuses mutations over half a commit-log segment (16 MiB by default).
PAYLOAD_LIMIT = 15 * 1024 * 1024
#: compare-and-set rounds one store may take before it gives up.
CAS_TRIES = 32
#: task versions remembered per process (the next store of a task guesses from it).
KNOWN_LIMIT = 50_000

_EPOCH = dt.datetime(1970, 1, 1)
_TOKEN_PREFIX = uuid.uuid4().hex[:12]
_tokens = itertools.count()

#: one statement to run: (statement, parameters, execution profile or None).
Step = tuple[PreparedStatement, Sequence[Any], str | None]


def token() -> str:
    """Unique per call across processes and hosts, cheaper than a uuid4 each time."""
    return f"{_TOKEN_PREFIX}{os.getpid():x}-{next(_tokens):x}"


class Version(NamedTuple):
    """One version of a task row: what a compare-and-set expects and finds."""

    state: str | None
    writer: str | None
    #: naive UTC at millisecond precision, as the driver reads timestamps.
    expires_at: dt.datetime | None


ABSENT = Version(None, None, None)


class Head(NamedTuple):
    """A chord's static head: its current epoch, size and expiry."""

    epoch: str
    size: int
    expires_at: dt.datetime | None


def moment(seconds: float) -> dt.datetime:
    """``seconds`` since the epoch as a naive UTC datetime at millisecond precision."""
    return _EPOCH + dt.timedelta(milliseconds=math.floor(seconds * 1000))


def seconds_of(moment_: dt.datetime) -> float:
    aware = moment_ if moment_.tzinfo is not None else moment_.replace(tzinfo=dt.UTC)
    return aware.timestamp()


def live(expires_at: dt.datetime | None, now: float) -> bool:
    return expires_at is None or seconds_of(expires_at) > now


def version_of(row: dict[str, Any]) -> Version:
    return Version(row.get("state"), row.get("writer"), row.get("expires_at"))


def live_state(version: Version, now: float) -> str | None:
    if version.state is None or not live(version.expires_at, now):
        return None
    return version.state


class Freshness:
    """How often the stores of each state met no row, learned as they go: where
    that is usual a store expects no row, elsewhere it reads first."""

    LIMIT = 64

    def __init__(self) -> None:
        self._odds: dict[str, float] = {}

    def expect_new(self, state: str) -> bool:
        return self._odds.get(state, 1.0) >= 0.5

    def learn(self, state: str, new: bool) -> None:
        odds = self._odds.get(state)
        if odds is None and len(self._odds) >= self.LIMIT:
            return
        odds = 1.0 if odds is None else odds
        self._odds[state] = odds + ((1.0 if new else 0.0) - odds) / 8


class Plan:
    """One store in progress: what it writes, and what it expects to find.

    It survives a retry after a transient error, so the next try goes on
    with the same token and the last expectation.
    """

    def __init__(
        self,
        result: TaskResult,
        *,
        values: list[Any],
        writer: str,
        expires_at: dt.datetime | None,
        expected: Version | None,
        now: float,
        overwrite: bool,
    ) -> None:
        self.result = result
        self.values = values
        self.writer = writer
        self.expires_at = expires_at
        self.expected = expected
        self.now = now
        self.overwrite = overwrite


class CassandraBackend:
    """Results, groups and chords in Cassandra (also ScyllaDB and DataStax Astra)."""

    capabilities = CAPABILITIES

    def __init__(self, config: BackendConfig) -> None:
        settings = Settings.take_from(config)
        config.options.finish()
        if config.expires is not None and config.expires > MAX_TTL:
            raise ConfigurationError(
                f"expires={config.expires:g} s is longer than Cassandra's longest TTL (20 years, "
                f"{MAX_TTL} s); use a shorter expiry, or expires=none to keep results"
            )
        self.url = config.url
        self.settings = settings
        self._serializer: Serializer = config.serializer
        self._expires = config.expires
        self.ttl = 0 if config.expires is None else max(1, math.ceil(config.expires))
        self._clock = settings.clock
        self._unset: Any = UNSET_VALUE if settings.protocol_version != 3 else None
        self.freshness = Freshness()
        self._known: dict[str, Version] = {}
        self._heads: dict[str, Head] = {}
        self._known_lock = threading.Lock()
        self.retry = Retrier(settings)
        self.cluster, self.session = self.retry(self._connect)
        self.retry.closed = False
        try:
            self.retry(lambda: ensure_schema(self.session, settings))
            self.statements = self.retry(lambda: Statements(self.session, settings))
        except BaseException:
            self.cluster.shutdown()
            raise

    def _connect(self) -> tuple[Cluster, Session]:
        # A Cluster whose first connect failed is shut down by the driver: a new one per try.
        cluster = build_cluster(self.settings)
        try:
            return cluster, cluster.connect()
        except BaseException:
            cluster.shutdown()
            raise

    def __repr__(self) -> str:
        return f"<CassandraBackend {self.url.redacted()} {self.settings.keyspace}>"

    # -- time and encoding --------------------------------------------------------------

    def now(self) -> float:
        return self._clock()

    def expires_at(self, now: float) -> dt.datetime | None:
        return None if self._expires is None else moment(now + self._expires)

    def _payload(self, obj: Any, ident: str) -> bytes:
        payload = self._serializer.dumps(obj)
        if len(payload) > PAYLOAD_LIMIT:
            raise EncodeError(
                f"result of {ident!r} encodes to {len(payload):,} bytes, over the "
                f"{PAYLOAD_LIMIT:,} a Cassandra mutation may carry; store a reference to the "
                f"data instead (a file or object-store key), or enable compression"
            )
        return payload

    def load_result(self, payload: Any, task_id: str) -> TaskResult:
        if not isinstance(payload, bytes):
            raise CorruptPayloadError(
                f"stored result {task_id!r} has no payload: the row was written by another "
                f"program. Forget it, or point the backend at a table of its own"
            )
        return self._serializer.loads(payload, TaskResult)

    # -- the store as steps (run by the sync backend and the asyncio twin) ----------------

    def plan(self, result: TaskResult, overwrite: bool) -> Plan:
        now = self.now()
        expires_at = self.expires_at(now)
        payload = self._payload(result, result.task_id)
        date_done = result.date_done
        values = [
            str(result.state),
            date_done,
            result.name,
            result.worker,
            result.queue,
            result.retries,
            result.parent_id,
            result.group_id,
            payload,
            expires_at,
        ]
        if result.retries is not None and not -(2**31) <= result.retries < 2**31:
            values[5] = None  # the payload keeps it; the column is an int
        with self._known_lock:
            expected = self._known.get(result.task_id)
        if expected is None and self.freshness.expect_new(str(result.state)):
            expected = ABSENT
        return Plan(
            result,
            values=values,
            writer=token(),
            expires_at=expires_at,
            expected=expected,
            now=now,
            overwrite=overwrite,
        )

    def _remember(self, task_id: str, version: Version) -> None:
        with self._known_lock:
            if len(self._known) >= KNOWN_LIMIT:
                self._known.clear()
            self._known[task_id] = version

    def store_steps(self, plan: Plan) -> Generator[Step, list[Any], StoreOutcome]:
        """The compare-and-set loop of one store: yields statements, gets their rows."""
        st = self.statements
        task_id, state = plan.result.task_id, str(plan.result.state)
        if plan.expected is not None and plan.expected.state in READY_STATES:
            # Remembered as ready: true unless it was forgotten or overwritten
            # elsewhere since, so the refusal comes from what the store holds now.
            plan.expected = None
        if plan.expected is None:
            rows = yield (st.current, (task_id,), LWT_PROFILE)
            plan.expected = version_of(rows[0]) if rows else ABSENT
            self.freshness.learn(state, plan.expected == ABSENT)
        for _ in range(CAS_TRIES):
            expected = plan.expected
            kept = live_state(expected, plan.now)
            if kept in READY_STATES and not plan.overwrite:
                self._remember(task_id, expected)
                return StoreOutcome(False, kept, kept)
            # Columns left empty: untouched on a new row (no tombstones), cleared on an old one.
            empty = self._unset if expected == ABSENT else None
            values = [empty if v is None else v for v in plan.values]
            params = [self.ttl, *values, plan.writer, task_id, *expected]
            rows = yield (st.store, params, LWT_PROFILE)
            row = rows[0]
            if row["[applied]"]:
                self._remember(task_id, Version(state, plan.writer, plan.expires_at))
                return StoreOutcome(True, plan.result.state, live_state(expected, plan.now))
            found = version_of(row)
            if found.writer == plan.writer:
                # A try whose reply was lost had been applied.
                self._remember(task_id, found)
                return StoreOutcome(True, plan.result.state, live_state(expected, plan.now))
            plan.expected = found
        raise ConfigurationError(
            f"storing {task_id!r} lost {CAS_TRIES} compare-and-set rounds in a row; something "
            f"rewrites the row of that task continuously"
        )

    def run_steps(self, steps: Callable[[], Generator[Step, list[Any], Any]]) -> Any:
        """Run a step generator with the sync session, again after transient errors."""

        def once() -> Any:
            generator = steps()
            rows: list[Any] | None = None
            try:
                while True:
                    statement, params, profile = (
                        next(generator) if rows is None else generator.send(rows)
                    )
                    rows = self._execute(statement, params, profile)
            except StopIteration as stop:
                return stop.value

        return self.retry(once)

    def _execute(
        self, statement: PreparedStatement, params: Sequence[Any], profile: str | None
    ) -> list[Any]:
        return list(self._exec(statement, params, profile))

    def _exec(
        self, statement: PreparedStatement, params: Sequence[Any], profile: str | None = None
    ) -> Any:
        """One request; a retried one (or one under a caller's deadline) is bounded by the
        time left, not only by request_timeout."""
        kwargs: dict[str, Any] = {}
        left = time_left()
        if left is not None:
            kwargs["timeout"] = min(left, self.settings.request_timeout)
        if profile is not None:
            kwargs["execution_profile"] = profile
        return self.session.execute(statement, params, **kwargs)

    # -- ResultBackend ---------------------------------------------------------------------

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        plan = self.plan(result, overwrite)
        outcome: StoreOutcome = self.run_steps(lambda: self.store_steps(plan))
        return outcome

    def store_many(
        self, results: Sequence[TaskResult], *, overwrite: bool = False
    ) -> list[StoreOutcome]:
        """``store`` for each result in order; the first try of every store of a round
        runs concurrently (the n-th store of an id goes in the n-th round)."""
        plans = [self.plan(result, overwrite) for result in results]
        outcomes: list[StoreOutcome | None] = [None] * len(plans)
        rounds: list[list[int]] = []
        seen: dict[str, int] = {}
        for index, result in enumerate(results):
            n = seen.get(result.task_id, 0)
            seen[result.task_id] = n + 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append(index)
        for number, members in enumerate(rounds):
            if number:  # later rounds expect what the earlier ones wrote
                for index in members:
                    with self._known_lock:
                        plans[index].expected = self._known.get(plans[index].result.task_id)
            self._run_round([plans[i] for i in members], outcomes, members)
        return [o for o in outcomes if o is not None]

    def _run_round(
        self, plans: list[Plan], outcomes: list[StoreOutcome | None], members: list[int]
    ) -> None:
        generators = [self.store_steps(plan) for plan in plans]
        pending: list[tuple[int, Generator[Step, list[Any], StoreOutcome], Step]] = []
        for index, generator in zip(members, generators, strict=True):
            pending.append((index, generator, next(generator)))
        # Steps of different tasks run concurrently, each task's steps in order.
        while pending:
            by_statement: dict[int, list[int]] = {}
            for position, (_, _, step) in enumerate(pending):
                by_statement.setdefault(id(step[0]), []).append(position)
            replies: dict[int, list[Any] | BaseException] = {}
            for positions in by_statement.values():
                statement = pending[positions[0]][2][0]
                args = [pending[p][2][1] for p in positions]
                done = execute_concurrent_with_args(
                    self.session,
                    statement,
                    args,
                    concurrency=self.settings.concurrency,
                    raise_on_first_error=False,
                    execution_profile=LWT_PROFILE,
                )
                for position, (ok, reply) in zip(positions, done, strict=True):
                    replies[position] = list(reply) if ok else reply
            still: list[tuple[int, Generator[Step, list[Any], StoreOutcome], Step]] = []
            for position, (index, generator, _) in enumerate(pending):
                reply = replies[position]
                if isinstance(reply, BaseException):
                    # This one goes on alone, with the usual retries.
                    outcomes[index] = self._finish_alone(generator, reply, plans, members, index)
                    continue
                try:
                    still.append((index, generator, generator.send(reply)))
                except StopIteration as stop:
                    outcomes[index] = stop.value
            pending = still

    def _finish_alone(
        self,
        generator: Generator[Step, list[Any], StoreOutcome],
        error: BaseException,
        plans: list[Plan],
        members: list[int],
        index: int,
    ) -> StoreOutcome:
        generator.close()
        final = self.retry.error(error)
        if final is error:
            raise error
        if final is not None:
            raise final from None
        plan = plans[members.index(index)]
        outcome: StoreOutcome = self.run_steps(lambda: self.store_steps(plan))
        return outcome

    def get(self, task_id: str) -> TaskResult | None:
        rows = self.retry(lambda: self._exec(self.statements.get, (task_id,)))
        row = rows.one()
        if row is None:
            return None
        state, payload, expires_at = row
        if state is None or not live(expires_at, self.now()):
            return None
        return self.load_result(payload, task_id)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        ids = list(dict.fromkeys(task_ids))
        requests = self.bulk_requests(ids)
        replies = self.retry(
            lambda: execute_concurrent_with_args(
                self.session,
                requests[0],
                requests[1],
                concurrency=self.settings.concurrency,
                raise_on_first_error=True,
            )
        )
        return self.bulk_results(ids, [list(rows) for _, rows in replies])

    def bulk_requests(self, ids: list[str]) -> tuple[PreparedStatement, list[tuple[Any, ...]]]:
        """The statement and parameters of a bulk read: ``read_batch`` ids per request
        (never one giant IN), or one SELECT per id with read_batch=1."""
        step = self.settings.read_batch
        if step == 1:
            return self.statements.get, [(task_id,) for task_id in ids]
        chunks = [(ids[start : start + step],) for start in range(0, len(ids), step)]
        return self.statements.get_in, chunks

    def bulk_results(
        self, ids: list[str], replies: list[list[Any]]
    ) -> dict[str, TaskResult | None]:
        """Decode the replies of :meth:`bulk_requests` into every id's result or None."""
        now = self.now()
        rows: dict[str, tuple[Any, Any, Any]] = {}
        if self.settings.read_batch == 1:
            for task_id, reply in zip(ids, replies, strict=True):
                if reply:
                    rows[task_id] = reply[0]
        else:
            for reply in replies:
                for task_id, state, payload, expires_at in reply:
                    rows[task_id] = (state, payload, expires_at)
        found: dict[str, TaskResult | None] = {}
        for task_id in ids:
            row = rows.get(task_id)
            if row is None or row[0] is None or not live(row[2], now):
                found[task_id] = None
            else:
                found[task_id] = self.load_result(row[1], task_id)
        return found

    def forget(self, task_id: str) -> None:
        self.retry(lambda: self._exec(self.statements.forget, (task_id,), LWT_PROFILE))
        self.forget_known(task_id)

    def forget_known(self, task_id: str) -> None:
        """Drop the version this process remembers of ``task_id`` (it was forgotten)."""
        with self._known_lock:
            self._known.pop(task_id, None)

    def migrate(self) -> str:
        """Create the keyspace (with ``create_keyspace`` and ``replication``) and the
        tables now, even with ``create_tables=false``."""
        self.retry(lambda: ensure_schema(self.session, self.settings, now=True))
        s = self.settings
        tables = (s.taskmeta_table, s.groupmeta_table, s.chordmeta_table)
        return f"tables {', '.join(tables)} in keyspace {s.keyspace}"

    def close(self) -> None:
        if not self.retry.closed:
            self.retry.closed = True
            self.cluster.shutdown()

    def plant_payload(self, task_id: str, payload: bytes, state: str = "SUCCESS") -> None:
        """Put raw bytes where a result would be (tests of corrupt payloads)."""
        plan = self.plan(TaskResult(task_id, state), overwrite=True)
        plan.values[8] = payload
        self.run_steps(lambda: self.store_steps(plan))

    # -- groups ------------------------------------------------------------------------------

    def save_group(self, group: Group) -> None:
        payload = self._payload(group, group.group_id)
        expires_at = self.expires_at(self.now())
        params = (group.group_id, group.date_done, payload, expires_at, self.ttl)
        self.retry(lambda: self._exec(self.statements.save_group, params))

    def get_group(self, group_id: str) -> Group | None:
        rows = self.retry(lambda: self._exec(self.statements.get_group, (group_id,)))
        row = rows.one()
        if row is None or not live(row[1], self.now()):
            return None
        if not isinstance(row[0], bytes):
            raise CorruptPayloadError(
                f"stored group {group_id!r} has no payload: the row was written by another "
                f"program. Delete it"
            )
        return self._serializer.loads(row[0], Group)

    def delete_group(self, group_id: str) -> None:
        self.retry(lambda: self._exec(self.statements.delete_group, (group_id,)))

    # -- chords --------------------------------------------------------------------------------

    def _head(self, group_id: str) -> dict[str, Any] | None:
        rows = self.retry(lambda: self._exec(self.statements.chord_head, (group_id,), LWT_PROFILE))
        row: dict[str, Any] | None = rows.one()
        return row

    def _lwt(self, statement: PreparedStatement, params: Sequence[Any]) -> dict[str, Any]:
        """Run a lightweight transaction (with retries); its one row, as a dict."""
        rows = self.retry(lambda: self._exec(statement, params, LWT_PROFILE))
        row: dict[str, Any] = rows.one()
        return row

    def set_chord_size(self, group_id: str, size: int) -> None:
        if size < 0:
            raise ChordError(f"chord size must be >= 0, got {size}")
        now = self.now()
        expires_at = self.expires_at(now)
        st = self.statements
        expected: tuple[Any, Any] = (None, None)  # (current epoch, expires_at): none yet
        for _ in range(CAS_TRIES):
            current, old_expiry = expected
            if current is not None and live(old_expiry, now):
                # A live chord keeps its parts (resizing is the caller's business).
                statement, epoch = st.chord_size, current
            else:
                # Missing or expired: a fresh epoch, whose parts start from none.
                statement, epoch = st.chord_restart, uuid.uuid4().hex
            params = (self.ttl, size, expires_at, epoch, group_id, current, old_expiry)
            row = self._lwt(statement, params)
            if row["[applied]"] or (statement is st.chord_restart and row.get("current") == epoch):
                # Applied now, or by a try whose reply was lost (its fresh epoch is there).
                self._remember_head(group_id, Head(epoch, size, expires_at))
                return
            expected = (row.get("current"), row.get("expires_at"))
        raise ConfigurationError(f"chord {group_id!r}: its size kept changing under this call")

    def _chord_head(self, group_id: str, now: float, *, fresh: bool) -> Head:
        """The chord's (epoch, size, expires_at): remembered from this process's last
        look unless ``fresh`` or it looks expired, else read at a quorum."""
        with self._known_lock:
            head = None if fresh else self._heads.get(group_id)
        if head is not None and live(head.expires_at, now):
            return head
        row = self._head(group_id)
        if row is None or row.get("size") is None or not live(row.get("expires_at"), now):
            with self._known_lock:
                self._heads.pop(group_id, None)
            raise ChordError(
                f"chord {group_id!r} has no size set (or it expired); call "
                f"set_chord_size({group_id!r}, n) before its parts return"
            )
        head = Head(row["current"], int(row["size"]), row.get("expires_at"))
        self._remember_head(group_id, head)
        return head

    def _remember_head(self, group_id: str, head: Head) -> None:
        with self._known_lock:
            if len(self._heads) >= KNOWN_LIMIT:
                self._heads.clear()
            self._heads[group_id] = head

    def chord_part_return(self, group_id: str, index: int, result: TaskResult) -> ChordOutcome:
        payload = self._payload(result, result.task_id)
        now = self.now()
        st = self.statements
        writer = token()
        expires_at = self.expires_at(now)
        fresh = False
        for _ in range(CAS_TRIES):
            head = self._chord_head(group_id, now, fresh=fresh)
            epoch, size = head.epoch, head.size
            if not 0 <= index < size:
                if not fresh:
                    fresh = True  # a resize this process has not seen?
                    continue
                raise ChordError(
                    f"chord {group_id!r} part index {index} is out of range 0..{size - 1}"
                )
            # The part's row, if the head still is (epoch, size); the head's expiry
            # moves on with it. One Paxos round.
            params: list[Any] = [group_id, epoch, index, writer, payload, self.ttl]
            params += [self.ttl, expires_at, size, epoch, group_id, epoch, size]
            row = self._lwt(st.chord_part, params)
            if row["[applied]"]:
                added = True
                self._remember_head(group_id, Head(epoch, size, expires_at))
                break
            if row.get("current") == epoch and row.get("size") == size:
                # The head is as expected, so the part was there: a duplicate, or
                # this call's own earlier try whose reply was lost.
                added = row.get("writer") == writer
                break
            fresh = True  # the chord was set up again or resized meanwhile
        else:
            raise ConfigurationError(f"chord {group_id!r}: its head kept changing under this call")
        parts = {
            part for (part,) in self.retry(lambda: self._exec(st.chord_parts, (group_id, epoch)))
        }
        if added:
            parts.add(index)
        complete = False
        if added and len(parts) >= size:
            claim = (self.ttl, writer, group_id, epoch)
            won = self._lwt(st.chord_claim, claim)
            complete = bool(won["[applied]"]) or won.get("done") == writer
        results = self._chord_results(group_id, epoch, size) if complete else None
        return ChordOutcome(
            group_id=group_id,
            index=index,
            complete=complete,
            duplicate=not added,
            received=len(parts),
            size=size,
            results=results,
        )

    def _chord_results(self, group_id: str, epoch: str, size: int) -> tuple[TaskResult, ...]:
        rows = self.retry(
            lambda: list(self._exec(self.statements.chord_payloads, (group_id, epoch)))
        )
        payloads = dict(rows)
        missing = [i for i in range(size) if i not in payloads]
        if missing:
            raise ChordError(
                f"chord {group_id!r} completed but parts {missing} are gone; the chord's rows "
                f"expired or were deleted meanwhile"
            )
        return tuple(self.load_result(payloads[i], group_id) for i in range(size))

    def get_chord(self, group_id: str) -> ChordState | None:
        head = self._head(group_id)
        if head is None or head.get("size") is None or not live(head.get("expires_at"), self.now()):
            return None
        size, epoch = int(head["size"]), head["current"]
        parts = self.retry(lambda: list(self._exec(self.statements.chord_parts, (group_id, epoch))))
        received = frozenset(int(part) for (part,) in parts)
        return ChordState(group_id, size, received, size > 0 and len(received) >= size)

    # -- asyncio ---------------------------------------------------------------------------------

    def async_backend(self) -> AsyncCassandraBackend:
        """The native asyncio twin (the driver's execute_async futures), sharing this session."""
        from resultstore_cassandra.aio import AsyncCassandraBackend

        return AsyncCassandraBackend(self)
