"""resultstore-elasticsearch against the raw elasticsearch client and Celery's
ElasticsearchBackend, in one run, on one real Elasticsearch 8.19 node.

One throwaway single-node cluster on loopback (Maven Central's
integration-test zip; ``bash scripts/install-servers.sh elasticsearch``),
heap 512m, default index settings for every contender: one shard,
``index.translog.durability=request`` (the translog is fsynced before each
write is acknowledged), refresh every second. The node keeps its data where
the test fixtures put it (``/dev/shm`` when there is room, so fsync is
cheap; the table says which). Every contender writes the same ~200-byte
JSON result; the raw client writes an equivalent document (state, result,
date_done, expires_at) with ``index``. Cases run in rounds that interleave
the contenders; the table shows medians, min..max and the issue's targets.
Run with ``nox -s bench``.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import uuid
from typing import Any

import elasticsearch
import resultstore
from _cases import PAYLOAD, OurCases, ids, per_second, timed
from _celery import CeleryCases
from _table import RatioTable, arguments, run_rounds
from resultstore import State, TaskResult
from resultstore_contract.servers.elasticsearch import elasticsearch_node

BATCH = 2_000
CHORD = 500


def _filesystem(path: str) -> str:
    answer = subprocess.run(
        ["df", "--output=fstype", path], capture_output=True, text=True, check=False
    )
    lines = answer.stdout.split()
    return lines[-1] if len(lines) > 1 else "?"


class Bench:
    def __init__(self, url: str, ops: int) -> None:
        self.ops = ops
        host = url.split("://", 1)[1]
        self.store = resultstore.connect(f"elasticsearch://{host}/bench-ours")
        self.ours = OurCases(self.store, ops)
        self.es = elasticsearch.Elasticsearch(url, request_timeout=60)
        self.celery = CeleryCases(f"elasticsearch://{host}/bench-celery", ops)
        # Every contender's index exists before the first round.
        self.store.mark_as_done("warm-up", PAYLOAD)
        self.es.index(index="bench-raw", id="warm-up", document=self._raw_doc())
        self.celery.put(["warm-up"])

    def close(self) -> None:
        self.store.close()
        self.es.close()

    @staticmethod
    def _raw_doc(state: str = "SUCCESS") -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        return {
            "state": state,
            "result": PAYLOAD,
            "date_done": now.isoformat(),
            "expires_at": (now + dt.timedelta(days=1)).isoformat(),
        }

    def store_raw(self) -> float:
        task_ids = ids(self.ops, "raw")
        return per_second(
            self.ops,
            lambda: [
                self.es.index(index="bench-raw", id=t, document=self._raw_doc()) for t in task_ids
            ],
        )

    def get_raw(self) -> float:
        task_ids = ids(self.ops, "graw")
        for task_id in task_ids:
            self.es.index(index="bench-raw", id=task_id, document=self._raw_doc())
        return per_second(
            self.ops, lambda: [self.es.get(index="bench-raw", id=t) for t in task_ids]
        )

    def chord_ours(self) -> float:
        """Each part stores its result and records itself; the last one gets every result."""
        group_id = uuid.uuid4().hex
        task_ids = ids(CHORD, "chour")
        backend: Any = self.store.backend

        def run() -> None:
            backend.set_chord_size(group_id, CHORD)
            complete = 0
            for index, task_id in enumerate(task_ids):
                result = TaskResult(task_id, State.SUCCESS, PAYLOAD)
                self.store.store(result)
                complete += backend.chord_part_return(group_id, index, result).complete
            assert complete == 1

        return timed(run)


def main() -> None:
    args = arguments(__doc__, rounds=5, ops=300).parse_args()
    node = elasticsearch_node()
    try:
        node.start(timeout=300)
        bench = Bench(node.url, args.ops)
        ours, celery = bench.ours, bench.celery
        cases = {
            "store_raw": bench.store_raw,
            "store_ours": ours.mark_as_done,
            "store_celery": celery.store_result,
            "get_raw": bench.get_raw,
            "get_ours": ours.get,
            "get_celery": celery.get,
            "batch_ours": lambda: ours.store_many(BATCH),
            "batch_celery": lambda: celery.store_result(BATCH, tag="cbat"),
            "join_ours": lambda: ours.join(BATCH, timeout=300),
            # Celery's mget is a loop of GETs: join reads 2,000 documents one by one.
            "join_celery": lambda: celery.join(BATCH, native=False, timeout=300),
            "chord_ours": bench.chord_ours,
            # No native chords: the parts store their results and chord_unlock
            # polls the header; counted here as one successful poll (a join).
            "chord_celery": lambda: celery.chord_unlock(CHORD, check_ready=False),
        }
        try:
            runs = run_rounds(cases, args.rounds)
        finally:
            bench.close()
        where = f"{node.root} ({_filesystem(str(node.root))})"
    finally:
        node.remove()

    rate, seconds = runs.rate, runs.seconds
    table = RatioTable(
        f"resultstore-elasticsearch vs peers on Elasticsearch 8.19 ({args.rounds} rounds)"
    )
    table.note(
        "server",
        f"1 node, heap 512m, 1 shard, translog durability=request, data in {where}, "
        f"cpus={os.cpu_count()}",
    )
    table.ratio("store vs raw es.index", rate("store_ours"), rate("store_raw"), target=0.9)
    table.ratio("store vs Celery store_result", rate("store_ours"), rate("store_celery"))
    table.ratio("get() vs raw es.get", rate("get_ours"), rate("get_raw"), target=0.9)
    table.ratio("get() vs Celery AsyncResult.get", rate("get_ours"), rate("get_celery"))
    table.ratio(
        f"batch store {BATCH:,} vs Celery one-by-one",
        rate("batch_ours"),
        rate("batch_celery"),
        target=10,
    )
    table.ratio(
        f"join {BATCH:,} speed-up vs Celery (2,000 GETs)",
        seconds("join_ours"),
        seconds("join_celery"),
        target=10,
        invert=True,
    )
    table.ratio(
        f"chord of {CHORD} speed-up vs Celery (store + one join)",
        seconds("chord_ours"),
        seconds("chord_celery"),
        invert=True,
    )
    table.print()


if __name__ == "__main__":
    main()
