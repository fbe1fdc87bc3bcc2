"""resultstore-memcached against Celery's cache backend and raw pymemcache, in one run.

Everything talks to one throwaway memcached on loopback from one process,
with the same ~200-byte JSON payload (10 fields). Celery 5.7 runs its
``cache+memcached://`` backend (pymemcache underneath); the raw contender is
a plain pymemcache ``Client`` sending the same commands ours needs (one
``set``/``get`` per result, chunked ``get_many`` for a join) with orjson
encoding. Each case runs in rounds that interleave the contenders; the table
shows medians with the min..max of the rounds and the ratios the memcached
issue sets as targets. Run with ``nox -s bench`` (installs Celery 5.7).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiomcache
import orjson
import resultstore
from _table import RatioTable, Samples, run_rounds
from celery import Celery
from celery.app.task import Context
from celery.result import AsyncResult as CeleryResult
from celery.result import GroupResult as CeleryGroup
from pymemcache.client.base import Client  # type: ignore[import-untyped]
from resultstore import AsyncResultStore, State, TaskResult, connect_async
from resultstore_contract.servers import start_memcached

PAYLOAD = {f"field{i}": f"value-{i}-" + "x" * 6 for i in range(10)}
#: keys per get command, the same for ours (its read_batch) and raw.
CHUNK = 200
DAY = 86400


def _ids(n: int, tag: str) -> list[str]:
    return [f"{tag}-{uuid.uuid4().hex}" for _ in range(n)]


class Bench:
    def __init__(self, url: str, address: tuple[str, int], ops: int) -> None:
        self.ops = ops
        self.raw = Client(address, default_noreply=False, no_delay=True)
        self.ours = resultstore.connect(url, key_prefix="bench:", read_batch=CHUNK)
        self.app = Celery("bench", broker="memory://", backend=f"cache+{url}/")
        self.app.conf.result_chord_join_timeout = 30

        @self.app.task(name="bench.callback")
        def callback(results: list[int]) -> int:
            return sum(results)

        self.callback = callback
        self.celery: Any = self.app.backend
        # asyncio: the core's threaded twin against aiomcache, a native asyncio client.
        self.loop = asyncio.new_event_loop()
        self.aours: AsyncResultStore = self.loop.run_until_complete(
            connect_async(url, key_prefix="bench:")
        )
        self.araw = aiomcache.Client(address[0], address[1])

    def close(self) -> None:
        self.loop.run_until_complete(self.aours.close())
        self.loop.run_until_complete(self.araw.close())
        self.loop.close()
        self.ours.close()
        self.raw.close()

    def _raw_value(self, task_id: str) -> bytes:
        return orjson.dumps({"status": "SUCCESS", "result": PAYLOAD, "task_id": task_id})

    # -- store -------------------------------------------------------------------

    def store_raw(self) -> float:
        ids = _ids(self.ops, "raw")
        start = time.perf_counter()
        for task_id in ids:
            self.raw.set(f"raw:{task_id}", self._raw_value(task_id), expire=DAY)
        return self.ops / (time.perf_counter() - start)

    def store_celery(self) -> float:
        ids = _ids(self.ops, "cel")
        start = time.perf_counter()
        for task_id in ids:
            self.celery.store_result(task_id, PAYLOAD, "SUCCESS")
        return self.ops / (time.perf_counter() - start)

    def store_ours(self) -> float:
        ids = _ids(self.ops, "our")
        start = time.perf_counter()
        for task_id in ids:
            self.ours.mark_as_done(task_id, PAYLOAD)
        return self.ops / (time.perf_counter() - start)

    def batch_celery(self, n: int = 10_000) -> float:
        ids = _ids(n, "cbat")
        start = time.perf_counter()
        for task_id in ids:
            self.celery.store_result(task_id, PAYLOAD, "SUCCESS")
        return n / (time.perf_counter() - start)

    def batch_ours(self, n: int = 10_000) -> float:
        results = [TaskResult(t, State.SUCCESS, PAYLOAD) for t in _ids(n, "bat")]
        start = time.perf_counter()
        self.ours.store_many(results)
        return n / (time.perf_counter() - start)

    # -- get ---------------------------------------------------------------------

    def get_raw(self) -> float:
        ids = _ids(self.ops, "graw")
        self.raw.set_many({f"raw:{t}": self._raw_value(t) for t in ids}, expire=DAY)
        start = time.perf_counter()
        for task_id in ids:
            orjson.loads(self.raw.get(f"raw:{task_id}"))
        return self.ops / (time.perf_counter() - start)

    def get_celery(self) -> float:
        ids = _ids(self.ops, "gcel")
        for task_id in ids:
            self.celery.store_result(task_id, PAYLOAD, "SUCCESS")
        start = time.perf_counter()
        for task_id in ids:
            CeleryResult(task_id, app=self.app).get()
        return self.ops / (time.perf_counter() - start)

    def get_ours(self) -> float:
        ids = _ids(self.ops, "gour")
        self.ours.store_many([TaskResult(t, State.SUCCESS, PAYLOAD) for t in ids])
        start = time.perf_counter()
        for task_id in ids:
            self.ours.result(task_id).get()
        return self.ops / (time.perf_counter() - start)

    def aget_raw(self) -> float:
        ids = _ids(self.ops, "araw")
        self.raw.set_many({f"raw:{t}": self._raw_value(t) for t in ids}, expire=DAY)
        keys = [f"raw:{t}".encode() for t in ids]

        async def run() -> float:
            start = time.perf_counter()
            for key in keys:
                orjson.loads(await self.araw.get(key))
            return self.ops / (time.perf_counter() - start)

        return self.loop.run_until_complete(run())

    def aget_ours(self) -> float:
        ids = _ids(self.ops, "aour")
        self.ours.store_many([TaskResult(t, State.SUCCESS, PAYLOAD) for t in ids])

        async def run() -> float:
            start = time.perf_counter()
            for task_id in ids:
                await self.aours.get(task_id)
            return self.ops / (time.perf_counter() - start)

        return self.loop.run_until_complete(run())

    # -- join ----------------------------------------------------------------------

    def join_raw(self, n: int = 10_000) -> float:
        ids = _ids(n, "jraw")
        keys = [f"raw:{t}" for t in ids]
        values = {key: self._raw_value(t) for key, t in zip(keys, ids, strict=True)}
        self.raw.set_many(values, expire=DAY)
        start = time.perf_counter()
        results = []
        for i in range(0, n, CHUNK):
            chunk = keys[i : i + CHUNK]
            found = self.raw.get_many(chunk)
            results += [orjson.loads(found[key])["result"] for key in chunk]
        assert len(results) == n
        return time.perf_counter() - start

    def join_celery(self, n: int = 10_000) -> float:
        ids = _ids(n, "jcel")
        for task_id in ids:
            self.celery.store_result(task_id, PAYLOAD, "SUCCESS")
        group = CeleryGroup(
            uuid.uuid4().hex, [CeleryResult(t, app=self.app) for t in ids], app=self.app
        )
        start = time.perf_counter()
        values = group.join_native()
        assert len(values) == n
        return time.perf_counter() - start

    def join_ours(self, n: int = 10_000) -> float:
        ids = _ids(n, "jour")
        self.ours.store_many([TaskResult(t, State.SUCCESS, PAYLOAD) for t in ids])
        start = time.perf_counter()
        values = self.ours.group_result(uuid.uuid4().hex, ids).join(timeout=60)
        assert len(values) == n
        return time.perf_counter() - start

    # -- chords ---------------------------------------------------------------------

    def chord_celery(self, size: int = 1000) -> float:
        """Celery's key/value chord path: each part restores the group, ``incr``s the
        counter and touches its keys; the last joins the header and sends the body.
        The header's results are stored first, outside the timing, as its tasks would."""
        gid = uuid.uuid4().hex
        ids = [uuid.uuid4().hex for _ in range(size)]
        for i, task_id in enumerate(ids):
            self.celery.store_result(task_id, i, "SUCCESS")
        body = self.callback.s()
        self.celery._apply_chord_incr((gid, [CeleryResult(t, app=self.app) for t in ids]), body)
        requests = [
            Context(id=task_id, group=gid, group_index=i, chord=body)
            for i, task_id in enumerate(ids)
        ]
        start = time.perf_counter()
        for i, request in enumerate(requests):
            self.celery.on_chord_part_return(request, "SUCCESS", i)
        return time.perf_counter() - start

    def chord_ours(self, size: int = 1000) -> float:
        gid = uuid.uuid4().hex
        self.ours.set_chord_size(gid, size)
        parts = [TaskResult(uuid.uuid4().hex, State.SUCCESS, i) for i in range(size)]
        start = time.perf_counter()
        completed = 0
        for i, part in enumerate(parts):
            outcome = self.ours.chord_part_return(gid, i, part)
            if outcome.complete:
                assert outcome.results is not None
                completed += 1
                self.ours.mark_as_done(f"{gid}-callback", sum(r.result for r in outcome.results))
        assert completed == 1
        return time.perf_counter() - start


