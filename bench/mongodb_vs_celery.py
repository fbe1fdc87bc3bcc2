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

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import pymongo
import resultstore
from _cases import PAYLOAD, OurCases, ids, per_second, timed
from _celery import CeleryCases
from _table import RatioTable, arguments, run_rounds
from resultstore_contract.servers import start_mongodb

BATCH = 2_000
TRANSITIONS = 50


class Bench:
    def __init__(self, url: str, ops: int) -> None:
        self.ops = ops
        self.store = resultstore.connect(url, database="bench_ours")
        self.ours = OurCases(self.store, ops)
        backend: Any = self.store.backend
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
        self.celery = CeleryCases(f"{url.rstrip('/')}/bench_celery", ops)

    def close(self) -> None:
        self.store.close()
        self.client.close()

    def _raw_doc(self, state: str) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        return {
            "state": state,
            "result": PAYLOAD,
            "date_done": now,
            "expires_at": now + dt.timedelta(days=1),
        }

    def store_raw(self) -> float:
        task_ids = ids(self.ops, "raw")

        def run() -> None:
            for task_id in task_ids:
                self.raw.replace_one({"_id": task_id}, self._raw_doc("SUCCESS"), upsert=True)

        return per_second(self.ops, run)

    # A task's second state (SUCCESS over STARTED) takes the conditional path,
    # a findAndModify that SecantusDB answers with a scan of the collection:
    # a few stores show the figure without the run taking minutes.
    def transition_raw(self) -> float:
        task_ids = ids(TRANSITIONS, "traw")
        for task_id in task_ids:
            self.raw.replace_one({"_id": task_id}, self._raw_doc("STARTED"), upsert=True)

        def run() -> None:
            for task_id in task_ids:
                self.raw.replace_one({"_id": task_id}, self._raw_doc("SUCCESS"), upsert=True)

        return per_second(TRANSITIONS, run)

    def transition_ours(self) -> float:
        task_ids = ids(TRANSITIONS, "tour")
        for task_id in task_ids:
            self.store.mark_as_started(task_id)
        return per_second(
            TRANSITIONS, lambda: [self.store.mark_as_done(t, PAYLOAD) for t in task_ids]
        )

    def get_raw(self) -> float:
        task_ids = ids(self.ops, "graw")
        self.raw.insert_many([{"_id": t, **self._raw_doc("SUCCESS")} for t in task_ids])
        return per_second(self.ops, lambda: [self.raw.find_one({"_id": t}) for t in task_ids])

    def join_raw(self) -> float:
        task_ids = ids(BATCH, "jraw")
        self.raw.insert_many([{"_id": t, **self._raw_doc("SUCCESS")} for t in task_ids])

        def run() -> None:
            values = list(self.raw.find({"_id": {"$in": task_ids}}))
            assert len(values) == BATCH

        return timed(run)


def main() -> None:
    args = arguments(__doc__, rounds=5, ops=1000).parse_args()
    with tempfile.TemporaryDirectory() as tmp, start_mongodb(Path(tmp), standalone=True) as server:
        bench = Bench(server.url, args.ops)
        ours, celery = bench.ours, bench.celery
        cases = {
            "store_raw": bench.store_raw,
            "store_ours": ours.mark_as_done,
            "store_celery": celery.store_result,
            "transition_raw": bench.transition_raw,
            "transition_ours": bench.transition_ours,
            "get_raw": bench.get_raw,
            "get_ours": ours.get,
            "handle_ours": ours.result_get,
            "get_celery": celery.get,
            "batch_ours": lambda: ours.store_many(BATCH),
            "batch_celery": lambda: celery.store_result(BATCH, tag="cbat"),
            "join_raw": bench.join_raw,
            "join_ours": lambda: ours.join(BATCH, timeout=120),
            # The MongoBackend has no native join: ResultSet.join reads each result in turn.
            "join_celery": lambda: celery.join(BATCH, native=False, timeout=120),
        }
        try:
            runs = run_rounds(cases, args.rounds)
        finally:
            bench.close()

    rate, seconds = runs.rate, runs.seconds
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
