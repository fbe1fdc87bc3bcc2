"""resultstore-amqp against Celery 5.7's RPC backend and raw kombu, on one RabbitMQ, in one run.

Everything runs in one process against one throwaway RabbitMQ node on
loopback, with the same ~150-byte result. The "worker" side of each
contender is a second client in the same process that publishes to the
waiting client's reply queue: resultstore's ``store(..., reply_to=...)``,
Celery's ``RPCBackend.store_result`` with a request carrying ``reply_to``, and
for raw kombu a ``Producer.publish`` of the JSON body to a queue a kombu
``Consumer`` drains (the bare client limit, with no result semantics).

- wake latency: a waiting thread blocks on one result; the main thread
  publishes it; the figure is publish-to-wake, p50 and p99 over ``--results``
  results per round;
- throughput: ``--many`` results sent by a worker thread and collected by one
  client (a group join for resultstore and Celery, a counting consumer raw).

Rounds interleave the contenders; medians are printed with the min..max of
the rounds. Run with ``nox -s bench -- amqp``.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kombu
import resultstore
from _cases import ids
from _table import RatioTable, Samples, percentile, run_rounds
from celery import Celery
from celery.app.task import Context
from celery.result import AsyncResult as CeleryResult
from celery.result import GroupResult as CeleryGroup
from resultstore import State, TaskResult
from resultstore_contract.servers import start_rabbitmq

VALUE = {"total": 42, "items": [1, 2, 3], "note": "x" * 100}
TIMEOUT = 60.0


class Waiter:
    """A thread that waits on one result at a time and stamps when it woke."""

    def __init__(
        self, wait: Callable[[str], Any], prepare: Callable[[], None] | None = None
    ) -> None:
        self._wait = wait
        self._prepare = prepare
        self.prepared = threading.Event()
        self._jobs: list[str] = []
        self._cond = threading.Condition()
        self.ready = threading.Event()
        self.woke = threading.Event()
        self.woke_at = 0.0
        self.value: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._prepare is not None:
            self._prepare()
        self.prepared.set()
        while True:
            with self._cond:
                while not self._jobs:
                    self._cond.wait()
                task_id = self._jobs.pop()
            if task_id == "":
                return
            self.ready.set()
            self.value = self._wait(task_id)
            self.woke_at = time.perf_counter()
            self.woke.set()

    def latency(self, task_id: str, send: Callable[[], None]) -> float:
        self.ready.clear()
        self.woke.clear()
        with self._cond:
            self._jobs.append(task_id)
            self._cond.notify()
        self.ready.wait(TIMEOUT)
        time.sleep(0.001)  # let the waiter block before the result goes out
        sent = time.perf_counter()
        send()
        if not self.woke.wait(TIMEOUT):
            raise RuntimeError(f"no wake for {task_id}")
        return self.woke_at - sent

    def stop(self) -> None:
        with self._cond:
            self._jobs.append("")
            self._cond.notify()


class Bench:
    def __init__(self, url: str, results: int, many: int) -> None:
        self.results, self.many = results, many
        # ours: the waiting client and a worker that routes to its reply queue.
        self.client = resultstore.connect(url)
        self.worker = resultstore.connect(url, reply_queue=f"bench-worker-{uuid.uuid4().hex}")
        self.reply_to = self.client.backend.reply_address()  # type: ignore[attr-defined]
        # Celery 5.7: rpc:// on the same broker; a second app plays the worker.
        self.capp = Celery("bench-client", broker=url, backend="rpc://")
        self.wapp = Celery("bench-worker", broker=url, backend="rpc://")
        # raw kombu: one consumer connection, one producer connection.
        self.raw_queue = kombu.Queue(
            f"bench-raw-{uuid.uuid4().hex}", exchange=kombu.Exchange(""), auto_delete=True
        )
        self.raw_conn = kombu.Connection(url)
        self.raw_pub = kombu.Connection(url)
        self.producer = kombu.Producer(self.raw_pub.channel(), auto_declare=False)
        self.raw_got: dict[str, float] = {}
        self.raw_cond = threading.Condition()
        self.raw_count = 0
        self.raw_consumer = kombu.Consumer(
            self.raw_conn.channel(), [self.raw_queue], callbacks=[self._raw_message], no_ack=True
        )
        self.raw_consumer.consume()
        self._raw_stop = False
        self._raw_thread = threading.Thread(target=self._raw_drain, daemon=True)
        self._raw_thread.start()
        self.waiters: dict[str, Waiter] = {}
        self.celery_oid: list[str] = []

    # -- raw kombu ---------------------------------------------------------------------

    def _raw_message(self, body: Any, message: Any) -> None:
        now = time.perf_counter()
        with self.raw_cond:
            self.raw_got[body["id"]] = now
            self.raw_count += 1
            self.raw_cond.notify_all()

    def _raw_drain(self) -> None:
        while not self._raw_stop:
            try:
                self.raw_conn.drain_events(timeout=0.2)
            except TimeoutError:
                continue

    def _raw_send(self, task_id: str) -> None:
        self.producer.publish(
            {"id": task_id, "status": "SUCCESS", "result": VALUE},
            routing_key=self.raw_queue.name,
            serializer="json",
            correlation_id=task_id,
        )

    def _raw_wait(self, task_id: str) -> float:
        with self.raw_cond:
            while task_id not in self.raw_got:
                self.raw_cond.wait(TIMEOUT)
            return self.raw_got.pop(task_id)

    # -- Celery --------------------------------------------------------------------------

    def _celery_send(self, task_id: str, reply_to: str) -> None:
        request = Context(id=task_id, reply_to=reply_to, correlation_id=task_id)
        self.wapp.backend.store_result(task_id, VALUE, State.SUCCESS, request=request)

    # -- wake latency --------------------------------------------------------------------

    def _latencies(
        self, name: str, wait: Callable[[str], Any], send: Callable[[str], None]
    ) -> list[float]:
        waiter = self.waiters.get(name)
        if waiter is None:
            waiter = self.waiters[name] = Waiter(wait)
        return [waiter.latency(t, lambda t=t: send(t)) for t in ids(self.results, name)]

    def wake_ours(self) -> list[float]:
        return self._latencies(
            "ours",
            lambda t: self.client.result(t).get(timeout=TIMEOUT),
            lambda t: self.worker.store(
                TaskResult(t, State.SUCCESS, VALUE), reply_to=self.reply_to
            ),
        )

    def wake_celery(self) -> list[float]:
        # Celery reads replies on the waiting thread's queue (app.thread_oid),
        # declared by on_task_call before a task is sent.
        oid = self.celery_oid

        def prepare() -> None:
            oid.append(self.capp.thread_oid)
            with self.capp.producer_or_acquire() as producer:
                self.capp.backend.on_task_call(producer, "prepare")

        waiter = self.waiters.get("celery")
        if waiter is None:
            waiter = self.waiters["celery"] = Waiter(
                lambda t: CeleryResult(t, app=self.capp).get(timeout=TIMEOUT), prepare
            )
            waiter.prepared.wait(TIMEOUT)
        return [
            waiter.latency(t, lambda t=t: self._celery_send(t, oid[0]))
            for t in ids(self.results, "celery")
        ]

    def wake_raw(self) -> list[float]:
        return self._latencies("raw", self._raw_wait, self._raw_send)

    # -- throughput --------------------------------------------------------------------

    def _rate(self, send_all: Callable[[], None], collect: Callable[[], Any]) -> float:
        start = time.perf_counter()
        sender = threading.Thread(target=send_all)
        sender.start()
        collect()
        sender.join()
        return self.many / (time.perf_counter() - start)

    def many_ours(self) -> float:
        task_ids = ids(self.many, "many")
        group = self.client.group_result(str(uuid.uuid4()), task_ids)

        def send_all() -> None:
            for task_id in task_ids:
                self.worker.store(TaskResult(task_id, State.SUCCESS, VALUE), reply_to=self.reply_to)

        rate = self._rate(send_all, lambda: group.get(timeout=TIMEOUT))
        for task_id in task_ids:
            self.client.forget(task_id)
        return rate

    def many_celery(self) -> float:
        task_ids = ids(self.many, "cmany")
        oid = self.capp.thread_oid
        with self.capp.producer_or_acquire() as producer:
            self.capp.backend.on_task_call(producer, task_ids[0])
        group = CeleryGroup(
            str(uuid.uuid4()), [CeleryResult(t, app=self.capp) for t in task_ids], app=self.capp
        )

        def send_all() -> None:
            for task_id in task_ids:
                self._celery_send(task_id, oid)

        return self._rate(send_all, lambda: group.get(timeout=TIMEOUT))

    def many_raw(self) -> float:
        task_ids = ids(self.many, "rmany")
        with self.raw_cond:
            target = self.raw_count + self.many

        def collect() -> None:
            with self.raw_cond:
                while self.raw_count < target:
                    self.raw_cond.wait(TIMEOUT)
                for task_id in task_ids:
                    self.raw_got.pop(task_id, None)

        return self._rate(lambda: [self._raw_send(t) for t in task_ids], collect)

    def close(self) -> None:
        for waiter in self.waiters.values():
            waiter.stop()
        self._raw_stop = True
        self._raw_thread.join(2)
        self.raw_conn.release()
        self.raw_pub.release()
        self.client.close()
        self.worker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--results", type=int, default=1000, help="wakes per round")
    parser.add_argument("--many", type=int, default=2000, help="results per throughput round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, start_rabbitmq(Path(tmp)) as server:
        bench = Bench(server.url, args.results, args.many)
        try:
            # One warm-up round of everything, not counted.
            run_rounds(_cases(bench), 1)
            samples = run_rounds(_cases(bench), args.rounds)
        finally:
            bench.close()

    def lat(name: str, q: float) -> Samples:
        return Samples([percentile(r, q) * 1000 for r in samples[name]], "ms")

    def rate(name: str) -> Samples:
        return Samples([r[0] for r in samples[name]])

    table = RatioTable(
        f"resultstore-amqp vs Celery 5.7 rpc:// and raw kombu, RabbitMQ on loopback, "
        f"{args.rounds} rounds: {args.results} wakes, {args.many} results per join"
    )
    table.ratio(
        "wake p50 vs raw kombu",
        lat("wake_ours", 0.5),
        lat("wake_raw", 0.5),
        target=1.3,
        at_most=True,
    )
    table.ratio(
        "wake p99 vs raw kombu", lat("wake_ours", 0.99), lat("wake_raw", 0.99), at_most=True
    )
    table.ratio(
        "wake p50 vs Celery rpc", lat("wake_ours", 0.5), lat("wake_celery", 0.5), at_most=True
    )
    table.ratio(
        "wake p99 vs Celery rpc", lat("wake_ours", 0.99), lat("wake_celery", 0.99), at_most=True
    )
    table.ratio(
        f"{args.many} sent+joined vs Celery rpc", rate("many_ours"), rate("many_celery"), target=2
    )
    table.ratio(f"{args.many} sent+joined vs raw kombu", rate("many_ours"), rate("many_raw"))
    table.print()


def _cases(bench: Bench) -> dict[str, Callable[[], Any]]:
    return {
        "wake_ours": bench.wake_ours,
        "wake_celery": bench.wake_celery,
        "wake_raw": bench.wake_raw,
        "many_ours": lambda: [bench.many_ours()],
        "many_celery": lambda: [bench.many_celery()],
        "many_raw": lambda: [bench.many_raw()],
    }


if __name__ == "__main__":
    main()
