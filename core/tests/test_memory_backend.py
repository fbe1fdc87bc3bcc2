"""memory:// through connect(): the reference rules, expiry, groups, chords, push and races."""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Callable, Generator
from typing import Any

import pytest
from conftest import FakeClock
from hypothesis import given, settings
from hypothesis import strategies as st
from resultstore import (
    READY_STATES,
    ChordError,
    ChordOutcome,
    CodecOptions,
    CorruptPayloadError,
    ResultStore,
    Serializer,
    State,
    StoreOutcome,
    TaskResult,
    UnsafeCodecError,
    build_hooks,
    connect,
)
from resultstore.backends.memory import MemoryBackend
from resultstore_contract.strategies import states, task_ids, task_results

LATER_STATES: list[str] = [*State, "PROGRESS", "success"]
# Built once for the hypothesis tests, which open a fresh store per example.
HOOKS = build_hooks()


def memory(store: ResultStore) -> MemoryBackend:
    backend = store.backend
    assert isinstance(backend, MemoryBackend)
    return backend


@pytest.fixture
def store() -> Generator[ResultStore, None, None]:
    with connect("memory://", hooks=HOOKS) as opened:
        yield opened


@pytest.fixture
def timed(clock: FakeClock) -> Generator[ResultStore, None, None]:
    with connect("memory://", hooks=HOOKS, clock=clock, expires=10) as opened:
        yield opened


# -- a ready state is final ----------------------------------------------------


@pytest.mark.parametrize("later", LATER_STATES)
@pytest.mark.parametrize("ready", sorted(READY_STATES))
def test_a_ready_state_is_final(store: ResultStore, ready: str, later: str) -> None:
    first = TaskResult("t1", ready, "first")
    assert store.store(first) == StoreOutcome(True, ready, None)
    outcome = store.store(TaskResult("t1", later, "second"))
    assert outcome == StoreOutcome(stored=False, state=ready, previous_state=ready)
    assert store.get("t1") == first


@pytest.mark.parametrize("later", LATER_STATES)
@pytest.mark.parametrize("ready", sorted(READY_STATES))
def test_overwrite_replaces_a_ready_state(store: ResultStore, ready: str, later: str) -> None:
    store.store(TaskResult("t1", ready, "first"))
    second = TaskResult("t1", later, "second")
    assert store.store(second, overwrite=True) == StoreOutcome(True, later, ready)
    assert store.get("t1") == second


@pytest.mark.parametrize("first", [s for s in LATER_STATES if s not in READY_STATES])
@pytest.mark.parametrize("later", LATER_STATES)
def test_unready_states_follow_one_another_freely(
    store: ResultStore, first: str, later: str
) -> None:
    store.store(TaskResult("t1", first))
    assert store.store(TaskResult("t1", later)) == StoreOutcome(True, later, first)


@settings(deadline=None)
@given(
    writes=st.lists(
        st.tuples(st.sampled_from([*State, "PROGRESS"]), st.booleans(), st.integers(0, 99)),
        max_size=12,
    )
)
def test_any_sequence_of_stores_keeps_the_rule(writes: list[tuple[str, bool, int]]) -> None:
    model: TaskResult | None = None
    with connect("memory://", hooks=HOOKS) as store:
        for state, overwrite, value in writes:
            result = TaskResult("t1", state, value)
            outcome = store.store(result, overwrite=overwrite)
            refused = model is not None and model.ready and not overwrite
            assert outcome.stored is not refused
            assert outcome.previous_state == (model.state if model else None)
            if not refused:
                model = result
            assert outcome.state == (model.state if model else None)
            assert store.get("t1") == model


@settings(deadline=None)
@given(result=task_results())
def test_any_result_reads_back_equal(result: TaskResult) -> None:
    with connect("memory://", hooks=HOOKS) as store:
        store.store(result)
        assert store.get(result.task_id) == result
        assert store.get_many([result.task_id]) == {result.task_id: result}


def test_forget_makes_room_for_a_new_result(store: ResultStore) -> None:
    store.store(TaskResult("t1", State.SUCCESS, 1))
    store.forget("t1")
    assert store.get("t1") is None
    store.forget("t1")  # unknown ids are not an error
    assert store.store(TaskResult("t1", State.STARTED)) == StoreOutcome(True, State.STARTED, None)


def test_get_many_keys_every_id_and_none_for_the_missing(store: ResultStore) -> None:
    store.store_many([TaskResult(f"id-{i}", State.SUCCESS, i) for i in range(3)])
    wanted = ["id-4", "id-0", "id-2", "id-3", "id-0"]
    found = store.get_many(wanted)
    assert list(found) == ["id-4", "id-0", "id-2", "id-3"]
    assert {k: (r.result if r else None) for k, r in found.items()} == {
        "id-4": None,
        "id-0": 0,
        "id-2": 2,
        "id-3": None,
    }
    assert store.get_many([]) == {}


