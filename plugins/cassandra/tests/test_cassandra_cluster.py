"""A three-node cluster on 127.0.0.1-3 (replication factor 3, QUORUM and SERIAL).

The basic group of the contract runs on it (the races of threads and processes run
on the single node; here the kill run races writers and chord parts across
coordinators), then one node is killed
with SIGKILL in the middle of a run of writers, chord parts and waiters: no
acknowledged write is lost, every chord completes exactly once, reads keep
working; the node is restarted and catches up (hinted handoff, then read repair for
the writes in flight at the kill), checked by reading every acknowledged row at
consistency ONE from that node itself.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable

import pytest
import resultstore
from resultstore import ResultStore, State, TaskResult
from resultstore_contract import BasicContract
from resultstore_contract.servers import CassandraCluster, cql_query

KEYSPACE = "rs_cluster"
#: the node the run kills.
VICTIM = 2
WRITERS, TASKS_PER_WRITER = 4, 60
CHORDS, CHORD_SIZE, CHORD_RUNNERS = 4, 12, 3
#: the run's own bound: a call may retry this long while the cluster notices the dead node.
RETRY_TOTAL = 90


@pytest.fixture(scope="module")
def cluster_url(cassandra_cluster: CassandraCluster) -> str:
    return (
        f"{cassandra_cluster.url}/{KEYSPACE}?create_keyspace=true&replication=datacenter1:3"
        f"&read_consistency=QUORUM&write_consistency=QUORUM&serial_consistency=SERIAL"
        f"&local_dc=datacenter1&retry_total={RETRY_TOTAL}"
    )


class TestCassandraClusterContract(BasicContract):
    """The basic group on three nodes at QUORUM."""

    clock_option = "clock"

    @pytest.fixture
    def resultstore_url(self, cluster_url: str) -> str:
        return cluster_url


class _Run:
    """What the threads of the kill run did, shared under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acknowledged: dict[str, object] = {}
        self.completions: dict[str, list[tuple[object, ...]]] = {}
        self.waited: dict[str, object] = {}
        self.errors: list[str] = []

    def guard(self, what: str, work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except Exception as exc:
                with self.lock:
                    self.errors.append(f"{what}: {type(exc).__name__}: {exc}")

        return run


def _writer(store: ResultStore, run: _Run, number: int) -> None:
    for i in range(TASKS_PER_WRITER):
        task_id = f"w{number}-{i}-{run_token}"
        value = {"writer": number, "i": i}
        store.store(TaskResult(task_id, State.STARTED))
        outcome = store.store(TaskResult(task_id, State.SUCCESS, value))
        assert outcome.stored, f"{task_id}: {outcome}"
        with run.lock:
            run.acknowledged[task_id] = value


def _chord_runner(store: ResultStore, run: _Run, seed: int) -> None:
    rng = random.Random(seed)
    order = [(c, i) for c in range(CHORDS) for i in range(CHORD_SIZE)]
    rng.shuffle(order)
    for chord, index in order:
        group_id = f"c{chord}-{run_token}"
        # Every runner returns every part: two of each three calls are duplicates.
        part = TaskResult(f"{group_id}-p{index}", State.SUCCESS, index)
        outcome = store.chord_part_return(group_id, index, part)
        if outcome.complete:
            assert outcome.results is not None
            with run.lock:
                run.completions.setdefault(group_id, []).append(
                    tuple(r.result for r in outcome.results)
                )


def _waiter(store: ResultStore, run: _Run, task_id: str) -> None:
    value = store.result(task_id).get(timeout=RETRY_TOTAL * 2)
    with run.lock:
        run.waited[task_id] = value


run_token = f"{random.getrandbits(32):08x}"


def _present_on(cluster: CassandraCluster, node: int, ids: list[str]) -> int:
    """How many of ``ids`` node ``node`` holds itself (it coordinates and reads at ONE)."""
    found = 0
    for start in range(0, len(ids), 50):
        chunk = ids[start : start + 50]
        listed = ", ".join(f"'{task_id}'" for task_id in chunk)
        found += cql_query(
            cluster.node(node).address,
            f"SELECT task_id FROM {KEYSPACE}.resultstore_taskmeta WHERE task_id IN ({listed})",
            consistency="ONE",
            timeout=30,
        )
    return found


def _read_at_all(cluster: CassandraCluster, node: int, ids: list[str]) -> None:
    """Read ``ids`` at consistency ALL through node ``node``: read repair fixes its copies."""
    for start in range(0, len(ids), 50):
        listed = ", ".join(f"'{task_id}'" for task_id in ids[start : start + 50])
        cql_query(
            cluster.node(node).address,
            f"SELECT task_id, payload FROM {KEYSPACE}.resultstore_taskmeta "
            f"WHERE task_id IN ({listed})",
            consistency="ALL",
            timeout=30,
        )


def test_cluster_sigkill_one_node_mid_run_then_restart_it(
    cassandra_cluster: CassandraCluster, cluster_url: str
) -> None:
    store = resultstore.connect(cluster_url, expires=3600)
    run = _Run()
    try:
        for chord in range(CHORDS):
            store.set_chord_size(f"c{chord}-{run_token}", CHORD_SIZE)
        # Waiters on each writer's middle and last task: answered around and after the kill.
        middle, last = TASKS_PER_WRITER // 2, TASKS_PER_WRITER - 1
        waited_ids = [f"w{n}-{i}-{run_token}" for n in range(WRITERS) for i in (middle, last)]
        work = [(f"waiter {t}", functools.partial(_waiter, store, run, t)) for t in waited_ids]
        work += [(f"writer {n}", functools.partial(_writer, store, run, n)) for n in range(WRITERS)]
        work += [
            (f"chords {n}", functools.partial(_chord_runner, store, run, n))
            for n in range(CHORD_RUNNERS)
        ]
        threads = [threading.Thread(target=run.guard(what, call)) for what, call in work]
        for thread in threads:
            thread.start()
        total = WRITERS * TASKS_PER_WRITER
        deadline = time.monotonic() + 300
        while len(run.acknowledged) < total // 3 and time.monotonic() < deadline and not run.errors:
            time.sleep(0.05)
        acknowledged_before_kill = len(run.acknowledged)
        cassandra_cluster.kill(VICTIM)
        killed_at = time.monotonic()
        for thread in threads:
            thread.join(timeout=600)
        assert not any(thread.is_alive() for thread in threads), "a thread of the run hangs"
        assert not run.errors, "\n".join(run.errors)
        assert 0 < acknowledged_before_kill < total, "the kill did not land mid-run"
        assert len(run.acknowledged) == total

        # Reads keep working with the node down: every acknowledged write is there.
        acknowledged = dict(run.acknowledged)
        read = store.get_many(list(acknowledged))
        lost = [t for t, value in acknowledged.items() if getattr(read[t], "result", None) != value]
        assert not lost, f"{len(lost)} acknowledged writes lost with node {VICTIM} down: {lost[:5]}"
        for task_id in waited_ids:
            assert run.waited[task_id] == acknowledged[task_id]
        for chord in range(CHORDS):
            group_id = f"c{chord}-{run_token}"
            fired = run.completions.get(group_id, [])
            assert len(fired) == 1, f"chord {group_id} completed {len(fired)} times"
            assert fired[0] == tuple(range(CHORD_SIZE)), "chord results not in header order"
            state = store.get_chord(group_id)
            assert state is not None
            assert state.completed

        # Restart the node; it catches up by hinted handoff (reads at ONE on it alone).
        # Hints cover what it missed while down, but not a write that was in flight
        # at the kill and acknowledged by the two others: at most one per writer
        # thread. Those come back by read repair (a read at ALL), as by nodetool repair.
        down_for = time.monotonic() - killed_at
        restarted_in = cassandra_cluster.start(VICTIM)
        ids = list(acknowledged)
        catch_up_deadline = time.monotonic() + 120
        present, steady_since = _present_on(cassandra_cluster, VICTIM, ids), time.monotonic()
        while present < len(ids) and time.monotonic() < catch_up_deadline:
            time.sleep(2)
            now_present = _present_on(cassandra_cluster, VICTIM, ids)
            if now_present != present:
                present, steady_since = now_present, time.monotonic()
            elif time.monotonic() - steady_since > 20:
                break
        assert len(ids) - present <= WRITERS + CHORD_RUNNERS, (
            f"node {VICTIM} holds {present} of {len(ids)} acknowledged rows after its restart "
            f"and hinted handoff (down {down_for:.0f} s, back in {restarted_in:.0f} s)"
        )
        _read_at_all(cassandra_cluster, VICTIM, ids)
        assert _present_on(cassandra_cluster, VICTIM, ids) == len(ids), "read repair missed rows"
        # The client goes on through the restarted node too.
        after = store.get_many(ids)
        assert all(after[t] is not None for t in ids)
    finally:
        store.close()
        if not cassandra_cluster.node(VICTIM).running():
            cassandra_cluster.start(VICTIM)
