"""What a statement's reply means: which errors are worth a retry, and a store's outcome.

Shared by the sync backend and its asyncio twin.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import PoolTimeout
from resultstore import StoreOutcome, TaskResult
from resultstore.concepts.states import state_from_str

__all__ = ["outcome", "refused", "transient"]

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
    if previous is None:
        return None
    return StoreOutcome(stored=False, state=previous, previous_state=previous)


def refused(result: TaskResult, found: tuple[Any, ...] | None) -> StoreOutcome:
    """The refused store's outcome, from the state another writer kept (``found``)."""
    previous = None if found is None else state_from_str(found[0])
    kept = previous if previous is not None else result.state
    return StoreOutcome(stored=False, state=kept, previous_state=previous)
