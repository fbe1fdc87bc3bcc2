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

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomcache
import orjson
import resultstore
from _cases import PAYLOAD, OurCases, ids, per_second, timed
from _celery import CeleryCases
from _table import RatioTable, arguments, run_rounds
from pymemcache.client.base import Client  # type: ignore[import-untyped]
from resultstore import AsyncResultStore, State, TaskResult, connect_async
from resultstore_contract.servers import start_memcached

#: keys per get command, the same for ours (its read_batch) and raw.
CHUNK = 200
DAY = 86400
BATCH = 10_000
CHORD = 1000


class Bench:
    def __init__(self, url: str, address: tuple[str, int], ops: int) -> None:
        self.ops = ops
        self.raw = Client(address, default_noreply=False, no_delay=True)
        self.store = resultstore.connect(url, key_prefix="bench:", read_batch=CHUNK)
        self.ours = OurCases(self.store, ops)
        self.celery = CeleryCases(f"cache+{url}/", ops, result_chord_join_timeout=30)
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
        self.store.close()
        self.raw.close()

    def _raw_value(self, task_id: str) -> bytes:
        return orjson.dumps({"status": "SUCCESS", "result": PAYLOAD, "task_id": task_id})

    def store_raw(self) -> float:
        task_ids = ids(self.ops, "raw")

        def run() -> None:
            for task_id in task_ids:
                self.raw.set(f"raw:{task_id}", self._raw_value(task_id), expire=DAY)

        return per_second(self.ops, run)

    def get_raw(self) -> float:
        task_ids = ids(self.ops, "graw")
        self.raw.set_many({f"raw:{t}": self._raw_value(t) for t in task_ids}, expire=DAY)
        return per_second(
            self.ops, lambda: [orjson.loads(self.raw.get(f"raw:{t}")) for t in task_ids]
        )

    def aget_raw(self) -> float:
        task_ids = ids(self.ops, "araw")
        self.raw.set_many({f"raw:{t}": self._raw_value(t) for t in task_ids}, expire=DAY)
        keys = [f"raw:{t}".encode() for t in task_ids]

        async def run() -> float:
            start = time.perf_counter()
            for key in keys:
                orjson.loads(await self.araw.get(key))
            return self.ops / (time.perf_counter() - start)

        return self.loop.run_until_complete(run())

    def aget_ours(self) -> float:
        task_ids = ids(self.ops, "aour")
        self.store.store_many([TaskResult(t, State.SUCCESS, PAYLOAD) for t in task_ids])

        async def run() -> float:
            start = time.perf_counter()
            for task_id in task_ids:
                await self.aours.get(task_id)
            return self.ops / (time.perf_counter() - start)

        return self.loop.run_until_complete(run())

    def join_raw(self) -> float:
        task_ids = ids(BATCH, "jraw")
        keys = [f"raw:{t}" for t in task_ids]
        values = {key: self._raw_value(t) for key, t in zip(keys, task_ids, strict=True)}
        self.raw.set_many(values, expire=DAY)

        def run() -> None:
            results = []
            for i in range(0, BATCH, CHUNK):
                chunk = keys[i : i + CHUNK]
                found = self.raw.get_many(chunk)
                results += [orjson.loads(found[key])["result"] for key in chunk]
            assert len(results) == BATCH

        return timed(run)


def _round_trips(store: resultstore.ResultStore) -> int:
    """Round trips the plugin has made to its servers (a chunked get is one per chunk)."""
    backend: Any = store.backend
    return sum(node.calls for node in backend.ring.nodes)


def main() -> None:
    parser = arguments(__doc__, rounds=5, ops=3000)
    # Celery's chord path restores the whole group at every part (quadratic):
    # its rounds take minutes, so they run fewer times.
    parser.add_argument("--chord-rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, start_memcached(Path(tmp), memory_mb=512) as server:
        bench = Bench(server.url, server.address, args.ops)
        ours, celery = bench.ours, bench.celery
        cases = {
            "store_raw": bench.store_raw,
            "store_celery": celery.store_result,
            "store_ours": ours.mark_as_done,
            "get_raw": bench.get_raw,
            "get_celery": celery.get,
            "get_ours": ours.result_get,
            "aget_raw": bench.aget_raw,
            "aget_ours": bench.aget_ours,
            "join_raw": bench.join_raw,
            "join_celery": lambda: celery.join(BATCH, native=True),
            "join_ours": lambda: ours.join(BATCH),
            "batch_celery": lambda: celery.store_result(BATCH, tag="cbat"),
            "batch_ours": lambda: ours.store_many(BATCH),
        }
        runs = run_rounds(cases, args.rounds)
        chords = {
            "chord_celery": lambda: celery.chord_incr(CHORD),
            "chord_ours": lambda: ours.chord_with_callback(CHORD),
        }
        runs |= run_rounds(chords, args.chord_rounds)
        before = _round_trips(bench.store)
        ours.chord_with_callback(CHORD)
        # set_chord_size and the callback's store are one round trip each.
        chord_trips = (_round_trips(bench.store) - before - 2) / CHORD
        before = _round_trips(bench.store)
        ours.mark_as_done()
        store_trips = (_round_trips(bench.store) - before) / args.ops
        bench.close()

    rate, seconds = runs.rate, runs.seconds
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