def test_store_many_keeps_the_rule_within_one_batch(store: ResultStore) -> None:
    outcomes = store.store_many(
        [TaskResult("t1", State.SUCCESS, 1), TaskResult("t1", State.FAILURE, 2)]
    )
    assert [o.stored for o in outcomes] == [True, False]
    result = store.get("t1")
    assert result is not None
    assert result.result == 1


# -- named and private stores --------------------------------------------------


def test_a_named_store_is_shared_within_the_process() -> None:
    name = f"shared-{uuid.uuid4().hex}"
    with connect(f"memory://{name}") as writer, connect(f"memory:///{name}") as reader:
        writer.store(TaskResult("t1", State.SUCCESS, "seen"))
        result = reader.get("t1")
        assert result is not None
        assert result.result == "seen"
        with connect(f"memory://other-{name}") as stranger:
            assert stranger.get("t1") is None


def test_plain_memory_is_private() -> None:
    with connect("memory://") as one, connect("memory://") as two:
        one.store(TaskResult("t1", State.SUCCESS))
        assert two.get("t1") is None


# -- expiry and cleanup --------------------------------------------------------


def test_results_expire_after_the_configured_seconds(timed: ResultStore, clock: FakeClock) -> None:
    timed.store(TaskResult("t1", State.SUCCESS))
    clock.advance(9.999)
    assert timed.get("t1") is not None
    clock.advance(0.001)
    assert timed.get("t1") is None
    assert timed.get_many(["t1"]) == {"t1": None}


def test_an_expired_ready_state_no_longer_blocks_a_store(
    timed: ResultStore, clock: FakeClock
) -> None:
    timed.store(TaskResult("t1", State.SUCCESS))
    clock.advance(10)
    assert timed.store(TaskResult("t1", State.STARTED)) == StoreOutcome(True, State.STARTED, None)


def test_storing_again_renews_the_expiry(timed: ResultStore, clock: FakeClock) -> None:
    timed.store(TaskResult("t1", State.STARTED))
    clock.advance(8)
    timed.store(TaskResult("t1", State.SUCCESS))
    clock.advance(8)
    assert timed.get("t1") is not None


def test_cleanup_deletes_expired_results_groups_and_chords(
    timed: ResultStore, clock: FakeClock
) -> None:
    timed.store_many([TaskResult("old1"), TaskResult("old2", State.SUCCESS)])
    timed.save_group("g-old", ["old1", "old2"])
    timed.set_chord_size("c-old", 2)
    clock.advance(6)
    timed.store(TaskResult("new"))
    timed.save_group("g-new", ["new"])
    assert timed.cleanup() == 0
    clock.advance(5)
    assert timed.cleanup() == 2
    backend = memory(timed)
    assert set(backend.data.results) == {"new"}
    assert set(backend.data.groups) == {"g-new"}
    assert not backend.data.chords
    assert timed.cleanup() == 0


def test_expires_none_keeps_everything(clock: FakeClock) -> None:
    with connect("memory://", clock=clock, expires=None) as store:
        store.store(TaskResult("t1", State.SUCCESS))
        store.save_group("g", ["t1"])
        clock.advance(10**9)
        assert store.cleanup() == 0
        assert store.get("t1") is not None
        assert store.get_group("g") is not None


def test_clock_must_be_callable() -> None:
    with pytest.raises(Exception, match="clock must be a callable"):
        connect("memory://", clock=12)


# -- groups --------------------------------------------------------------------


def test_groups_save_read_and_delete(store: ResultStore) -> None:
    saved = store.save_group("g", ["a", "b", "a"])
    assert saved.task_ids == ("a", "b", "a")
    assert saved.date_done is not None
    assert store.get_group("g") == saved
    store.save_group("g", ["c"])
    replaced = store.get_group("g")
    assert replaced is not None
    assert replaced.task_ids == ("c",)
    store.delete_group("g")
    assert store.get_group("g") is None
    store.delete_group("never-saved")


def test_deleting_a_group_keeps_its_members_results(store: ResultStore) -> None:
    store.store(TaskResult("a", State.SUCCESS))
    store.save_group("g", ["a"])
    store.delete_group("g")
    assert store.get("a") is not None


def test_groups_expire(timed: ResultStore, clock: FakeClock) -> None:
    timed.save_group("g", ["a"])
    clock.advance(10)
    assert timed.get_group("g") is None


