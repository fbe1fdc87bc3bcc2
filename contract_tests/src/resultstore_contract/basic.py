"""Plain examples of every rule of the backend API, one rule per test.

They say in a few lines what the state machine checks at random, so that a
backend that breaks a rule fails with a test whose name tells which.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from resultstore import (
    READY_STATES,
    Capability,
    ChordError,
    ChordState,
    ExceptionInfo,
    Group,
    ResultStore,
    State,
    StoreOutcome,
    TaskResult,
)

from resultstore_contract._workers import run_in_processes, store_results
from resultstore_contract.support import ContractBase, Expiring, IdFactory, StoreFactory, requires

__all__ = ["BasicContract"]

#: seconds of a short real expiry (backends without a clock option).
REAL_EXPIRES = 2.0
#: seconds of expiry on a manual clock.
CLOCK_EXPIRES = 60.0
#: how long past a real expiry a result may linger before the test gives up.
EXPIRY_GRACE = 8.0


def _full_result(task_id: str, state: str = State.SUCCESS, value: object = None) -> TaskResult:
    return TaskResult(
        task_id,
        state,
        {"answer": 42, "items": [1, 2.5, "three", None, True]} if value is None else value,
        exception=ExceptionInfo("ValueError", "builtins", ("bad",), "bad")
        if state in (State.FAILURE, State.RETRY, State.REVOKED)
        else None,
        traceback="Traceback (most recent call last): ..." if state == State.FAILURE else None,
        date_done=dt.datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=dt.UTC),
        children=("child-1", "child-2"),
        group_id="group-1",
        parent_id="parent-1",
        name="app.tasks.add",
        args=(1, "two", [3]),
        kwargs={"x": 1, "y": {"z": [True]}},
        worker="worker-1@host",
        retries=2,
        queue="default",
    )


def _short_lived(connect_expiring: Callable[[float], Expiring]) -> tuple[Expiring, float]:
    probe = connect_expiring(CLOCK_EXPIRES)
    if probe.clock is not None:
        return probe, CLOCK_EXPIRES
    return connect_expiring(REAL_EXPIRES), REAL_EXPIRES


def _gone_after(expiring: Expiring, expires: float, read: Callable[[], object]) -> bool:
    """Let the expiry pass, then wait (a bounded time, in real mode) for ``read`` to see nothing."""
    expiring.advance(expires + 1.0)
    if expiring.clock is not None:
        return read() is None
    deadline = time.monotonic() + EXPIRY_GRACE
    while read() is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


class BasicContract(ContractBase):
    """One test per rule of :class:`resultstore.ResultBackend` and friends."""

    # -- results -------------------------------------------------------------

    def test_basic_store_then_get_round_trips_every_field(
        self, store: ResultStore, new_id: IdFactory
    ) -> None:
        result = _full_result(new_id())
        outcome = store.store(result)
        assert outcome == StoreOutcome(stored=True, state=State.SUCCESS, previous_state=None)
        assert store.get(result.task_id) == result

    def test_basic_unknown_id_reads_as_none(self, store: ResultStore, new_id: IdFactory) -> None:
        assert store.get(new_id("never-stored")) is None

    @pytest.mark.parametrize("ready", sorted(READY_STATES))
    def test_basic_ready_state_is_final(
        self, store: ResultStore, new_id: IdFactory, ready: str
    ) -> None:
        task_id = new_id()
        first = _full_result(task_id, ready, "first")
        assert store.store(first).stored
        for later in [State.STARTED, "PROGRESS", State.PENDING, *sorted(READY_STATES)]:
            outcome = store.store(TaskResult(task_id, later, "later"))
            assert outcome == StoreOutcome(stored=False, state=ready, previous_state=ready), (
                f"storing {later} over {ready} must be refused without error, keeping {ready}"
            )
            assert store.get(task_id) == first

    def test_basic_overwrite_replaces_a_ready_state(
        self, store: ResultStore, new_id: IdFactory
    ) -> None:
        task_id = new_id()
        store.store(TaskResult(task_id, State.FAILURE, exception=ExceptionInfo("E", "m")))
        again = TaskResult(task_id, State.STARTED, {"retrying": True})
        outcome = store.store(again, overwrite=True)
        assert outcome == StoreOutcome(
            stored=True, state=State.STARTED, previous_state=State.FAILURE
        )
        assert store.get(task_id) == again

    def test_basic_unready_states_follow_one_another_freely(
        self, store: ResultStore, new_id: IdFactory
    ) -> None:
        task_id = new_id()
        previous: str | None = None
        for state in [State.PENDING, State.RECEIVED, State.STARTED, "PROGRESS", State.RETRY,
                      State.STARTED, State.REJECTED, State.SUCCESS]:  # fmt: skip
            result = TaskResult(task_id, state, {"step": state})
            assert store.store(result) == StoreOutcome(True, state, previous)
            assert store.get(task_id) == result
            previous = state

    def test_basic_custom_state_keeps_its_progress_meta(
        self, store: ResultStore, new_id: IdFactory
    ) -> None:
        task_id = new_id()
        store.update_state(task_id, "PROGRESS", {"done": 3, "total": 10})
        got = store.get(task_id)
        assert got is not None
        assert (got.state, got.result) == ("PROGRESS", {"done": 3, "total": 10})

    def test_basic_forget_deletes_and_unblocks(self, store: ResultStore, new_id: IdFactory) -> None:
        task_id = new_id()
        store.store(TaskResult(task_id, State.SUCCESS, 1))
        store.forget(task_id)
        assert store.get(task_id) is None
        store.forget(task_id)  # forgetting twice, or an unknown id, is not an error
        store.forget(new_id("never-stored"))
        # Forgotten means gone: a new result for the id is stored as new.
        outcome = store.store(TaskResult(task_id, State.STARTED))
        assert outcome == StoreOutcome(True, State.STARTED, None)

    def test_basic_get_many_has_every_id(self, store: ResultStore, new_id: IdFactory) -> None:
        stored = [TaskResult(new_id(), State.SUCCESS, i) for i in range(5)]
        for result in stored:
            store.store(result)
        forgotten = stored.pop()
        store.forget(forgotten.task_id)
        missing = [new_id("missing") for _ in range(3)]
        asked = [missing[0], *(r.task_id for r in stored), missing[1], forgotten.task_id, *missing]
        got = store.get_many(asked)
        assert set(got) == set(asked), "get_many must return every requested id as a key"
        assert got == {
            **{r.task_id: r for r in stored},
            **dict.fromkeys([*missing, forgotten.task_id]),
        }
        assert store.get_many([]) == {}

    def test_basic_store_many_stores_in_order(self, store: ResultStore, new_id: IdFactory) -> None:
        a, b = new_id(), new_id()
        batch = [
            TaskResult(a, State.STARTED),
            TaskResult(b, State.SUCCESS, "b"),
            TaskResult(a, State.SUCCESS, "a"),
            TaskResult(b, State.STARTED),
        ]
        assert store.store_many(batch) == [
            StoreOutcome(True, State.STARTED, None),
            StoreOutcome(True, State.SUCCESS, None),
            StoreOutcome(True, State.SUCCESS, State.STARTED),
            StoreOutcome(False, State.SUCCESS, State.SUCCESS),
        ]
        assert store.get_many([a, b]) == {a: batch[2], b: batch[1]}

    @pytest.mark.parametrize(
        "suffix",
        [
            "ünïcödé-任务-🚀",
            "with spaces and : colons / slashes",
            "quote'\"back\\slash",
            "%s%d{}[]*?",
            "x" * 200,
        ],
        ids=["unicode", "spaces", "quotes", "patterns", "long"],
    )
    def test_basic_unusual_ids(self, store: ResultStore, new_id: IdFactory, suffix: str) -> None:
        task_id = f"{new_id()}-{suffix}"
        result = TaskResult(task_id, State.SUCCESS, suffix)
        store.store(result)
        assert store.get(task_id) == result
        assert store.get_many([task_id]) == {task_id: result}
        # A prefix of the id is a different id, not a pattern that matches it.
        assert store.get(task_id[:-1]) is None
        store.forget(task_id)
        assert store.get(task_id) is None

    def test_basic_large_result(self, store: ResultStore, new_id: IdFactory) -> None:
        task_id = new_id()
        value = {"blob": "0123456789abcdef" * 32_768, "n": list(range(1000))}  # ~0.5 MB
        store.store(TaskResult(task_id, State.SUCCESS, value))
        got = store.get(task_id)
        assert got is not None
        assert got.result == value

    # -- groups ----------------------------------------------------------------

    @requires(Capability.GROUPS)
    def test_basic_group_save_get_delete(self, store: ResultStore, new_id: IdFactory) -> None:
        gid = new_id("group")
        members = [new_id() for _ in range(4)]
        for task_id in members:
            store.store(TaskResult(task_id, State.SUCCESS, task_id))
        saved = store.save_group(gid, members)
        assert store.get_group(gid) == saved == Group(gid, tuple(members), saved.date_done)
        replaced = store.save_group(gid, list(reversed(members)))
        got = store.get_group(gid)
        assert got == replaced
        assert got.task_ids == tuple(reversed(members)), "the members' order is kept"
        store.delete_group(gid)
        assert store.get_group(gid) is None
        assert all(store.get(t) is not None for t in members), "members outlive their group"
        store.delete_group(gid)  # deleting twice, or an unknown group, is not an error
        assert store.get_group(new_id("never-saved")) is None

    # -- chords ----------------------------------------------------------------

    @requires(Capability.CHORDS)
    def test_basic_chord_completes_once_in_header_order(
        self, store: ResultStore, new_id: IdFactory
    ) -> None:
        gid = new_id("chord")
        parts = [TaskResult(new_id(), State.SUCCESS, i) for i in range(3)]
        store.set_chord_size(gid, 3)
        assert store.get_chord(gid) == ChordState(gid, 3, frozenset(), False)
        first = store.chord_part_return(gid, 2, parts[2])
        assert (first.complete, first.duplicate, first.received, first.size) == (False, False, 1, 3)
        assert first.results is None
        store.chord_part_return(gid, 0, parts[0])
        dup = store.chord_part_return(gid, 2, TaskResult(parts[2].task_id, State.FAILURE))
        assert (dup.complete, dup.duplicate, dup.received) == (False, True, 2)
        last = store.chord_part_return(gid, 1, parts[1])
        assert (last.complete, last.duplicate, last.received, last.size) == (True, False, 3, 3)
        assert last.results == tuple(parts), "the first value of each part, in header order"
        late = store.chord_part_return(gid, 1, parts[1])
        assert (late.complete, late.duplicate, late.results) == (False, True, None)
        assert store.get_chord(gid) == ChordState(gid, 3, frozenset({0, 1, 2}), True)

    @requires(Capability.CHORDS)
    def test_basic_chord_misuse_raises_chord_error(
        self, store: ResultStore, new_id: IdFactory
    ) -> None:
        gid = new_id("chord")
        part = TaskResult(new_id(), State.SUCCESS, 1)
        with pytest.raises(ChordError):
            store.chord_part_return(gid, 0, part)  # no size set
        assert store.get_chord(gid) is None
        store.set_chord_size(gid, 2)
        for index in (-1, 2, 99):
            with pytest.raises(ChordError):
                store.chord_part_return(gid, index, part)
        assert store.get_chord(gid) == ChordState(gid, 2, frozenset(), False)

    @requires(Capability.CHORDS)
    def test_basic_chords_are_independent(self, store: ResultStore, new_id: IdFactory) -> None:
        one, two = new_id("chord"), new_id("chord")
        store.set_chord_size(one, 1)
        store.set_chord_size(two, 2)
        assert store.chord_part_return(one, 0, TaskResult(new_id(), State.SUCCESS)).complete
        assert not store.chord_part_return(two, 0, TaskResult(new_id(), State.SUCCESS)).complete
        assert store.get_chord(two) == ChordState(two, 2, frozenset({0}), False)

    # -- expiry ------------------------------------------------------------------

    def test_basic_expired_results_read_as_missing(
        self, connect_expiring: Callable[[float], Expiring], new_id: IdFactory
    ) -> None:
        expiring, expires = _short_lived(connect_expiring)
        store = expiring.store
        task_id = new_id()
        store.store(TaskResult(task_id, State.SUCCESS, "soon gone"))
        assert store.get(task_id) is not None
        if expiring.clock is not None:
            expiring.advance(expires / 2)
            assert store.get(task_id) is not None, "expired before its time"
            expiring.advance(expires / 2 - 1.0)
            assert store.get(task_id) is not None, "expired before its time"
        assert _gone_after(expiring, expires, lambda: store.get(task_id)), (
            f"a result stored with expires={expires} is still readable after it"
        )
        assert store.get_many([task_id]) == {task_id: None}

    @requires(Capability.GROUPS)
    def test_basic_groups_expire(
        self, connect_expiring: Callable[[float], Expiring], new_id: IdFactory
    ) -> None:
        expiring, expires = _short_lived(connect_expiring)
        gid = new_id("group")
        expiring.store.save_group(gid, [new_id()])
        assert expiring.store.get_group(gid) is not None
        assert _gone_after(expiring, expires, lambda: expiring.store.get_group(gid))

    @requires(Capability.CHORDS)
    def test_basic_chords_expire(
        self, connect_expiring: Callable[[float], Expiring], new_id: IdFactory
    ) -> None:
        expiring, expires = _short_lived(connect_expiring)
        gid = new_id("chord")
        expiring.store.set_chord_size(gid, 2)
        expiring.store.chord_part_return(gid, 0, TaskResult(new_id(), State.SUCCESS))
        assert _gone_after(expiring, expires, lambda: expiring.store.get_chord(gid))
        with pytest.raises(ChordError):
            expiring.store.chord_part_return(gid, 1, TaskResult(new_id(), State.SUCCESS))

    @requires(Capability.MIGRATE)
    def test_basic_migrate_can_run_again_and_leaves_a_working_store(
        self, store: ResultStore, connect_store: StoreFactory, new_id: IdFactory
    ) -> None:
        task_id = new_id()
        store.store(TaskResult(task_id, State.SUCCESS, 1))
        first = store.migrate()
        assert isinstance(first, str)
        assert first.strip()
        with connect_store() as other:
            assert other.migrate() == first  # again, from another client: nothing changes
        got = store.get(task_id)
        assert got is not None
        assert got.result == 1  # what was stored before survives
        later = new_id()
        store.store(TaskResult(later, State.SUCCESS, 2))
        stored = store.get(later)
        assert stored is not None
        assert stored.result == 2

    @requires(Capability.CLEANUP)
    def test_basic_cleanup_removes_only_expired(
        self, connect_expiring: Callable[[float], Expiring], new_id: IdFactory
    ) -> None:
        expiring, expires = _short_lived(connect_expiring)
        keeper = connect_expiring(1000 * expires)
        doomed = [new_id() for _ in range(3)]
        kept = [new_id() for _ in range(2)]
        for task_id in doomed:
            expiring.store.store(TaskResult(task_id, State.SUCCESS))
        for task_id in kept:
            keeper.store.store(TaskResult(task_id, State.SUCCESS))
        expiring.advance(expires + 1.0)
        if keeper.clock is not None:  # each client runs on its own manual clock
            keeper.clock.advance(expires + 1.0)
        removed = expiring.store.cleanup()
        assert isinstance(removed, int)
        assert removed >= 0
        assert all(keeper.store.get(t) is not None for t in kept), "cleanup removed live results"
        if expiring.clock is not None:
            assert expiring.store.get_many(doomed) == dict.fromkeys(doomed)
        # Kept for 1000 expiries: not left in a live store (resultstore check).
        for task_id in kept:
            keeper.store.forget(task_id)

    # -- durability and sharing ------------------------------------------------------

    @requires(Capability.PERSISTENT)
    def test_basic_results_survive_reconnecting(
        self, connect_store: StoreFactory, new_id: IdFactory
    ) -> None:
        writer = connect_store()
        result = _full_result(new_id())
        writer.store(result)
        writer.close()
        assert connect_store().get(result.task_id) == result

    @requires(Capability.SHARED)
    def test_basic_results_are_shared_between_processes(
        self,
        store: ResultStore,
        resultstore_url: str,
        store_options: Mapping[str, Any],
        store_plugins: Sequence[object],
        new_id: IdFactory,
    ) -> None:
        written = [_full_result(new_id()), TaskResult(new_id(), "PROGRESS", {"p": 1})]
        [outcomes] = run_in_processes(
            store_results, resultstore_url, store_options, store_plugins, [(written,)]
        )
        assert [o.stored for o in outcomes] == [True, True]
        assert store.get_many([r.task_id for r in written]) == {r.task_id: r for r in written}
