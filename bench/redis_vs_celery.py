"""resultstore-redis against Celery's RedisBackend and raw redis-py, in one run.

Everything talks to one throwaway redis-server on loopback, one process,
the same ~200-byte JSON payload (10 fields). Each case runs in rounds that
interleave the contenders; the table shows medians with the min..max of the
rounds and the ratios the issues set as targets. Run with ``nox -s bench``
(installs Celery 5.7) or directly: ``python bench/redis_vs_celery.py``.

"Bare" is the limit: one ``redis.Connection`` sending the same commands with
``send_command``/``read_response`` (pipelined where ours is), no client
object, no parser of replies beyond RESP. "Pipeline" is redis-py's
high-level client and pipeline, kept as a second row. Both join contenders
read values resultstore stored (the same bytes ours reads) and take each
JSON body from past its header line. Asyncio wake latency
is measured against a raw ``redis.asyncio`` pub/sub reader of the same
announcements, while another thread stores the results back to back.

By default a waiter reads the store before it believes an announcement
(anyone who may PUBLISH could forge one), so its wake costs one more round
trip than a bare SUBSCRIBE. Every raw waiter is woken by a result stored
the bare way (SET+PUBLISH of its value, pipelined on the bare connection),
as ours is by ``mark_as_done``. The wake rows compare ours with a bare SUBSCRIBE,
with a bare SUBSCRIBE followed by a GET (the limit of any verified wake),
and show a store with ``trust_announcements=true`` against the bare
SUBSCRIBE.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import redis
import redis.asyncio
import resultstore
from _cases import PAYLOAD, OurCases, ids, per_second, timed, wake_latency
from _celery import CeleryCases
from _table import RatioTable, Samples, arguments, percentile, run_rounds
from resultstore import State, TaskResult
from resultstore_contract.servers import start_redis

# About 1 MB of JSON: 6,500 records of ten mixed string and number fields.
BIG = {
    "rows": [
        {f"f{j}": (f"value-{i}-{j}" if j % 2 else i * j * 1.5) for j in range(10)}
        for i in range(6_500)
    ]
}
BATCH = 10_000
CHORD = 1000
READY = orjson.dumps({"status": "SUCCESS", "result": PAYLOAD})


def _body(value: bytes) -> Any:
    """A stored value's JSON body: past the state and header line ("SUCCESS\\0rs1 ...\\n")."""
    return orjson.loads(value[value.index(b"\n") + 1 :])


