"""Expiry, all of it: restarts on every store, expired is missing everywhere, chords go whole.

The rules, each one checked with the backend's clock when it declares a
clock option (in its ``BackendSpec`` or the test class: ``resultstore check``
drives it too), else with short real expiries:

- a store restarts the result's expiry (a new state lives a full period);
- an expired ready result, even one no sweep has removed yet, no longer
  refuses a new store: expired is missing, for writes as for reads;
- a chord's parts and its header group expire with the chord: a chord set
  up again under the same id after it expired starts with no parts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from resultstore import (
    Capability,
    ChordError,
    ChordState,
    ExceptionInfo,
    ResultStore,
    State,
    StoreOutcome,
    TaskResult,
)

from resultstore_contract.support import ContractBase, Expiring, IdFactory, requires

__all__ = ["ExpiryContract"]

#: seconds of expiry on the backend's own clock (a manual one).
CLOCK_EXPIRES = 60.0
#: seconds of a short real expiry (backends without a clock option).
REAL_EXPIRES = 3.0
#: how long past a real expiry a result may linger before the check gives up.
GRACE = 8.0


def _connect(connect_expiring: Callable[[float], Expiring]) -> tuple[Expiring, float]:
    probe = connect_expiring(CLOCK_EXPIRES)
    if probe.clock is not None:
        return probe, CLOCK_EXPIRES
    return connect_expiring(REAL_EXPIRES), REAL_EXPIRES


def _wait_gone(expiring: Expiring, read: Callable[[], object]) -> bool:
    """Whether ``read`` sees nothing: at once on a manual clock, within the grace in real time."""
    if expiring.clock is not None:
        return read() is None
    deadline = time.monotonic() + GRACE
    while read() is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _failure(task_id: str) -> TaskResult:
    return TaskResult(
        task_id, State.FAILURE, exception=ExceptionInfo("ValueError", "builtins", ("x",), "x")
    )


class ExpiryContract(ContractBase):
    """Every expiry rule, on the backend's clock when it has one."""

    def test_expiry_each_store_restarts_the_expiry(
        self, connect_expiring: Callable[[float], Expiring], new_id: IdFactory
    ) -> None:
        expiring, expires = _connect(connect_expiring)
        store = expiring.store
        one, two, three = new_id(), new_id(), new_id()
        store.store(TaskResult(one, State.STARTED))
        store.store_many([TaskResult(two, State.STARTED)])
        store.store(_failure(three))
        expiring.advance(expires * 0.5)
        store.store(TaskResult(one, State.SUCCESS, 1))
        store.store_many([TaskResult(two, "PROGRESS", {"done": 1})])
        store.store(TaskResult(three, State.STARTED), overwrite=True)
        # Past the first stores' expiry, well within the second ones' (real time leaves
        # the second stores 0.9 of the expiry to be read).
        expiring.advance(expires * 0.6)
        after = store.get_many([one, two, three])
        stale = [task_id for task_id, result in after.items() if result is None]
        assert not stale, (
            f"{stale!r} expired {expires:g} s after their first store although stored again "
            f"{expires * 0.5:g} s later: every store (store, store_many, overwrite) must "
            f"restart the expiry"
        )
        expiring.advance(expires * 0.4 + 1.0)
        assert _wait_gone(expiring, lambda: store.get(one) or store.get(two) or store.get(three)), (
            "results stored again still live a full expiry after their last store"
        )

    def test_expiry_expired_ready_result_no_longer_refuses_a_store(
        self, connect_expiring: Callable[[float], Expiring], new_id: IdFactory
    ) -> None:
        expiring, expires = _connect(connect_expiring)
        store = expiring.store
        done, failed, batched = new_id(), new_id(), new_id()
        store.store(TaskResult(done, State.SUCCESS, "old"))
        store.store(_failure(failed))
        store.store(TaskResult(batched, State.REVOKED))
        expiring.advance(expires + 1.0)
        # No read and no cleanup first: the expired results may still sit in the store.
        fresh = TaskResult(done, State.STARTED, {"run": 2})
        outcome = store.store(fresh)
        assert outcome == StoreOutcome(stored=True, state=State.STARTED, previous_state=None), (
            f"storing STARTED over an expired SUCCESS gave {outcome}: an expired result is "
            f"missing, so it cannot refuse a new store"
        )
        assert store.get(done) == fresh
        again = TaskResult(failed, State.SUCCESS, "second run")
        assert store.store(again).stored, "an expired FAILURE refused a new SUCCESS"
        assert store.get(failed) == again
        [batch] = store.store_many([TaskResult(batched, State.STARTED)])
        assert batch.stored, "an expired REVOKED refused a new state stored by store_many"

    @requires(Capability.CHORDS)
    def test_expiry_chord_parts_and_group_expire_with_their_chord(
        self,
        connect_expiring: Callable[[float], Expiring],
        new_id: IdFactory,
    ) -> None:
        expiring, expires = _connect(connect_expiring)
        store: ResultStore = expiring.store
        gid = new_id("chord")
        members = [new_id("part") for _ in range(3)]
        grouped = store.supports(Capability.GROUPS)
        if grouped:
            store.save_group(gid, members)
        store.set_chord_size(gid, 3)
        for index in (0, 1):
            store.chord_part_return(gid, index, TaskResult(members[index], State.SUCCESS, "old"))
        done = new_id("chord")
        store.set_chord_size(done, 1)
        assert store.chord_part_return(done, 0, TaskResult(new_id(), State.SUCCESS)).complete
        expiring.advance(expires + 1.0)
        assert _wait_gone(expiring, lambda: store.get_chord(gid)), "the chord did not expire"
        assert store.get_chord(done) is None, "the completed chord did not expire"
        if grouped:
            assert store.get_group(gid) is None, "a chord's header group outlived its chord"
        with pytest.raises(ChordError):
            store.chord_part_return(gid, 2, TaskResult(members[2], State.SUCCESS, "late"))
        # The same ids set up again start afresh: no part, no completion survives.
        store.set_chord_size(gid, 3)
        store.set_chord_size(done, 1)
        assert store.get_chord(gid) == ChordState(gid, 3, frozenset(), False), (
            "a chord set up again after it expired still holds parts of the expired one"
        )
        assert store.get_chord(done) == ChordState(done, 1, frozenset(), False), (
            "a chord set up again after it expired is still complete"
        )
        new = [TaskResult(members[i], State.SUCCESS, "new") for i in range(3)]
        outcomes = [store.chord_part_return(gid, i, new[i]) for i in range(3)]
        assert [o.duplicate for o in outcomes] == [False, False, False], (
            "a part of a chord set up again was taken for a duplicate of an expired part"
        )
        assert outcomes[-1].complete
        assert outcomes[-1].results == tuple(new), "the chord completed with expired parts"
        assert store.chord_part_return(done, 0, TaskResult(new_id(), State.SUCCESS)).complete, (
            "a chord set up again after it completed and expired never completes"
        )