def _round_trips(store: resultstore.ResultStore) -> int:
    """Round trips the plugin has made to its servers (a chunked get is one per chunk)."""
    backend: Any = store.backend
    return sum(node.calls for node in backend.ring.nodes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ops", type=int, default=3000)
    # Celery's chord path restores the whole group at every part (quadratic):
    # its rounds take minutes, so they run fewer times.
    parser.add_argument("--chord-rounds", type=int, default=3)
    args = parser.parse_args()
    cases = (
        "store_raw",
        "store_celery",
        "store_ours",
        "get_raw",
        "get_celery",
        "get_ours",
        "aget_raw",
        "aget_ours",
        "join_raw",
        "join_celery",
        "join_ours",
        "batch_celery",
        "batch_ours",
    )
    with tempfile.TemporaryDirectory() as tmp, start_memcached(Path(tmp), memory_mb=512) as server:
        bench = Bench(server.url, server.address, args.ops)
        runs = run_rounds({name: getattr(bench, name) for name in cases}, args.rounds)
        chords = ("chord_celery", "chord_ours")
        runs |= run_rounds({name: getattr(bench, name) for name in chords}, args.chord_rounds)
        before = _round_trips(bench.ours)
        bench.chord_ours()
        # set_chord_size and the callback's store are one round trip each.
        chord_trips = (_round_trips(bench.ours) - before - 2) / 1000
        before = _round_trips(bench.ours)
        bench.store_ours()
        store_trips = (_round_trips(bench.ours) - before) / args.ops
        bench.close()

    def rate(name: str) -> Samples:
        return Samples(runs[name])

    def seconds(name: str) -> Samples:
        return Samples(runs[name], unit="s")

    table = RatioTable(
        f"resultstore-memcached vs peers (medians of {args.rounds} interleaved rounds, "
        f"chords {args.chord_rounds})"
    )
    table.ratio("store vs raw set", rate("store_ours"), rate("store_raw"), target=0.8)
    table.ratio("store vs Celery store_result", rate("store_ours"), rate("store_celery"), target=2)
    table.ratio("batch store 10k vs Celery one-by-one", rate("batch_ours"), rate("batch_celery"))
    table.ratio("get() ready vs raw get+decode", rate("get_ours"), rate("get_raw"), target=0.9)
    table.ratio("get() ready vs Celery AsyncResult.get", rate("get_ours"), rate("get_celery"))
    table.ratio(
        "asyncio get (threaded twin) vs raw aiomcache get+decode",
        rate("aget_ours"),
        rate("aget_raw"),
    )
    table.ratio(
        "join 10k time vs raw chunked get_many+decode",
        seconds("join_ours"),
        seconds("join_raw"),
        target=1.5,
        at_most=True,
    )
    table.ratio(
        "join 10k speed-up vs Celery join_native",
        seconds("join_ours"),
        seconds("join_celery"),
        invert=True,
    )
    table.ratio(
        "chord 1000 parts speed-up vs Celery (incr path)",
        seconds("chord_ours"),
        seconds("chord_celery"),
        target=2,
        invert=True,
    )
    table.note("round trips per store (ours, new ids)", f"{store_trips:g}")
    table.note("round trips per chord part (ours)", f"{chord_trips:g}")
    table.print()


if __name__ == "__main__":
    main()
