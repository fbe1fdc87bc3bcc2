"""A single node killed and restarted under waiters: no waiter outlives its own timeout,
the ones whose results arrive after the restart get them, and calls made while it is
down fail with a clear error that names the contact point (never the password)."""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import resultstore
from resultstore import BackendUnavailableError, ResultStore, ResultTimeoutError, State, TaskResult
from resultstore_contract.servers import CassandraNode, start_cassandra_node

#: seconds a call may overrun its timeout (thread start, a busy 2-core machine).
SLACK = 3.0
SHORT, LONG = 4.0, 150.0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CassandraNode]:
    """A node of this module's own, without unsafesystem: its schema survives SIGKILL."""
    workdir: Path = tmp_path_factory.mktemp("cassandra-restart")
    with start_cassandra_node(workdir, unsafe_system=False) as started:
        yield started


def _url(node: CassandraNode, **options: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in options.items())
    return (
        f"cassandra://{node.host}:{node.native_port}/restart"
        f"?create_keyspace=true&replication=SimpleStrategy:1&{query}"
    ).rstrip("&")


def _wait(
    store: ResultStore, task_id: str, timeout: float, outcomes: dict[str, tuple[object, float]]
) -> None:
    began = time.monotonic()
    try:
        value: object = store.result(task_id).get(timeout=timeout)
    except Exception as exc:
        value = exc
    outcomes[task_id] = (value, time.monotonic() - began)


def test_restart_under_waiters_no_waiter_hangs_past_its_timeout(node: CassandraNode) -> None:
    store = resultstore.connect(_url(node, retry_total="60"))
    token = uuid.uuid4().hex[:8]
    outcomes: dict[str, tuple[object, float]] = {}
    try:
        store.store(TaskResult(f"warm-{token}", State.SUCCESS, 1))
        late = [f"late-{token}-{i}" for i in range(12)]
        never = [f"never-{token}-{i}" for i in range(8)]
        threads = [
            threading.Thread(target=functools.partial(_wait, store, t, LONG, outcomes))
            for t in late
        ]
        threads += [
            threading.Thread(target=functools.partial(_wait, store, t, SHORT, outcomes))
            for t in never
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        node.kill()
        # While it is down, a client with a short bound says so clearly.
        with pytest.raises(BackendUnavailableError) as down:
            resultstore.connect(_url(node, retry_total="2", connect_timeout="0.5"))
        assert f"{node.host}:{node.native_port}" in str(down.value)
        node.start()
        for task_id in late:
            store.store(TaskResult(task_id, State.SUCCESS, task_id))
        for thread in threads:
            thread.join(timeout=LONG + 60)
        assert not any(thread.is_alive() for thread in threads), "a waiter hangs"
        for task_id in never:
            value, took = outcomes[task_id]
            assert isinstance(value, ResultTimeoutError), f"{task_id}: {value!r}"
            assert took <= SHORT + SLACK, f"a {SHORT} s waiter took {took:.1f} s"
        for task_id in late:
            value, took = outcomes[task_id]
            assert value == task_id, f"{task_id}: {value!r} after {took:.1f} s"
    finally:
        store.close()
