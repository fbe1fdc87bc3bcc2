"""Ids that look alike are different ids: for results, forget, groups and chords.

Real stores fold case (a case-insensitive collation), read ``_`` and ``%`` as
SQL ``LIKE`` wildcards, ``*``, ``?`` and ``[`` as glob patterns (``KEYS``,
``SCAN MATCH``, a file glob), split keys at separators, or cut long keys to
a column's width. Every id below is distinct, so each must keep its own
result, and forgetting or deleting one must leave its lookalikes alone.

The ids stay within printable ASCII and about 200 characters, inside any
sensible id alphabet.
"""

from __future__ import annotations

from resultstore import Capability, ChordState, Group, ResultStore, State, StoreOutcome, TaskResult

from resultstore_contract.support import ContractBase, IdFactory, requires

__all__ = ["IdsContract", "lookalike_ids"]

#: suffixes that make ids alike, by the mistake they probe.
LOOKALIKES: dict[str, tuple[str, ...]] = {
    "case": ("Ab", "ab", "AB", "aB"),
    "sql wildcards": ("a", "a_", "a_c", "abc", "a%", "a%c", "a%%", "a\\_c", "a\\%"),
    "glob wildcards": ("a*", "a*c", "a?c", "a?", "a[b]c", "a[bc", "a[!b]c", "a]", "[a]", "*"),
    "separators": (":x", "/x", ".x", "|x", " x", "\\x", "-x", "_x", "::x", "#x", ",x", ";x"),
    "quotes": ("'x'", '"x"', "`x`", "x'--"),
}
#: the longest ids' total length (within the documented maximum of any store).
LONG = 200


def lookalike_ids(base: str) -> list[str]:
    """Distinct ids that differ from one another only in case, wildcards, separators or tail."""
    ids = [f"{base}-{suffix}" for family in LOOKALIKES.values() for suffix in family]
    ids += [f"{base}:{suffix}" for suffix in LOOKALIKES["case"]]
    pad = LONG - len(base) - 3
    # Long ids equal up to their last character, and one a character shorter.
    ids += [f"{base}-{'y' * pad}{tail}" for tail in ("1", "2", "Y", "_")]
    ids += [f"{base}-{'y' * pad}", f"{base}-{'y' * (pad - 1)}1"]
    assert len(set(ids)) == len(ids), "the lookalike ids must be distinct"
    return ids


def _others(ids: list[str], gone: set[str]) -> list[str]:
    return [task_id for task_id in ids if task_id not in gone]


class IdsContract(ContractBase):
    """Lookalike ids keep distinct results, groups and chords."""

    def test_ids_lookalikes_are_distinct_results(
        self, store: ResultStore, new_id: IdFactory
    ) -> None:
        ids = lookalike_ids(new_id("Look"))
        for n, task_id in enumerate(ids):
            outcome = store.store(TaskResult(task_id, State.SUCCESS, {"n": n, "id": task_id}))
            assert outcome == StoreOutcome(True, State.SUCCESS, None), (
                f"storing {task_id!r} met an earlier result ({outcome}): an id that only "
                f"looks like it was taken for the same id"
            )
        expected = {task_id: {"n": n, "id": task_id} for n, task_id in enumerate(ids)}
        for task_id in ids:
            got = store.get(task_id)
            assert got is not None, f"{task_id!r} reads as missing"
            assert got.result == expected[task_id], f"{task_id!r} reads a lookalike's result"
        got_many = store.get_many(ids)
        assert {t: None if r is None else r.result for t, r in got_many.items()} == expected
        # Forget every wildcard and every upper-case id: their lookalikes stay.
        gone = {t for t in ids if any(c in t for c in "_%*?[\\") or t[-4:].lower() != t[-4:]}
        for task_id in sorted(gone):
            store.forget(task_id)
        left = _others(ids, gone)
        after = store.get_many(ids)
        vanished = [t for t in left if after[t] is None]
        assert not vanished, (
            f"forget of lookalike ids also deleted {vanished[:3]!r}: forget must delete "
            f"exactly the id given, never a pattern match"
        )
        kept = [t for t in gone if after[t] is not None]
        assert not kept, f"forget left {kept[:3]!r} readable"
        # The forgotten ids are free again; their lookalikes' ready states do not refuse them.
        for task_id in sorted(gone):
            assert store.store(TaskResult(task_id, State.STARTED)).stored

    @requires(Capability.GROUPS)
    def test_ids_lookalike_groups_are_distinct(self, store: ResultStore, new_id: IdFactory) -> None:
        group_ids = lookalike_ids(new_id("Group"))
        saved: dict[str, Group] = {}
        for n, group_id in enumerate(group_ids):
            saved[group_id] = store.save_group(group_id, [f"{group_id}/member-{n}"])
        for group_id in group_ids:
            assert store.get_group(group_id) == saved[group_id], (
                f"group {group_id!r} reads {store.get_group(group_id)!r}: a lookalike's group"
            )
        gone = set(group_ids[::2])
        for group_id in sorted(gone):
            store.delete_group(group_id)
        for group_id in group_ids:
            got = store.get_group(group_id)
            if group_id in gone:
                assert got is None, f"delete_group left {group_id!r}"
            else:
                assert got == saved[group_id], (
                    f"deleting lookalike groups also deleted or changed {group_id!r}"
                )

    @requires(Capability.CHORDS)
    def test_ids_lookalike_chords_are_distinct(self, store: ResultStore, new_id: IdFactory) -> None:
        group_ids = lookalike_ids(new_id("Chord"))
        sizes = {group_id: 2 + n % 3 for n, group_id in enumerate(group_ids)}
        for group_id, size in sizes.items():
            store.set_chord_size(group_id, size)
        # One part each; the chords of size 2 get their second part too.
        for group_id, size in sizes.items():
            part = TaskResult(f"{group_id}/part-0", State.SUCCESS, group_id)
            outcome = store.chord_part_return(group_id, 0, part)
            assert not outcome.duplicate, (
                f"the first part of chord {group_id!r} was taken for a duplicate: "
                f"a lookalike chord's part was counted for it"
            )
            assert (outcome.received, outcome.size) == (1, size), (
                f"chord {group_id!r} counts {outcome.received} of {outcome.size} parts "
                f"after its first, not 1 of {size}"
            )
        for group_id, size in sizes.items():
            if size == 2:
                last = TaskResult(f"{group_id}/part-1", State.SUCCESS, group_id)
                done = store.chord_part_return(group_id, 1, last)
                assert done.complete
                assert done.results is not None
                assert [r.result for r in done.results] == [group_id, group_id], (
                    f"chord {group_id!r} completed with a lookalike's parts"
                )
        for group_id, size in sizes.items():
            parts = frozenset({0, 1}) if size == 2 else frozenset({0})
            assert store.get_chord(group_id) == ChordState(group_id, size, parts, size == 2)
