"""resultstore-cassandra against the raw driver and Celery's CassandraBackend, in one run.

Everything talks to one throwaway Apache Cassandra 5.0 node on loopback
(started like the tests start it: C1 JIT only, so absolute figures are low;
the ratios are what counts), one process, the same ~200-byte JSON result (10
fields). The raw contender runs prepared statements on the same driver:
an unconditional INSERT ... USING TTL for a store (what Celery does, without
its read first), the same INSERT ... IF NOT EXISTS (the lightweight
transaction our first store of a task is), an UPDATE for a second state, a
SELECT by key for a get, and execute_concurrent for a join. Celery 5.7's
CassandraBackend reads the row before every write (SELECT ... LIMIT 1, then
INSERT, both unprepared) and has no native join or chord: its join reads
result after result, and a chord is the header's stores plus chord_unlock's
ready() and join() over the header. Cases interleave round by round; the
table prints medians, spreads and the ratios the Cassandra issue sets.
Run with ``nox -s bench -- cassandra``.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

import orjson
import resultstore
from _cases import PAYLOAD, OurCases, ids, per_second, timed
from _celery import CeleryCases
from _table import RatioTable, arguments, run_rounds
from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent_with_args
from resultstore import State, TaskResult
from resultstore_contract.servers import start_cassandra

KEYSPACE = "bench"
JOIN = 2_000
CHORD = 500
TTL = 86_400


class Bench:
    def __init__(self, host: str, port: int, ops: int) -> None:
        self.ops = ops
        url = (
            f"cassandra://{host}:{port}/{KEYSPACE}?create_keyspace=true"
            f"&replication=SimpleStrategy:1&protocol_version=5"
        )
        self.store = resultstore.connect(url, expires=TTL)
        self.ours = OurCases(self.store, ops)
        self.cluster = Cluster([host], port=port, protocol_version=5)
        session = self.cluster.connect(KEYSPACE)
        session.execute(
            "CREATE TABLE IF NOT EXISTS raw (task_id text PRIMARY KEY, state text, "
            "payload blob, date_done timestamp)"
        )
        self.raw = session
        self.insert = session.prepare(
            "INSERT INTO raw (task_id, state, payload, date_done) VALUES (?, ?, ?, ?) "
            f"USING TTL {TTL}"
        )
        self.insert_lwt = session.prepare(
            "INSERT INTO raw (task_id, state, payload, date_done) VALUES (?, ?, ?, ?) "
            f"IF NOT EXISTS USING TTL {TTL}"
        )
        self.update = session.prepare(
            f"UPDATE raw USING TTL {TTL} SET state = ?, payload = ?, date_done = ? "
            "WHERE task_id = ?"
        )
        self.select = session.prepare("SELECT state, payload FROM raw WHERE task_id = ?")
        for statement in (self.insert, self.insert_lwt, self.update, self.select):
            statement.consistency_level = 6  # LOCAL_QUORUM, as ours and Celery's
        self.celery = CeleryCases(
            "cassandra://",
            ops,
            cassandra_servers=[host],
            cassandra_port=port,
            cassandra_keyspace=KEYSPACE,
            cassandra_table="celery_results",
            cassandra_entry_ttl=TTL,
            cassandra_options={"protocol_version": 5},
            result_serializer="json",
        )
        self.celery.put(["warm-up"])  # creates its table

    def close(self) -> None:
        self.store.close()
        self.cluster.shutdown()

    def _body(self) -> bytes:
        return orjson.dumps({"status": "SUCCESS", "result": PAYLOAD})

    # -- store ---------------------------------------------------------------------

    def store_raw(self) -> float:
        task_ids, body, now = ids(self.ops, "raw"), self._body(), int(time.time() * 1000)
        return per_second(
            self.ops,
            lambda: [self.raw.execute(self.insert, (t, "SUCCESS", body, now)) for t in task_ids],
        )

    def store_raw_lwt(self) -> float:
        task_ids, body, now = ids(self.ops, "rawl"), self._body(), int(time.time() * 1000)
        return per_second(
            self.ops,
            lambda: [
                self.raw.execute(self.insert_lwt, (t, "SUCCESS", body, now)) for t in task_ids
            ],
        )

    # -- a task's second state: STARTED stored first, SUCCESS timed -------------------------

    def second_raw(self) -> float:
        task_ids, body, now = ids(self.ops, "sraw"), self._body(), int(time.time() * 1000)
        for task_id in task_ids:
            self.raw.execute(self.insert, (task_id, "STARTED", b"", now))
        return per_second(
            self.ops,
            lambda: [self.raw.execute(self.update, ("SUCCESS", body, now, t)) for t in task_ids],
        )

    def second_ours(self) -> float:
        task_ids = ids(self.ops, "sour")
        for task_id in task_ids:
            self.store.mark_as_started(task_id)
        return per_second(self.ops, lambda: [self.store.mark_as_done(t, PAYLOAD) for t in task_ids])

    def second_celery(self) -> float:
        task_ids = ids(self.ops, "scel")
        self.celery.put(task_ids, None, "STARTED")
        return per_second(self.ops, lambda: self.celery.put(task_ids))

    # -- get and join: raw prepared statements ---------------------------------------------

    def get_raw(self) -> float:
        task_ids, body, now = ids(self.ops, "graw"), self._body(), int(time.time() * 1000)
        execute_concurrent_with_args(
            self.raw, self.insert, [(t, "SUCCESS", body, now) for t in task_ids], concurrency=64
        )

        def run() -> None:
            for task_id in task_ids:
                row = self.raw.execute(self.select, (task_id,)).one()
                orjson.loads(row.payload)

        return per_second(self.ops, run)

    def join_raw(self) -> float:
        task_ids, body, now = ids(JOIN, "jraw"), self._body(), int(time.time() * 1000)
        execute_concurrent_with_args(
            self.raw, self.insert, [(t, "SUCCESS", body, now) for t in task_ids], concurrency=64
        )

        def run() -> None:
            replies = execute_concurrent_with_args(
                self.raw, self.select, [(t,) for t in task_ids], concurrency=64
            )
            values = [orjson.loads(rows.one().payload) for _, rows in replies]
            assert len(values) == JOIN

        return timed(run)

    # -- chord of 500: every header part returns, the body's input comes out once -------------

    def chord_ours(self) -> float:
        group_id = uuid.uuid4().hex
        parts = [TaskResult(t, State.SUCCESS, PAYLOAD) for t in ids(CHORD, "chour")]

        def run() -> None:
            self.store.set_chord_size(group_id, CHORD)
            fired = [
                outcome
                for index, part in enumerate(parts)
                if (outcome := self.store.chord_part_return(group_id, index, part)).complete
            ]
            assert len(fired) == 1
            assert fired[0].results is not None
            assert len(fired[0].results) == CHORD

        return timed(run)


def main() -> None:
    args = arguments(__doc__, rounds=5, ops=300).parse_args()
    with tempfile.TemporaryDirectory() as tmp, start_cassandra(Path(tmp)) as server:
        bench = Bench(server.host, server.port, args.ops)
        ours, celery = bench.ours, bench.celery
        cases = {
            "store_raw": bench.store_raw,
            "store_raw_lwt": bench.store_raw_lwt,
            "store_ours": ours.mark_as_done,
            "store_celery": celery.store_result,
            "second_raw": bench.second_raw,
            "second_ours": bench.second_ours,
            "second_celery": bench.second_celery,
            "get_raw": bench.get_raw,
            "get_ours": ours.get,
            "get_celery": celery.get,
            "join_raw": bench.join_raw,
            "join_ours": lambda: ours.join(JOIN, timeout=300),
            "join_celery": lambda: celery.join(JOIN, native=False, timeout=300),
            "chord_ours": bench.chord_ours,
            "chord_celery": lambda: celery.chord_unlock(CHORD, check_ready=True),
        }
        try:
            runs = run_rounds(cases, args.rounds)
        finally:
            bench.close()

    rate, seconds = runs.rate, runs.seconds
    table = RatioTable(
        f"resultstore-cassandra vs peers on one Cassandra 5.0 node (medians of {args.rounds} "
        f"rounds, {args.ops} ops per store/get case)"
    )
    table.ratio(
        "store (1 LWT) vs Celery store_result (read + INSERT)",
        rate("store_ours"),
        rate("store_celery"),
        target=0.8,
    )
    table.ratio("store (1 LWT) vs raw prepared INSERT", rate("store_ours"), rate("store_raw"))
    table.ratio(
        "store (1 LWT) vs raw INSERT IF NOT EXISTS", rate("store_ours"), rate("store_raw_lwt")
    )
    table.ratio(
        "raw INSERT IF NOT EXISTS vs Celery (the Paxos cost)",
        rate("store_raw_lwt"),
        rate("store_celery"),
    )
    table.ratio("2nd state (1 LWT) vs Celery", rate("second_ours"), rate("second_celery"))
    table.ratio("2nd state (1 LWT) vs raw prepared UPDATE", rate("second_ours"), rate("second_raw"))
    table.ratio("get() vs raw prepared SELECT", rate("get_ours"), rate("get_raw"), target=0.9)
    table.ratio("get() vs Celery AsyncResult.get", rate("get_ours"), rate("get_celery"))
    table.ratio(
        f"join {JOIN:,} speed-up vs Celery's per-result loop",
        seconds("join_ours"),
        seconds("join_celery"),
        target=5,
        invert=True,
    )
    table.ratio(
        f"join {JOIN:,} time vs raw execute_concurrent",
        seconds("join_ours"),
        seconds("join_raw"),
        at_most=True,
    )
    table.ratio(
        f"chord of {CHORD} speed-up vs Celery (stores + chord_unlock's ready/join)",
        seconds("chord_ours"),
        seconds("chord_celery"),
        invert=True,
    )
    table.print()


if __name__ == "__main__":
    main()
