"""The shared waiting hub: one listener or poller per store, whatever the number of waiters."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import cast

import pytest
from resultstore import (
    BackendConfig,
    BackendUnavailableError,
    Capability,
    CorruptPayloadError,
    Options,
    ResultStore,
    ResultStoreError,
    ResultTimeoutError,
    Serializer,
    TaskResult,
    build_hooks,
    connect,
)
from resultstore.api.waiting import Delivery, WaitHub
from resultstore.backends.memory import MemoryBackend, MemoryData, MemoryListener
from resultstore.concepts.urls import parse_url
from resultstore_contract.support import wait_until


class Deliveries:
    """A watch callback that records what it got."""

    def __init__(self) -> None:
        self.got: dict[str, Delivery] = {}
        self.event = threading.Event()

    def __call__(self, task_id: str, value: Delivery) -> None:
        self.got[task_id] = value
        self.event.set()


@pytest.fixture
def memory() -> Iterator[ResultStore]:
    with connect("memory://") as store:
        yield store


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[ResultStore]:
    with connect(f"sqlite:///{tmp_path / 'results.db'}") as store:
        yield store


def hub_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("resultstore-hub")]


# -- push -----------------------------------------------------------------------------------


def test_push_backend_waits_without_polling(memory: ResultStore) -> None:
    hub = memory.hub
    assert hub.mode == "push"
    got = Deliveries()
    hub.watch(["t"], got)
    assert hub.flush(timeout=10)
    trips = hub.round_trips  # the one check right after subscribing
    listens = hub.listens
    wait_until(lambda: hub.listens >= listens + 5, "several idle listener waits")
    assert hub.round_trips == trips
    memory.mark_as_done("t", 1)
    assert got.event.wait(10)
    assert isinstance(got.got["t"], TaskResult)
    assert hub.round_trips == trips + 1


def test_a_new_waiter_is_subscribed_without_waiting_out_the_listen(memory: ResultStore) -> None:
    """The listener is woken for a new id: with a listen slice far longer than
    the waiter's timeout, only the wake can get the second id subscribed."""
    hub = memory.hub
    hub.push_slice = 60.0
    first = Deliveries()
    hub.watch(["a"], first)
    wait_until(lambda: hub.listens >= 1 or hub.listener is not None, "the hub listening")
    time.sleep(0.05)  # let the hub block in its 60 s listen
    second = Deliveries()
    hub.watch(["b"], second)
    wait_until(lambda: "b" in cast(MemoryListener, hub.listener).subscriptions, "b subscribed")
    memory.mark_as_done("b", 2)
    assert second.event.wait(10)
    assert isinstance(second.got["b"], TaskResult)
    memory.mark_as_done("a", 1)
    assert first.event.wait(10)


def test_unready_announcements_do_not_end_the_watch(memory: ResultStore) -> None:
    got = Deliveries()
    memory.hub.watch(["t"], got)
    assert memory.hub.flush(timeout=10)
    memory.mark_as_started("t")
    memory.update_state("t", "PROGRESS", {"current": 1})
    wait_until(lambda: memory.hub.round_trips >= 2, "the announcements to be read")
    assert got.got == {}
    assert memory.hub.watched_ids() == {"t"}


def test_many_waiters_share_one_listener_and_leave_no_subscription(memory: ResultStore) -> None:
    ids = [f"t{i}" for i in range(40)]
    values: dict[str, object] = {}

    def wait(task_id: str) -> None:
        values[task_id] = memory.result(task_id).get(timeout=30)

    threads = [threading.Thread(target=wait, args=(task_id,)) for task_id in ids]
    for thread in threads:
        thread.start()
    wait_until(lambda: memory.hub.watched == len(ids), "every waiter to register")
    assert memory.hub.flush(timeout=10)
    listener = memory.hub.listener
    assert isinstance(listener, MemoryListener)
    assert listener.subscriptions == set(ids)
    for i, task_id in enumerate(ids):
        memory.mark_as_done(task_id, i)
    for thread in threads:
        thread.join(30)
    assert values == {task_id: i for i, task_id in enumerate(ids)}
    assert memory.hub.listener_opens == 1
    assert len(hub_threads()) == 1
    assert memory.hub.flush(timeout=10)
    assert listener.subscriptions == frozenset()


