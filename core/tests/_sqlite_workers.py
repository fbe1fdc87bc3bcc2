"""Work that test_sqlite_backend.py runs in spawned processes against one SQLite file.

Spawned children import these functions by module name, so they live in a
module of their own rather than in the test file.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import attrs
from resultstore import (
    ChordOutcome,
    ExceptionInfo,
    Options,
    Serializer,
    State,
    StoreOutcome,
    TaskResult,
)
from resultstore.backends.sqlite import SQLiteBackend
from resultstore.concepts.urls import parse_url
from resultstore.plugin.config import DEFAULT_EXPIRES, BackendConfig

__all__ = ["chord_parts", "open_backend", "open_fresh", "race_states", "ready"]


def open_backend(
    path: object, *, expires: float | None = DEFAULT_EXPIRES, **options: Any
) -> SQLiteBackend:
    """A backend on ``path`` built the way connect() builds one, without the facade."""
    url = parse_url(f"sqlite:///{path}")
    return SQLiteBackend(
        BackendConfig(url, Serializer(), Options(options, source=str(url)), expires)
    )


def ready(worker: int) -> int:
    """Keeps a pool process busy briefly, so warming a pool starts all of its processes."""
    time.sleep(0.1)
    return worker


def _plan(worker: int) -> list[TaskResult]:
    started = TaskResult("", State.STARTED, worker=f"w{worker}")
    if worker == 0:
        final = TaskResult("", State.SUCCESS, f"value from w{worker}", worker=f"w{worker}")
    elif worker == 1:
        error = ExceptionInfo("ValueError", "builtins", (f"w{worker}",), f"w{worker}")
        final = TaskResult("", State.FAILURE, exception=error, worker=f"w{worker}")
    else:
        final = TaskResult("", "PROGRESS", {"worker": worker}, worker=f"w{worker}")
    return [started, final]


def race_states(path: str, worker: int, task_ids: Sequence[str]) -> list[tuple[str, StoreOutcome]]:
    """Store STARTED then this worker's second state on every id, in the same order
    as the other workers, so that all of them contend on the same id at once."""
    backend = open_backend(path)
    outcomes: list[tuple[str, StoreOutcome]] = []
    try:
        for task_id in task_ids:
            for template in _plan(worker):
                result = attrs.evolve(template, task_id=task_id)
                outcomes.append((str(result.state), backend.store(result)))
    finally:
        backend.close()
    return outcomes


def chord_parts(path: str, group_id: str, indexes: Sequence[int]) -> list[ChordOutcome]:
    """Return header parts ``indexes`` of a chord whose size is already set."""
    backend = open_backend(path)
    try:
        return [
            backend.chord_part_return(
                group_id, index, TaskResult(f"part-{index}", State.SUCCESS, index * index)
            )
            for index in indexes
        ]
    finally:
        backend.close()


def open_fresh(paths: Sequence[str], worker: int, start_at: float) -> list[str]:
    """At ``start_at``, open each fresh file (creating its schema) and store one result."""
    time.sleep(max(0.0, start_at - time.time()))
    for path in paths:
        backend = open_backend(path)
        try:
            backend.store(TaskResult(f"w{worker}", State.SUCCESS, worker))
        finally:
            backend.close()
    return list(paths)
