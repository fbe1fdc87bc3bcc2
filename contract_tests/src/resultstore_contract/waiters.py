"""Waiting on results through the store under test: handles, the shared hub, push listeners.

A waiter wakes for a result stored before or after it started; on a backend
that declares PUSH, the hub reads the store only when the listener heard
something (counted through the hub's ``round_trips``), and the listener
announces exactly the subscribed ids. A waiter's wake latency under a
steady stream of other results stays within a bound ratio of its latency
with nothing else going on: a listener hands each announcement over as soon
as it is read, never after draining its connection.
"""

from __future__ import annotations

import functools
import statistics
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import pytest
from resultstore import (
    Capability,
    ExceptionInfo,
    PushListener,
    ResultStore,
    ResultTimeoutError,
    State,
    SupportsPush,
    TaskResult,
)

from resultstore_contract._workers import run_in_processes, store_results
from resultstore_contract.support import (
    ContractBase,
    IdFactory,
    StoreFactory,
    requires,
    wait_until,
)

__all__ = ["WaitingContract"]

#: generous bound on any wait that should end promptly (a broken backend must not hang).
WAIT = 30.0
#: wake latency samples per phase (unloaded, then under a stream), and the ids streamed.
LATENCY_SAMPLES = 31
STREAM_IDS = 200
#: loaded median wake latency <= this times the unloaded median, plus two thread
#: switch intervals of the interpreter (the scheduling grain of a busy process).
LATENCY_RATIO = 4.0


def _wait_in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Start ``call`` in a thread; its value (or exception) lands in the returned list."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(call())
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def _get(store: ResultStore, task_id: str) -> Any:
    return store.result(task_id).get(timeout=WAIT)


def _registered(store: ResultStore, *task_ids: str) -> None:
    """Block until the hub watches ``task_ids`` and has applied that (subscribed, on push)."""
    hub = store.hub
    wait_until(lambda: set(task_ids) <= hub.watched_ids(), f"waiters on {task_ids!r}")
    assert hub.flush(timeout=WAIT), "the waiting hub did not apply a new waiter"


def _hear(listener: PushListener, task_id: str, heard: list[str]) -> None:
    """Collect announcements into ``heard`` until ``task_id`` is among them."""

    def listen() -> bool:
        heard.extend(listener.wait(0.05))
        return task_id in heard

    wait_until(listen, f"the listener to announce {task_id!r}")


