"""resultstore-postgresql against a bare psycopg connection and Celery's DatabaseBackend.

One throwaway PostgreSQL on loopback (Debian's package, started like the
tests' server: ``fsync=off``, ``synchronous_commit=off``), one process, the
same ~200-byte JSON result (10 fields). Cases run in rounds that interleave
the contenders; the table shows medians with the min..max of the rounds and
the issue's targets. Run with ``nox -s bench -- postgresql``.

"Bare" is the limit: one psycopg connection (autocommit, psycopg's default
prepared statements) sending our statements as they are (the one-statement
upsert with its ``pg_notify``, ``= ANY`` for a join, the chord part
statement) on tables made by the same DDL, with orjson payloads.

Celery is 5.7's DatabaseBackend through SQLAlchemy, ``db+postgresql://``
(SQLAlchemy's default driver, psycopg2). Its SessionManager keeps an engine
and a connection pool only in a forked child (a prefork worker); any other
process gets a new engine with ``NullPool`` for every call, hence a new
connection (TCP, SCRAM login, the dialect's first-connect queries) per
store or read. The main Celery rows use the pooled mode (the fair,
stronger contender, as in a prefork worker); the "no fork" rows show what
a client process, a thread-pool worker or a beat job gets. That per-call
connection is the likely reason an earlier version of this bench seemed to
hang (neither ``+psycopg`` nor psycopg2 hung here): storing and joining
2,000 results that way takes about a minute a round. Celery has no native join for this backend (a
``get`` per result) and no chords of its own (``chord_unlock`` polls the
header every second): its chord row counts the header's stores and one
successful poll. Its wake rows store at a random moment of its 0.5 s
polling cycle. The ``notify_results=true`` wake rows run our waiter and
writer with announcements that carry the result (no read after the
wake-up). The asyncio row runs the native twin (``connect_async``)
against a bare ``psycopg.AsyncConnection`` sending the same upsert.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from typing import Any

import orjson
import psycopg
import resultstore
from _cases import PAYLOAD, OurCases, ids, per_second, timed, wake_latency
from _celery import CeleryCases
from _table import RatioTable, Samples, arguments, percentile, run_rounds
from resultstore_contract.servers import start_postgresql

BATCH = 2_000
CHORD = 500
WAKE_TIMEOUT = 10.0
#: AsyncResult.get()'s default poll interval, in seconds.
CELERY_INTERVAL = 0.5


class Bench:
    def __init__(self, url: str, ops: int) -> None:
        self.url = url
        self.ops = ops
        self.store = resultstore.connect(url, table_prefix="bench_ours_")
        # The worker's side of the wake cases: another client, like a worker's.
        self.writer = resultstore.connect(url, table_prefix="bench_ours_")
        self.carrier = resultstore.connect(url, table_prefix="bench_ours_", notify_results=True)
        self.carrier_writer = resultstore.connect(
            url, table_prefix="bench_ours_", notify_results=True
        )
        self.ours = OurCases(self.store, ops)
        # The bare contender's tables: the same DDL under another prefix.
        self.raw_store = resultstore.connect(url, table_prefix="bench_raw_")
        self.raw_store.migrate()
        raw_backend: Any = self.raw_store.backend
        self.sql = raw_backend.tables
        self.bare = psycopg.connect(url, autocommit=True)
        self.bare_writer = psycopg.connect(url, autocommit=True)
        # When, within Celery's polling cycle, each wake trial stores (seeded: repeatable).
        self.phase = random.Random(19)
        celery_url = "db+" + url
        self.celery = CeleryCases(celery_url, ops)
        # What a prefork worker's child does after fork: keep the engine and its pool.
        self.celery.backend.session_manager.forked = True
        self.unforked = CeleryCases(celery_url, max(1, ops // 10))
        # Every contender's tables exist before the first round.
        self.store.mark_as_done("warm-up", PAYLOAD)
        self.writer.mark_as_done("warm-up", PAYLOAD)
        self.celery.put(["warm-up"])
        self.unforked.put(["warm-up"])

    def close(self) -> None:
        for store in (self.store, self.writer, self.carrier, self.carrier_writer, self.raw_store):
            store.close()
        self.bare.close()
        self.bare_writer.close()
        self.celery.backend.session_manager.invalidate(self.celery.backend.url)

    # -- the bare connection ---------------------------------------------------------

    def _params(self, task_id: str, now: float) -> dict[str, Any]:
        payload = orjson.dumps({"status": "SUCCESS", "result": PAYLOAD, "task_id": task_id})
        return {
            "task_id": task_id,
            "state": "SUCCESS",
            "payload": payload,
            "date_done": None,
            "name": None,
            "worker": None,
            "queue": None,
            "group_id": None,
            "expires_at": now + 86400,
            "overwrite": False,
            "again": False,
            "now": now,
            "channel": self.sql.channel,
            "notify": True,
            "carry": False,
        }

    def _put_bare(self, task_ids: list[str]) -> None:
        now = time.time()
        with self.bare.cursor() as cur:
            cur.executemany(self.sql.store, [self._params(t, now) for t in task_ids])

    def store_bare(self) -> float:
        task_ids = ids(self.ops, "bare")

        def run() -> None:
            for task_id in task_ids:
                self.bare.execute(self.sql.store, self._params(task_id, time.time())).fetchone()

        return per_second(self.ops, run)

    def get_bare(self) -> float:
        task_ids = ids(self.ops, "gbare")
        self._put_bare(task_ids)

        def run() -> None:
            for task_id in task_ids:
                params = {"task_id": task_id, "now": time.time()}
                row = self.bare.execute(self.sql.get, params).fetchone()
                assert row is not None
                orjson.loads(row[0])

        return per_second(self.ops, run)

    def join_bare(self) -> float:
        task_ids = ids(BATCH, "jbare")
        self._put_bare(task_ids)

        def run() -> None:
            params = {"task_ids": task_ids, "now": time.time()}
            rows = self.bare.execute(self.sql.get_many, params).fetchall()
            values = {task_id: orjson.loads(payload)["result"] for task_id, payload in rows}
            assert len(values) == BATCH

        return timed(run)

    def chord_bare(self) -> float:
        group_id = uuid.uuid4().hex
        now = time.time()
        size = {"group_id": group_id, "size": CHORD, "now": now, "expires_at": now + 86400}
        self.bare.execute(self.sql.set_chord_size, size)

        def run() -> None:
            completed = 0
            for index in range(CHORD):
                now = time.time()
                part = {
                    "group_id": group_id,
                    "idx": index,
                    "payload": orjson.dumps(index),
                    "now": now,
                    "expires_at": now + 86400,
                }
                row = self.bare.execute(self.sql.chord_part, part).fetchone()
                assert row is not None
                _, _, counted, total = row
                if counted is not None and counted == total:
                    rows = self.bare.execute(self.sql.chord_parts, {"group_id": group_id})
                    value = sum(orjson.loads(p) for (p,) in rows)
                    callback = self._params(f"{group_id}-callback", now)
                    callback["payload"] = orjson.dumps(value)
                    self.bare.execute(self.sql.store, callback).fetchone()
                    completed += 1
            assert completed == 1

        return timed(run)

    # -- asyncio -------------------------------------------------------------------------

    def astore_ours(self) -> float:
        """Stores per second through the native asyncio twin, one awaited call each."""
        task_ids = ids(self.ops, "aour")

        async def run() -> float:
            async with await resultstore.connect_async(
                self.url, table_prefix="bench_ours_"
            ) as astore:
                await astore.mark_as_done("warm-up", PAYLOAD)  # the pool, opened
                start = time.perf_counter()
                for task_id in task_ids:
                    await astore.mark_as_done(task_id, PAYLOAD)
                return self.ops / (time.perf_counter() - start)

        return asyncio.run(run())

    def astore_bare(self) -> float:
        """The same upsert+notify on one bare ``psycopg.AsyncConnection``."""
        task_ids = ids(self.ops, "abare")

        async def run() -> float:
            conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
            try:
                start = time.perf_counter()
                for task_id in task_ids:
                    cursor = await conn.execute(self.sql.store, self._params(task_id, time.time()))
                    await cursor.fetchone()
                return self.ops / (time.perf_counter() - start)
            finally:
                await conn.close()

        return asyncio.run(run())

    # -- wake latency ------------------------------------------------------------------

    def wake_ours(self, trials: int, *, carried: bool = False) -> list[float]:
        """Our waiter woken by another client's store; with ``carried``, both with
        ``notify_results`` (the announcement brings the result: no read)."""
        store, writer = (
            (self.carrier, self.carrier_writer) if carried else (self.store, self.writer)
        )
        hub = store.hub

        def ready(task_id: str) -> None:
            while task_id not in hub.watched_ids():
                time.sleep(0.0005)
            assert hub.flush(WAKE_TIMEOUT), "the hub never subscribed"

        return wake_latency(
            trials,
            wait=lambda t: store.result(t).get(timeout=WAKE_TIMEOUT),
            ready=ready,
            store=lambda t: writer.mark_as_done(t, PAYLOAD),
            timeout=WAKE_TIMEOUT,
        )

    def wake_bare(self, trials: int, *, upsert: bool = False) -> list[float]:
        """A LISTEN connection of its own (listening before the waiter starts, in
        autocommit: a LISTEN inside an open transaction starts only at its commit)
        woken by a bare ``SELECT pg_notify`` from another connection, the round trip
        of one announcement; with ``upsert``, by our store statement (write + notify)."""
        listener = psycopg.connect(self.url, autocommit=True)
        listener.execute(f'LISTEN "{self.sql.channel}"')

        def wait(task_id: str) -> None:
            for note in listener.notifies(timeout=WAKE_TIMEOUT):
                if note.payload == task_id:
                    return

        def notify(task_id: str) -> None:
            if upsert:
                params = self._params(task_id, time.time())
                self.bare_writer.execute(self.sql.store, params).fetchone()
            else:
                self.bare_writer.execute("SELECT pg_notify(%s, %s)", (self.sql.channel, task_id))

        try:
            return wake_latency(
                trials, wait=wait, ready=lambda _: None, store=notify, timeout=WAKE_TIMEOUT
            )
        finally:
            listener.close()

    def wake_celery(self, trials: int) -> list[float]:
        """``AsyncResult.get()`` (a read every 0.5 s), stored at a random moment of
        its polling cycle: after its first read found the task pending, plus 0..0.5 s."""
        polled: dict[str, threading.Event] = {}

        def wait(task_id: str) -> None:
            event = polled.setdefault(task_id, threading.Event())
            self.celery.result(task_id).get(
                timeout=WAKE_TIMEOUT, interval=CELERY_INTERVAL, on_interval=event.set
            )

        def ready(task_id: str) -> None:
            assert polled.setdefault(task_id, threading.Event()).wait(WAKE_TIMEOUT)
            time.sleep(self.phase.uniform(0, CELERY_INTERVAL))

        return wake_latency(
            trials,
            wait=wait,
            ready=ready,
            store=lambda t: self.celery.put([t]),
            timeout=WAKE_TIMEOUT,
        )


def main() -> None:
    parser = arguments(__doc__, rounds=5, ops=1000)
    parser.add_argument("--trials", type=int, default=250, help="wake trials (ours, bare)")
    parser.add_argument("--celery-trials", type=int, default=40, help="wake trials (Celery)")
    args = parser.parse_args()
    with start_postgresql() as server:
        bench = Bench(server.url, args.ops)
        ours, celery, unforked = bench.ours, bench.celery, bench.unforked
        cases = {
            "store_bare": bench.store_bare,
            "store_ours": ours.mark_as_done,
            "store_celery": celery.store_result,
            "store_unforked": unforked.store_result,
            "get_bare": bench.get_bare,
            "get_ours": ours.get,
            "handle_ours": ours.result_get,
            "get_celery": celery.get,
            "get_unforked": unforked.get,
            "batch_ours": lambda: ours.store_many(BATCH),
            "batch_celery": lambda: celery.store_result(BATCH, tag="cbat"),
            "join_bare": bench.join_bare,
            "join_ours": lambda: ours.join(BATCH, timeout=300),
            # No get_many on this backend: join_native is refused, join reads one by one.
            "join_celery": lambda: celery.join(BATCH, native=False, timeout=300),
            "chord_bare": bench.chord_bare,
            "chord_ours": lambda: ours.chord_with_callback(CHORD),
            "chord_celery": lambda: celery.chord_unlock(CHORD, check_ready=True),
            "astore_bare": bench.astore_bare,
            "astore_ours": bench.astore_ours,
        }
        per_round = max(1, args.trials // args.rounds)
        celery_per_round = max(1, args.celery_trials // args.rounds)
        wake: dict[str, list[list[float]]] = {
            "bare": [],
            "upsert": [],
            "ours": [],
            "carried": [],
            "celery": [],
        }

        def wake_round() -> float:
            wake["bare"].append(bench.wake_bare(per_round))
            wake["upsert"].append(bench.wake_bare(per_round, upsert=True))
            wake["ours"].append(bench.wake_ours(per_round))
            wake["carried"].append(bench.wake_ours(per_round, carried=True))
            wake["celery"].append(bench.wake_celery(celery_per_round))
            return 0.0

        try:
            runs = run_rounds({**cases, "wake": wake_round}, args.rounds)
        finally:
            bench.close()

    def wake_ms(name: str, q: float) -> Samples:
        return Samples([percentile(r, q) * 1000 for r in wake[name]], unit="ms")

    table = RatioTable(
        f"resultstore-postgresql vs peers (medians of {args.rounds} interleaved rounds)"
    )
    table.ratio(
        "store vs bare psycopg (same upsert+notify)",
        runs.rate("store_ours"),
        runs.rate("store_bare"),
        target=0.9,
    )
    table.ratio(
        "store vs Celery store_result (pooled engine)",
        runs.rate("store_ours"),
        runs.rate("store_celery"),
        target=3,
    )
    table.ratio(
        "store vs Celery store_result (no fork: engine per call)",
        runs.rate("store_ours"),
        runs.rate("store_unforked"),
    )
    table.ratio(
        "get() ready vs bare psycopg SELECT+orjson",
        runs.rate("get_ours"),
        runs.rate("get_bare"),
        target=0.9,
    )
    table.ratio(
        "result().get() ready vs bare psycopg", runs.rate("handle_ours"), runs.rate("get_bare")
    )
    table.ratio(
        "result().get() ready vs Celery AsyncResult.get (pooled)",
        runs.rate("handle_ours"),
        runs.rate("get_celery"),
        target=3,
    )
    table.ratio(
        "result().get() ready vs Celery (no fork: engine per call)",
        runs.rate("handle_ours"),
        runs.rate("get_unforked"),
    )
    table.ratio(
        f"batch store {BATCH:,} vs Celery one-by-one",
        runs.rate("batch_ours"),
        runs.rate("batch_celery"),
    )
    table.ratio(
        f"join {BATCH:,} time vs bare = ANY + orjson",
        runs.seconds("join_ours"),
        runs.seconds("join_bare"),
        at_most=True,
    )
    table.ratio(
        f"join {BATCH:,} speed-up vs Celery's per-result loop",
        runs.seconds("join_ours"),
        runs.seconds("join_celery"),
        invert=True,
    )
    table.ratio(
        f"chord {CHORD} parts + callback time vs bare part statements",
        runs.seconds("chord_ours"),
        runs.seconds("chord_bare"),
        at_most=True,
    )
    table.ratio(
        f"chord {CHORD} speed-up vs Celery (header stores + one chord_unlock poll)",
        runs.seconds("chord_ours"),
        runs.seconds("chord_celery"),
        invert=True,
    )
    table.ratio(
        "asyncio store vs bare psycopg AsyncConnection",
        runs.rate("astore_ours"),
        runs.rate("astore_bare"),
    )
    for q in (0.5, 0.99):
        label = f"wake p{int(q * 100)}"
        table.ratio(
            f"{label} vs bare LISTEN + pg_notify round trip",
            wake_ms("ours", q),
            wake_ms("bare", q),
            target=2 if q == 0.5 else None,
            at_most=True,
        )
        table.ratio(
            f"{label} vs bare LISTEN woken by the same upsert+notify",
            wake_ms("ours", q),
            wake_ms("upsert", q),
            at_most=True,
        )
        table.ratio(
            f"{label}, notify_results=true, vs bare LISTEN + pg_notify",
            wake_ms("carried", q),
            wake_ms("bare", q),
            target=2 if q == 0.5 else None,
            at_most=True,
        )
        table.ratio(
            f"{label} vs Celery (polls every {CELERY_INTERVAL:g} s)",
            wake_ms("ours", q),
            wake_ms("celery", q),
            at_most=True,
        )
    table.note("wake trials per round (ours, bare / Celery)", f"{per_round} / {celery_per_round}")
    table.print()


if __name__ == "__main__":
    main()
