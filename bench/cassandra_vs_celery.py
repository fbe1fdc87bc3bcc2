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

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import resultstore
from _table import RatioTable, Samples, run_rounds
from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent_with_args
from celery import Celery
from celery.result import AsyncResult as CeleryResult
from celery.result import GroupResult as CeleryGroup
from resultstore import State, TaskResult
from resultstore_contract.servers import start_cassandra

PAYLOAD = {f"field{i}": f"value-{i}-" + "x" * 6 for i in range(10)}
KEYSPACE = "bench"
JOIN = 2_000
CHORD = 500
TTL = 86_400


def _ids(n: int, tag: str) -> list[str]:
    return [f"{tag}-{uuid.uuid4().hex}" for _ in range(n)]


def _rate(n: int, run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return n / (time.perf_counter() - start)


def _seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


class Bench:
    def __init__(self, host: str, port: int, ops: int) -> None:
        self.ops = ops
        url = (
            f"cassandra://{host}:{port}/{KEYSPACE}?create_keyspace=true"
            f"&replication=SimpleStrategy:1&protocol_version=5"
        )
        self.ours = resultstore.connect(url, expires=TTL)
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
        self.app = Celery("bench", broker="memory://", backend="cassandra://")
        self.app.conf.update(
            cassandra_servers=[host],
            cassandra_port=port,
            cassandra_keyspace=KEYSPACE,
            cassandra_table="celery_results",
            cassandra_entry_ttl=TTL,
            cassandra_options={"protocol_version": 5},
            result_serializer="json",
        )
        self.celery = self.app.backend
        self.celery.store_result("warm-up", PAYLOAD, "SUCCESS")  # creates its table

    def close(self) -> None:
        self.ours.close()
        self.cluster.shutdown()

    def _body(self) -> bytes:
        return orjson.dumps({"status": "SUCCESS", "result": PAYLOAD})

    # -- store ---------------------------------------------------------------------

    def store_raw(self) -> float:
        ids, body, now = _ids(self.ops, "raw"), self._body(), int(time.time() * 1000)
        return _rate(
            self.ops,
            lambda: [self.raw.execute(self.insert, (t, "SUCCESS", body, now)) for t in ids],
        )

    def store_raw_lwt(self) -> float:
        ids, body, now = _ids(self.ops, "rawl"), self._body(), int(time.time() * 1000)
        return _rate(
            self.ops,
            lambda: [self.raw.execute(self.insert_lwt, (t, "SUCCESS", body, now)) for t in ids],
        )

    def store_ours(self) -> float:
        ids = _ids(self.ops, "our")
        return _rate(self.ops, lambda: [self.ours.mark_as_done(t, PAYLOAD) for t in ids])

    def store_celery(self) -> float:
        ids = _ids(self.ops, "cel")
        return _rate(
            self.ops, lambda: [self.celery.store_result(t, PAYLOAD, "SUCCESS") for t in ids]
        )

    # -- a task's second state: STARTED stored first, SUCCESS timed -------------------------

    def second_raw(self) -> float:
        ids, body, now = _ids(self.ops, "sraw"), self._body(), int(time.time() * 1000)
        for task_id in ids:
            self.raw.execute(self.insert, (task_id, "STARTED", b"", now))
        return _rate(
            self.ops,
            lambda: [self.raw.execute(self.update, ("SUCCESS", body, now, t)) for t in ids],
        )

    def second_ours(self) -> float:
        ids = _ids(self.ops, "sour")
        for task_id in ids:
            self.ours.mark_as_started(task_id)
        return _rate(self.ops, lambda: [self.ours.mark_as_done(t, PAYLOAD) for t in ids])

    def second_celery(self) -> float:
        ids = _ids(self.ops, "scel")
        for task_id in ids:
            self.celery.store_result(task_id, None, "STARTED")
        return _rate(
            self.ops, lambda: [self.celery.store_result(t, PAYLOAD, "SUCCESS") for t in ids]
        )

    # -- get ---------------------------------------------------------------------------

    def get_raw(self) -> float:
        ids, body, now = _ids(self.ops, "graw"), self._body(), int(time.time() * 1000)
        execute_concurrent_with_args(
            self.raw, self.insert, [(t, "SUCCESS", body, now) for t in ids], concurrency=64
        )

        def run() -> None:
            for task_id in ids:
                row = self.raw.execute(self.select, (task_id,)).one()
                orjson.loads(row.payload)

        return _rate(self.ops, run)

    def get_ours(self) -> float:
        ids = _ids(self.ops, "gour")
        self.ours.store_many([TaskResult(t, State.SUCCESS, PAYLOAD) for t in ids])
        return _rate(self.ops, lambda: [self.ours.get(t) for t in ids])

    def get_celery(self) -> float:
        ids = _ids(self.ops, "gcel")
        for task_id in ids:
            self.celery.store_result(task_id, PAYLOAD, "SUCCESS")
        return _rate(self.ops, lambda: [CeleryResult(t, app=self.app).get() for t in ids])

    # -- join of 2,000 ready results ------------------------------------------------------

    def join_raw(self) -> float:
        ids, body, now = _ids(JOIN, "jraw"), self._body(), int(time.time() * 1000)
        execute_concurrent_with_args(
            self.raw, self.insert, [(t, "SUCCESS", body, now) for t in ids], concurrency=64
        )

        def run() -> None:
            replies = execute_concurrent_with_args(
                self.raw, self.select, [(t,) for t in ids], concurrency=64
            )
            values = [orjson.loads(rows.one().payload) for _, rows in replies]
            assert len(values) == JOIN

        return _seconds(run)

    def join_ours(self) -> float:
        ids = _ids(JOIN, "jour")
        self.ours.store_many([TaskResult(t, State.SUCCESS, PAYLOAD) for t in ids])

        def run() -> None:
            values = self.ours.group_result(uuid.uuid4().hex, ids).join(timeout=300)
            assert len(values) == JOIN

        return _seconds(run)

    def join_celery(self) -> float:
        ids = _ids(JOIN, "jcel")
        for task_id in ids:
            self.celery.store_result(task_id, PAYLOAD, "SUCCESS")
        group = CeleryGroup(
            uuid.uuid4().hex, [CeleryResult(t, app=self.app) for t in ids], app=self.app
        )

        def run() -> None:
            values = group.join(timeout=300)
            assert len(values) == JOIN

        return _seconds(run)

    # -- chord of 500: every header part returns, the body's input comes out once -------------

    def chord_ours(self) -> float:
        group_id = uuid.uuid4().hex
        parts = [TaskResult(t, State.SUCCESS, PAYLOAD) for t in _ids(CHORD, "chour")]

        def run() -> None:
            self.ours.set_chord_size(group_id, CHORD)
            fired = [
                outcome
                for index, part in enumerate(parts)
                if (outcome := self.ours.chord_part_return(group_id, index, part)).complete
            ]
            assert len(fired) == 1
            assert fired[0].results is not None
            assert len(fired[0].results) == CHORD

        return _seconds(run)

    def chord_celery(self) -> float:
        ids = _ids(CHORD, "chcel")
        group = CeleryGroup(
            uuid.uuid4().hex, [CeleryResult(t, app=self.app) for t in ids], app=self.app
        )

        def run() -> None:
            # The header's stores, then what chord_unlock does once they are all in.
            for task_id in ids:
                self.celery.store_result(task_id, PAYLOAD, "SUCCESS")
            assert group.ready()
            assert len(group.join(timeout=300)) == CHORD

        return _seconds(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ops", type=int, default=300)
    args = parser.parse_args()
    cases = [
        "store_raw",
        "store_raw_lwt",
        "store_ours",
        "store_celery",
        "second_raw",
        "second_ours",
        "second_celery",
        "get_raw",
        "get_ours",
        "get_celery",
        "join_raw",
        "join_ours",
        "join_celery",
        "chord_ours",
        "chord_celery",
    ]
    with tempfile.TemporaryDirectory() as tmp, start_cassandra(Path(tmp)) as server:
        bench = Bench(server.host, server.port, args.ops)
        try:
            runs = run_rounds({name: getattr(bench, name) for name in cases}, args.rounds)
        finally:
            bench.close()

    def rate(name: str) -> Samples:
        return Samples(runs[name])

    def seconds(name: str) -> Samples:
        return Samples(runs[name], unit="s")

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
