"""Bulk reads beyond one batch: ``get_many`` of hundreds of ids, duplicates and misses mixed in.

Backends read many ids in chunks (an ``$in`` of 100, an ``MGET`` per slot, a
SQL ``IN`` of a few hundred parameters); the bugs live at the seams: the
ids after the first chunk, an id asked twice, a missing id between found
ones. The plain examples in ``basic`` ask for a handful of ids, far below
any chunk.
"""

from __future__ import annotations

import random

from resultstore import ResultStore, State, TaskResult

from resultstore_contract.support import ContractBase, IdFactory

__all__ = ["BulkContract"]

#: results stored for the bulk read (more than any sensible chunk of ids).
STORED = 320
#: ids asked for that were never stored.
MISSING = 130
#: ids asked for twice or three times.
REPEATED = 90


class BulkContract(ContractBase):
    """``get_many`` answers every id of a request far larger than one batch."""

    def test_bulk_get_many_beyond_one_batch(self, store: ResultStore, new_id: IdFactory) -> None:
        stored = [
            TaskResult(new_id(), State.SUCCESS if i % 3 else "PROGRESS", {"n": i})
            for i in range(STORED)
        ]
        store.store_many(stored)
        missing = [new_id("missing") for _ in range(MISSING)]
        rng = random.Random(STORED)
        asked = [r.task_id for r in stored] + missing
        asked += rng.sample(asked, REPEATED) + rng.sample(asked, REPEATED // 3)
        rng.shuffle(asked)
        got = store.get_many(asked)
        assert set(got) == set(asked), (
            f"get_many of {len(asked)} ids ({len(set(asked))} distinct) answered for "
            f"{len(set(got) & set(asked))} of them: every asked id must be a key"
        )
        expected: dict[str, TaskResult | None] = {
            **{r.task_id: r for r in stored},
            **dict.fromkeys(missing),
        }
        wrong = [task_id for task_id in set(asked) if got[task_id] != expected[task_id]]
        assert not wrong, (
            f"get_many of {len(asked)} ids gave the wrong answer for {len(wrong)} of them, "
            f"for example {wrong[0]!r}: {got[wrong[0]]!r} instead of {expected[wrong[0]]!r}"
        )
        # The same ids in the order stored, then only misses: chunks of found
        # ids and chunks of nothing.
        ordered = [r.task_id for r in stored] + missing
        assert store.get_many(ordered) == {task_id: expected[task_id] for task_id in ordered}
        assert store.get_many(missing) == dict.fromkeys(missing)
