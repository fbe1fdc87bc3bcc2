"""Work done in spawned processes for the checks of shared backends.

Spawned children import their target by name, so every job function lives
at module level here; each connects to the store itself, the way a worker
process of a task queue does.
"""

from __future__ import annotations

import importlib
import multiprocessing
import queue
import traceback
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from resultstore import ChordOutcome, ResultStore, StoreOutcome, TaskResult

__all__ = ["chord_parts", "run_in_processes", "store_batches", "store_results", "store_sequence"]

#: seconds a child may take, start-up included, before the parent gives up on it.
CHILD_TIMEOUT = 120.0

Job = Callable[..., Any]


@attrs.frozen
class _Order:
    """What one child does: connect, maybe wait for the others, run the job."""

    index: int
    job: Job
    url: str
    options: Mapping[str, Any]
    plugins: Sequence[object]
    args: tuple[Any, ...]


@attrs.frozen
class _ModuleByName:
    """A plugin module, sent by name: modules do not pickle, and a child imports its own."""

    name: str


def _portable(plugin: object) -> object:
    return _ModuleByName(plugin.__name__) if isinstance(plugin, types.ModuleType) else plugin


def _restored(plugin: object) -> object:
    if isinstance(plugin, _ModuleByName):
        return importlib.import_module(plugin.name)
    return plugin


def _child(order: _Order, gate: Any, results: Any) -> None:
    import resultstore

    try:
        plugins = [_restored(plugin) for plugin in order.plugins]
        store = resultstore.connect(order.url, plugins=plugins, **order.options)
        try:
            if gate is not None:
                gate.wait(CHILD_TIMEOUT)
            results.put((order.index, True, order.job(store, *order.args)))
        finally:
            store.close()
    except BaseException:
        results.put((order.index, False, traceback.format_exc()))


def run_in_processes(
    job: Job,
    url: str,
    options: Mapping[str, Any],
    plugins: Sequence[object],
    jobs: Sequence[tuple[Any, ...]],
    *,
    together: bool = False,
) -> list[Any]:
    """Run ``job(store, *args)`` for each ``args`` of ``jobs``, each in a spawned process.

    With ``together``, the children start their job at the same moment (a
    barrier), to make them race. Returns what each job returned, in order;
    a child's exception fails the calling test with the child's traceback.
    """
    ctx = multiprocessing.get_context("spawn")
    portable = tuple(_portable(plugin) for plugin in plugins)
    results = ctx.Queue()
    gate = ctx.Barrier(len(jobs)) if together else None
    children = [
        ctx.Process(
            target=_child,
            args=(_Order(i, job, url, dict(options), portable, args), gate, results),
            daemon=True,
        )
        for i, args in enumerate(jobs)
    ]
    for child in children:
        child.start()
    answers: dict[int, Any] = {}
    errors: list[str] = []
    try:
        for _ in children:
            try:
                index, ok, value = results.get(timeout=CHILD_TIMEOUT)
            except queue.Empty:
                raise AssertionError(
                    f"a child process ran {job.__name__} for over {CHILD_TIMEOUT} s"
                ) from None
            if ok:
                answers[index] = value
            else:
                errors.append(value)
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()
                child.join()
        results.close()
    if errors:
        raise AssertionError("a child process failed:\n" + "\n".join(errors))
    return [answers[i] for i in range(len(jobs))]


def store_results(store: ResultStore, results: Sequence[TaskResult]) -> list[StoreOutcome]:
    """Store each result in turn."""
    return [store.store(result) for result in results]


def store_sequence(
    store: ResultStore, rounds: Sequence[Sequence[TaskResult]]
) -> list[list[StoreOutcome]]:
    """Store each round's results in turn (one round per contested task)."""
    return [[store.store(result) for result in sequence] for sequence in rounds]


def store_batches(
    store: ResultStore, batches: Sequence[Sequence[TaskResult]]
) -> list[list[StoreOutcome]]:
    """Store each batch with one ``store_many`` call."""
    return [store.store_many(list(batch)) for batch in batches]


def chord_parts(
    store: ResultStore, group_id: str, parts: Sequence[tuple[int, TaskResult]]
) -> list[ChordOutcome]:
    """Return each ``(index, result)`` part of the chord ``group_id`` in turn."""
    return [store.chord_part_return(group_id, index, result) for index, result in parts]
