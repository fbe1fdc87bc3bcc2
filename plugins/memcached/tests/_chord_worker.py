"""Sends chord parts from a spawned process (module-level, so spawn can import it)."""

from __future__ import annotations

import resultstore
from resultstore import State, TaskResult


def send_parts(url: str, prefix: str, group_id: str, indices: list[int]) -> list[list[int]]:
    """Send the parts ``indices``; return the header (as part values) of each completion seen."""
    completions = []
    with resultstore.connect(url, key_prefix=prefix) as store:
        for index in indices:
            outcome = store.chord_part_return(
                group_id, index, TaskResult(f"{group_id}-{index}", State.SUCCESS, index)
            )
            if outcome.complete:
                assert outcome.results is not None
                completions.append([r.result for r in outcome.results])
    return completions