# -- chords --------------------------------------------------------------------


def part(index: int) -> TaskResult:
    return TaskResult(f"part-{index}", State.SUCCESS, index * 10)


def test_the_last_part_completes_with_every_result_in_header_order(store: ResultStore) -> None:
    store.set_chord_size("c", 4)
    outcomes = [store.chord_part_return("c", i, part(i)) for i in (3, 1, 0, 2)]
    assert [o.complete for o in outcomes] == [False, False, False, True]
    assert [o.received for o in outcomes] == [1, 2, 3, 4]
    assert all(o.size == 4 for o in outcomes)
    assert all(o.results is None for o in outcomes[:3])
    done = outcomes[-1]
    assert done.results == tuple(part(i) for i in range(4))
    assert done.failed_parts == ()
    state = store.get_chord("c")
    assert state is not None
    assert state.completed
    assert state.received == frozenset(range(4))


def test_duplicates_are_ignored_before_and_after_completion(store: ResultStore) -> None:
    store.set_chord_size("c", 2)
    store.chord_part_return("c", 0, part(0))
    again = store.chord_part_return("c", 0, TaskResult("other", State.FAILURE))
    assert again.duplicate
    assert not again.complete
    assert again.received == 1
    done = store.chord_part_return("c", 1, part(1))
    assert done.complete
    assert done.results == (part(0), part(1))
    late = store.chord_part_return("c", 1, part(1))
    assert late.duplicate
    assert not late.complete
    assert late.results is None


def test_failed_parts_are_listed_on_completion(store: ResultStore) -> None:
    store.set_chord_size("c", 3)
    store.chord_part_return("c", 0, part(0))
    store.chord_part_return("c", 1, TaskResult("bad", State.FAILURE))
    done = store.chord_part_return("c", 2, TaskResult("gone", State.REVOKED))
    assert [r.task_id for r in done.failed_parts] == ["bad", "gone"]


@pytest.mark.parametrize("index", [-1, 3, 100])
def test_an_index_out_of_range_is_a_chord_error(store: ResultStore, index: int) -> None:
    store.set_chord_size("c", 3)
    with pytest.raises(ChordError, match=r"out of range 0\.\.2"):
        store.chord_part_return("c", index, part(0))
    state = store.get_chord("c")
    assert state is not None
    assert state.received == frozenset()


def test_a_part_without_a_size_names_set_chord_size(store: ResultStore) -> None:
    with pytest.raises(ChordError, match=r"set_chord_size\('c', n\)"):
        store.chord_part_return("c", 0, part(0))
    assert store.get_chord("c") is None


def test_a_negative_size_is_a_chord_error(store: ResultStore) -> None:
    with pytest.raises(ChordError, match=">= 0"):
        store.set_chord_size("c", -1)


def test_chords_expire(timed: ResultStore, clock: FakeClock) -> None:
    timed.set_chord_size("c", 2)
    clock.advance(10)
    assert timed.get_chord("c") is None
    with pytest.raises(ChordError, match="no size set"):
        timed.chord_part_return("c", 0, part(0))


# -- push ----------------------------------------------------------------------


def test_a_listener_hears_only_what_it_subscribed(store: ResultStore) -> None:
    listener = memory(store).listener()
    try:
        listener.subscribe(["a", "b"])
        store.store(TaskResult("a", State.STARTED))
        store.store(TaskResult("zzz", State.STARTED))
        store.store(TaskResult("b", State.SUCCESS))
        assert listener.wait(0) == ["a", "b"]
        assert listener.wait(0) == []
        listener.unsubscribe(["a"])
        store.store(TaskResult("a", State.SUCCESS))
        assert listener.wait(0) == []
    finally:
        listener.close()


def test_a_refused_store_is_not_announced(store: ResultStore) -> None:
    store.store(TaskResult("a", State.SUCCESS))
    listener = memory(store).listener()
    try:
        listener.subscribe(["a"])
        store.store(TaskResult("a", State.FAILURE))
        assert listener.wait(0) == []
    finally:
        listener.close()


def test_a_listener_of_a_named_store_hears_other_connections() -> None:
    name = f"push-{uuid.uuid4().hex}"
    with connect(f"memory://{name}") as waiter, connect(f"memory://{name}") as worker:
        listener = memory(waiter).listener()
        try:
            listener.subscribe(["t1"])
            heard: list[list[str]] = []
            started = threading.Event()

            def wait() -> None:
                started.set()
                heard.append(listener.wait(60))

            thread = threading.Thread(target=wait)
            thread.start()
            started.wait()
            worker.store(TaskResult("t1", State.SUCCESS))
            thread.join()
            # Either the wait was woken by the store, or the store landed first
            # and the wait returned it at once: both must hand over "t1".
            assert heard == [["t1"]]
        finally:
            listener.close()


