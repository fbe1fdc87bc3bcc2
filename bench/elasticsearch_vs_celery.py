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

import argparse
import datetime as dt
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import elasticsearch
import resultstore
from _table import RatioTable, Samples, run_rounds
from celery import Celery
from celery.result import AsyncResult as CeleryResult
from celery.result import GroupResult as CeleryGroup
from resultstore import State, TaskResult
from resultstore_contract.servers.elasticsearch import elasticsearch_node

PAYLOAD = {f"field{i}": f"value-{i}-" + "x" * 6 for i in range(10)}
BATCH = 2_000
CHORD = 500


def _ids(n: int, tag: str) -> list[str]:
    return [f"{tag}-{uuid.uuid4().hex}" for _ in range(n)]


def _rate(n: int, run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return n / (time.perf_counter() - start)


def _filesystem(path: str) -> str:
    answer = subprocess.run(
        ["df", "--output=fstype", path], capture_output=True, text=True, check=False
    )
    lines = answer.stdout.split()
    return lines[-1] if len(lines) > 1 else "?"


class Bench:
    def __init__(self, url: str, ops: int) -> None:
        self.ops = ops
        self.ours = resultstore.connect(f"elasticsearch://{url.split('://', 1)[1]}/bench-ours")
        self.es = elasticsearch.Elasticsearch(url, request_timeout=60)
        self.app = Celery(
            "bench",
            broker="memory://",
            backend=f"elasticsearch://{url.split('://', 1)[1]}/bench-celery",
        )
        self.celery = self.app.backend
        # Every contender's index exists before the first round.
        self.ours.mark_as_done("warm-up", PAYLOAD)
        self.es.index(index="bench-raw", id="warm-up", document=self._raw_doc())
        self.celery.store_result("warm-up", PAYLOAD, "SUCCESS")

    def close(self) -> None:
        self.ours.close()
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

    # -- store and get ----------------------------------------------------------------

    def store_raw(self) -> float:
        ids = _ids(self.ops, "raw")
        return _rate(
            self.ops,
            lambda: [self.es.index(index="bench-raw", id=t, document=self._raw_doc()) for t in ids],
        )

    def store_ours(self) -> float:
        ids = _ids(self.ops, "our")
        return _rate(self.ops, lambda: [self.ours.mark_as_done(t, PAYLOAD) for t in ids])

    def store_celery(self) -> float:
        ids = _ids(self.ops, "cel")
        return _rate(
            self.ops, lambda: [self.celery.store_result(t, PAYLOAD, "SUCCESS") for t in ids]
        )

    def get_raw(self) -> float:
        ids = _ids(self.ops, "graw")
        for task_id in ids:
            self.es.index(index="bench-raw", id=task_id, document=self._raw_doc())
        return _rate(self.ops, lambda: [self.es.get(index="bench-raw", id=t) for t in ids])

    def get_ours(self) -> float:
        ids = _ids(self.ops, "gour")
        self.ours.store_many([TaskResult(t, State.SUCCESS, PAYLOAD) for t in ids])
        return _rate(self.ops, lambda: [self.ours.get(t) for t in ids])

    def get_celery(self) -> float:
        ids = _ids(self.ops, "gcel")
        for task_id in ids:
            self.celery.store_result(task_id, PAYLOAD, "SUCCESS")
        return _rate(self.ops, lambda: [CeleryResult(t, app=self.app).get() for t in ids])

    # -- batches of 2,000 ----------------------------------------------------------------

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
        values = self.ours.group_result(uuid.uuid4().hex, ids).join(timeout=300)
        assert len(values) == BATCH
        return time.perf_counter() - start

    def join_celery(self) -> float:
        ids = _ids(BATCH, "jcel")
        # Stored outside the timed part, as fast as the raw client can (Celery's format).
        for task_id in ids:
            self.celery.store_result(task_id, PAYLOAD, "SUCCESS")
        group = CeleryGroup(
            uuid.uuid4().hex, [CeleryResult(t, app=self.app) for t in ids], app=self.app
        )
        start = time.perf_counter()
        # Celery's mget is a loop of GETs: join reads 2,000 documents one by one.
        values = group.join(timeout=300)
        assert len(values) == BATCH
        return time.perf_counter() - start

    # -- chord of 500 ------------------------------------------------------------------------

    def chord_ours(self) -> float:
        """Each part stores its result and records itself; the last one gets every result."""
        group_id = uuid.uuid4().hex
        ids = _ids(CHORD, "chour")
        start = time.perf_counter()
        self.ours.backend.set_chord_size(group_id, CHORD)  # type: ignore[attr-defined]
        complete = 0
        for index, task_id in enumerate(ids):
            result = TaskResult(task_id, State.SUCCESS, PAYLOAD)
            self.ours.store(result)
            outcome = self.ours.backend.chord_part_return(group_id, index, result)  # type: ignore[attr-defined]
            complete += outcome.complete
        assert complete == 1
        return time.perf_counter() - start

    def chord_celery(self) -> float:
        """Celery's ES backend has no native chords: the parts store their results and
        chord_unlock polls the header; counted here as one successful poll (a join)."""
        ids = _ids(CHORD, "chcel")
        start = time.perf_counter()
        for task_id in ids:
            self.celery.store_result(task_id, PAYLOAD, "SUCCESS")
        group = CeleryGroup(
            uuid.uuid4().hex, [CeleryResult(t, app=self.app) for t in ids], app=self.app
        )
        assert len(group.join(timeout=300)) == CHORD
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ops", type=int, default=300)
    args = parser.parse_args()
    cases = [
        "store_raw",
        "store_ours",
        "store_celery",
        "get_raw",
        "get_ours",
        "get_celery",
        "batch_ours",
        "batch_celery",
        "join_ours",
        "join_celery",
        "chord_ours",
        "chord_celery",
    ]
    node = elasticsearch_node()
    try:
        node.start(timeout=300)
        bench = Bench(node.url, args.ops)
        try:
            runs = run_rounds({name: getattr(bench, name) for name in cases}, args.rounds)
        finally:
            bench.close()
        where = f"{node.root} ({_filesystem(str(node.root))})"
    finally:
        node.remove()

    def rate(name: str) -> Samples:
        return Samples(runs[name])

    def seconds(name: str) -> Samples:
        return Samples(runs[name], unit="s")

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
