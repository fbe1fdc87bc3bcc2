"""Sends chord parts from a spawned process (module-level, so spawn can import it)."""

from __future__ import annotations

import random

import resultstore
from resultstore import State, TaskResult


def send_parts(url: str, group_id: str, size: int, seed: int) -> list[list[int]]:
    """Send every part of the chord, in a shuffled order, each twice; return the header
    (as part values) of each completion this process saw."""
    indices = [*range(size), *range(size)]
    random.Random(seed).shuffle(indices)
    completions = []
    with resultstore.connect(url) as store:
        for index in indices:
            outcome = store.chord_part_return(
                group_id, index, TaskResult(f"{group_id}-{index}", State.SUCCESS, index)
            )
            if outcome.complete:
                assert outcome.results is not None
                completions.append([r.result for r in outcome.results])
    return completions
