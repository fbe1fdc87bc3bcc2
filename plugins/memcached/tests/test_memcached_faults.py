"""A ring of three real memcacheds losing a node in the middle of a run, and coming back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import resultstore
from resultstore import BackendUnavailableError, ChordError, ResultTimeoutError, State, TaskResult
from resultstore_contract.servers import Server, start_memcached, start_memcached_ring
from resultstore_memcached.backend import MemcachedBackend

WAIT = 4.0


def _refused(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=1).close()
    except OSError:
        return True
    return False


def _kill(pid: int, address: tuple[str, int]) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not _refused(address):
        assert time.monotonic() < deadline, "the killed memcached still answers"
        time.sleep(0.02)


def _on(backend: MemcachedBackend, tag: str) -> str:
    return backend.ring.pick(tag).name


def _ids_on(backend: MemcachedBackend, name: str, want: bool, label: str, n: int) -> list[str]:
    """``n`` ids whose results live on node ``name`` (``want``) or elsewhere (not ``want``)."""
    found: list[str] = []
    counter = 0
    while len(found) < n:
        candidate = f"{label}-{counter}"
        counter += 1
        if (_on(backend, backend.keys.task(candidate)) == name) == want:
            found.append(candidate)
    return found


def _chord_on(backend: MemcachedBackend, name: str, want: bool, label: str) -> str:
    counter = 0
    while True:
        gid = f"{label}-{counter}"
        if (_on(backend, backend.keys.chord(gid)) == name) == want:
            return gid
        counter += 1


@pytest.fixture
def ring(tmp_path: Path) -> Iterator[Server]:
    with start_memcached_ring(tmp_path / "ring") as server:
        yield server


def test_a_node_killed_mid_run(ring: Server) -> None:
    """Kill one of three nodes while waiters wait and writers write.

    No waiter hangs past its timeout; results stored after the kill reach
    the two live nodes and their waiters get them; results that lived on the
    dead node read as missing (a new store of one is a first store again);
    the other nodes' results are untouched; a chord whose keys were on the
    dead node fails with a clear ChordError, one on a live node completes.
    """
    prefix = f"k{uuid.uuid4().hex[:10]}:"
    store = resultstore.connect(
        ring.url, key_prefix=prefix, retry_total=3, timeout=2, dead_timeout=600
    )
    backend = store.backend
    assert isinstance(backend, MemcachedBackend)
    victim_address = ring.nodes[1]
    victim = f"{victim_address[0]}:{victim_address[1]}"
    try:
        lost = _ids_on(backend, victim, True, "lost", 40)
        kept = _ids_on(backend, victim, False, "kept", 80)
        store.store_many([TaskResult(t, State.SUCCESS, t) for t in lost + kept])
        assert all(r is not None for r in store.get_many(lost + kept).values())

        late = _ids_on(backend, victim, True, "late-on", 15)
        late += _ids_on(backend, victim, False, "late-off", 15)
        never = _ids_on(backend, victim, True, "never-on", 10)
        never += _ids_on(backend, victim, False, "never-off", 10)
        outcomes: dict[str, object] = {}
        took: dict[str, float] = {}

        def wait(task_id: str) -> None:
            started = time.monotonic()
            try:
                outcomes[task_id] = store.result(task_id).get(timeout=WAIT)
            except Exception as exc:  # each outcome is checked below
                outcomes[task_id] = exc
            took[task_id] = time.monotonic() - started

        waiters = [threading.Thread(target=wait, args=(t,)) for t in late + never]
        for thread in waiters:
            thread.start()

        doomed = _chord_on(backend, victim, True, "chord-on")
        healthy = _chord_on(backend, victim, False, "chord-off")
        for gid in (doomed, healthy):
            store.set_chord_size(gid, 3)
            store.chord_part_return(gid, 0, TaskResult(f"{gid}-0", State.SUCCESS, 0))

        _kill(ring.pids[1], victim_address)
        for task_id in late:
            store.mark_as_done(task_id, task_id)

        for thread in waiters:
            thread.join(WAIT + 10)
        assert not any(thread.is_alive() for thread in waiters), "a waiter hung"
        assert all(took[t] < WAIT + 3 for t in late + never), took
        assert {t: outcomes[t] for t in late} == {t: t for t in late}
        for task_id in never:
            error = outcomes[task_id]
            assert isinstance(error, ResultTimeoutError), (task_id, error)
            assert task_id in str(error)

        got = store.get_many(lost + kept)
        assert [t for t in kept if got[t] is None] == []
        assert [t for t in lost if got[t] is not None] == []
        # What a cache loses: the ready state went with the node, so the task
        # takes a first store again (on a live node).
        assert store.mark_as_started(lost[0]).previous_state is None

        with pytest.raises(ChordError, match="its server went down"):
            store.chord_part_return(doomed, 1, TaskResult(f"{doomed}-1", State.SUCCESS, 1))
        assert store.get_chord(doomed) is None
        store.chord_part_return(healthy, 1, TaskResult(f"{healthy}-1", State.SUCCESS, 1))
        last = store.chord_part_return(healthy, 2, TaskResult(f"{healthy}-2", State.SUCCESS, 2))
        assert last.complete
        assert last.results is not None
        assert [r.result for r in last.results] == [0, 1, 2]
        # A chord started after the kill lives on a live node and works whole.
        store.set_chord_size(doomed, 1)
        assert store.chord_part_return(doomed, 0, TaskResult("again", State.SUCCESS)).complete
    finally:
        store.close()


def test_a_dead_node_rejoins_after_dead_timeout(ring: Server, tmp_path: Path) -> None:
    """A node taken out comes back after ``dead_timeout``; what was written
    elsewhere meanwhile is then out of reach (the docs say so)."""
    prefix = f"r{uuid.uuid4().hex[:10]}:"
    store = resultstore.connect(ring.url, key_prefix=prefix, retry_total=3, dead_timeout=1)
    backend = store.backend
    assert isinstance(backend, MemcachedBackend)
    host, port = ring.nodes[2]
    victim = f"{host}:{port}"
    task_id = _ids_on(backend, victim, True, "rejoin", 1)[0]
    restarted = None
    try:
        _kill(ring.pids[2], (host, port))
        store.mark_as_done(task_id, "written while the node was out")
        assert _on(backend, backend.keys.task(task_id)) != victim
        argv = ["memcached", "-l", host, "-p", str(port), "-U", "0", "-m", "16"]
        if os.geteuid() == 0:
            argv += ["-u", "root"]
        restarted = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while _refused((host, port)):
            assert time.monotonic() < deadline, "memcached did not come back"
            time.sleep(0.02)
        time.sleep(1.2)
        assert _on(backend, backend.keys.task(task_id)) == victim
        assert store.get(task_id) is None
        store.mark_as_done(task_id, "on the node again")
        result = store.get(task_id)
        assert result is not None
        assert result.result == "on the node again"
    finally:
        store.close()
        if restarted is not None:
            restarted.terminate()
            restarted.wait(10)


def test_a_server_that_stops_answering_bounds_every_call(tmp_path: Path) -> None:
    """SIGSTOP: connections open but nothing answers. A waiter gets its error
    within its own timeout and a store within retry_total, not after the
    connection's 5 s read timeout times the retries."""
    with start_memcached(tmp_path / "stopped") as server:
        store = resultstore.connect(server.url, retry_total=1.5)
        store.mark_as_done("before", 1)
        os.kill(server.pids[0], signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(resultstore.ResultStoreError):
                store.result("never").get(timeout=1)
            assert time.monotonic() - started < 3
            started = time.monotonic()
            with pytest.raises(BackendUnavailableError, match="did not answer"):
                store.mark_as_done("during", 2)
            # A first try bounded by retry_total, then retries within retry_total.
            assert time.monotonic() - started < 2 * 1.5 + 1.5
        finally:
            os.kill(server.pids[0], signal.SIGCONT)
            store.close()
