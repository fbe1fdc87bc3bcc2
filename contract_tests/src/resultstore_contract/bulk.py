"""Bulk reads beyond one batch: ``get_many`` of hundreds of ids, duplicates and misses mixed in.

Backends read many ids in chunks (an ``$in`` of 100, an ``MGET`` per slot, a
SQL ``IN`` of a few hundred parameters); the bugs live at the seams: the
ids after the first chunk, an id asked twice, a missing id between found
ones. The plain examples in ``basic`` ask for a handful of ids, far below
any chunk.
"""

from __future__ import annotations

import random
from typing import cast

from resultstore import (
    Capability,
    ResultStore,
    State,
    Succeeded,
    SupportsBulkPayloads,
    TaskResult,
)

from resultstore_contract.support import ContractBase, IdFactory, requires

__all__ = ["BulkContract"]

#: results stored for the bulk read (more than any sensible chunk of ids).
STORED = 320
#: ids asked for that were never stored.
MISSING = 130
#: ids asked for twice or three times.
REPEATED = 90


class BulkContract(ContractBase):
    """``get_many`` (and ``get_payloads``) answer every id of a request far larger
    than one batch."""

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

    @requires(Capability.BULK_PAYLOADS)
    def test_bulk_payloads_decode_to_what_get_returns(
        self, store: ResultStore, new_id: IdFactory
    ) -> None:
        """Each payload is the serializer's own: decoding it gives what ``get`` gives,
        and a join reads the same values through it as through ``get``."""
        stored = [
            TaskResult(new_id(), State.SUCCESS if i % 3 else "PROGRESS", {"n": i})
            for i in range(STORED)
        ]
        store.store_many(stored)
        failed = new_id()
        store.mark_as_failure(failed, ValueError("the bulk read must decode this one in full"))
        missing = [new_id("missing") for _ in range(MISSING)]
        asked = [r.task_id for r in stored] + missing + [failed] + missing[:REPEATED]
        random.Random(MISSING).shuffle(asked)
        backend = cast(SupportsBulkPayloads, store.backend)
        payloads = backend.get_payloads(asked)
        assert set(payloads) == set(asked), (
            f"get_payloads of {len(asked)} ids ({len(set(asked))} distinct) answered for "
            f"{len(set(payloads) & set(asked))} of them: every asked id must be a key"
        )
        expected = {t: store.get(t) for t in [r.task_id for r in stored] + [failed]}
        for task_id, payload in payloads.items():
            if task_id in missing:
                assert payload is None, f"{task_id!r} was never stored, but has a payload"
                continue
            assert isinstance(payload, bytes), f"{task_id!r}: payload {payload!r} is not bytes"
            assert store.serializer.loads(payload, TaskResult) == expected[task_id], (
                f"{task_id!r}: the payload does not decode to what get() returns; "
                f"get_payloads must hand over what serializer.dumps made, byte for byte"
            )
        lean = store.get_many_lean(asked)
        assert set(lean) == set(asked)
        for task_id, meta in lean.items():
            if isinstance(meta, Succeeded):
                assert (meta.state, meta.result) == (State.SUCCESS, expected[task_id].result)  # type: ignore[union-attr]
                assert meta.full() == expected[task_id]
            else:
                assert meta == expected.get(task_id), f"{task_id!r}: {meta!r}"
        successes = [r.task_id for r in stored if r.state == State.SUCCESS]
        assert not store.serializer.plain or any(
            isinstance(lean[t], Succeeded) for t in successes
        ), "no plain SUCCESS came as a Succeeded: the bulk read decoded every model"
        values = store.group_result(new_id("group"), successes).join(timeout=10)
        assert values == [store.get(t).result for t in successes]  # type: ignore[union-attr]
