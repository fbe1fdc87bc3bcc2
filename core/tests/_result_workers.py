"""Work that test_result_api.py runs in spawned processes against one SQLite file.

Spawned children import these functions by module name, so they live in a
module of their own rather than in the test file.
"""

from __future__ import annotations

import random
from typing import Any

from resultstore import State, chord_part_done, connect
from resultstore.concepts.models import TaskResult, utcnow

__all__ = ["collect", "part_id", "race_chord_parts"]


def part_id(group_id: str, index: int) -> str:
    return f"{group_id}-part-{index}"


def collect(values: list[Any]) -> list[Any]:
    """A chord callback that returns the header values as it got them."""
    return list(values)


def race_chord_parts(
    url: str, group_id: str, callback_id: str, *, size: int, worker: int, workers: int
) -> int:
    """Deliver every part of the chord twice, in a shuffled order; return completions seen.

    Each worker first announces itself and waits (through the result API)
    until all workers have, so that they really run at the same time.
    """
    with connect(url) as store:
        store.mark_as_done(f"{group_id}-ready-{worker}", worker)
        everyone = [f"{group_id}-ready-{n}" for n in range(workers)]
        store.group_result(f"{group_id}-ready", everyone).join(timeout=60)
        order = list(range(size)) * 2
        random.Random(worker).shuffle(order)
        completions = 0
        for index in order:
            result = TaskResult(
                part_id(group_id, index), State.SUCCESS, index * 10, date_done=utcnow()
            )
            store.store(result)
            outcome = chord_part_done(
                store, group_id, index, result, callback_id=callback_id, callback=collect
            )
            completions += outcome.complete
        return completions