def test_waiter_that_times_out_leaves_no_subscription(memory: ResultStore) -> None:
    with pytest.raises(ResultStoreError):
        memory.result("never").get(timeout=0.1)
    assert memory.hub.flush(timeout=10)
    listener = memory.hub.listener
    assert isinstance(listener, MemoryListener)
    assert listener.subscriptions == frozenset()
    assert memory.hub.watched == 0


def test_an_id_two_waiters_share_stays_subscribed_until_both_are_gone(
    memory: ResultStore,
) -> None:
    hub = memory.hub
    first, second = hub.watch(["t"], Deliveries()), hub.watch(["t"], Deliveries())
    assert hub.flush(timeout=10)
    listener = hub.listener
    assert isinstance(listener, MemoryListener)
    first.cancel()
    assert hub.flush(timeout=10)
    assert listener.subscriptions == {"t"}
    second.cancel()
    assert hub.flush(timeout=10)
    assert listener.subscriptions == frozenset()


class FlakyListener(MemoryListener):
    """A real memory listener whose first wait fails once the test opens the gate."""

    def __init__(self, data: MemoryData, gate: threading.Event | None) -> None:
        super().__init__(data)
        self.gate = gate
        self.closed = False

    def wait(self, timeout: float) -> list[str]:
        if self.gate is not None:
            self.gate.wait(30)
            raise ConnectionError("listener connection lost")
        return super().wait(timeout)

    def close(self) -> None:
        self.closed = True
        super().close()


class FlakyBackend(MemoryBackend):
    """memory:// whose first listener dies; the ones opened after it work."""

    def __init__(self, config: BackendConfig) -> None:
        super().__init__(config)
        self.gate = threading.Event()
        self.listeners: list[FlakyListener] = []

    def listener(self) -> FlakyListener:
        opened = FlakyListener(self.data, self.gate if not self.listeners else None)
        self.listeners.append(opened)
        return opened


def make_store(backend_class: type[MemoryBackend]) -> ResultStore:
    url = parse_url("memory://")
    hooks = build_hooks(entry_points=False)
    serializer = Serializer(hooks=hooks)
    backend = backend_class(BackendConfig(url, serializer, Options({}, source="test"), None))
    return ResultStore(backend, url=url, hooks=hooks, serializer=serializer)


def test_listener_failure_reopens_resubscribes_and_catches_up() -> None:
    with make_store(FlakyBackend) as store:
        backend = store.backend
        assert isinstance(backend, FlakyBackend)
        got = Deliveries()
        store.hub.watch(["a", "b"], got)
        assert store.hub.flush(timeout=10)
        first = backend.listeners[0]
        assert first.subscriptions == {"a", "b"}
        # Stored while the listener is about to fail: its announcement is lost.
        store.mark_as_done("a", "stored while the listener was down")
        backend.gate.set()
        wait_until(lambda: "a" in got.got, "the catch-up read after reopening to deliver 'a'")
        assert store.hub.flush(timeout=10)
        assert store.hub.listener_opens == 2
        assert first.closed
        second = backend.listeners[1]
        assert store.hub.listener is second
        assert second.subscriptions == {"b"}  # resubscribed; "a" dropped once delivered
        store.mark_as_done("b", "after")
        wait_until(lambda: "b" in got.got, "'b' to be announced on the new listener")
        assert isinstance(got.got["b"], TaskResult)
        assert got.got["b"].result == "after"
        assert store.hub.failures == 1
        assert isinstance(store.hub.last_error, ConnectionError)


def test_a_callback_that_raises_does_not_stop_the_hub(memory: ResultStore) -> None:
    def broken(_task_id: str, _value: Delivery) -> None:
        raise RuntimeError("waiter bug")

    memory.hub.watch(["a"], broken)
    memory.mark_as_done("a", 1)
    got = Deliveries()
    memory.hub.watch(["b"], got)
    memory.mark_as_done("b", 2)
    assert got.event.wait(10)
    assert memory.hub.watched == 0


# -- polling ------------------------------------------------------------------------------


def test_poller_backs_off_to_its_cap_and_restarts_short_for_a_new_waiter(
    sqlite: ResultStore,
) -> None:
    hub = WaitHub(sqlite, min_interval=0.001, max_interval=0.02)
    try:
        assert hub.mode == "poll"
        hub.watch(["never"], Deliveries())
        wait_until(lambda: hub.polls >= 15, "fifteen empty polls")
        assert hub.interval == pytest.approx(0.02)
        hub.watch(["other"], Deliveries())
        assert hub.interval < 0.02
    finally:
        hub.close()


