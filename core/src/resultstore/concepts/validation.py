"""Checks at the door: task ids, group ids and state names, before any backend sees them.

One rule for every backend (see docs/concepts.md, "Ids and states"): a
``str`` of 1 to :data:`MAX_ID_BYTES` bytes once encoded as UTF-8, with no
control character (U+0000-U+001F, U+007F-U+009F) and no lone surrogate
(U+D800-U+DFFF). Anything else printable is allowed: UUIDs, ``:``, ``.``,
``/``, ``@``, spaces, any script, emoji. A non-``str`` (a dict that would
become a MongoDB query operator, an int, a UUID object) is refused, never
converted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from resultstore.concepts.errors import InvalidIdError, InvalidInputError, InvalidStateError
from resultstore.concepts.models import TaskResult

__all__ = [
    "MAX_ID_BYTES",
    "CheckedIds",
    "check_group",
    "check_group_id",
    "check_result",
    "check_results",
    "check_state",
    "check_task_id",
    "check_task_ids",
]

#: the longest id or state name, in bytes of UTF-8 (room for a key prefix in
#: stores that bound keys at 1 KiB, and far above a 36-character UUID).
MAX_ID_BYTES: Final = 512

_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_RULE = (
    f"1 to {MAX_ID_BYTES} bytes of UTF-8 text without control characters or lone "
    f"surrogates (see 'Ids and states' in the concepts page)"
)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}...{text[-12:]} ({len(text):,} chars)"


def _problem(value: object, what: str) -> str | None:
    """Why ``value`` is not a valid id or state name, or None if it is."""
    if not isinstance(value, str):
        hint = " (str(uuid) for a UUID)" if type(value).__name__ == "UUID" else ""
        return f"{what} must be a str, got {type(value).__name__} {_shown(value)}{hint}"
    # The common case (ASCII ids such as UUIDs) costs two C-level scans.
    if value.isascii() and value.isprintable() and 0 < len(value) <= MAX_ID_BYTES:
        return None
    if not value:
        return f"{what} is empty"
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        char = bad.group()
        kind = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
        return f"{what} {_shown(value)} holds {kind} (U+{ord(char):04X} at position {bad.start()})"
    size = len(value.encode("utf-8"))
    if size > MAX_ID_BYTES:
        return f"{what} {_shown(value)} is {size:,} bytes long in UTF-8"
    return None


def _raise(error: type[InvalidInputError], problem: str, what: str) -> None:
    raise error(f"{problem}; a {what} must be {_RULE}. Use an id of that form")


def check_task_id(task_id: object) -> str:
    """Return ``task_id`` if it is a valid task id, else raise :class:`InvalidIdError`."""
    problem = _problem(task_id, "task id")
    if problem is not None:
        _raise(InvalidIdError, problem, "task id")
    return task_id  # type: ignore[return-value]  # _problem proved it is a str


def check_group_id(group_id: object) -> str:
    """Return ``group_id`` if it is a valid group id, else raise :class:`InvalidIdError`."""
    problem = _problem(group_id, "group id")
    if problem is not None:
        _raise(InvalidIdError, problem, "group id")
    return group_id  # type: ignore[return-value]  # _problem proved it is a str


class CheckedIds(tuple[str, ...]):
    """Task ids that passed :func:`check_task_ids`, which lets them through
    again without a second look (a group's bulk reads pass thousands). Build
    one only from ids already checked, or from a part of a ``CheckedIds``."""

    __slots__ = ()


def check_task_ids(task_ids: Iterable[object]) -> None:
    """Raise :class:`InvalidIdError` for the first invalid id of ``task_ids``.

    A lone ``str`` is refused: iterating it would check (and look up) its
    characters one by one.
    """
    if type(task_ids) is CheckedIds:
        return
    if isinstance(task_ids, str | bytes):
        raise InvalidIdError(
            f"expected a sequence of task ids, got a single {type(task_ids).__name__} "
            f"{_shown(task_ids)}; wrap it in a list"
        )
    for task_id in task_ids:
        # The common case inline (a bulk read checks thousands of ids): a str of
        # printable ASCII within the limit; anything else gets the full check.
        if not (
            type(task_id) is str
            and task_id.isascii()
            and task_id.isprintable()
            and 0 < len(task_id) <= MAX_ID_BYTES
        ):
            check_task_id(task_id)


def check_state(state: object) -> str:
    """Return ``state`` if it is a valid state name, else raise :class:`InvalidStateError`."""
    problem = _problem(state, "state")
    if problem is not None:
        raise InvalidStateError(
            f"{problem}; a state must be a built-in State or a custom name of {_RULE}"
        )
    return state  # type: ignore[return-value]  # _problem proved it is a str


def check_result(result: object) -> None:
    """Check a result before it is stored: its type, id, state and the ids it links to."""
    if not isinstance(result, TaskResult):
        raise InvalidInputError(
            f"expected a TaskResult, got {type(result).__name__} {_shown(result)}; build one "
            f"with resultstore.TaskResult(task_id, state, value) or use mark_as_done()"
        )
    check_task_id(result.task_id)
    check_state(result.state)
    if result.group_id is not None:
        check_group_id(result.group_id)
    if result.parent_id is not None:
        check_task_id(result.parent_id)
    if result.children:
        check_task_ids(result.children)


def check_group(group_id: object, task_ids: Iterable[object]) -> None:
    """Check a group's id and its members' ids."""
    check_group_id(group_id)
    check_task_ids(task_ids)


def check_results(results: Iterable[object]) -> None:
    """:func:`check_result` for each of ``results``."""
    for result in results:
        check_result(result)
