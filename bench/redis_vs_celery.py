"""resultstore-redis against Celery's RedisBackend and raw redis-py, in one run.

Everything talks to one throwaway redis-server on loopback, one process,
the same ~200-byte JSON payload (10 fields). Each case runs in rounds that
interleave the contenders; the table shows medians with the min..max of the
rounds and the ratios the issues set as targets. Run with ``nox -s bench``
(installs Celery 5.7) or directly: ``python bench/redis_vs_celery.py``.

"Bare" is the limit: one ``redis.Connection`` sending the same commands with
``send_command``/``read_response`` (pipelined where ours is), no client
object, no parser of replies beyond RESP. "Pipeline" is redis-py's
high-level client and pipeline, kept as a second row. Asyncio wake latency
is measured against a raw ``redis.asyncio`` pub/sub reader of the same
announcements, while another thread stores the results back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import redis
import redis.asyncio
import resultstore
from _table import RatioTable, Samples, percentile, run_rounds
from celery import Celery
from celery.app.task import Context
from celery.result import AsyncResult as CeleryResult
from celery.result import GroupResult as CeleryGroup
from resultstore import State, TaskResult
from resultstore_contract.servers import start_redis

PAYLOAD = {f"field{i}": f"value-{i}-" + "x" * 6 for i in range(10)}
# About 1 MB of JSON: 6,500 records of ten mixed string and number fields.
BIG = {
    "rows": [
        {f"f{j}": (f"value-{i}-{j}" if j % 2 else i * j * 1.5) for j in range(10)}
        for i in range(6_500)
    ]
}


def _ids(n: int, tag: str) -> list[str]:
    return [f"{tag}-{uuid.uuid4().hex}" for _ in range(n)]


class Bench:
    def __init__(self, url: str, ops: int) -> None:
        self.url = url
        self.ops = ops
        self.raw = redis.Redis.from_url(url)
        self.pool = redis.ConnectionPool.from_url(url, protocol=2)  # pub/sub replies in band
        self.bare = self._bare()
        self.ours = resultstore.connect(url, key_prefix="bench:")
        self.writer = resultstore.connect(url, key_prefix="bench:")
        self.app = Celery("bench", broker="memory://", backend=url)
        self.app.conf.result_chord_join_timeout = 10

        @self.app.task(name="bench.callback")
        def callback(results: list[int]) -> int:
            return sum(results)

        self.callback = callback
        self.celery = self.app.backend

    def _bare(self) -> redis.Connection:
        # Not through the pool: it counts every connection it ever made.
        conn = redis.Connection(**self.pool.connection_kwargs)
        conn.connect()
        return conn  # type: ignore[no-any-return]

    def close(self) -> None:
        self.ours.close()
        self.writer.close()
        self.bare.disconnect()
        self.pool.disconnect()
        self.raw.close()

    # -- store -----------------------------------------------------------------

    def store_raw(self) -> float:
        ids = _ids(self.ops, "raw")
        start = time.perf_counter()
        for task_id in ids:
            value = orjson.dumps({"status": "SUCCESS", "result": PAYLOAD, "task_id": task_id})
            pipe = self.raw.pipeline(transaction=False)
            pipe.set(f"raw:{task_id}", value, ex=86400)
            pipe.publish(f"raw:{task_id}", value)
            pipe.execute()
        return self.ops / (time.perf_counter() - start)

    def store_bare(self) -> float:
        ids = _ids(self.ops, "bare")
        conn = self.bare
        start = time.perf_counter()
        for task_id in ids:
            value = orjson.dumps({"status": "SUCCESS", "result": PAYLOAD, "task_id": task_id})
            key = f"bare:{task_id}"
            conn.send_packed_command(
                conn.pack_commands([("SET", key, value, "EX", 86400), ("PUBLISH", key, value)])
            )
            conn.read_response()
            conn.read_response()
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

    def batch_ours(self, n: int = 10_000) -> float:
        results = [TaskResult(t, State.SUCCESS, PAYLOAD) for t in _ids(n, "bat")]
        start = time.perf_counter()
        self.ours.store_many(results)
        return n / (time.perf_counter() - start)

    def batch_celery(self, n: int = 10_000) -> float:
        ids = _ids(n, "cbat")
        start = time.perf_counter()
        for task_id in ids:
            self.celery.store_result(task_id, PAYLOAD, "SUCCESS")
        return n / (time.perf_counter() - start)

    # -- get -------------------------------------------------------------------

    def get_raw(self) -> float:
        ids = _ids(self.ops, "graw")
        for task_id in ids:
            self.raw.set(f"raw:{task_id}", orjson.dumps({"status": "SUCCESS", "result": PAYLOAD}))
        start = time.perf_counter()
        for task_id in ids:
            orjson.loads(self.raw.get(f"raw:{task_id}"))  # type: ignore[arg-type]
        return self.ops / (time.perf_counter() - start)

    def get_bare(self) -> float:
        ids = _ids(self.ops, "gbare")
        for task_id in ids:
            self.raw.set(f"bare:{task_id}", orjson.dumps({"status": "SUCCESS", "result": PAYLOAD}))
        conn = self.bare
        start = time.perf_counter()
        for task_id in ids:
            conn.send_command("GET", f"bare:{task_id}")
            orjson.loads(conn.read_response())
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

    # -- join ------------------------------------------------------------------

    def join_raw(self, n: int = 10_000) -> float:
        ids = _ids(n, "jraw")
        pipe = self.raw.pipeline(transaction=False)
        for task_id in ids:
            pipe.set(f"raw:{task_id}", orjson.dumps({"status": "SUCCESS", "result": PAYLOAD}))
        pipe.execute()
        keys = [f"raw:{t}" for t in ids]
        start = time.perf_counter()
        pipe = self.raw.pipeline(transaction=False)
        for i in range(0, n, 1000):
            pipe.mget(keys[i : i + 1000])
        values = [orjson.loads(v)["result"] for chunk in pipe.execute() for v in chunk]
        assert len(values) == n
        return time.perf_counter() - start

    def join_bare(self, n: int = 10_000) -> float:
        ids = _ids(n, "jbare")
        pipe = self.raw.pipeline(transaction=False)
        for task_id in ids:
            pipe.set(f"bare:{task_id}", orjson.dumps({"status": "SUCCESS", "result": PAYLOAD}))
        pipe.execute()
        keys = [f"bare:{t}" for t in ids]
        conn = self.bare
        start = time.perf_counter()
        chunks = [keys[i : i + 1000] for i in range(0, n, 1000)]
        conn.send_packed_command(conn.pack_commands([("MGET", *chunk) for chunk in chunks]))
        values = [orjson.loads(v)["result"] for _ in chunks for v in conn.read_response()]
        assert len(values) == n
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

    # -- wake latency ------------------------------------------------------------

    def _numsub(self, channel: str) -> int:
        return int(self.raw.pubsub_numsub(channel)[0][1])

    def _latency(
        self,
        trials: int,
        wait: Callable[[str], None],
        channel: Callable[[str], str],
        store: Callable[[str], None],
    ) -> list[float]:
        samples = []
        for _ in range(trials):
            task_id = uuid.uuid4().hex
            done = threading.Event()
            stamp: list[float] = []

            def waiter(
                task_id: str = task_id, stamp: list[float] = stamp, done: threading.Event = done
            ) -> None:
                wait(task_id)
                stamp.append(time.perf_counter())
                done.set()

            thread = threading.Thread(target=waiter)
            thread.start()
            while self._numsub(channel(task_id)) < 1:
                time.sleep(0.0005)
            time.sleep(0.002)  # let the waiter settle into its blocking read
            t0 = time.perf_counter()
            store(task_id)
            done.wait(10)
            thread.join()
            samples.append(stamp[0] - t0)
        return samples

    def wake_raw(self, trials: int) -> list[float]:
        def wait(task_id: str) -> None:
            pubsub = self.raw.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(f"raw:{task_id}")
            while pubsub.get_message(timeout=5) is None:
                pass
            pubsub.close()

        return self._latency(
            trials,
            wait,
            lambda t: f"raw:{t}",
            lambda t: self.raw.publish(f"raw:{t}", b"x") and None,
        )

    def wake_bare(self, trials: int) -> list[float]:
        def wait(task_id: str) -> None:
            conn = self._bare()
            conn.send_command("SUBSCRIBE", f"raw:{task_id}")
            conn.read_response()  # the subscription's confirmation
            conn.read_response()  # the announcement
            conn.disconnect()

        return self._latency(
            trials,
            wait,
            lambda t: f"raw:{t}",
            lambda t: self.raw.publish(f"raw:{t}", b"x") and None,
        )

    def wake_celery(self, trials: int) -> list[float]:
        return self._latency(
            trials,
            lambda t: CeleryResult(t, app=self.app).get(timeout=10),
            lambda t: self.celery.get_key_for_task(t).decode(),
            lambda t: self.celery.store_result(t, PAYLOAD, "SUCCESS"),
        )

    def wake_ours(self, trials: int) -> list[float]:
        backend = self.ours.backend
        return self._latency(
            trials,
            lambda t: self.ours.result(t).get(timeout=10),
            backend.channel,  # type: ignore[attr-defined]
            lambda t: self.ours.mark_as_done(t, PAYLOAD) and None,
        )

    # -- asyncio wake latency under a stream ---------------------------------------

    def _produce(self, ids: list[str]) -> tuple[threading.Thread, dict[str, float]]:
        """Store ``ids`` back to back from another thread (one client, like a worker)."""
        stamps: dict[str, float] = {}

        def run() -> None:
            for task_id in ids:
                stamps[task_id] = time.perf_counter()
                self.writer.mark_as_done(task_id, PAYLOAD)

        return threading.Thread(target=run), stamps

    def awake_ours(self, n: int) -> list[float]:
        ids = _ids(n, "awo")
        arrived: dict[str, float] = {}
        hub = self.ours.hub

        async def one(task_id: str) -> None:
            await self.ours.result(task_id).aget(timeout=30)
            arrived[task_id] = time.perf_counter()

        async def run() -> None:
            tasks = [asyncio.create_task(one(t)) for t in ids]
            while not set(ids) <= hub.watched_ids():
                await asyncio.sleep(0.001)
            await asyncio.to_thread(hub.flush, 10)
            thread, stamps = self._produce(ids)
            thread.start()
            await asyncio.gather(*tasks)
            thread.join()
            self._stamps = stamps

        asyncio.run(run())
        return [arrived[t] - self._stamps[t] for t in ids]

    def awake_raw(self, n: int) -> list[float]:
        ids = _ids(n, "awr")
        channel = self.ours.backend.channel  # type: ignore[attr-defined]
        by_channel = {channel(t).encode(): t for t in ids}
        arrived: dict[str, float] = {}

        async def run() -> None:
            client = redis.asyncio.Redis.from_url(self.url)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(*by_channel)
            thread, stamps = self._produce(ids)
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
        return [arrived[t] - self._stamps[t] for t in ids]

    # -- big results ---------------------------------------------------------------

    def big_celery(self, n: int = 5) -> float:
        size = len(json.dumps(BIG))
        start = time.perf_counter()
        for task_id in _ids(n, "bcel"):
            self.celery.store_result(task_id, BIG, "SUCCESS")
            CeleryResult(task_id, app=self.app).get()
        return n * size / (time.perf_counter() - start) / 1e6

    def big_ours(self, n: int = 5) -> float:
        size = len(json.dumps(BIG))
        start = time.perf_counter()
        for task_id in _ids(n, "bour"):
            self.ours.mark_as_done(task_id, BIG)
            self.ours.result(task_id).get()
        return n * size / (time.perf_counter() - start) / 1e6

    # -- chords ----------------------------------------------------------------------

    def chord_celery(self, size: int = 1000) -> float:
        gid = uuid.uuid4().hex
        self.celery.set_chord_size(gid, size)
        body = self.callback.s()
        requests = [
            Context(id=uuid.uuid4().hex, group=gid, group_index=i, chord=body) for i in range(size)
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
        for i, part in enumerate(parts):
            outcome = self.ours.chord_part_return(gid, i, part)
            if outcome.complete:
                assert outcome.results is not None
                self.ours.mark_as_done(f"{gid}-callback", sum(r.result for r in outcome.results))
        return time.perf_counter() - start

    def evalsha_calls(self) -> int:
        stats = self.raw.info("commandstats")
        return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--ops", type=int, default=5000)
    parser.add_argument("--trials", type=int, default=1800, help="wake-latency trials")
    parser.add_argument(
        "--awaits", type=int, default=1000, help="asyncio waiters per round, stored back to back"
    )
    args = parser.parse_args()
    cases = (
        "store_bare",
        "store_raw",
        "store_celery",
        "store_ours",
        "get_bare",
        "get_raw",
        "get_celery",
        "get_ours",
        "join_bare",
        "join_raw",
        "join_celery",
        "join_ours",
        "batch_celery",
        "batch_ours",
        "big_celery",
        "big_ours",
        "chord_celery",
        "chord_ours",
    )
    with tempfile.TemporaryDirectory() as tmp, start_redis(Path(tmp)) as server:
        bench = Bench(server.url, args.ops)
        runs = run_rounds({name: getattr(bench, name) for name in cases}, args.rounds)
        before = bench.evalsha_calls()
        bench.chord_ours()
        # One EVALSHA per part, plus the one that stores the callback's result.
        chord_round_trips = (bench.evalsha_calls() - before - 1) / 1000
        per_round = max(1, args.trials // args.rounds)
        wake: dict[str, list[list[float]]] = {"bare": [], "raw": [], "celery": [], "ours": []}
        awake: dict[str, list[list[float]]] = {"raw": [], "ours": []}
        for _ in range(args.rounds):
            for name, rounds in wake.items():
                rounds.append(getattr(bench, f"wake_{name}")(per_round))
            for name, rounds in awake.items():
                rounds.append(getattr(bench, f"awake_{name}")(args.awaits))
        bench.close()

    def rate(name: str) -> Samples:
        return Samples(runs[name])

    def seconds(name: str) -> Samples:
        return Samples(runs[name], unit="s")

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