def test_a_waiters_interval_caps_the_poll_interval(sqlite: ResultStore) -> None:
    hub = WaitHub(sqlite, min_interval=0.001, max_interval=5.0)
    try:
        watch = hub.watch(["never"], Deliveries(), interval=0.003)
        wait_until(lambda: hub.polls >= 10, "ten polls")
        assert hub.interval == pytest.approx(0.003)
        watch.cancel()
        assert hub.interval > 0.003
    finally:
        hub.close()


def test_poller_reads_all_pending_ids_in_batches(sqlite: ResultStore) -> None:
    hub = WaitHub(sqlite, min_interval=0.001, max_interval=0.005, batch_size=100)
    try:
        # One registration, so that every poll sees all 250 ids.
        hub.watch([f"t{i}" for i in range(250)], Deliveries())
        wait_until(lambda: hub.polls >= 3, "three polls")
    finally:
        hub.close()  # lets the poll under way finish, so the counters agree
    assert hub.round_trips == 3 * hub.polls  # 250 ids in batches of 100


def test_one_poller_for_many_waiters_and_none_when_idle(sqlite: ResultStore) -> None:
    ids = [f"t{i}" for i in range(30)]
    threads = [
        threading.Thread(target=sqlite.result(task_id).get, kwargs={"timeout": 30})
        for task_id in ids
    ]
    for thread in threads:
        thread.start()
    wait_until(lambda: sqlite.hub.watched == len(ids), "every waiter to register")
    assert len(hub_threads()) == 1
    sqlite.store_many([TaskResult(task_id, "SUCCESS", 1) for task_id in ids])
    for thread in threads:
        thread.join(30)
    assert sqlite.hub.watched == 0
    polls = sqlite.hub.polls
    assert sqlite.hub.flush(timeout=10)
    # Nobody waits: the poller is parked, not polling.
    time.sleep(0.05)
    assert sqlite.hub.polls == polls


def test_a_corrupt_payload_is_delivered_as_its_error_and_spares_the_others(
    sqlite: ResultStore,
) -> None:
    got = Deliveries()
    sqlite.hub.watch(["good", "bad"], got)
    assert sqlite.hub.flush(timeout=10)
    sqlite.backend.plant_payload("bad", b"garbage")  # type: ignore[attr-defined]  # sqlite has it
    sqlite.mark_as_done("good", "fine")
    wait_until(lambda: len(got.got) == 2, "both deliveries")
    assert isinstance(got.got["bad"], CorruptPayloadError)
    good = got.got["good"]
    assert isinstance(good, TaskResult)
    assert good.result == "fine"


class UnreachableBackend(MemoryBackend):
    """A polled store whose bulk reads fail, as a server that went away would."""

    capabilities = MemoryBackend.capabilities - {Capability.PUSH}

    def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        raise BackendUnavailableError("connection refused by db.example:5432")


def test_a_timeout_says_when_the_store_could_not_be_read() -> None:
    with make_store(UnreachableBackend) as store:
        store.hub.watch(["t"], Deliveries())
        wait_until(lambda: store.hub.failing is not None, "the poller to fail")
        with pytest.raises(ResultTimeoutError) as caught:
            store.result("t").get(timeout=0.05)
        message = str(caught.value)
        assert "could not be read (BackendUnavailableError: connection refused" in message
        assert isinstance(store.hub.last_error, BackendUnavailableError)


# -- lifecycle ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_closing_the_store_wakes_its_waiters_with_an_error(kind: str, tmp_path: Path) -> None:
    url = "memory://" if kind == "memory" else f"sqlite:///{tmp_path / 'r.db'}"
    store = connect(url)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            store.result("t").get()
        except ResultStoreError as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    wait_until(lambda: store.hub.watched == 1, "the waiter to register")
    hub = store.hub
    store.close()
    waiter.join(10)
    assert not waiter.is_alive()
    assert len(errors) == 1
    assert "closed while waiting for task 't'" in str(errors[0])
    assert not hub.running


def test_a_closed_store_refuses_new_waits(memory: ResultStore) -> None:
    memory.close()
    with pytest.raises(ResultStoreError, match="closed"):
        memory.result("t").get(timeout=1)


def test_hub_refuses_a_bad_interval(memory: ResultStore) -> None:
    with pytest.raises(ValueError, match="interval"):
        memory.hub.watch(["t"], Deliveries(), interval=0)
    with pytest.raises(ValueError, match="min_interval"):
        WaitHub(memory, min_interval=1.0, max_interval=0.5)