class WaitingContract(ContractBase):
    """Result handles waiting through the store, and push listeners where declared."""

    def test_wait_result_stored_before_waiting(
        self, store: ResultStore, connect_store: StoreFactory, new_id: IdFactory
    ) -> None:
        task_id = new_id()
        connect_store().store(TaskResult(task_id, State.SUCCESS, {"early": True}))
        assert store.result(task_id).get(timeout=WAIT) == {"early": True}

    def test_wait_result_stored_after_waiting_starts(
        self, store: ResultStore, connect_store: StoreFactory, new_id: IdFactory
    ) -> None:
        task_id = new_id()
        writer = connect_store()
        thread, box = _wait_in_thread(lambda: store.result(task_id).get(timeout=WAIT))
        _registered(store, task_id)
        writer.store(TaskResult(task_id, State.STARTED))
        writer.store(TaskResult(task_id, "PROGRESS", {"done": 1}))
        writer.store(TaskResult(task_id, State.SUCCESS, "late"))
        thread.join(WAIT * 2)
        assert box == ["late"], "the waiter must wake with the ready result, not an earlier state"

    def test_wait_many_waiters_all_wake(
        self, store: ResultStore, connect_store: StoreFactory, new_id: IdFactory
    ) -> None:
        task_ids = [new_id() for _ in range(4)]
        writer = connect_store()
        waiters = [_wait_in_thread(functools.partial(_get, store, t)) for t in task_ids * 2]
        group = _wait_in_thread(lambda: store.group_result("g", task_ids).join(timeout=WAIT))
        _registered(store, *task_ids)
        for n, task_id in enumerate(task_ids):
            writer.store(TaskResult(task_id, State.SUCCESS, n))
        for thread, _ in [*waiters, group]:
            thread.join(WAIT * 2)
        assert [box for _, box in waiters] == [[n] for n in range(4)] * 2
        assert group[1] == [[0, 1, 2, 3]], "a group join returns values in group order"
        if store.supports(Capability.PUSH):
            assert store.hub.listener_opens == 1, "all waiters share one listener"

    def test_wait_failure_is_raised_or_returned(
        self, store: ResultStore, new_id: IdFactory
    ) -> None:
        task_id = new_id()
        info = ExceptionInfo("KeyError", "builtins", ("k",), "'k'")
        store.store(TaskResult(task_id, State.FAILURE, exception=info))
        with pytest.raises(KeyError):
            store.result(task_id).get(timeout=WAIT)
        returned = store.result(task_id).get(timeout=WAIT, propagate=False)
        assert type(returned) is KeyError
        assert returned.args == ("k",)

    def test_wait_timeout_names_the_task(self, store: ResultStore, new_id: IdFactory) -> None:
        task_id = new_id("never-stored")
        with pytest.raises(ResultTimeoutError) as caught:
            store.result(task_id).get(timeout=0.2)
        assert task_id in str(caught.value)
        assert task_id not in store.hub.watched_ids(), "a timed-out waiter left its watch"

    @requires(Capability.PUSH)
    def test_wait_push_wakes_without_polling(
        self, store: ResultStore, connect_store: StoreFactory, new_id: IdFactory
    ) -> None:
        task_id = new_id()
        writer = connect_store()
        hub = store.hub
        thread, box = _wait_in_thread(lambda: store.result(task_id).get(timeout=WAIT))
        _registered(store, task_id)
        # The hub reads a newly watched id once, right after subscribing and
        # before it next listens: count from the first listen after that.
        first = hub.listens
        wait_until(lambda: hub.listens > first, "the hub to listen")
        trips, listens = hub.round_trips, hub.listens
        wait_until(lambda: hub.listens >= listens + 5, "the hub to listen a few times")
        assert hub.round_trips == trips, (
            "with nothing stored, a push backend's waiter read the store: it is polling"
        )
        writer.store(TaskResult(task_id, State.SUCCESS, "pushed"))
        thread.join(WAIT * 2)
        assert box == ["pushed"]
        assert hub.round_trips - trips <= 2, "one announcement should cost about one read"

    @requires(Capability.PUSH)
    def test_wait_listener_announces_exactly_the_subscribed_ids(
        self, store: ResultStore, connect_store: StoreFactory, new_id: IdFactory
    ) -> None:
        writer = connect_store()
        watched, other, marker = new_id("watched"), new_id("other"), new_id("marker")
        listener = cast(SupportsPush, store.backend).listener()
        try:
            listener.subscribe([watched, marker])
            heard: list[str] = []
            writer.store(TaskResult(watched, State.STARTED))
            _hear(listener, watched, heard)
            writer.store(TaskResult(other, State.SUCCESS))
            writer.store(TaskResult(marker, State.STARTED))
            _hear(listener, marker, heard)
            assert other not in heard, "the listener announced an id nobody subscribed"
            listener.unsubscribe([watched])
            later: list[str] = []
            writer.store(TaskResult(watched, State.SUCCESS))
            writer.store(TaskResult(marker, State.SUCCESS))
            _hear(listener, marker, later)
            assert watched not in later, "the listener still announces an unsubscribed id"
        finally:
            listener.close()

    @requires(Capability.PUSH, Capability.SHARED)
    def test_wait_listener_hears_other_processes(
        self,
        store: ResultStore,
        resultstore_url: str,
        store_options: Mapping[str, Any],
        store_plugins: Sequence[object],
        new_id: IdFactory,
    ) -> None:
        task_id = new_id()
        listener = cast(SupportsPush, store.backend).listener()
        try:
            listener.subscribe([task_id])
            done = TaskResult(task_id, State.SUCCESS, "from a child")
            run_in_processes(
                store_results, resultstore_url, store_options, store_plugins, [([done],)]
            )
            _hear(listener, task_id, [])
        finally:
            listener.close()
        assert store.result(task_id).get(timeout=WAIT) == "from a child"

    @requires(Capability.PUSH)
    def test_wait_wake_latency_under_a_stream_of_other_results(
        self, store: ResultStore, connect_store: StoreFactory, new_id: IdFactory
    ) -> None:
        targets = [new_id(f"target-{n}") for n in range(2 * LATENCY_SAMPLES)]
        others = [new_id(f"other-{n}") for n in range(STREAM_IDS)]
        woken: dict[str, float] = {}
        events = {t: threading.Event() for t in targets}

        def arrived(task_id: str, value: object) -> None:
            if task_id in events:
                woken[task_id] = time.perf_counter()
                events[task_id].set()

        watch = store.hub.watch([*targets, *others], arrived)
        stop = threading.Event()
        streamed: list[int] = [0]

        def stream() -> None:
            # Progress of tasks others wait on: announced, read, never ready.
            streamer = connect_store()
            while not stop.is_set():
                task_id = others[streamed[0] % len(others)]
                streamer.store(TaskResult(task_id, "PROGRESS", {"step": streamed[0]}))
                streamed[0] += 1
                time.sleep(0.0002)  # steady, and lets the waiting threads run

        writer = connect_store()

        def streamed_past(mark: int) -> bool:
            return streamed[0] >= mark

        def latencies(ids: Sequence[str], *, loaded: bool) -> list[float]:
            taken = []
            for task_id in ids:
                if loaded:  # a few other results between any two of mine
                    wait_until(functools.partial(streamed_past, streamed[0] + 3), "the stream")
                start = time.perf_counter()
                writer.store(TaskResult(task_id, State.SUCCESS, "mine"))
                assert events[task_id].wait(WAIT), f"the waiter on {task_id!r} never woke"
                taken.append(woken[task_id] - start)
            return taken

        try:
            _registered(store, *targets, *others)
            quiet = latencies(targets[:LATENCY_SAMPLES], loaded=False)
            streamer = threading.Thread(target=stream, daemon=True)
            streamer.start()
            wait_until(lambda: streamed[0] >= 50, "the stream of other results to start")
            before = streamed[0]
            loaded = latencies(targets[LATENCY_SAMPLES:], loaded=True)
            during = streamed[0] - before
            still_streaming = streamer.is_alive()
        finally:
            stop.set()
            watch.cancel()
        streamer.join(WAIT)
        quiet_p50, loaded_p50 = statistics.median(quiet), statistics.median(loaded)
        bound = LATENCY_RATIO * quiet_p50 + 2 * sys.getswitchinterval()
        assert loaded_p50 <= bound, (
            f"under a stream of other results a waiter woke after {loaded_p50 * 1e3:.2f} ms "
            f"(median), against {quiet_p50 * 1e3:.2f} ms with nothing else stored: the "
            f"listener holds announcements back (drains its connection before handing "
            f"them over?); the bound is {bound * 1e3:.2f} ms"
        )
        assert still_streaming, "the stream of other results ended before the measuring did"
        assert during >= LATENCY_SAMPLES, (
            f"only {during} other results were stored while measuring: no steady stream"
        )
