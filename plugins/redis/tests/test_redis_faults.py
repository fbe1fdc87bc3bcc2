"""Faults against real redis-servers: a killed server, racing processes, long waits."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import random
import signal
import subprocess
import threading
import time
import tracemalloc
import uuid
from pathlib import Path

import pytest
import resultstore
from resultstore_contract.servers import Server, redis_command, start_redis
from resultstore_contract.support import wait_until

from . import _chord_worker


def _prefix() -> str:
    return f"f{uuid.uuid4().hex[:12]}:"


def _redis_on(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )


def _wait_pong(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if redis_command(("127.0.0.1", port), "PING") == b"+PONG":
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"redis on port {port} did not come back")


def test_killed_server_restarted_on_the_same_port(tmp_path: Path) -> None:
    """1,000 waiters and a writer survive a SIGKILL of redis and a restart.

    Results stored after the kill reach the new server through the
    writer's retries, and every one of their waiters gets its value. A
    result stored just before the kill may die with the server (it keeps no
    data) before its announcement was read: its waiter gets a clear timeout
    error after its own timeout. None hangs, and the one shared listener is
    reopened a few times, not once per waiter.
    """
    ids = [f"w{i}" for i in range(1000)]
    with start_redis(tmp_path / "first") as server:
        port = server.port
        victim = server.pids[0]
        store = resultstore.connect(server.url, retry_total=30, socket_timeout=2)
        results: dict[str, object] = {}
        errors: dict[str, BaseException] = {}

        async def wait_all() -> None:
            async def one(task_id: str) -> None:
                try:
                    results[task_id] = await store.result(task_id).aget(timeout=15)
                except Exception as exc:  # every failure is checked below
                    errors[task_id] = exc

            await asyncio.gather(*(one(t) for t in ids))

        waiters = threading.Thread(target=lambda: asyncio.run(wait_all()))
        waiters.start()
        # Let every waiter subscribe before anything is stored.
        wait_until(lambda: store.hub.watched == len(ids), "every waiter to subscribe")

        restarted: list[subprocess.Popen[bytes]] = []

        def writer() -> None:
            for n, task_id in enumerate(ids):
                if n == 300:
                    os.kill(victim, signal.SIGKILL)

                    def restart() -> None:
                        time.sleep(1.0)
                        restarted.append(_redis_on(port, tmp_path))

                    threading.Thread(target=restart).start()
                store.mark_as_done(task_id, n)

        write = threading.Thread(target=writer)
        write.start()
        write.join(90)
        waiters.join(90)
        try:
            assert not write.is_alive()
            assert not waiters.is_alive()
            assert set(results) | set(errors) == set(ids)
            assert all(results[t] == n for n, t in enumerate(ids) if t in results)
            # Stored after the kill: every one delivered.
            assert set(ids[300:]) <= set(results)
            # Lost with the old server: a few, each a timeout naming its task.
            assert len(errors) < 50
            for task_id, error in errors.items():
                assert isinstance(error, resultstore.ResultTimeoutError)
                assert task_id in str(error)
            # One listener for 1,000 waiters: reopened by the hub's backoff
            # while the server was down (a handful of tries), never per waiter.
            assert 2 <= store.hub.listener_opens <= 20
            assert store.hub.failures >= 1
        finally:
            store.close()
            for process in restarted:
                process.terminate()
                process.wait(10)


def test_waiters_time_out_cleanly_while_the_server_is_down(tmp_path: Path) -> None:
    with start_redis(tmp_path / "gone") as server:
        store = resultstore.connect(server.url, retry_total=0.5)
        os.kill(server.pids[0], signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(resultstore.ResultStoreError) as info:
            store.result("never").get(timeout=2)
        assert time.monotonic() - started < 10
        assert "never" in str(info.value) or "127.0.0.1" in str(info.value)
        store.close()


def test_chord_parts_from_eight_processes_with_duplicates(redis_server: Server) -> None:
    size = 1000
    prefix = _prefix()
    with resultstore.connect(redis_server.url, key_prefix=prefix) as store:
        store.set_chord_size("big", size)
    rng = random.Random(7)
    indices = list(range(size)) + rng.sample(range(size), size // 10)
    rng.shuffle(indices)
    shares = [indices[i::8] for i in range(8)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(8) as pool:
        reports = pool.starmap(
            _chord_worker.send_parts,
            [(redis_server.url, prefix, "big", share) for share in shares],
        )
    completions = [c for report in reports for c in report]
    assert completions == [list(range(size))]


def test_waiting_on_many_results_one_after_another_stays_flat(redis_server: Server) -> None:
    """Each wait subscribes before the store; nothing stays subscribed or held."""
    count = 20_000
    with resultstore.connect(redis_server.url, key_prefix=_prefix()) as store:
        go = threading.Semaphore(0)
        stop = threading.Event()

        def writer() -> None:
            for n in range(count):
                go.acquire()
                if stop.is_set():
                    return
                store.mark_as_done(f"m{n}", n)

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        tracemalloc.start()
        try:
            checkpoints = []
            for n in range(count):
                handle = store.result(f"m{n}")
                go.release()
                assert handle.get(timeout=10) == n
                if n in (count // 4, count - 1):
                    gc.collect()
                    checkpoints.append(tracemalloc.get_traced_memory()[0])
        finally:
            stop.set()
            go.release()
            tracemalloc.stop()
        thread.join(10)
        growth = checkpoints[1] - checkpoints[0]
        # A leak of one channel or handle per wait would be ~100 bytes x 15,000.
        assert growth < 512 * 1024, f"memory grew by {growth} bytes"
        assert store.hub.watched == 0
        assert store.hub.listener_opens == 1
        channels = redis_command(redis_server.address, "PUBSUB", "CHANNELS", "*")
        assert channels == []
