"""The stored concepts: a task result, a group, chord state, and outcomes.

These are plain frozen ``attrs`` classes with no serialization code; how they
are encoded lives in :mod:`resultstore.concepts.converters`. Datetimes are
timezone-aware UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import attrs

from resultstore.concepts.states import READY_STATES, State

__all__ = [
    "ChordOutcome",
    "ChordState",
    "ExceptionInfo",
    "Group",
    "StoreOutcome",
    "TaskResult",
    "utcnow",
]


def utcnow() -> dt.datetime:
    """The current time as a timezone-aware UTC datetime."""
    return dt.datetime.now(dt.UTC)


def _require_aware(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{attribute.name} must be timezone-aware (UTC), got {value!r}")


@attrs.frozen
class ExceptionInfo:
    """An exception as it is stored: never the object, only what describes it.

    ``type_name`` is the class's qualified name and ``module`` its module;
    ``args`` are the constructor arguments (kept only when the codec can store
    them, else their ``repr``); ``cause`` is the ``__cause__`` (or
    ``__context__``) chain.
    """

    type_name: str
    module: str
    args: tuple[Any, ...] = ()
    message: str = ""
    cause: ExceptionInfo | None = None

    @property
    def qualified_name(self) -> str:
        return f"{self.module}.{self.type_name}" if self.module else self.type_name


@attrs.frozen
class TaskResult:
    """What a task became: its state, value or exception, and metadata.

    ``result`` holds the return value for SUCCESS and the progress metadata
    (usually a dict) for custom states such as ``PROGRESS``. ``exception``
    is set for FAILURE, RETRY and REVOKED. The extended fields (``name`` to
    ``queue``) are optional, like Celery's ``result_extended``.
    """

    task_id: str
    state: str = State.PENDING
    result: Any = None
    exception: ExceptionInfo | None = None
    traceback: str | None = None
    date_done: dt.datetime | None = attrs.field(default=None, validator=_require_aware)
    children: tuple[str, ...] = ()
    group_id: str | None = None
    parent_id: str | None = None
    name: str | None = None
    args: tuple[Any, ...] | None = None
    kwargs: Mapping[str, Any] | None = None
    worker: str | None = None
    retries: int | None = None
    queue: str | None = None

    @property
    def ready(self) -> bool:
        return self.state in READY_STATES


@attrs.frozen
class Group:
    """A group of tasks: its id and its members in order."""

    group_id: str
    task_ids: tuple[str, ...]
    date_done: dt.datetime | None = attrs.field(default=None, validator=_require_aware)


@attrs.frozen
class ChordState:
    """Progress of a chord header: its expected size and the parts received."""

    group_id: str
    size: int
    received: frozenset[int] = frozenset()
    completed: bool = False


@attrs.frozen
class StoreOutcome:
    """What a store did.

    ``stored`` is False when the write was refused because the task was
    already in a ready state (and no overwrite was asked for); ``state`` is
    then the ready state that stayed. ``previous_state`` is the state before
    the call, None when the task was unknown.
    """

    stored: bool
    state: str
    previous_state: str | None = None


@attrs.frozen
class ChordOutcome:
    """What recording one chord part did.

    ``complete`` is True for exactly one caller per chord: the one whose part
    completed the header. Only that caller gets ``results``, the header's
    task results in header order. ``duplicate`` says the part at that index
    had been recorded before and was ignored.
    """

    group_id: str
    index: int
    complete: bool = False
    duplicate: bool = False
    received: int = 0
    size: int = 0
    results: tuple[TaskResult, ...] | None = None

    @property
    def failed_parts(self) -> tuple[TaskResult, ...]:
        """The FAILURE or REVOKED parts, in header order (only when complete)."""
        return tuple(r for r in self.results or () if r.state in (State.FAILURE, State.REVOKED))
