"""The hypothesis state machine over the backend API, checked against a plain dict model.

The model never calls backend code: it is dicts of what was offered to the
store, stamped with when it may expire. After every step the whole visible
state (results, groups, chords) is compared to it. Expiry is modelled only
when the backend takes a manual clock; a few seconds either side of an
expiry moment are accepted both ways, and an entry seen gone stays gone.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from resultstore import (
    READY_STATES,
    Capability,
    ChordError,
    ChordOutcome,
    ChordState,
    Group,
    ResultStore,
    StoreOutcome,
    TaskResult,
)

from resultstore_contract.strategies import json_values, msgpack_values, task_ids, task_results
from resultstore_contract.support import ContractBase, ManualClock, StoreFactory, contract_settings

__all__ = ["MachineContract", "StoreMachine"]

#: seconds until entries expire when the machine drives a manual clock.
EXPIRES = 60.0
#: seconds either side of an expiry moment in which both "there" and "gone" are right.
TOLERANCE = 1.0
#: how many distinct ids one run plays with (small, so that operations collide).
POOL = 6
_PICK = st.integers(min_value=0, max_value=POOL - 1)
# Mostly plain stores, so that ready states get refused often.
_OVERWRITE = st.sampled_from([False, False, False, True])
_CLOCK_STEPS = st.sampled_from([0.5, 5.0, 30.0, EXPIRES - 2, EXPIRES + 2, 2 * EXPIRES, 1000.0])


class _Presence(enum.Enum):
    ALIVE = "alive"
    GONE = "gone"
    EITHER = "either"


@attrs.define
class _Timed:
    """Surely readable before ``alive_until``; surely gone from ``gone_from`` on."""

    alive_until: float | None = None
    gone_from: float | None = None

    def presence(self, now: float | None) -> _Presence:
        if now is None or self.alive_until is None or self.gone_from is None:
            return _Presence.ALIVE
        if now < self.alive_until - TOLERANCE:
            return _Presence.ALIVE
        if now >= self.gone_from + TOLERANCE:
            return _Presence.GONE
        return _Presence.EITHER


@attrs.define
class _ChordModel:
    size: int
    timed: _Timed
    parts: dict[int, TaskResult] = attrs.Factory(dict)
    completed: bool = False

    def state(self, group_id: str) -> ChordState:
        return ChordState(group_id, self.size, frozenset(self.parts), self.completed)


class StoreMachine(RuleBasedStateMachine):
    """Random sequences of store, get, get_many, forget, groups, chords and time.

    One instance per example; ids carry a fresh prefix so that examples
    sharing one store do not see each other.
    """

    def __init__(
        self, store: ResultStore, clock: ManualClock | None, values: st.SearchStrategy[Any]
    ) -> None:
        super().__init__()
        self.store = store
        self.clock = clock
        self.caps = store.capabilities
        self.results_strategy = task_results(values, ids=st.just("placeholder"))
        self.prefix = f"sm-{uuid.uuid4().hex[:10]}-"
        self.pool: list[str] = []
        # The model: plain dicts, keyed by the full ids.
        self.results: dict[str, tuple[TaskResult, _Timed]] = {}
        self.groups: dict[str, tuple[Group, _Timed]] = {}
        self.chords: dict[str, _ChordModel] = {}
        self.seen: set[str] = set()

    # -- model helpers (no backend calls) ----------------------------------------

    def _now(self) -> float | None:
        return None if self.clock is None else self.clock()

    def _fresh(self) -> _Timed:
        now = self._now()
        if now is None:
            return _Timed()
        return _Timed(now + EXPIRES, now + EXPIRES)

    def _id(self, pick: int) -> str:
        return self.pool[pick % len(self.pool)]

    def _presence(self, timed: _Timed) -> _Presence:
        return timed.presence(self._now())

    def _check_result(self, task_id: str, got: TaskResult | None, how: str) -> None:
        entry = self.results.get(task_id)
        if entry is None:
            assert got is None, f"{how}({task_id!r}) read {got!r}; it was never stored or is gone"
            return
        expected, timed = entry
        presence = self._presence(timed)
        if presence is _Presence.GONE:
            assert got is None, f"{how}({task_id!r}) still reads a result past its expiry"
            del self.results[task_id]
            return
        if got is None and presence is _Presence.EITHER:
            del self.results[task_id]  # expired within the tolerance: fine, and final
            return
        assert got is not None, f"{how}({task_id!r}) lost the stored {expected!r}"
        if expected.state in READY_STATES and got.state != expected.state:
            raise AssertionError(
                f"a ready state is final: {task_id!r} was stored {expected.state}, "
                f"{how} now reads {got.state}"
            )
        assert got == expected, f"{how}({task_id!r}) differs from what was stored"

    def _apply_store(self, result: TaskResult, overwrite: bool, outcome: StoreOutcome) -> None:
        entry = self.results.get(result.task_id)
        if entry is not None:
            presence = self._presence(entry[1])
            if presence is _Presence.GONE or (
                presence is _Presence.EITHER and outcome.previous_state is None
            ):
                del self.results[result.task_id]
                entry = None
        previous = None if entry is None else entry[0].state
        refused = previous in READY_STATES and not overwrite
        if refused:
            assert previous is not None
            expected = StoreOutcome(stored=False, state=previous, previous_state=previous)
        else:
            expected = StoreOutcome(stored=True, state=result.state, previous_state=previous)
        assert outcome == expected, (
            f"store({result.task_id!r}, state={result.state}, overwrite={overwrite}) "
            f"returned {outcome!r}, expected {expected!r}"
        )
        if not refused:
            self.results[result.task_id] = (result, self._fresh())

    def _draw_result(self, data: st.DataObject, task_id: str) -> TaskResult:
        drawn = data.draw(self.results_strategy)
        return attrs.evolve(drawn, task_id=task_id)

    # -- rules -------------------------------------------------------------------

    @initialize(raw=st.lists(task_ids(), min_size=POOL, max_size=POOL, unique=True))
    def make_ids(self, raw: list[str]) -> None:
        self.pool = [self.prefix + r for r in raw]

    @rule(pick=_PICK, overwrite=_OVERWRITE, data=st.data())
    def store_result(self, pick: int, overwrite: bool, data: st.DataObject) -> None:
        result = self._draw_result(data, self._id(pick))
        self.seen.add(result.task_id)
        self._apply_store(result, overwrite, self.store.store(result, overwrite=overwrite))

    @rule(picks=st.lists(_PICK, min_size=1, max_size=4), overwrite=_OVERWRITE, data=st.data())
    def store_many(self, picks: list[int], overwrite: bool, data: st.DataObject) -> None:
        batch = [self._draw_result(data, self._id(p)) for p in picks]
        self.seen.update(r.task_id for r in batch)
        outcomes = self.store.store_many(batch, overwrite=overwrite)
        assert len(outcomes) == len(batch), "store_many returns one outcome per result"
        for result, outcome in zip(batch, outcomes, strict=True):
            self._apply_store(result, overwrite, outcome)

    @rule(
        pick=_PICK,
        state=st.sampled_from(["SUCCESS", "PROGRESS", "STARTED"]),
        unit=st.sampled_from(["a", "é", "任", "🚀"]),
        size=st.integers(min_value=16_000, max_value=150_000),
    )
    def store_large(self, pick: int, state: str, unit: str, size: int) -> None:
        # Up to ~600 kB encoded: large, yet under every store's item limit.
        result = TaskResult(self._id(pick), state, {"blob": unit * size, "size": size})
        self.seen.add(result.task_id)
        self._apply_store(result, False, self.store.store(result))

    @rule(pick=_PICK)
    def get(self, pick: int) -> None:
        task_id = self._id(pick)
        self._check_result(task_id, self.store.get(task_id), "get")

    @rule(raw=task_ids())
    def get_unknown(self, raw: str) -> None:
        task_id = f"{self.prefix}unknown-{raw}"
        assert self.store.get(task_id) is None

    @rule(picks=st.lists(_PICK, max_size=POOL + 2), unknown=st.booleans())
    def get_many(self, picks: list[int], unknown: bool) -> None:
        asked = [self._id(p) for p in picks]
        if unknown:
            asked.append(f"{self.prefix}unknown")
        got = self.store.get_many(asked)
        assert set(got) == set(asked), f"get_many({asked!r}) answered for {sorted(got)!r}"
        for task_id in dict.fromkeys(asked):
            self._check_result(task_id, got[task_id], "get_many")

    @rule(pick=_PICK)
    def forget(self, pick: int) -> None:
        task_id = self._id(pick)
        self.store.forget(task_id)
        self.results.pop(task_id, None)

    @precondition(lambda self: Capability.GROUPS in self.caps)
    @rule(pick=_PICK, members=st.lists(_PICK, max_size=POOL))
    def save_group(self, pick: int, members: list[int]) -> None:
        group_id = self._id(pick)
        group = self.store.save_group(group_id, [self._id(m) for m in members])
        self.groups[group_id] = (group, self._fresh())

    @precondition(lambda self: Capability.GROUPS in self.caps)
    @rule(pick=_PICK)
    def get_group(self, pick: int) -> None:
        group_id = self._id(pick)
        self._check_group(group_id, self.store.get_group(group_id))

    @precondition(lambda self: Capability.GROUPS in self.caps)
    @rule(pick=_PICK)
    def delete_group(self, pick: int) -> None:
        group_id = self._id(pick)
        self.store.delete_group(group_id)
        self.groups.pop(group_id, None)

    @precondition(lambda self: Capability.CHORDS in self.caps)
    @rule(pick=_PICK, size=st.integers(min_value=1, max_value=4))
    def set_chord_size(self, pick: int, size: int) -> None:
        group_id = self._id(pick)
        chord = self.chords.get(group_id)
        if chord is not None and self._presence(chord.timed) is not _Presence.GONE:
            return  # resizing a live chord is not part of the contract
        self.store.set_chord_size(group_id, size)
        self.chords[group_id] = _ChordModel(size, self._fresh())

    @precondition(lambda self: Capability.CHORDS in self.caps)
    @rule(pick=_PICK, size_first=st.integers(min_value=0, max_value=3), data=st.data())
    def chord_parts_return(self, pick: int, size_first: int, data: st.DataObject) -> None:
        """A few parts of one chord, as its header tasks finish (repeats and strays too).

        Mostly on a chord that has a size (set here if need be, like a
        worker would before the header runs), so that chords fill up,
        complete, and get repeats after completing.
        """
        group_id = self._id(pick)
        chord = self.chords.get(group_id)
        unsized = chord is None or self._presence(chord.timed) is _Presence.GONE
        if unsized and size_first:
            self.store.set_chord_size(group_id, size_first)
            self.chords[group_id] = _ChordModel(size_first, self._fresh())
        size = self.chords[group_id].size if group_id in self.chords else 3
        indices = data.draw(
            st.lists(st.integers(min_value=-1, max_value=size), min_size=1, max_size=size + 3),
            label="indices",
        )
        for index in indices:
            part = self._draw_result(data, self._id(data.draw(_PICK, label="part id")))
            self._chord_part(group_id, index, part)

    def _chord_part(self, group_id: str, index: int, part: TaskResult) -> None:
        chord = self.chords.get(group_id)
        presence = None if chord is None else self._presence(chord.timed)
        try:
            outcome = self.store.chord_part_return(group_id, index, part)
        except ChordError:
            in_range = chord is not None and 0 <= index < chord.size
            assert not in_range or presence is not _Presence.ALIVE, (
                f"chord_part_return({group_id!r}, {index}) raised ChordError on a live chord"
            )
            if in_range:
                self.chords.pop(group_id)  # so it expired, within the tolerance
            return
        assert chord is not None, f"chord_part_return on {group_id!r} without a size succeeded"
        assert presence is not _Presence.GONE, "chord_part_return on an expired chord succeeded"
        assert 0 <= index < chord.size, f"index {index} of a chord of {chord.size} was accepted"
        duplicate = index in chord.parts
        if not duplicate:
            chord.parts[index] = part
        complete = not duplicate and not chord.completed and len(chord.parts) == chord.size
        if complete:
            chord.completed = True
        now = self._now()
        if now is not None:
            chord.timed.gone_from = now + EXPIRES
        expected = ChordOutcome(
            group_id=group_id,
            index=index,
            complete=complete,
            duplicate=duplicate,
            received=len(chord.parts),
            size=chord.size,
            results=tuple(chord.parts[i] for i in range(chord.size)) if complete else None,
        )
        assert outcome == expected, f"chord_part_return gave {outcome!r}, expected {expected!r}"

    @precondition(lambda self: Capability.CHORDS in self.caps)
    @rule(pick=_PICK)
    def get_chord(self, pick: int) -> None:
        group_id = self._id(pick)
        self._check_chord(group_id, self.store.get_chord(group_id))

    @precondition(lambda self: self.clock is not None or Capability.CLEANUP in self.caps)
    @rule(seconds=_CLOCK_STEPS, cleanup=st.booleans())
    def time_passes(self, seconds: float, cleanup: bool) -> None:
        """Time passes (on a manual clock), and maybe someone runs a cleanup."""
        if self.clock is not None:
            self.clock.advance(seconds)
        if cleanup and Capability.CLEANUP in self.caps:
            removed = self.store.cleanup()
            assert isinstance(removed, int), f"cleanup() returned {removed!r}, not a count"
            assert removed >= 0, f"cleanup() returned {removed!r}"

    # -- invariants ----------------------------------------------------------------

    def _check_group(self, group_id: str, got: Group | None) -> None:
        entry = self.groups.get(group_id)
        presence = None if entry is None else self._presence(entry[1])
        if (
            entry is None
            or presence is _Presence.GONE
            or (presence is _Presence.EITHER and got is None)
        ):
            self.groups.pop(group_id, None)
            assert got is None, f"get_group({group_id!r}) read {got!r}; it is deleted or expired"
            return
        assert got == entry[0], f"get_group({group_id!r}) differs from the saved group"

    def _check_chord(self, group_id: str, got: ChordState | None) -> None:
        chord = self.chords.get(group_id)
        presence = None if chord is None else self._presence(chord.timed)
        if (
            chord is None
            or presence is _Presence.GONE
            or (presence is _Presence.EITHER and got is None)
        ):
            self.chords.pop(group_id, None)
            assert got is None, f"get_chord({group_id!r}) read {got!r}; it was never sized"
            return
        assert got == chord.state(group_id), f"get_chord({group_id!r}) differs from the model"

    @invariant()
    def visible_results_match_the_model(self) -> None:
        if not self.seen:
            return
        asked = sorted(self.seen)
        got = self.store.get_many(asked)
        assert set(got) == set(asked), "get_many must return every requested id as a key"
        for task_id in asked:
            self._check_result(task_id, got[task_id], "get_many")

    @invariant()
    def ready_states_are_final(self) -> None:
        for task_id, (expected, _) in list(self.results.items()):
            if expected.state in READY_STATES:
                self._check_result(task_id, self.store.get(task_id), "get")

    @invariant()
    def groups_and_chords_match_the_model(self) -> None:
        for group_id in self.pool:
            if Capability.GROUPS in self.caps:
                self._check_group(group_id, self.store.get_group(group_id))
            if Capability.CHORDS in self.caps:
                self._check_chord(group_id, self.store.get_chord(group_id))

    def teardown(self) -> None:
        # Leave a shared store as it was found (chords cannot be deleted; they are small).
        for task_id in self.seen:
            self.store.forget(task_id)
        if Capability.GROUPS in self.caps:
            for group_id in self.pool:
                self.store.delete_group(group_id)


_VALUES: dict[str, Callable[[], st.SearchStrategy[Any]]] = {
    "json": json_values,
    "msgpack": msgpack_values,
}


def run_machine(
    connect_store: StoreFactory,
    clock_option: str | None,
    codec: str,
    *,
    extra_options: dict[str, Any] | None = None,
    share: float = 1.0,
) -> None:
    """Run :class:`StoreMachine` against a client with ``codec`` (bytes only with msgpack).

    ``share`` runs that fraction of the profile's examples (at least one), for
    checks that repeat the machine under other conditions.
    """
    options: dict[str, Any] = {"codec": codec, **(extra_options or {})}
    clock = None
    if clock_option is not None:
        clock = ManualClock()
        options.update({clock_option: clock, "expires": EXPIRES})
    store = connect_store(**options)
    values = _VALUES[codec]()

    class BoundMachine(StoreMachine):
        def __init__(self) -> None:
            super().__init__(store, clock, values)

    examples = max(1, round(settings().max_examples * share))
    run_state_machine_as_test(BoundMachine, settings=contract_settings(max_examples=examples))


class MachineContract(ContractBase):
    """The state machine, once per codec family (JSON values; msgpack values with bytes)."""

    @pytest.mark.parametrize("codec", sorted(_VALUES))
    def test_machine_matches_a_plain_dict_model(
        self, connect_store: StoreFactory, clock_option: str | None, codec: str
    ) -> None:
        run_machine(connect_store, clock_option, codec)
