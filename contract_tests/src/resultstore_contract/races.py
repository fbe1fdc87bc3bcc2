"""Concurrent writers: threads always, spawned processes when the backend is SHARED.

Writers race state changes on one task (a ready state, once stored, is never
lost or replaced), the same through ``store_many`` batches that hold every
contested task (ready-is-final holds per task inside a batch, not only per
call), and chord parts with duplicates (completion is reported exactly once,
with the results in header order).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from resultstore import (
    READY_STATES,
    Capability,
    ChordOutcome,
    ChordState,
    ExceptionInfo,
    ResultStore,
    State,
    StoreOutcome,
    TaskResult,
)

from resultstore_contract._workers import (
    chord_parts,
    run_in_processes,
    store_batches,
    store_sequence,
)
from resultstore_contract.support import ContractBase, IdFactory, requires

__all__ = ["RaceContract"]

THREADS = 6
PROCESSES = 3
#: contested tasks per state race.
ROUNDS = 10
#: parts per raced chord; every part is sent twice.
CHORD_SIZE = 24

T = TypeVar("T")
_READY_CYCLE = (State.SUCCESS, State.FAILURE, State.REVOKED)


def _plan(task_id: str, worker: int) -> list[TaskResult]:
    """What one writer stores on a contested task: two unready states, a ready one, a late one."""
    ready = _READY_CYCLE[worker % len(_READY_CYCLE)]
    error = ExceptionInfo("RuntimeError", "builtins", (worker,), str(worker))
    return [
        TaskResult(task_id, State.STARTED, {"worker": worker}),
        TaskResult(task_id, "PROGRESS", {"worker": worker, "done": 50}),
        TaskResult(
            task_id,
            ready,
            {"worker": worker} if ready == State.SUCCESS else None,
            exception=None if ready == State.SUCCESS else error,
        ),
        TaskResult(task_id, State.STARTED, {"worker": worker, "late": True}),
    ]


def _check_state_race(
    task_id: str,
    plans: Sequence[Sequence[TaskResult]],
    outcomes: Sequence[Sequence[StoreOutcome]],
    final: TaskResult | None,
) -> None:
    winners = [
        plan[2]
        for plan, done in zip(plans, outcomes, strict=True)
        if done[2].stored and plan[2].state in READY_STATES
    ]
    assert len(winners) == 1, (
        f"{len(winners)} writers' ready states were all stored on {task_id!r}; "
        f"exactly one may win, the others must be refused"
    )
    winner = winners[0]
    assert final == winner, f"{task_id!r} reads {final!r}, not the ready state that won"
    for plan, done in zip(plans, outcomes, strict=True):
        assert len(done) == len(plan)
        for offered, outcome in zip(plan, done, strict=True):
            if not outcome.stored:
                assert outcome.state == winner.state, (
                    f"a refused store of {offered.state} reported {outcome.state}, "
                    f"not the ready state kept ({winner.state})"
                )
        # Once a writer's own ready store returned, some ready state is stored for good.
        late = done[3]
        assert not late.stored, f"STARTED replaced the ready state of {task_id!r}"
        assert late.state == winner.state


def _check_state_races(
    store: ResultStore,
    task_ids: Sequence[str],
    plans: Mapping[str, Sequence[Sequence[TaskResult]]],
    by_worker: Sequence[Sequence[Sequence[StoreOutcome]]],
) -> None:
    """Read every contested task back once and check each race (``by_worker[w][n]``)."""
    finals = store.get_many(task_ids)
    for n, task_id in enumerate(task_ids):
        outcomes = [done[n] for done in by_worker]
        _check_state_race(task_id, plans[task_id], outcomes, finals[task_id])


def _batches(
    task_ids: Sequence[str], plans: Mapping[str, Sequence[Sequence[TaskResult]]], worker: int
) -> list[list[TaskResult]]:
    """One writer's ``store_many`` batches: every contested task's plan, step by step.

    Two batches, each holding two steps for every task, so that one call
    writes a task's unready and ready states and another the late one.
    """
    steps = [[plans[t][worker][step] for t in task_ids] for step in range(4)]
    return [
        steps[0] + steps[1] + steps[2][: len(task_ids) // 2],
        [*steps[2][len(task_ids) // 2 :], *steps[3]],
    ]


def _unbatch(
    task_ids: Sequence[str], done: Sequence[Sequence[StoreOutcome]]
) -> list[list[StoreOutcome]]:
    """Outcomes of :func:`_batches`, regrouped by task (a plan's four steps each)."""
    flat = [outcome for batch in done for outcome in batch]
    count = len(task_ids)
    return [[flat[step * count + n] for step in range(4)] for n in range(count)]


def _check_chord_race(
    group_id: str,
    outcomes: Sequence[ChordOutcome],
    state: ChordState | None,
) -> None:
    complete = [o for o in outcomes if o.complete]
    assert len(complete) == 1, (
        f"chord {group_id!r} reported complete {len(complete)} times; exactly once is the rule"
    )
    firsts = sorted(o.index for o in outcomes if not o.duplicate)
    assert firsts == list(range(CHORD_SIZE)), (
        "each part must be recorded once and its repeats reported as duplicates"
    )
    results = complete[0].results
    assert results is not None
    assert [r.result["index"] for r in results] == list(range(CHORD_SIZE)), (
        "the completing caller must get every part's result in header order"
    )
    assert all(o.results is None for o in outcomes if not o.complete)
    assert state == ChordState(group_id, CHORD_SIZE, frozenset(range(CHORD_SIZE)), True)


def _chord_calls(new_id: IdFactory, seed: int) -> list[tuple[int, TaskResult]]:
    calls = [
        (index, TaskResult(new_id("part"), State.SUCCESS, {"index": index, "copy": copy}))
        for index in range(CHORD_SIZE)
        for copy in range(2)
    ]
    random.Random(seed).shuffle(calls)
    return calls


def _deal(items: Sequence[T], hands: int) -> list[list[T]]:
    return [list(items[i::hands]) for i in range(hands)]


def _in_threads(count: int, work: Callable[[int, threading.Barrier], T]) -> list[T]:
    """Run ``work(i, barrier)`` in ``count`` threads; re-raise the first error."""
    barrier = threading.Barrier(count)
    results: dict[int, T] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = work(i, barrier)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [results[i] for i in range(count)]


def _send_in_threads(
    store: ResultStore, group_id: str, hands: Sequence[Sequence[tuple[int, TaskResult]]]
) -> list[ChordOutcome]:
    def send(worker: int, barrier: threading.Barrier) -> list[ChordOutcome]:
        barrier.wait()
        return [store.chord_part_return(group_id, i, result) for i, result in hands[worker]]

    return [o for hand in _in_threads(len(hands), send) for o in hand]


class RaceContract(ContractBase):
    """Concurrent writers never break the ready-state rule or exactly-once chords."""

    def test_race_threads_never_lose_a_ready_state(
        self, store: ResultStore, new_id: IdFactory
    ) -> None:
        task_ids = [new_id() for _ in range(ROUNDS)]
        plans = {t: [_plan(t, w) for w in range(THREADS)] for t in task_ids}

        def write(worker: int, barrier: threading.Barrier) -> list[list[StoreOutcome]]:
            done = []
            for task_id in task_ids:
                barrier.wait()
                done.append([store.store(r) for r in plans[task_id][worker]])
            return done

        by_worker = _in_threads(THREADS, write)
        _check_state_races(store, task_ids, plans, by_worker)

    @requires(Capability.SHARED)
    def test_race_processes_never_lose_a_ready_state(
        self,
        store: ResultStore,
        resultstore_url: str,
        store_options: Mapping[str, Any],
        store_plugins: Sequence[object],
        new_id: IdFactory,
    ) -> None:
        task_ids = [new_id() for _ in range(ROUNDS)]
        plans = {t: [_plan(t, w) for w in range(PROCESSES)] for t in task_ids}
        jobs = [([plans[t][w] for t in task_ids],) for w in range(PROCESSES)]
        by_worker = run_in_processes(
            store_sequence, resultstore_url, store_options, store_plugins, jobs, together=True
        )
        _check_state_races(store, task_ids, plans, by_worker)

    def test_race_threads_store_many_never_loses_a_ready_state(
        self, store: ResultStore, new_id: IdFactory
    ) -> None:
        for _ in range(3):
            task_ids = [new_id() for _ in range(ROUNDS)]
            plans = {t: [_plan(t, w) for w in range(THREADS)] for t in task_ids}
            batches = [_batches(task_ids, plans, w) for w in range(THREADS)]

            def write(
                worker: int, barrier: threading.Barrier, batches: list[Any] = batches
            ) -> list[list[StoreOutcome]]:
                done = []
                for batch in batches[worker]:
                    barrier.wait()
                    done.append(store.store_many(batch))
                return done

            by_worker = [_unbatch(task_ids, done) for done in _in_threads(THREADS, write)]
            _check_state_races(store, task_ids, plans, by_worker)

    @requires(Capability.SHARED)
    def test_race_processes_store_many_never_loses_a_ready_state(
        self,
        store: ResultStore,
        resultstore_url: str,
        store_options: Mapping[str, Any],
        store_plugins: Sequence[object],
        new_id: IdFactory,
    ) -> None:
        task_ids = [new_id() for _ in range(ROUNDS)]
        plans = {t: [_plan(t, w) for w in range(PROCESSES)] for t in task_ids}
        jobs = [(_batches(task_ids, plans, w),) for w in range(PROCESSES)]
        done = run_in_processes(
            store_batches, resultstore_url, store_options, store_plugins, jobs, together=True
        )
        by_worker = [_unbatch(task_ids, batches) for batches in done]
        _check_state_races(store, task_ids, plans, by_worker)

    @requires(Capability.CHORDS)
    def test_race_threads_complete_a_chord_exactly_once(
        self, store: ResultStore, new_id: IdFactory
    ) -> None:
        for seed in range(3):
            group_id = new_id("chord")
            store.set_chord_size(group_id, CHORD_SIZE)
            hands = _deal(_chord_calls(new_id, seed), THREADS)
            outcomes = _send_in_threads(store, group_id, hands)
            _check_chord_race(group_id, outcomes, store.get_chord(group_id))

    @requires(Capability.CHORDS, Capability.SHARED)
    def test_race_processes_complete_a_chord_exactly_once(
        self,
        store: ResultStore,
        resultstore_url: str,
        store_options: Mapping[str, Any],
        store_plugins: Sequence[object],
        new_id: IdFactory,
    ) -> None:
        group_id = new_id("chord")
        store.set_chord_size(group_id, CHORD_SIZE)
        hands = _deal(_chord_calls(new_id, 7), PROCESSES)
        by_worker = run_in_processes(
            chord_parts,
            resultstore_url,
            store_options,
            store_plugins,
            [(group_id, hand) for hand in hands],
            together=True,
        )
        outcomes = [o for hand in by_worker for o in hand]
        _check_chord_race(group_id, outcomes, store.get_chord(group_id))
