"""What a statement's reply means: which errors are worth a retry, and a store's outcome.

Shared by the sync backend and its asyncio twin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout
from resultstore import READY_STATES, StoreOutcome, TaskResult
from resultstore.concepts.states import state_from_str

__all__ = ["first_ready", "landed", "outcome", "own", "refused", "transient"]

# SQLSTATE classes that mean "the server or the link failed", worth a retry:
# connection exceptions (08), insufficient resources (53), operator
# intervention (57: admin shutdown, crash recovery), serialization and
# deadlock (40).
_TRANSIENT = ("08", "53", "57", "40")


def transient(exc: BaseException) -> bool:
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = getattr(exc, "sqlstate", None)
        return state is None or state[:2] in _TRANSIENT
    return False


def outcome(row: tuple[Any, ...] | None, result: TaskResult) -> StoreOutcome | None:
    """What :attr:`Tables.store`'s row says of ``result``, or None when the store was
    refused by a row another writer inserted meanwhile (read it, then :func:`refused`)."""
    assert row is not None
    previous = None if row[0] is None else state_from_str(row[0])
    if row[1]:
        return StoreOutcome(stored=True, state=result.state, previous_state=previous)
    if own(row):
        # An earlier try stored this very payload; what it replaced was in the lost reply.
        return StoreOutcome(stored=True, state=result.state, previous_state=None)
    if previous is None:
        return None
    return StoreOutcome(stored=False, state=previous, previous_state=previous)


def refused(result: TaskResult, found: tuple[Any, ...] | None) -> StoreOutcome:
    """The refused store's outcome, from the state another writer kept (``found``)."""
    previous = None if found is None else state_from_str(found[0])
    kept = previous if previous is not None else result.state
    return StoreOutcome(stored=False, state=kept, previous_state=previous)


def own(row: tuple[Any, ...]) -> bool:
    """Whether :attr:`Tables.store`'s row found the call's own payload, stored by
    an earlier try whose reply was lost (and wrote nothing this time)."""
    return bool(row[3]) and not row[1]


def first_ready(results: Sequence[TaskResult]) -> set[int]:
    """The positions in a batch of each task's first ready state: on a retry, the
    only stores of the batch that may find a row of their own.

    A batch is one transaction, so a try that landed stored each task's first
    ready state (or none of the task's ready states) and refused the later ones;
    an equal later one is not a second winner.
    """
    seen: set[str] = set()
    found: set[int] = set()
    for index, result in enumerate(results):
        if result.state in READY_STATES and result.task_id not in seen:
            seen.add(result.task_id)
            found.add(index)
    return found


def landed(
    results: Sequence[TaskResult], outcomes: Sequence[StoreOutcome], owned: Sequence[int]
) -> list[StoreOutcome]:
    """A retried batch's outcomes, told as the try that landed had them.

    ``owned``: the positions whose store found its own row. That try stored
    the task's earlier (unready) states in the batch too, one after the
    other; the retry, meeting the ready row, refused them.
    """
    told = list(outcomes)
    if not owned:
        return told
    steps: dict[str, list[int]] = {}
    for index, result in enumerate(results):
        steps.setdefault(result.task_id, []).append(index)
    for index in owned:
        previous: str | None = None
        for step in steps[results[index].task_id]:
            if step > index:
                break
            told[step] = StoreOutcome(True, results[step].state, previous)
            previous = results[step].state
    return told
