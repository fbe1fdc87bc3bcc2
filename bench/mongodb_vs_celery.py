"""resultstore-mongodb against raw pymongo and Celery's MongoBackend, in one run.

Everything talks to one throwaway standalone SecantusDB on loopback (a
MongoDB wire-protocol server; about a thousand operations a second, so the
figures are ratios, not MongoDB's speed), one process, the same ~200-byte
JSON result (10 fields). The raw calls write an equivalent document (state,
result, date_done, expires_at) into a collection with the same indexes as
ours. Each case runs in rounds that interleave the contenders; the table
shows medians with the min..max of the rounds and the ratios the issues set
as targets. Run with ``nox -s bench`` (installs Celery 5.7 and the test
servers).

The raw pymongo collection calls are the bare limit here, the counterpart
of the bare ``redis.Connection`` in the Redis bench: pymongo has no public
layer below a ``Collection`` method (its pool and wire messages are
private), so "raw" and "bare" are the same contender.

SecantusDB's costs are not mongod's: every index costs about as much per
inserted document as the insert, reading many documents costs about a
tenth of a millisecond per document even through ``$in``, and a
findAndModify that finds a document checks it again by scanning the
collection. Batch stores, joins and a task's second state are bounded by
those here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymongo
import resultstore
from _table import RatioTable, Samples, run_rounds
from celery import Celery
from celery.result import AsyncResult as CeleryResult
from celery.result import GroupResult as CeleryGroup
from resultstore import State, TaskResult
from resultstore_contract.servers import start_mongodb

PAYLOAD = {f"field{i}": f"value-{i}-" + "x" * 6 for i in range(10)}
BATCH = 2_000
TRANSITIONS = 50


def _ids(n: int, tag: str) -> list[str]:
    return [f"{tag}-{uuid.uuid4().hex}" for _ in range(n)]


def _rate(n: int, run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return n / (time.perf_counter() - start)


class Bench:
    def __init__(self, url: str, ops: int) -> None:
        self.ops = ops
        self.ours = resultstore.connect(url, database="bench_ours")
        backend: Any = self.ours.backend
        # The raw contender gets a collection indexed exactly like ours.
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(url, tz_aware=True)
        self.client = client
        self.raw = client.bench_raw.results
        for spec in backend.results.index_information().values():
            key = spec["key"]
            if key != [("_id", 1)]:
                extra = (
                    {"expireAfterSeconds": spec["expireAfterSeconds"]}
                    if "expireAfterSeconds" in spec
                    else {}
                )
                self.raw.create_index(key, **extra)
        base = url.rstrip("/")
        self.app = Celery("bench", broker="memory://", backend=f"{base}/bench_celery")
        self.celery = self.app.backend

    def close(self) -> None:
        self.ours.close()
        self.client.close()

    def _raw_doc(self, state: str) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        return {
            "state": state,
            "result": PAYLOAD,
            "date_done": now,
            "expires_at": now + dt.timedelta(days=1),
        }

    # -- store -----------------------------------------------------------------

    def store_raw(self) -> float:
        ids = _ids(self.ops, "raw")

        def run() -> None:
            for task_id in ids:
                self.raw.replace_one({"_id": task_id}, self._raw_doc("SUCCESS"), upsert=True)

        return _rate(self.ops, run)

    def store_ours(self) -> float:
        ids = _ids(self.ops, "our")
        return _rate(self.ops, lambda: [self.ours.mark_as_done(t, PAYLOAD) for t in ids])

    def store_celery(self) -> float:
        ids = _ids(self.ops, "cel")
        return _rate(
            self.ops, lambda: [self.celery.store_result(t, PAYLOAD, "SUCCESS") for t in ids]
        )

    # A task's second state (SUCCESS over STARTED) takes the conditional path,
    # a findAndModify that SecantusDB answers with a scan of the collection:
    # a few stores show the figure without the run taking minutes.
    def transition_raw(self) -> float:
        ids = _ids(TRANSITIONS, "traw")
        for task_id in ids:
            self.raw.replace_one({"_id": task_id}, self._raw_doc("STARTED"), upsert=True)

        def run() -> None:
            for task_id in ids:
                self.raw.replace_one({"_id": task_id}, self._raw_doc("SUCCESS"), upsert=True)

        return _rate(TRANSITIONS, run)

    def transition_ours(self) -> float:
        ids = _ids(TRANSITIONS, "tour")
        for task_id in ids:
            self.ours.mark_as_started(task_id)
        return _rate(TRANSITIONS, lambda: [self.ours.mark_as_done(t, PAYLOAD) for t in ids])

    # -- get -------------------------------------------------------------------

    def get_raw(self) -> float:
        ids = _ids(self.ops, "graw")
        self.raw.insert_many([{"_id": t, **self._raw_doc("SUCCESS")} for t in ids])
        return _rate(self.ops, lambda: [self.raw.find_one({"_id": t}) for t in ids])

    def get_ours(self) -> float:
        ids = _ids(self.ops, "gour")
        self.ours.store_many([TaskResult(t, State.SUCCESS, PAYLOAD) for t in ids])
        return _rate(self.ops, lambda: [self.ours.get(t) for t in ids])

    def handle_ours(self) -> float:
        ids = _ids(self.ops, "hour")
        self.ours.store_many([TaskResult(t, State.SUCCESS, PAYLOAD) for t in ids])
        return _rate(self.ops, lambda: [self.ours.result(t).get() for t in ids])

    def get_celery(self) -> float:
        ids = _ids(self.ops, "gcel")
        for task_id in ids:
            self.celery.store_result(task_id, PAYLOAD, "SUCCESS")
        return _rate(self.ops, lambda: [CeleryResult(t, app=self.app).get() for t in ids])

    # -- batches of 2,000 ------------------------------------------------------------

    def batch_ours(self) -> float:
        results = [TaskResult(t, State.SUCCESS, PAYLOAD) for t in _ids(BATCH, "bat")]
        return _rate(BATCH, lambda: self.ours.store_many(results))

    def batch_celery(self) -> float:
        ids = _ids(BATCH, "cbat")
        return _rate(BATCH, lambda: [self.celery.store_result(t, PAYLOAD, "SUCCESS") for t in ids])

    def join_ours(self) -> float:
        ids = _ids(BATCH, "jour")
        self.ours.store_many([TaskResult(t, State.SUCCESS, PAYLOAD) for t in ids])
        start = time.perf_counter()
        values = self.ours.group_result(uuid.uuid4().hex, ids).join(timeout=120)
        assert len(values) == BATCH
        return time.perf_counter() - start

    def join_raw(self) -> float:
        ids = _ids(BATCH, "jraw")
        self.raw.insert_many([{"_id": t, **self._raw_doc("SUCCESS")} for t in ids])
        start = time.perf_counter()
        values = list(self.raw.find({"_id": {"$in": ids}}))
        assert len(values) == BATCH
        return time.perf_counter() - start

    def join_celery(self) -> float:
        ids = _ids(BATCH, "jcel")
        for task_id in ids:
            self.celery.store_result(task_id, PAYLOAD, "SUCCESS")
        group = CeleryGroup(
            uuid.uuid4().hex, [CeleryResult(t, app=self.app) for t in ids], app=self.app
        )
        start = time.perf_counter()
        # The MongoBackend has no native join: ResultSet.join reads each result in turn.
        values = group.join(timeout=120)
        assert len(values) == BATCH
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ops", type=int, default=1000)
    args = parser.parse_args()
    cases = [
        "store_raw",
        "store_ours",
        "store_celery",
        "transition_raw",
        "transition_ours",
        "get_raw",
        "get_ours",
        "handle_ours",
        "get_celery",
        "batch_ours",
        "batch_celery",
        "join_raw",
        "join_ours",
        "join_celery",
    ]
    with tempfile.TemporaryDirectory() as tmp, start_mongodb(Path(tmp), standalone=True) as server:
        bench = Bench(server.url, args.ops)
        try:
            runs = run_rounds({name: getattr(bench, name) for name in cases}, args.rounds)
        finally:
            bench.close()

    def rate(name: str) -> Samples:
        return Samples(runs[name])

    def seconds(name: str) -> Samples:
        return Samples(runs[name], unit="s")

    table = RatioTable(
        f"resultstore-mongodb vs peers on SecantusDB (medians of {args.rounds} rounds)"
    )
    table.ratio(
        "store vs raw replace_one(upsert)", rate("store_ours"), rate("store_raw"), target=0.95
    )
    table.ratio("store vs Celery store_result", rate("store_ours"), rate("store_celery"))
    table.ratio(
        "2nd state (findAndModify; SecantusDB scans) vs raw",
        rate("transition_ours"),
        rate("transition_raw"),
    )
    table.ratio("get() vs raw find_one", rate("get_ours"), rate("get_raw"), target=0.95)
    table.ratio(
        "result().get() ready vs raw find_one",
        rate("handle_ours"),
        rate("get_raw"),
        target=0.85,
    )
    table.ratio(
        "result().get() ready vs Celery AsyncResult.get", rate("handle_ours"), rate("get_celery")
    )
    table.ratio(
        f"batch store {BATCH:,} vs Celery one-by-one",
        rate("batch_ours"),
        rate("batch_celery"),
        target=5,
    )
    table.ratio(
        f"join {BATCH:,} time vs raw find($in)",
        seconds("join_ours"),
        seconds("join_raw"),
        target=1.5,
        at_most=True,
    )
    table.ratio(
        f"join {BATCH:,} speed-up vs Celery's per-result loop",
        seconds("join_ours"),
        seconds("join_celery"),
        target=10,
        invert=True,
    )
    table.print()


if __name__ == "__main__":
    main()
