"""Recoverable chord completion: the store remembers whether a chord's body was sent.

Optional (:class:`~resultstore.SupportsChordBody`): a backend
without it is skipped here, and its stores answer "nothing to recover".
"""

from __future__ import annotations

import threading
import time

import pytest
from resultstore import Capability, ChordOutcome, ResultStore, State, SupportsChordBody, TaskResult

from resultstore_contract.support import ContractBase, IdFactory, requires

__all__ = ["ChordBodyContract"]

#: seconds a claim stands in these tests (real time).
LEASE = 0.4
CLAIMERS = 6


def _remembers(store: ResultStore) -> None:
    if not isinstance(store.backend, SupportsChordBody):
        pytest.skip("the backend does not remember chord bodies (optional: SupportsChordBody)")


def _complete(store: ResultStore, gid: str, new_id: IdFactory, size: int) -> list[TaskResult]:
    parts = [TaskResult(new_id(), State.SUCCESS, i) for i in range(size)]
    store.set_chord_size(gid, size)
    outcomes = [store.chord_part_return(gid, i, part) for i, part in enumerate(parts)]
    assert outcomes[-1].complete
    return parts


class ChordBodyContract(ContractBase):
    """claim_chord_body / mark_chord_body_sent."""

    @requires(Capability.CHORDS)
    def test_basic_chord_body_unsent_is_claimed_after_the_lease(
        self, store: ResultStore, new_id: IdFactory
    ) -> None:
        _remembers(store)
        gid = new_id("chord")
        assert store.claim_chord_body(new_id("never-set"), LEASE) is None
        open_gid = new_id("open")
        store.set_chord_size(open_gid, 2)
        store.chord_part_return(open_gid, 0, TaskResult(new_id(), State.SUCCESS, 0))
        assert store.claim_chord_body(open_gid, LEASE) is None, "an open chord has nothing to send"
        parts = _complete(store, gid, new_id, 3)
        # The completing caller may still be sending: the first claim only
        # starts the lease, and so does every claim within it.
        first = store.claim_chord_body(gid, LEASE)
        assert first is not None
        assert (first.complete, first.results) == (False, None)
        again = store.claim_chord_body(gid, LEASE)
        assert again is not None
        assert not again.complete
        time.sleep(LEASE * 1.2)
        taken = store.claim_chord_body(gid, LEASE)
        assert taken is not None
        assert taken.complete
        assert taken.results == tuple(parts), "every part's result, in header order"
        # The claim is the taker's for a lease; then marked sent, it is over.
        held = store.claim_chord_body(gid, LEASE)
        assert held is not None
        assert not held.complete
        store.mark_chord_body_sent(gid)
        assert store.claim_chord_body(gid, LEASE) is None
        time.sleep(LEASE * 1.2)
        assert store.claim_chord_body(gid, LEASE) is None, "a sent body is never claimed again"

    @requires(Capability.CHORDS)
    def test_basic_chord_body_marked_sent_by_its_completer(
        self, store: ResultStore, new_id: IdFactory
    ) -> None:
        _remembers(store)
        gid = new_id("chord")
        _complete(store, gid, new_id, 2)
        store.mark_chord_body_sent(gid)
        assert store.claim_chord_body(gid, LEASE) is None
        store.mark_chord_body_sent(new_id("never-set"))  # unknown chords are left alone
        # The chord itself reads as before.
        state = store.get_chord(gid)
        assert state is not None
        assert state.completed
        assert state.received == frozenset({0, 1})

    @requires(Capability.CHORDS)
    def test_race_chord_body_claimed_by_one_of_many(
        self, store: ResultStore, new_id: IdFactory
    ) -> None:
        _remembers(store)
        gid = new_id("chord")
        parts = _complete(store, gid, new_id, 4)
        first = store.claim_chord_body(gid, LEASE)
        assert first is not None
        time.sleep(LEASE * 1.2)
        barrier = threading.Barrier(CLAIMERS)
        got: list[ChordOutcome | None] = []
        lock = threading.Lock()

        def claim() -> None:
            barrier.wait()
            outcome = store.claim_chord_body(gid, LEASE)
            with lock:
                got.append(outcome)

        threads = [threading.Thread(target=claim) for _ in range(CLAIMERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [o for o in got if o is not None and o.complete]
        assert len(winners) == 1, f"{len(winners)} callers got the claim at once"
        assert winners[0].results == tuple(parts)