def test_a_closed_listener_stops_waiting_and_hears_nothing(store: ResultStore) -> None:
    listener = memory(store).listener()
    listener.subscribe(["a"])
    listener.close()
    store.store(TaskResult("a", State.SUCCESS))
    assert listener.wait(60) == []


# -- corrupt payloads ----------------------------------------------------------


def test_a_planted_corrupt_payload_is_a_corrupt_payload_error(store: ResultStore) -> None:
    memory(store).plant_payload("t1", b"\x00garbage, not written by resultstore")
    with pytest.raises(CorruptPayloadError, match="Forget the task"):
        store.get("t1")
    with pytest.raises(CorruptPayloadError):
        store.get_many(["t1"])
    store.forget("t1")
    assert store.get("t1") is None


def test_a_planted_pickle_payload_is_refused_unread(store: ResultStore) -> None:
    pickler = Serializer(CodecOptions(codec="pickle", accept=frozenset({"pickle"})))
    memory(store).plant_payload("t1", pickler.dumps(TaskResult("t1", State.SUCCESS)))
    with pytest.raises(UnsafeCodecError):
        store.get("t1")


def test_a_planted_ready_state_still_blocks_later_stores(store: ResultStore) -> None:
    memory(store).plant_payload("t1", b"garbage", state=State.SUCCESS)
    assert not store.store(TaskResult("t1", State.STARTED)).stored


# -- races ---------------------------------------------------------------------

RACERS = 8
RACE_STATES: list[str] = [
    State.SUCCESS,
    State.FAILURE,
    State.REVOKED,
    State.STARTED,
    State.RETRY,
    "PROGRESS",
    State.SUCCESS,
    State.PENDING,
]


def race(count: int, action: Callable[[int], Any]) -> list[Any]:
    """Run ``action(i)`` in ``count`` threads released at once; return results in order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = action(i)
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def eager_switching() -> Generator[None, None, None]:
    """Make threads switch far more often, so that races actually interleave."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("eager_switching")
def test_racing_stores_never_lose_a_ready_state(store: ResultStore) -> None:
    ids = [f"race-{n}" for n in range(200)]

    def worker(i: int) -> list[tuple[TaskResult, StoreOutcome]]:
        # Every thread walks the same ids in the same order, so they collide on each.
        done = []
        for task_id in ids:
            offered = TaskResult(task_id, RACE_STATES[i], i)
            done.append((offered, store.store(offered)))
        return done

    by_thread: list[list[tuple[TaskResult, StoreOutcome]]] = race(RACERS, worker)
    for n, task_id in enumerate(ids):
        attempts = [thread[n] for thread in by_thread]
        winners = [r for r, o in attempts if o.stored and o.state in READY_STATES]
        assert len(winners) == 1, f"{task_id}: {len(winners)} ready states were accepted"
        winner = winners[0]
        assert store.get(task_id) == winner
        for _, outcome in attempts:
            if not outcome.stored:
                assert outcome.state == winner.state


@pytest.mark.usefixtures("eager_switching")
def test_racing_chord_parts_complete_exactly_once(store: ResultStore) -> None:
    chords = [f"chord-race-{n}" for n in range(100)]
    size = RACERS // 2
    for group_id in chords:
        store.set_chord_size(group_id, size)

    def worker(i: int) -> list[ChordOutcome]:
        # Every index of every chord is sent twice, by two different threads.
        return [store.chord_part_return(g, i % size, part(i % size)) for g in chords]

    by_thread: list[list[ChordOutcome]] = race(RACERS, worker)
    for n, group_id in enumerate(chords):
        outcomes = [thread[n] for thread in by_thread]
        assert sum(o.complete for o in outcomes) == 1, group_id
        assert sum(o.duplicate for o in outcomes) == RACERS - size
        done = next(o for o in outcomes if o.complete)
        assert done.results == tuple(part(i) for i in range(size))


@settings(deadline=None, max_examples=25)
@given(ids=st.lists(task_ids(), min_size=1, max_size=8, unique=True), state=states())
def test_unicode_ids_do_not_collide(ids: list[str], state: str) -> None:
    with connect("memory://", hooks=HOOKS) as store:
        for i, task_id in enumerate(ids):
            store.store(TaskResult(task_id, state, i))
        found = store.get_many(ids)
        assert [r.result if r else None for r in found.values()] == list(range(len(ids)))
