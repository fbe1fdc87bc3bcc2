"""Tests of KeyValueBackend over DictKeyValueStore, races included, and of the store itself."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest
from resultstore import (
    READY_STATES,
    BackendConfig,
    BackendUnavailableError,
    Capability,
    ChordError,
    CodecOptions,
    ConfigurationError,
    CorruptPayloadError,
    EncodeError,
    InvalidIdError,
    KeyValueStore,
    Options,
    ResultBackend,
    ResultStore,
    Serializer,
    State,
    SupportsBatchStore,
    SupportsBulkGet,
    SupportsBulkPayloads,
    SupportsChords,
    SupportsGroups,
    UnsupportedOperationError,
    build_hooks,
)
from resultstore.backends.keyvalue import (
    DEFAULT_PREFIX,
    MAX_STORE_ATTEMPTS,
    DictKeyValueStore,
    KeyValueBackend,
)
from resultstore.concepts.models import (
    ChordOutcome,
    ExceptionInfo,
    Group,
    StoreOutcome,
    TaskResult,
    utcnow,
)
from resultstore.concepts.urls import parse_url

THREADS = 8


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_backend(
    store: KeyValueStore | None = None,
    *,
    expires: float | None = 3600.0,
    prefix: str = DEFAULT_PREFIX,
) -> KeyValueBackend:
    return KeyValueBackend(
        store if store is not None else DictKeyValueStore(),
        Serializer(),
        expires=expires,
        prefix=prefix,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def kv(clock: FakeClock) -> DictKeyValueStore:
    return DictKeyValueStore(clock=clock)


@pytest.fixture
def backend(kv: DictKeyValueStore) -> KeyValueBackend:
    return make_backend(kv, expires=100.0)


def success(task_id: str, value: object = None) -> TaskResult:
    return TaskResult(task_id, State.SUCCESS, result=value, date_done=utcnow())


# -- stores that really race ------------------------------------------------------


class NetworkLikeStore(DictKeyValueStore):
    """Gives other threads the GIL before each operation, as a network round trip
    would, so that threads interleave between the backend's calls."""

    def get(self, key: str) -> bytes | None:
        time.sleep(0)
        return super().get(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        time.sleep(0)
        return super().get_many(keys)

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        time.sleep(0)
        super().set(key, value, ttl)

    def compare_and_set(
        self, key: str, expected: bytes | None, value: bytes, ttl: float | None
    ) -> bool:
        time.sleep(0)
        return super().compare_and_set(key, expected, value, ttl)

    def add_to_set(self, key: str, member: str, ttl: float | None) -> tuple[bool, int]:
        time.sleep(0)
        return super().add_to_set(key, member, ttl)


class RacingStore(DictKeyValueStore):
    """Runs a rival writer between a backend's read and its compare-and-set on a
    task key, as another process would; the rival's own writes pass straight through."""

    def __init__(self) -> None:
        super().__init__()
        self.rival: Callable[[], object] = lambda: None
        self.pending = 0
        self.injected = 0
        self._in_rival = False

    def compare_and_set(
        self, key: str, expected: bytes | None, value: bytes, ttl: float | None
    ) -> bool:
        if self.pending and not self._in_rival and key.startswith(DEFAULT_PREFIX + "task:"):
            self.pending -= 1
            self.injected += 1
            self._in_rival = True
            try:
                self.rival()
            finally:
                self._in_rival = False
        return super().compare_and_set(key, expected, value, ttl)


class SetRacingStore(DictKeyValueStore):
    """Runs a rival right after the first chord part joins the parts set, before its
    caller goes on: the moment another worker could complete the chord."""

    def __init__(self) -> None:
        super().__init__()
        self.rival: Callable[[], object] = lambda: None
        self.pending = 1

    def add_to_set(self, key: str, member: str, ttl: float | None) -> tuple[bool, int]:
        outcome = super().add_to_set(key, member, ttl)
        if self.pending:
            self.pending -= 1
            self.rival()
        return outcome


class KeyAnnouncer:
    """A push listener over keys, fed by PushingStore."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.subscribed: set[str] = set()
        self.announced: list[str] = []

    def subscribe(self, task_ids: Iterable[str]) -> None:
        with self.cond:
            self.subscribed.update(task_ids)

    def unsubscribe(self, task_ids: Iterable[str]) -> None:
        with self.cond:
            self.subscribed.difference_update(task_ids)

    def announce(self, key: str) -> None:
        with self.cond:
            if key in self.subscribed:
                self.announced.append(key)
                self.cond.notify_all()

    def wait(self, timeout: float) -> list[str]:
        with self.cond:
            if not self.announced:
                self.cond.wait(timeout)
            announced, self.announced = self.announced, []
            return announced

    def close(self) -> None:
        with self.cond:
            self.subscribed.clear()


class PushingStore(DictKeyValueStore):
    """A store that announces written keys and purges on demand (PUSH and CLEANUP)."""

    capabilities = frozenset({Capability.AUTO_EXPIRY, Capability.PUSH, Capability.CLEANUP})

    def __init__(self, *, clock: Callable[[], float]) -> None:
        super().__init__(clock=clock)
        self.listeners: list[KeyAnnouncer] = []

    def listener(self) -> KeyAnnouncer:
        listener = KeyAnnouncer()
        self.listeners.append(listener)
        return listener

    def _announce(self, key: str) -> None:
        for listener in self.listeners:
            listener.announce(key)

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        super().set(key, value, ttl)
        self._announce(key)

    def compare_and_set(
        self, key: str, expected: bytes | None, value: bytes, ttl: float | None
    ) -> bool:
        done = super().compare_and_set(key, expected, value, ttl)
        if done:
            self._announce(key)
        return done


# -- declared capabilities and protocols --------------------------------------------


def test_declares_protocols_and_the_stores_own_capabilities(backend: KeyValueBackend) -> None:
    assert isinstance(DictKeyValueStore(), KeyValueStore)
    for protocol in (
        ResultBackend,
        SupportsBulkGet,
        SupportsBulkPayloads,
        SupportsBatchStore,
        SupportsGroups,
        SupportsChords,
    ):
        assert isinstance(backend, protocol)
    assert backend.capabilities == {
        Capability.AUTO_EXPIRY,
        Capability.BULK_GET,
        Capability.BULK_PAYLOADS,
        Capability.BATCH_STORE,
        Capability.GROUPS,
        Capability.CHORDS,
    }


def test_passes_store_capabilities_through_except_native_async() -> None:
    class SharedStore(DictKeyValueStore):
        capabilities = frozenset(
            {Capability.PERSISTENT, Capability.SHARED, Capability.NATIVE_ASYNC}
        )

    caps = make_backend(SharedStore()).capabilities
    assert {Capability.PERSISTENT, Capability.SHARED} <= caps
    assert Capability.NATIVE_ASYNC not in caps
    assert Capability.AUTO_EXPIRY not in caps


def test_store_declaring_push_without_listener_is_refused() -> None:
    class Boasting(DictKeyValueStore):
        capabilities = frozenset({Capability.PUSH})

    with pytest.raises(ConfigurationError, match=r"listener\(\)"):
        make_backend(Boasting())


def test_push_and_cleanup_are_unsupported_without_the_store_capability(
    backend: KeyValueBackend,
) -> None:
    with pytest.raises(UnsupportedOperationError, match="push capability"):
        backend.listener()
    with pytest.raises(UnsupportedOperationError, match="cleanup capability"):
        backend.cleanup()


@pytest.mark.parametrize("expires", [0.0, -5.0])
def test_nonpositive_expires_is_a_configuration_error(expires: float) -> None:
    with pytest.raises(ConfigurationError, match="positive number of seconds"):
        make_backend(expires=expires)


# -- results -------------------------------------------------------------------------


def test_store_and_get_round_trip_a_full_result(backend: KeyValueBackend) -> None:
    result = TaskResult(
        "t1",
        State.FAILURE,
        exception=ExceptionInfo("ValueError", "builtins", ("bad",), "bad"),
        traceback="Traceback ...",
        date_done=utcnow(),
        children=("c1", "c2"),
        group_id="g",
        name="tasks.add",
        args=(1, 2),
        kwargs={"x": 1},
        retries=2,
    )
    assert backend.store(result) == StoreOutcome(stored=True, state=State.FAILURE)
    assert backend.get("t1") == result


def test_unknown_forgotten_and_forget_twice(backend: KeyValueBackend) -> None:
    assert backend.get("nope") is None
    backend.store(success("t", 1))
    backend.forget("t")
    backend.forget("t")
    backend.forget("never-there")
    assert backend.get("t") is None


def test_unready_states_follow_each_other_and_report_the_previous_one(
    backend: KeyValueBackend,
) -> None:
    assert backend.store(TaskResult("t", State.RECEIVED)).previous_state is None
    outcome = backend.store(TaskResult("t", "PROGRESS", result={"done": 3}))
    assert outcome == StoreOutcome(stored=True, state="PROGRESS", previous_state=State.RECEIVED)
    outcome = backend.store(TaskResult("t", State.STARTED))
    assert outcome == StoreOutcome(stored=True, state=State.STARTED, previous_state="PROGRESS")


@pytest.mark.parametrize("ready", sorted(READY_STATES))
def test_a_ready_state_is_final_unless_overwrite(backend: KeyValueBackend, ready: str) -> None:
    first = TaskResult("t", ready, result="first")
    backend.store(first)
    for later in (State.STARTED, "PROGRESS", State.SUCCESS, State.FAILURE):
        outcome = backend.store(TaskResult("t", later, result="later"))
        assert outcome == StoreOutcome(stored=False, state=ready, previous_state=ready)
    assert backend.get("t") == first
    replaced = TaskResult("t", State.STARTED, result="again")
    outcome = backend.store(replaced, overwrite=True)
    assert outcome == StoreOutcome(stored=True, state=State.STARTED, previous_state=ready)
    assert backend.get("t") == replaced


def test_custom_state_with_awkward_characters_is_kept_exactly(backend: KeyValueBackend) -> None:
    state = "stage 2/3\n: 50%é"
    backend.store(TaskResult("t", state, result={"pct": 50}))
    outcome = backend.store(TaskResult("t", State.STARTED))
    assert outcome.previous_state == state
    backend.store(TaskResult("t", state))
    got = backend.get("t")
    assert got is not None
    assert got.state == state


def test_get_many_has_every_id_as_a_key(backend: KeyValueBackend) -> None:
    a, b = success("a", 1), TaskResult("b", "PROGRESS", result={"n": 2})
    backend.store(a)
    backend.store(b)
    got = backend.get_many(["b", "missing", "a", "b"])
    assert got == {"a": a, "b": b, "missing": None}
    assert backend.get_many([]) == {}


def test_store_many_in_order_with_refusals_inside_one_batch(backend: KeyValueBackend) -> None:
    backend.store(success("done", "kept"))
    outcomes = backend.store_many(
        [
            TaskResult("x", State.STARTED),
            success("x", "won"),
            TaskResult("x", State.STARTED),
            TaskResult("done", State.STARTED),
            TaskResult("y", "PROGRESS"),
        ]
    )
    assert outcomes == [
        StoreOutcome(stored=True, state=State.STARTED, previous_state=None),
        StoreOutcome(stored=True, state=State.SUCCESS, previous_state=State.STARTED),
        StoreOutcome(stored=False, state=State.SUCCESS, previous_state=State.SUCCESS),
        StoreOutcome(stored=False, state=State.SUCCESS, previous_state=State.SUCCESS),
        StoreOutcome(stored=True, state="PROGRESS", previous_state=None),
    ]
    x, done = backend.get("x"), backend.get("done")
    assert x is not None
    assert done is not None
    assert (x.result, done.result) == ("won", "kept")
    assert backend.store_many([]) == []


def test_store_many_with_an_unencodable_result_stores_nothing(backend: KeyValueBackend) -> None:
    with pytest.raises(EncodeError):
        backend.store_many([success("fine", 1), success("bad", object())])
    assert backend.get_many(["fine", "bad"]) == {"fine": None, "bad": None}


def test_results_live_under_the_documented_keys(kv: DictKeyValueStore) -> None:
    mine = make_backend(kv, prefix="app1:")
    theirs = make_backend(kv, prefix="app2:")
    mine.store(success("t", "mine"))
    assert theirs.get("t") is None
    raw = kv.get("app1:task:t")
    assert raw is not None
    assert raw.startswith(b"rskv1 state=SUCCESS\n")
    mine.save_group(Group("g", ("t",)))
    assert kv.get("app1:group:g") is not None
    mine.set_chord_size("c", 1)
    assert kv.get("app1:chord:c:size") == b"1"
    mine.chord_part_return("c", 0, success("t"))
    assert kv.get("app1:chord:c:part:0") is not None
    assert kv.get("app1:chord:c:done") == b"unsent"
    assert kv.add_to_set("app1:chord:c:parts", "0", None) == (False, 1)


def test_works_behind_the_result_store_facade() -> None:
    serializer = Serializer()
    backend = KeyValueBackend(DictKeyValueStore(), serializer)
    facade = ResultStore(
        backend,
        url=parse_url("memory://"),
        hooks=build_hooks(entry_points=False),
        serializer=serializer,
    )
    facade.mark_as_done("t", 42)
    assert not facade.mark_as_started("t").stored
    got = facade.get("t")
    assert got is not None
    assert (got.state, got.result) == (State.SUCCESS, 42)
    assert facade.supports(Capability.CHORDS)


# -- ready-final under real races ----------------------------------------------------


def test_ready_state_is_never_lost_with_threads_racing() -> None:
    backend = make_backend(NetworkLikeStore())
    task_ids = [f"t{i}" for i in range(150)]
    barrier = threading.Barrier(THREADS)
    outcomes: list[list[tuple[str, int, StoreOutcome]]] = [[] for _ in range(THREADS)]

    def worker(n: int) -> None:
        rng = random.Random(n)
        barrier.wait()
        for task_id in task_ids:
            final = success(task_id, n) if n % 2 else TaskResult(task_id, State.REVOKED, result=n)
            for result in (TaskResult(task_id, State.STARTED), final, TaskResult(task_id, "P")):
                if rng.random() < 0.5:
                    outcomes[n].append((task_id, n, backend.store(result)))
                else:
                    outcomes[n].append((task_id, n, backend.store_many([result])[0]))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners: dict[str, list[int]] = {task_id: [] for task_id in task_ids}
    for task_id, n, outcome in (item for items in outcomes for item in items):
        if outcome.stored and outcome.state in READY_STATES:
            winners[task_id].append(n)
        if not outcome.stored:
            assert outcome.state in READY_STATES
    for task_id, won in winners.items():
        assert len(won) == 1, f"{task_id} stored a ready state {len(won)} times"
        got = backend.get(task_id)
        assert got is not None
        assert got.result == won[0]
        assert got.state in READY_STATES


# -- the compare-and-set retry path --------------------------------------------------


def test_a_rival_unready_write_between_read_and_cas_is_retried() -> None:
    kv = RacingStore()
    backend, rival = make_backend(kv), make_backend(kv)
    kv.rival = lambda: rival.store(TaskResult("t", "PROGRESS", result={"pct": 10}))
    kv.pending = 1
    outcome = backend.store(success("t", "mine"))
    assert kv.injected == 1
    # The first read saw nothing; only a re-read can know the rival's state.
    assert outcome == StoreOutcome(stored=True, state=State.SUCCESS, previous_state="PROGRESS")
    got = backend.get("t")
    assert got is not None
    assert got.result == "mine"


def test_a_rival_ready_write_between_read_and_cas_wins() -> None:
    kv = RacingStore()
    backend, rival = make_backend(kv), make_backend(kv)
    backend.store(TaskResult("t", State.STARTED))
    kv.rival = lambda: rival.store(success("t", "rival"))
    kv.pending = 1
    outcome = backend.store(success("t", "mine"))
    assert outcome == StoreOutcome(stored=False, state=State.SUCCESS, previous_state=State.SUCCESS)
    got = backend.get("t")
    assert got is not None
    assert got.result == "rival"


def test_store_many_retries_a_lost_race_too() -> None:
    kv = RacingStore()
    backend, rival = make_backend(kv), make_backend(kv)
    kv.rival = lambda: rival.store(TaskResult("b", State.RETRY))
    kv.pending = 1
    outcomes = backend.store_many([success("a", 1), success("b", 2)])
    assert outcomes[0] == StoreOutcome(stored=True, state=State.SUCCESS, previous_state=None)
    # The injection happened at the first CAS (task a); b was read before it.
    assert kv.injected == 1
    assert outcomes[1] == StoreOutcome(stored=True, state=State.SUCCESS, previous_state=State.RETRY)


def test_endless_rival_writes_exhaust_the_bounded_retries() -> None:
    kv = RacingStore()
    backend, rival = make_backend(kv), make_backend(kv)
    counter = iter(range(10**6))
    kv.rival = lambda: rival.store(TaskResult("t", "PROGRESS", result=next(counter)))
    kv.pending = 10**6
    with pytest.raises(BackendUnavailableError, match="compare-and-set race"):
        backend.store(success("t", "mine"))
    assert kv.injected == MAX_STORE_ATTEMPTS
    got = backend.get("t")
    assert got is not None
    assert got.state == "PROGRESS"


# -- corrupt data --------------------------------------------------------------------


def test_a_planted_corrupt_payload_raises_corrupt_payload_error(backend: KeyValueBackend) -> None:
    backend.plant_payload("t", b"\x00\x01 not a resultstore payload")
    with pytest.raises(CorruptPayloadError, match="resultstore header"):
        backend.get("t")
    with pytest.raises(CorruptPayloadError):
        backend.get_many(["t"])


@pytest.mark.parametrize(
    "raw", [b"garbage", b"rskv1 state=\nrs1 codec=json\n{}", b"rskv1 state=%FF\nx"]
)
def test_a_foreign_value_at_a_task_key_raises_corrupt_payload_error(
    backend: KeyValueBackend, kv: DictKeyValueStore, raw: bytes
) -> None:
    kv.set(DEFAULT_PREFIX + "task:t", raw, None)
    with pytest.raises(CorruptPayloadError):
        backend.get("t")


def test_store_over_a_damaged_value_needs_overwrite(
    backend: KeyValueBackend, kv: DictKeyValueStore
) -> None:
    kv.set(DEFAULT_PREFIX + "task:t", b"garbage", None)
    with pytest.raises(CorruptPayloadError, match="Forget the task"):
        backend.store(TaskResult("t", State.STARTED))
    assert kv.get(DEFAULT_PREFIX + "task:t") == b"garbage"
    repaired = success("t", 1)
    outcome = backend.store(repaired, overwrite=True)
    assert outcome == StoreOutcome(stored=True, state=State.SUCCESS, previous_state=None)
    assert backend.get("t") == repaired


# -- groups --------------------------------------------------------------------------


def test_groups_save_get_replace_delete(backend: KeyValueBackend) -> None:
    assert backend.get_group("g") is None
    group = Group("g", ("a", "b"), date_done=utcnow())
    backend.save_group(group)
    assert backend.get_group("g") == group
    bigger = Group("g", ("a", "b", "c"))
    backend.save_group(bigger)
    assert backend.get_group("g") == bigger
    backend.delete_group("g")
    backend.delete_group("g")
    assert backend.get_group("g") is None


# -- chords --------------------------------------------------------------------------


def test_chord_records_parts_and_completes_once_in_header_order(
    backend: KeyValueBackend,
) -> None:
    assert backend.get_chord("c") is None
    backend.set_chord_size("c", 3)
    first = backend.chord_part_return("c", 2, success("p2", 2))
    assert first == ChordOutcome("c", 2, complete=False, duplicate=False, received=1, size=3)
    again = backend.chord_part_return("c", 2, success("p2", "second payload"))
    assert again == ChordOutcome("c", 2, complete=False, duplicate=True, received=1, size=3)
    backend.chord_part_return("c", 0, success("p0", 0))
    state = backend.get_chord("c")
    assert state is not None
    assert (state.size, state.received, state.completed) == (3, frozenset({0, 2}), False)
    last = backend.chord_part_return("c", 1, TaskResult("p1", State.FAILURE))
    assert last.complete
    assert not last.duplicate
    assert last.results is not None
    assert [r.task_id for r in last.results] == ["p0", "p1", "p2"]
    # A duplicate is ignored: the first payload for index 2 is the one kept.
    assert last.results[2].result == 2
    assert [r.task_id for r in last.failed_parts] == ["p1"]
    late = backend.chord_part_return("c", 1, success("p1"))
    assert late.duplicate
    assert not late.complete
    assert late.results is None
    state = backend.get_chord("c")
    assert state is not None
    assert (state.received, state.completed) == (frozenset({0, 1, 2}), True)


def test_chord_without_size_or_out_of_range(backend: KeyValueBackend) -> None:
    with pytest.raises(ChordError, match=r"no size set .* set_chord_size\('c', n\)"):
        backend.chord_part_return("c", 0, success("p"))
    backend.set_chord_size("c", 2)
    for index in (-1, 2):
        with pytest.raises(ChordError, match=r"out of range 0\.\.1"):
            backend.chord_part_return("c", index, success("p"))
    with pytest.raises(ChordError, match=">= 0"):
        backend.set_chord_size("c", -1)


def test_a_damaged_chord_size_is_reported(backend: KeyValueBackend, kv: DictKeyValueStore) -> None:
    kv.set(DEFAULT_PREFIX + "chord:c:size", b"three", None)
    with pytest.raises(CorruptPayloadError, match="set_chord_size"):
        backend.chord_part_return("c", 0, success("p"))


def test_the_done_marker_keeps_completion_once_only_if_the_parts_set_is_lost(
    backend: KeyValueBackend, kv: DictKeyValueStore
) -> None:
    backend.set_chord_size("c", 2)
    backend.chord_part_return("c", 0, success("p0"))
    assert backend.chord_part_return("c", 1, success("p1")).complete
    kv.delete([DEFAULT_PREFIX + "chord:c:parts"])
    replay = [backend.chord_part_return("c", i, success(f"p{i}")) for i in (0, 1)]
    assert [o.duplicate for o in replay] == [False, False]
    assert replay[1].received == 2
    assert not any(o.complete for o in replay)


def test_a_part_is_readable_as_soon_as_it_is_counted() -> None:
    kv = SetRacingStore()
    backend, rival = make_backend(kv), make_backend(kv)
    backend.set_chord_size("c", 2)
    rival_outcomes: list[ChordOutcome] = []
    kv.rival = lambda: rival_outcomes.append(rival.chord_part_return("c", 1, success("p1", 1)))
    mine = backend.chord_part_return("c", 0, success("p0", 0))
    assert not mine.complete
    (theirs,) = rival_outcomes
    assert theirs.complete
    assert theirs.results is not None
    assert [r.result for r in theirs.results] == [0, 1]


def test_chord_of_500_parts_from_threads_with_duplicates_completes_once_in_order() -> None:
    backend = make_backend(NetworkLikeStore())
    size = 500
    backend.set_chord_size("big", size)
    calls = list(range(size)) * 2
    random.Random(7).shuffle(calls)
    shares = [calls[n::THREADS] for n in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    outcomes: list[list[ChordOutcome]] = [[] for _ in range(THREADS)]

    def worker(n: int) -> None:
        barrier.wait()
        for index in shares[n]:
            part = success(f"part-{index}", index)
            outcomes[n].append(backend.chord_part_return("big", index, part))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    every = [o for items in outcomes for o in items]
    assert len(every) == 2 * size
    completions = [o for o in every if o.complete]
    assert len(completions) == 1
    results = completions[0].results
    assert results is not None
    assert [r.result for r in results] == list(range(size))
    assert [r.task_id for r in results] == [f"part-{i}" for i in range(size)]
    assert not completions[0].duplicate
    # Each index was recorded by exactly one of its two calls.
    recorded = Counter(o.index for o in every if not o.duplicate)
    assert recorded == Counter(range(size))
    state = backend.get_chord("big")
    assert state is not None
    assert state.completed
    assert state.received == frozenset(range(size))


# -- expiry --------------------------------------------------------------------------


def test_results_and_groups_expire(
    backend: KeyValueBackend, kv: DictKeyValueStore, clock: FakeClock
) -> None:
    backend.store(success("t", 1))
    backend.save_group(Group("g", ("t",)))
    clock.advance(99)
    assert backend.get("t") is not None
    assert backend.get_group("g") is not None
    clock.advance(1)
    assert backend.get("t") is None
    assert backend.get_many(["t"]) == {"t": None}
    assert backend.get_group("g") is None
    # An expired ready state is gone: a new store is not refused.
    assert backend.store(TaskResult("t", State.STARTED)).stored


def test_expires_none_keeps_everything(kv: DictKeyValueStore, clock: FakeClock) -> None:
    backend = make_backend(kv, expires=None)
    backend.store(success("t", 1))
    backend.set_chord_size("c", 2)
    clock.advance(10**9)
    assert backend.get("t") is not None
    assert backend.get_chord("c") is not None


def test_chord_parts_refresh_the_chord_ttl(backend: KeyValueBackend, clock: FakeClock) -> None:
    backend.set_chord_size("c", 3)
    clock.advance(60)
    backend.chord_part_return("c", 0, success("p0"))
    clock.advance(60)  # the size was set 120 s ago: only the part's refresh kept it
    backend.chord_part_return("c", 1, success("p1"))
    clock.advance(30)
    assert backend.chord_part_return("c", 2, success("p2")).complete
    clock.advance(100)
    assert backend.get_chord("c") is None
    with pytest.raises(ChordError, match="no size set"):
        backend.chord_part_return("c", 0, success("p0"))


def test_a_chord_whose_early_parts_expired_says_so(
    backend: KeyValueBackend, clock: FakeClock
) -> None:
    backend.set_chord_size("c", 3)
    backend.chord_part_return("c", 0, success("p0"))
    clock.advance(90)
    backend.chord_part_return("c", 1, success("p1"))
    clock.advance(60)  # part 0 is 150 s old now
    with pytest.raises(ChordError, match=r"parts \[0\] expired .* raise expires"):
        backend.chord_part_return("c", 2, success("p2"))


# -- push and cleanup from a store that has them -----------------------------------


def test_push_and_cleanup_come_from_a_store_that_declares_them(clock: FakeClock) -> None:
    kv = PushingStore(clock=clock)
    backend = make_backend(kv, expires=100.0)
    assert {Capability.PUSH, Capability.CLEANUP} <= backend.capabilities

    listener = backend.listener()
    listener.subscribe(["t1", "c"])
    backend.store(success("t1"))
    backend.store(success("t2"))
    backend.set_chord_size("c", 1)  # a chord key, never a task announcement
    assert listener.wait(0) == ["t1"]
    listener.unsubscribe(["t1"])
    backend.store(success("t1", 2), overwrite=True)
    assert listener.wait(0) == []
    listener.close()

    backend.save_group(Group("g", ("t1",)))
    clock.advance(100)
    assert len(kv) == 4
    assert backend.cleanup() == 2
    assert len(kv) == 0


# -- building from a config ---------------------------------------------------------


def test_from_config_takes_prefix_serializer_and_expires(clock: FakeClock) -> None:
    kv = DictKeyValueStore(clock=clock)
    options = Options({"prefix": "jobs:", "other": "x"}, source="test://")
    serializer = Serializer(CodecOptions(codec="msgpack"))
    config = BackendConfig(parse_url("memory://"), serializer, options, expires=10.0)
    backend = KeyValueBackend.from_config(kv, config)
    assert options.remaining() == {"other": "x"}
    backend.store(success("t", b"bytes need msgpack"))
    raw = kv.get("jobs:task:t")
    assert raw is not None
    assert b"codec=msgpack" in raw
    clock.advance(10)
    assert backend.get("t") is None


def test_from_config_rejects_a_prefix_that_is_not_a_string() -> None:
    options = Options({"prefix": 12}, source="test://")
    config = BackendConfig(parse_url("memory://"), Serializer(), options)
    with pytest.raises(ConfigurationError, match="prefix must be a string"):
        KeyValueBackend.from_config(DictKeyValueStore(), config)


def test_from_config_defaults_to_the_default_prefix() -> None:
    kv = DictKeyValueStore()
    options = Options({}, source="test://")
    backend = KeyValueBackend.from_config(
        kv, BackendConfig(parse_url("memory://"), Serializer(), options)
    )
    backend.store(success("t"))
    assert kv.get(DEFAULT_PREFIX + "task:t") is not None


# -- DictKeyValueStore itself --------------------------------------------------------


def test_dict_store_compare_and_set(kv: DictKeyValueStore) -> None:
    assert kv.compare_and_set("k", None, b"1", None)
    assert not kv.compare_and_set("k", None, b"2", None)
    assert not kv.compare_and_set("k", b"0", b"2", None)
    assert kv.compare_and_set("k", b"1", b"2", None)
    assert kv.get("k") == b"2"


def test_dict_store_sets_get_many_and_delete(kv: DictKeyValueStore) -> None:
    assert kv.add_to_set("s", "a", None) == (True, 1)
    assert kv.add_to_set("s", "b", None) == (True, 2)
    assert kv.add_to_set("s", "a", None) == (False, 2)
    kv.set("x", b"x", None)
    assert kv.get_many(["missing", "x"]) == [None, b"x"]
    with pytest.raises(TypeError, match="holds a set"):
        kv.get("s")
    with pytest.raises(TypeError, match="holds bytes"):
        kv.add_to_set("x", "m", None)
    kv.delete(["s", "x", "missing"])
    assert kv.get_many(["s", "x"]) == [None, None]


def test_dict_store_ttl(kv: DictKeyValueStore, clock: FakeClock) -> None:
    kv.set("short", b"v", 5)
    kv.set("kept", b"v", None)
    kv.add_to_set("s", "a", 5)
    clock.advance(4)
    kv.add_to_set("s", "b", 5)  # refreshes the whole set
    clock.advance(1)
    assert kv.get("short") is None
    assert kv.compare_and_set("short", None, b"new", None)
    assert kv.add_to_set("s", "c", 5) == (True, 3)
    with pytest.raises(ValueError, match="ttl must be a positive"):
        kv.set("bad", b"v", 0)


def test_dict_store_purges_expired_keys(kv: DictKeyValueStore, clock: FakeClock) -> None:
    kv.set("a", b"1", 1)
    kv.set("b", b"1", 2)
    kv.set("c", b"1", None)
    clock.advance(1)
    assert kv.purge_expired() == ["a"]
    assert len(kv) == 2


def test_dict_store_sweeps_expired_keys_as_writes_go_on(
    kv: DictKeyValueStore, clock: FakeClock
) -> None:
    for i in range(2000):
        kv.set(f"k{i}", b"v", 1)
        clock.advance(1)
    # Without sweeping, 2000 keys would be held; nothing ever read them.
    assert len(kv) < 1100


@pytest.mark.parametrize("bad", [{"$gt": ""}, "nul\x00", "", "lone\ud800"])
def test_the_shared_base_checks_ids_for_backends_used_directly(
    backend: KeyValueBackend, bad: Any
) -> None:
    # Backends built on KeyValueBackend get the core's id rule even when a
    # caller skips the ResultStore facade.
    for call in (
        lambda: backend.get(bad),
        lambda: backend.get_many([bad]),
        lambda: backend.forget(bad),
        lambda: backend.store(TaskResult(bad, State.SUCCESS)),
        lambda: backend.get_group(bad),
        lambda: backend.delete_group(bad),
    ):
        with pytest.raises(InvalidIdError):
            call()
