"""A RabbitMQ restart under waiting clients, on a node of this module's own."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import resultstore
from resultstore import BackendUnavailableError, ResultStore, ResultTimeoutError, State, TaskResult
from resultstore_amqp.backend import AmqpBackend
from resultstore_contract.servers import RabbitMQNode, start_rabbitmq_node
from resultstore_contract.support import wait_until

WAIT = 60.0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQNode]:
    with start_rabbitmq_node(Path(tmp_path_factory.mktemp("rabbitmq-restart"))) as started:
        yield started


def _backend(store: ResultStore) -> AmqpBackend:
    return cast(AmqpBackend, store.backend)


def _waiters(store: ResultStore, ids: list[str], box: dict[str, Any]) -> list[threading.Thread]:
    def wait(task_id: str) -> None:
        try:
            box[task_id] = store.result(task_id).get(timeout=WAIT * 2)
        except BaseException as exc:
            box[task_id] = exc

    threads = [threading.Thread(target=wait, args=(task_id,)) for task_id in ids]
    for thread in threads:
        thread.start()
    return threads


def test_broker_restart_under_waiters(node: RabbitMQNode) -> None:
    url = node.server.url
    token = uuid.uuid4().hex[:8]
    opened: list[ResultStore] = []

    def connect(**options: Any) -> ResultStore:
        store = resultstore.connect(url, **options)
        opened.append(store)
        return store

    try:
        plain = connect()
        durable = connect(persistent=True, reply_queue=f"durable-{token}")
        worker = connect(persistent=True, reply_queue=f"worker-{token}", retry_total=0.5)
        routes = {
            "plain": _backend(plain).reply_address(),
            "durable": _backend(durable).reply_address(),
        }
        # Two queues nobody reads right now: one durable, one not.
        for name, persistent in ((f"parked-{token}", True), (f"lost-{token}", False)):
            parked = resultstore.connect(url, persistent=persistent, reply_queue=name)
            routes[name] = _backend(parked).reply_address()
            parked.close()
        kept = [f"kept-{token}-{n}" for n in range(5)]
        for n, task_id in enumerate(kept):
            worker.store(TaskResult(task_id, State.SUCCESS, n), reply_to=routes[f"parked-{token}"])
        lost = f"lost-{token}"
        worker.store(TaskResult(lost, State.SUCCESS, "gone"), reply_to=routes[f"lost-{token}"])

        box: dict[str, Any] = {}
        ids = {name: [f"{name}-{token}-{n}" for n in range(10)] for name in ("plain", "durable")}
        threads = _waiters(plain, ids["plain"], box) + _waiters(durable, ids["durable"], box)
        wait_until(
            lambda: plain.hub.watched == 10 and durable.hub.watched == 10,
            "the waiters to wait",
            timeout=WAIT,
        )

        node.stop()
        with pytest.raises(BackendUnavailableError, match="did not answer") as caught:
            worker.store(TaskResult("while-down", State.SUCCESS), reply_to=routes["plain"])
        assert "guest:guest" not in str(caught.value)
        wait_until(
            lambda: _backend(plain).reader.error is not None, "the reader to notice", timeout=WAIT
        )
        node.start()

        # The waiters' shared consumers reconnect and declare their queues again.
        for store in (plain, durable):
            reader = _backend(store).reader
            wait_until(
                lambda r=reader: r.connects >= 2 and r.error is None, "a reconnect", timeout=WAIT
            )
        for name in ("plain", "durable"):
            for n, task_id in enumerate(ids[name]):
                worker.store(TaskResult(task_id, State.SUCCESS, n), reply_to=routes[name])
        for thread in threads:
            thread.join(WAIT * 2)
        assert box == {t: n for name in ids for n, t in enumerate(ids[name])}
        assert plain.hub.failures >= 1, "the hub never saw the broker go away"

        # Persistent results sent to a durable queue before the restart are still there.
        later = connect(persistent=True, reply_queue=f"parked-{token}")
        assert later.group_result("kept", kept).get(timeout=WAIT) == list(range(5))
        # A non-durable queue died with the broker: its result times out, by name.
        again = connect(reply_queue=f"lost-{token}")
        with pytest.raises(ResultTimeoutError, match=lost):
            again.result(lost).get(timeout=1.0)
    finally:
        for store in reversed(opened):
            store.close()
