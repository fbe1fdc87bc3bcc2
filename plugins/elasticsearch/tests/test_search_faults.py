"""Races and faults on the real servers: a 409 storm from 8 processes, a node restarted
under waiting clients, and clear errors when nothing answers."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import resultstore
from resultstore import BackendUnavailableError, ResultStore, StoreOutcome, TaskResult
from resultstore_contract._workers import run_in_processes
from resultstore_contract.servers import Server, free_port
from resultstore_contract.servers._search import SearchNode

from tests._isolation import isolated

PROCESSES = 8
IDS = 12


def storm(store: ResultStore, worker: int, task_ids: list[str]) -> list[tuple[bool, bool]]:
    """STARTED then SUCCESS for every id, as fast as possible; (started, success) stored."""
    outcomes = []
    for task_id in task_ids:
        started = store.store(TaskResult(task_id, "STARTED", worker=f"w{worker}"))
        done = store.store(TaskResult(task_id, "SUCCESS", result={"by": worker}))
        outcomes.append((started.stored, done.stored))
    return outcomes


@pytest.fixture(params=["elasticsearch", "opensearch"])
def server(request: pytest.FixtureRequest) -> Server:
    found: Server = request.getfixturevalue(f"{request.param}_server")
    return found


def test_409_storm_keeps_ready_states_final(server: Server) -> None:
    for url in isolated(server):
        task_ids = [f"storm-{i}" for i in range(IDS)]
        jobs = [(w, task_ids) for w in range(PROCESSES)]
        by_worker = run_in_processes(storm, url, {}, (), jobs, together=True)
        with resultstore.connect(url) as store:
            finals = store.get_many(task_ids)
            for n, task_id in enumerate(task_ids):
                final = finals[task_id]
                assert final is not None, task_id
                assert final.state == "SUCCESS", (task_id, final)
                winners = [w for w in range(PROCESSES) if by_worker[w][n][1]]
                # Exactly one SUCCESS was stored; the document holds that worker's value.
                assert len(winners) == 1, (task_id, winners)
                assert final.result == {"by": winners[0]}
            # Every document is a ready state: a STARTED never replaced a SUCCESS.
            documents = store.backend.run(  # type: ignore[attr-defined]  # SearchBackend
                store.backend.operations._mget(  # type: ignore[attr-defined]
                    store.backend.settings.results_index,  # type: ignore[attr-defined]
                    task_ids,
                )
            )
            assert {d["_source"]["state"] for d in documents.values()} == {"SUCCESS"}


def _waiters(store: ResultStore, task_ids: list[str], timeout: float) -> dict[str, Any]:
    got: dict[str, Any] = {}

    def wait(task_id: str) -> None:
        try:
            got[task_id] = store.result(task_id).get(timeout=timeout)
        except Exception as exc:  # every outcome is checked by the test
            got[task_id] = exc

    threads = [threading.Thread(target=wait, args=(t,), daemon=True) for t in task_ids]
    for thread in threads:
        thread.start()
    got["__threads__"] = threads
    return got


def test_restart_under_waiters(elasticsearch_node: SearchNode) -> None:
    """Waiters poll while the node is stopped and started again (same data, same port):
    results stored before the restart survive it, those stored after reach their
    waiters, and a store sent during the outage lands once it is back; nobody gets
    an error, because retry_total covers the restart."""
    server = elasticsearch_node.server("elasticsearch")
    for url in isolated(server, retry_total="300"):
        with resultstore.connect(url) as store:
            before = [f"before-{i}" for i in range(20)]
            after = [f"after-{i}" for i in range(20)]
            for n, task_id in enumerate(before):
                store.mark_as_done(task_id, n)
            store.store(TaskResult("outage", "STARTED"))
            got = _waiters(store, before + after, timeout=400)
            elasticsearch_node.stop()
            # A write sent while the node is down is tried again until it is back.
            outcome: list[StoreOutcome] = []
            writer = threading.Thread(
                target=lambda out=outcome, client=store: out.append(
                    client.store(TaskResult("outage", "SUCCESS", 7))
                )
            )
            writer.start()
            time.sleep(1.0)
            elasticsearch_node.start(timeout=300)
            for n, task_id in enumerate(after):
                store.mark_as_done(task_id, 100 + n)
            for thread in got.pop("__threads__"):
                thread.join(timeout=120)
            writer.join(timeout=120)
            assert {t: got.get(t) for t in before} == {t: n for n, t in enumerate(before)}
            assert {t: got.get(t) for t in after} == {t: 100 + n for n, t in enumerate(after)}
            assert outcome
            assert outcome[0].stored
            assert outcome[0].previous_state == "STARTED"
            final = store.get("outage")
            assert final is not None
            assert final.result == 7


@pytest.mark.parametrize("scheme", ["elasticsearch", "opensearch+https"])
def test_nothing_listening_is_a_clear_error_without_the_password(scheme: str) -> None:
    port = free_port()
    url = f"{scheme}://alice:s3cret-pw@127.0.0.1:{port}/app?retry_total=1"
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as caught:
        resultstore.connect(url)
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "s3cret-pw" not in message
    assert "retry_total" in message