class Bench:
    def __init__(self, url: str, ops: int) -> None:
        self.url = url
        self.ops = ops
        self.raw = redis.Redis.from_url(url)
        self.pool = redis.ConnectionPool.from_url(url, protocol=2)  # pub/sub replies in band
        self.bare = self._bare()
        self.store = resultstore.connect(url, key_prefix="bench:")
        self.ours = OurCases(self.store, ops)
        self.writer = resultstore.connect(url, key_prefix="bench:")
        # Delivers what announcements carry without reading the store (not the default).
        self.trusting = resultstore.connect(url, key_prefix="bench:", trust_announcements=True)
        self.celery = CeleryCases(url, ops, result_chord_join_timeout=10)

    def _bare(self) -> redis.Connection:
        # Not through the pool: it counts every connection it ever made.
        conn = redis.Connection(**self.pool.connection_kwargs)
        conn.connect()
        return conn  # type: ignore[no-any-return]

    def close(self) -> None:
        self.store.close()
        self.writer.close()
        self.trusting.close()
        self.bare.disconnect()
        self.pool.disconnect()
        self.raw.close()

    def _ready_keys(self, n: int, tag: str, prefix: str) -> list[str]:
        """Keys of ``n`` SUCCESS values set for the raw contenders (outside any timing)."""
        keys = [f"{prefix}:{t}" for t in ids(n, tag)]
        pipe = self.raw.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, READY)
        pipe.execute()
        return keys

    # -- store -----------------------------------------------------------------

    def store_raw(self) -> float:
        task_ids = ids(self.ops, "raw")

        def run() -> None:
            for task_id in task_ids:
                value = orjson.dumps({"status": "SUCCESS", "result": PAYLOAD, "task_id": task_id})
                pipe = self.raw.pipeline(transaction=False)
                pipe.set(f"raw:{task_id}", value, ex=86400)
                pipe.publish(f"raw:{task_id}", value)
                pipe.execute()

        return per_second(self.ops, run)

    def store_bare(self) -> float:
        task_ids = ids(self.ops, "bare")

        def run() -> None:
            for task_id in task_ids:
                self._bare_store(task_id)

        return per_second(self.ops, run)

    # -- get -------------------------------------------------------------------

    def get_raw(self) -> float:
        keys = self._ready_keys(self.ops, "graw", "raw")

        def run() -> None:
            for key in keys:
                orjson.loads(self.raw.get(key))  # type: ignore[arg-type]

        return per_second(self.ops, run)

    def get_bare(self) -> float:
        keys = self._ready_keys(self.ops, "gbare", "bare")
        conn = self.bare

        def run() -> None:
            for key in keys:
                conn.send_command("GET", key)
                orjson.loads(conn.read_response())

        return per_second(self.ops, run)

    # -- join ------------------------------------------------------------------

    def _our_keys(self, n: int, tag: str) -> list[str]:
        """Keys of ``n`` SUCCESS results stored by resultstore (outside any timing): the
        raw joins read the very bytes ours reads."""
        task_ids = ids(n, tag)
        self.store.store_many([TaskResult(t, State.SUCCESS, PAYLOAD) for t in task_ids])
        return [self.store.backend.task_key(t) for t in task_ids]  # type: ignore[attr-defined]

    def join_raw(self) -> float:
        keys = self._our_keys(BATCH, "jraw")

        def run() -> None:
            pipe = self.raw.pipeline(transaction=False)
            for i in range(0, BATCH, 1000):
                pipe.mget(keys[i : i + 1000])
            values = [_body(v)["result"] for chunk in pipe.execute() for v in chunk]
            assert len(values) == BATCH

        return timed(run)

    def join_bare(self) -> float:
        keys = self._our_keys(BATCH, "jbare")
        conn = self.bare

        def run() -> None:
            chunks = [keys[i : i + 1000] for i in range(0, BATCH, 1000)]
            conn.send_packed_command(conn.pack_commands([("MGET", *chunk) for chunk in chunks]))
            values = [_body(v)["result"] for _ in chunks for v in conn.read_response()]
            assert len(values) == BATCH

        return timed(run)

    # -- wake latency ------------------------------------------------------------

    def _latency(
        self,
        trials: int,
        wait: Callable[[str], object],
        channel: Callable[[str], str],
        store: Callable[[str], object],
    ) -> list[float]:
        """Wake latency of ``wait``, stored once ``channel(id)`` has a subscriber."""

        def ready(task_id: str) -> None:
            while int(self.raw.pubsub_numsub(channel(task_id))[0][1]) < 1:
                time.sleep(0.0005)

        return wake_latency(trials, wait=wait, ready=ready, store=store)

    def _bare_store(self, task_id: str) -> None:
        """Store a result as the bare store contender does: SET+PUBLISH of its value,
        pipelined on the bare connection (key ``rawv:<id>``, channel ``raw:<id>``)."""
        conn = self.bare
        value = orjson.dumps({"status": "SUCCESS", "result": PAYLOAD, "task_id": task_id})
        key, channel = f"rawv:{task_id}", f"raw:{task_id}"
        conn.send_packed_command(
            conn.pack_commands([("SET", key, value, "EX", 86400), ("PUBLISH", channel, value)])
        )
        conn.read_response()
        conn.read_response()

    def _raw_latency(self, trials: int, wait: Callable[[str], object]) -> list[float]:
        """Wake latency of ``wait`` on ``raw:<id>`` when a result is stored bare."""
        return self._latency(trials, wait, lambda t: f"raw:{t}", self._bare_store)

    def wake_raw(self, trials: int) -> list[float]:
        def wait(task_id: str) -> None:
            pubsub = self.raw.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(f"raw:{task_id}")
            while pubsub.get_message(timeout=5) is None:
                pass
            pubsub.close()

        return self._raw_latency(trials, wait)

    def wake_bare(self, trials: int) -> list[float]:
        def wait(task_id: str) -> None:
            conn = self._bare()
            conn.send_command("SUBSCRIBE", f"raw:{task_id}")
            conn.read_response()  # the subscription's confirmation
            conn.read_response()  # the announcement
            conn.disconnect()

        return self._raw_latency(trials, wait)

    def wake_verified(self, trials: int) -> list[float]:
        """The limit of a wake that reads the store before it trusts an announcement:
        a bare SUBSCRIBE, then a bare GET of the key."""
        getter = self._bare()

        def wait(task_id: str) -> None:
            conn = self._bare()
            conn.send_command("SUBSCRIBE", f"raw:{task_id}")
            conn.read_response()  # the subscription's confirmation
            conn.read_response()  # the announcement
            getter.send_command("GET", f"rawv:{task_id}")
            orjson.loads(getter.read_response())
            conn.disconnect()

        try:
            return self._raw_latency(trials, wait)
        finally:
            getter.disconnect()

    def wake_celery(self, trials: int) -> list[float]:
        celery = self.celery
        return self._latency(
            trials,
            lambda t: celery.result(t).get(timeout=10),
            lambda t: celery.backend.get_key_for_task(t).decode(),
            lambda t: celery.put([t]),
        )

    def wake_ours(self, trials: int, store: resultstore.ResultStore | None = None) -> list[float]:
        store = store or self.store
        return self._latency(
            trials,
            lambda t: store.result(t).get(timeout=10),
            store.backend.channel,  # type: ignore[attr-defined]
            lambda t: store.mark_as_done(t, PAYLOAD),
        )

    def wake_trusting(self, trials: int) -> list[float]:
        return self.wake_ours(trials, self.trusting)

    # -- asyncio wake latency under a stream ---------------------------------------

    def _produce(self, task_ids: list[str]) -> tuple[threading.Thread, dict[str, float]]:
        """Store ``task_ids`` back to back from another thread (one client, like a worker)."""
        stamps: dict[str, float] = {}

        def run() -> None:
            for task_id in task_ids:
                stamps[task_id] = time.perf_counter()
                self.writer.mark_as_done(task_id, PAYLOAD)

        return threading.Thread(target=run), stamps

    def awake_ours(self, n: int, store: resultstore.ResultStore | None = None) -> list[float]:
        store = store or self.store
        task_ids = ids(n, "awo")
        arrived: dict[str, float] = {}
        hub = store.hub

        async def one(task_id: str) -> None:
            await store.result(task_id).aget(timeout=30)
            arrived[task_id] = time.perf_counter()

        async def run() -> None:
            tasks = [asyncio.create_task(one(t)) for t in task_ids]
            while not set(task_ids) <= hub.watched_ids():
                await asyncio.sleep(0.001)
            await asyncio.to_thread(hub.flush, 10)
            thread, stamps = self._produce(task_ids)
            thread.start()
            await asyncio.gather(*tasks)
            thread.join()
            self._stamps = stamps

        asyncio.run(run())
        return [arrived[t] - self._stamps[t] for t in task_ids]

    def awake_trusting(self, n: int) -> list[float]:
        return self.awake_ours(n, self.trusting)

    def awake_raw(self, n: int) -> list[float]:
        task_ids = ids(n, "awr")
        channel = self.store.backend.channel  # type: ignore[attr-defined]
        by_channel = {channel(t).encode(): t for t in task_ids}
        arrived: dict[str, float] = {}

        async def run() -> None:
            client = redis.asyncio.Redis.from_url(self.url)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(*by_channel)
            thread, stamps = self._produce(task_ids)
            thread.start()
            while len(arrived) < n:
                message = await pubsub.get_message(timeout=5.0)
                if message is not None and message["type"] == "message":
                    arrived[by_channel[message["channel"]]] = time.perf_counter()
            thread.join()
            self._stamps = stamps
            await pubsub.aclose()
            await client.aclose()

        asyncio.run(run())
        return [arrived[t] - self._stamps[t] for t in task_ids]

    # -- big results ---------------------------------------------------------------

    def big_celery(self, n: int = 5) -> float:
        size = len(json.dumps(BIG))
        start = time.perf_counter()
        for task_id in ids(n, "bcel"):
            self.celery.put([task_id], BIG)
            self.celery.result(task_id).get()
        return n * size / (time.perf_counter() - start) / 1e6

    def big_ours(self, n: int = 5) -> float:
        size = len(json.dumps(BIG))
        start = time.perf_counter()
        for task_id in ids(n, "bour"):
            self.store.mark_as_done(task_id, BIG)
            self.store.result(task_id).get()
        return n * size / (time.perf_counter() - start) / 1e6

    def evalsha_calls(self) -> int:
        stats = self.raw.info("commandstats")
        return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def main() -> None:
    parser = arguments(__doc__, rounds=9, ops=5000)
    parser.add_argument("--trials", type=int, default=1800, help="wake-latency trials")
    parser.add_argument(
        "--awaits", type=int, default=1000, help="asyncio waiters per round, stored back to back"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, start_redis(Path(tmp)) as server:
        bench = Bench(server.url, args.ops)
        ours, celery = bench.ours, bench.celery
        cases = {
            "store_bare": bench.store_bare,
            "store_raw": bench.store_raw,
            "store_celery": celery.store_result,
            "store_ours": ours.mark_as_done,
            "get_bare": bench.get_bare,
            "get_raw": bench.get_raw,
            "get_celery": celery.get,
            "get_ours": ours.result_get,
            "join_bare": bench.join_bare,
            "join_raw": bench.join_raw,
            "join_celery": lambda: celery.join(BATCH, native=True),
            "join_ours": lambda: ours.join(BATCH),
            "batch_celery": lambda: celery.store_result(BATCH, tag="cbat"),
            "batch_ours": lambda: ours.store_many(BATCH),
            "big_celery": bench.big_celery,
            "big_ours": bench.big_ours,
            "chord_celery": lambda: celery.chord_counter(CHORD),
            "chord_ours": lambda: ours.chord_with_callback(CHORD),
        }
        runs = run_rounds(cases, args.rounds)
        before = bench.evalsha_calls()
        ours.chord_with_callback(CHORD)
        # One EVALSHA per part, plus the one that stores the callback's result.
        chord_round_trips = (bench.evalsha_calls() - before - 1) / CHORD
        per_round = max(1, args.trials // args.rounds)
        wake: dict[str, list[list[float]]] = {
            name: [] for name in ("bare", "verified", "raw", "celery", "ours", "trusting")
        }
        awake: dict[str, list[list[float]]] = {"raw": [], "ours": [], "trusting": []}
        for _ in range(args.rounds):
            for name, rounds in wake.items():
                rounds.append(getattr(bench, f"wake_{name}")(per_round))
            for name, rounds in awake.items():
                rounds.append(getattr(bench, f"awake_{name}")(args.awaits))
        bench.close()

    rate, seconds = runs.rate, runs.seconds

    def wake_ms(name: str, q: float) -> Samples:
        return Samples([percentile(r, q) * 1000 for r in wake[name]], unit="ms")

    def awake_ms(name: str, q: float) -> Samples:
        return Samples([percentile(r, q) * 1000 for r in awake[name]], unit="ms")

    table = RatioTable(f"resultstore-redis vs peers (medians of {args.rounds} interleaved rounds)")
    table.ratio(
        "store vs bare connection SET+PUBLISH", rate("store_ours"), rate("store_bare"), target=0.9
    )
    table.ratio("store vs redis-py pipeline SET+PUBLISH", rate("store_ours"), rate("store_raw"))
    table.ratio(
        "store vs Celery store_result", rate("store_ours"), rate("store_celery"), target=2.3
    )
    table.ratio(
        "batch store 10k vs Celery one-by-one",
        rate("batch_ours"),
        rate("batch_celery"),
        target=10,
    )
    table.ratio(
        "get() ready vs bare connection GET+decode",
        rate("get_ours"),
        rate("get_bare"),
        target=0.85,
    )
    table.ratio("get() ready vs redis-py GET+decode", rate("get_ours"), rate("get_raw"))
    table.ratio(
        "get() ready vs Celery AsyncResult.get", rate("get_ours"), rate("get_celery"), target=3
    )
    table.ratio(
        "join 10k time vs bare pipelined MGET+orjson",
        seconds("join_ours"),
        seconds("join_bare"),
        target=1.5,
        at_most=True,
    )
    table.ratio(
        "join 10k time vs redis-py pipelined MGET+orjson",
        seconds("join_ours"),
        seconds("join_raw"),
        at_most=True,
    )
    table.ratio(
        "join 10k speed-up vs Celery join_native",
        seconds("join_ours"),
        seconds("join_celery"),
        target=15,
        invert=True,
    )
    for q in (0.5, 0.99):
        label = f"wake p{int(q * 100)}"
        table.ratio(
            f"{label} vs bare connection SUBSCRIBE",
            wake_ms("ours", q),
            wake_ms("bare", q),
            target=1.3,
            at_most=True,
        )
        table.ratio(
            f"{label} vs bare SUBSCRIBE then GET (the limit of a verified wake)",
            wake_ms("ours", q),
            wake_ms("verified", q),
            at_most=True,
        )
        table.ratio(
            f"{label} trust_announcements=true vs bare connection SUBSCRIBE",
            wake_ms("trusting", q),
            wake_ms("bare", q),
            at_most=True,
        )
        table.ratio(
            f"{label} vs redis-py pub/sub", wake_ms("ours", q), wake_ms("raw", q), at_most=True
        )
        table.ratio(
            f"{label} vs Celery", wake_ms("ours", q), wake_ms("celery", q), target=1.0, at_most=True
        )
    for q in (0.5, 0.99):
        table.ratio(
            f"asyncio wake p{int(q * 100)} ({args.awaits} stored back to back) vs redis.asyncio",
            awake_ms("ours", q),
            awake_ms("raw", q),
            target=1.5 if q == 0.5 else None,
            at_most=True,
        )
        table.ratio(
            f"asyncio wake p{int(q * 100)} trust_announcements=true vs redis.asyncio",
            awake_ms("trusting", q),
            awake_ms("raw", q),
            at_most=True,
        )
    table.ratio("1 MB store+get MB/s vs Celery", rate("big_ours"), rate("big_celery"), target=2)
    table.ratio(
        "chord 1000 parts speed-up vs Celery",
        seconds("chord_ours"),
        seconds("chord_celery"),
        target=2,
        invert=True,
    )
    table.note("chord round trips per part (target 1)", f"{chord_round_trips:g}")
    table.print()


if __name__ == "__main__":
    main()
