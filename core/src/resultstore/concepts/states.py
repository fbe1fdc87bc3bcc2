"""Task states, the sets Celery users know them by, and their precedence.

A state is a plain ``str``: the built-in ones are members of :class:`State`
(a ``str``-valued enum, so ``State.SUCCESS == "SUCCESS"``) and any other
string is a *custom* state such as ``"PROGRESS"``.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "ALL_STATES",
    "EXCEPTION_STATES",
    "PROPAGATE_STATES",
    "READY_STATES",
    "UNREADY_STATES",
    "State",
    "is_ready",
    "precedence",
    "state_from_str",
]


class State(enum.StrEnum):
    """The built-in task states; names and values match Celery's."""

    PENDING = "PENDING"
    RECEIVED = "RECEIVED"
    STARTED = "STARTED"
    RETRY = "RETRY"
    FAILURE = "FAILURE"
    SUCCESS = "SUCCESS"
    REVOKED = "REVOKED"
    REJECTED = "REJECTED"


READY_STATES: Final = frozenset({State.SUCCESS, State.FAILURE, State.REVOKED})
UNREADY_STATES: Final = frozenset(
    {State.PENDING, State.RECEIVED, State.STARTED, State.REJECTED, State.RETRY}
)
EXCEPTION_STATES: Final = frozenset({State.RETRY, State.FAILURE, State.REVOKED})
PROPAGATE_STATES: Final = frozenset({State.FAILURE, State.REVOKED})
ALL_STATES: Final = frozenset(State)

# Best first, as in Celery; every custom state sits in the "custom" slot.
_PRECEDENCE: Final[tuple[str | None, ...]] = (
    State.SUCCESS,
    State.FAILURE,
    None,  # custom states
    State.REVOKED,
    State.STARTED,
    State.RECEIVED,
    State.REJECTED,
    State.RETRY,
    State.PENDING,
)
_CUSTOM_RANK: Final = _PRECEDENCE.index(None)
_RANK: Final = {state: rank for rank, state in enumerate(_PRECEDENCE) if state}


def precedence(state: str) -> int:
    """Return the rank of ``state``: lower is better, custom states share one rank."""
    return _RANK.get(state, _CUSTOM_RANK)


def is_ready(state: str) -> bool:
    """True for the final states (SUCCESS, FAILURE, REVOKED)."""
    return state in READY_STATES


_BY_VALUE: Final[dict[str, State]] = {state.value: state for state in State}


def state_from_str(value: str) -> str:
    """Return the :class:`State` member for a built-in name, else ``value`` itself."""
    return _BY_VALUE.get(value, value)
