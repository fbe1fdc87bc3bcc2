"""Faults against real SecantusDB servers: killed and restarted under waiting clients.

The servers keep their data in memory, so a restart loses everything,
change-stream history included. A stream that resumed with its old token
would then skip new events; results stored after the restart must reach
their waiters anyway.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import resultstore
from resultstore import ResultStore, ResultTimeoutError
from resultstore_contract.servers import ServerProcess, free_port
from resultstore_contract.support import wait_until
from resultstore_mongodb.backend import MongoBackend
from resultstore_mongodb.listener import ChangeStreamListener

from ._restart import ready, secantus_on, url

#: the timeout of waiters whose result is stored: generous, a restart takes seconds here.
WAIT = 60.0
#: the timeout of waiters whose result never comes.
NEVER = 8.0


def _start(port: int, workdir: Path, *, standalone: bool = False) -> ServerProcess:
    process = secantus_on(port, workdir, standalone=standalone).start()
    process.wait_ready(lambda: ready(port, standalone), 30)
    return process


def _wait_all(store: ResultStore, timeouts: dict[str, float]) -> dict[str, Any]:
    """Wait on every id from one event loop in a thread; each id's value or exception."""
    outcomes: dict[str, Any] = {}

    async def run() -> None:
        async def one(task_id: str, timeout: float) -> None:
            try:
                outcomes[task_id] = await store.result(task_id).aget(timeout=timeout)
            except Exception as exc:  # every failure is checked by the caller
                outcomes[task_id] = exc

        await asyncio.gather(*(one(t, timeout) for t, timeout in timeouts.items()))

    thread = threading.Thread(target=lambda: asyncio.run(run()))
    thread.start()
    outcomes["__thread__"] = thread
    return outcomes


def _restart_while_waiting(tmp_path: Path, *, standalone: bool) -> None:
    """Waiters wait; a third of the results is stored; the server is killed and
    started again on the same port (empty); the rest is stored. Every waiter
    whose result was stored gets it; the few never stored time out on time."""
    port = free_port()
    processes = [_start(port, tmp_path / "first", standalone=standalone)]
    stored = [f"w{i}" for i in range(150)]
    never = [f"never{i}" for i in range(3)]
    store = resultstore.connect(url(port, standalone), retry_total=60)
    try:
        outcomes = _wait_all(store, {**dict.fromkeys(stored, WAIT), **dict.fromkeys(never, NEVER)})
        hub = store.hub
        wait_until(lambda: hub.watched == len(stored) + len(never), "every waiter to register")
        assert hub.flush(timeout=30)
        before, after = stored[:50], stored[50:]
        for n, task_id in enumerate(before):
            store.mark_as_done(task_id, n)
        wait_until(lambda: all(t in outcomes for t in before), "the first results to arrive")

        os.kill(processes[0].pid, signal.SIGKILL)

        def restart() -> None:
            time.sleep(1.0)
            processes.append(_start(port, tmp_path / "second", standalone=standalone))

        restarter = threading.Thread(target=restart)
        restarter.start()
        # The first of these waits (in server selection) until the new server answers.
        for n, task_id in enumerate(after, start=len(before)):
            store.mark_as_done(task_id, n)
        restarter.join(60)
        thread = outcomes.pop("__thread__")
        thread.join(WAIT + 30)
        assert not thread.is_alive(), "a waiter hung past its timeout"
        assert {t: outcomes[t] for t in stored} == {t: n for n, t in enumerate(stored)}
        for task_id in never:
            error = outcomes[task_id]
            assert isinstance(error, ResultTimeoutError)
            assert task_id in str(error)
        if not standalone:
            # One shared listener, reopened a handful of times, never per waiter.
            assert 1 <= hub.listener_opens <= 10
    finally:
        store.close()
        for process in processes:
            process.stop()


def test_change_stream_waiters_get_results_stored_after_a_restart(tmp_path: Path) -> None:
    _restart_while_waiting(tmp_path, standalone=False)


def test_polling_waiters_get_results_stored_after_a_restart(tmp_path: Path) -> None:
    _restart_while_waiting(tmp_path, standalone=True)


def test_a_listener_whose_server_changed_starts_afresh_and_announces_all(
    tmp_path: Path,
) -> None:
    """A listener cannot tell whether a restarted server kept its history: it opens
    a fresh stream and announces every subscribed id for the hub to read."""
    port = free_port()
    process = _start(port, tmp_path)
    try:
        with resultstore.connect(url(port)) as store:
            backend = store.backend
            assert isinstance(backend, MongoBackend)
            identity = [frozenset({("server", 1)})]
            listener = ChangeStreamListener(
                backend.results, backend.documents.load_result, lambda: identity[0]
            )
            try:
                listener.subscribe(["a", "b"])
                assert listener.wait(0.1) == []
                identity[0] = frozenset({("server", 2)})
                assert listener.wait(0.1) == ["a", "b"]
                assert listener.opens == 2
                # The fresh stream hears new stores as before.
                store.mark_as_done("b", 1)
                heard: list[str] = []

                def hear() -> bool:
                    heard.extend(listener.wait(0.1))
                    return "b" in heard

                wait_until(hear, "the fresh stream to announce b")
                assert listener.take_carried()["b"].result == 1
                # While the client knows no writable server, nothing is decided.
                identity[0] = frozenset()
                assert listener.wait(0.1) == []
                assert listener.opens == 2
            finally:
                listener.close()
    finally:
        process.stop()


def test_waiters_get_a_clear_error_in_bounded_time_while_the_server_is_down(
    tmp_path: Path,
) -> None:
    port = free_port()
    process = _start(port, tmp_path)
    try:
        store = resultstore.connect(url(port), retry_total=1)
        os.kill(process.pid, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(resultstore.ResultStoreError) as info:
            store.result("never").get(timeout=2)
        # Bounded by the timeout and retry_total, far from pymongo's own 30 s.
        assert time.monotonic() - started < 20
        message = str(info.value)
        assert "never" in message or f"127.0.0.1:{port}" in message
        store.close()
    finally:
        process.stop()
