"""Deliberately broken variants of the memory backend, each under a URL scheme of its own.

Each class breaks one rule the way a real backend might (a read-then-write
that is not atomic, a column that truncates, a cleanup that forgets groups).
The contract suite must fail against every one of them and pass against
``faithful://``, the unbroken backend registered the same way.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import attrs
from resultstore import hookimpl
from resultstore.backends.memory import MemoryBackend, MemoryListener, _Chord, _Entry
from resultstore.discovery import BackendSpec
from resultstore.errors import ChordError, CorruptPayloadError
from resultstore.models import ChordOutcome, Group, StoreOutcome, TaskResult
from resultstore.states import READY_STATES, State


class Faithful(MemoryBackend):
    """No bug: proves that failures come from the bugs, not from the plumbing."""


class ReadyOverwrittenByStarted(MemoryBackend):
    """An unready state replaces a ready one (a plain SET instead of a checked write)."""

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        if result.state == State.STARTED:
            return super().store(result, overwrite=True)
        return super().store(result, overwrite=overwrite)


class OnlySuccessIsFinal(MemoryBackend):
    """FAILURE and REVOKED can be replaced: the check tests ``== SUCCESS`` only."""

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        with self.data.lock:
            current = self._entry(result.task_id)
            previous = None if current is None else current.state
        if previous in READY_STATES and previous != State.SUCCESS:
            overwrite = True
        return super().store(result, overwrite=overwrite)


class OverwriteIgnored(MemoryBackend):
    """``overwrite=True`` is dropped on the way to the store."""

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        return super().store(result)


class RefusalReportedAsStored(MemoryBackend):
    """A refused write still answers ``stored=True`` with the offered state."""

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        outcome = super().store(result, overwrite=overwrite)
        return attrs.evolve(outcome, stored=True, state=result.state)


class ForgetDoesNothing(MemoryBackend):
    """``forget`` deletes the wrong key."""

    def forget(self, task_id: str) -> None:
        super().forget(f"result:{task_id}")


class GetManyDropsMissing(MemoryBackend):
    """``get_many`` answers only for the ids it found."""

    def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        return {k: v for k, v in super().get_many(task_ids).items() if v is not None}


class TtlIgnored(MemoryBackend):
    """Results never expire (the TTL argument is never passed)."""

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        outcome = super().store(result, overwrite=overwrite)
        with self.data.lock:
            entry = self.data.results.get(result.task_id)
            if outcome.stored and entry is not None:
                entry.expires_at = None
        return outcome


class GroupsNeverExpire(MemoryBackend):
    """Groups are saved without their expiry."""

    def save_group(self, group: Group) -> None:
        payload = self._serializer.dumps(group)
        with self.data.lock:
            self.data.groups[group.group_id] = (payload, None)


class DeleteGroupLeavesIt(MemoryBackend):
    """``delete_group`` deletes the members' results instead of the group."""

    def delete_group(self, group_id: str) -> None:
        group = self.get_group(group_id)
        for task_id in group.task_ids if group else ():
            self.forget(task_id)


class GroupOrderLost(MemoryBackend):
    """Members are kept in a set-like order (sorted), not in group order."""

    def save_group(self, group: Group) -> None:
        super().save_group(attrs.evolve(group, task_ids=tuple(sorted(group.task_ids))))


class ExceptionTypeLost(MemoryBackend):
    """Only the message of a task's exception is kept; every type becomes Exception."""

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        if result.exception is not None:
            flat = attrs.evolve(result.exception, type_name="Exception", module="builtins")
            result = attrs.evolve(result, exception=flat)
        return super().store(result, overwrite=overwrite)


class LargeValuesTruncated(MemoryBackend):
    """Payloads are cut at 64 KiB, like a BLOB column."""

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        outcome = super().store(result, overwrite=overwrite)
        with self.data.lock:
            entry = self.data.results.get(result.task_id)
            if outcome.stored and entry is not None:
                entry.payload = entry.payload[:65536]
        return outcome


class CodecHeaderIgnored(MemoryBackend):
    """Only the body is kept; reads assume this client's own codec."""

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        outcome = super().store(result, overwrite=overwrite)
        with self.data.lock:
            entry = self.data.results.get(result.task_id)
            if outcome.stored and entry is not None:
                entry.payload = entry.payload.split(b"\n", 1)[1]
        return outcome

    def _decode(self, payload: bytes) -> TaskResult:
        own = self._serializer.options.codec.encode()
        return self._serializer.loads(b"rs1 codec=" + own + b"\n" + payload, TaskResult)

    def get(self, task_id: str) -> TaskResult | None:
        with self.data.lock:
            entry = self._entry(task_id)
        return None if entry is None else self._decode(entry.payload)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        return {task_id: self.get(task_id) for task_id in task_ids}


class CorruptPayloadCrashes(MemoryBackend):
    """A payload that is not a resultstore payload raises a raw ValueError."""

    def get(self, task_id: str) -> TaskResult | None:
        try:
            return super().get(task_id)
        except CorruptPayloadError as exc:
            raise ValueError(f"cannot read {task_id}") from exc


_COUNTS: dict[str, int] = {}


class DuplicatesCountedTwice(MemoryBackend):
    """Parts are counted with a counter, not a set: repeats count again."""

    def chord_part_return(self, group_id: str, index: int, result: TaskResult) -> ChordOutcome:
        outcome = super().chord_part_return(group_id, index, result)
        with self.data.lock:
            key = f"{id(self.data)}:{group_id}"
            _COUNTS[key] = _COUNTS.get(key, 0) + 1
            received = _COUNTS[key]
        return attrs.evolve(outcome, duplicate=False, received=received)


class ChordCompletesTwice(MemoryBackend):
    """Completion is "all parts present", so every later repeat completes it again."""

    def chord_part_return(self, group_id: str, index: int, result: TaskResult) -> ChordOutcome:
        outcome = super().chord_part_return(group_id, index, result)
        if outcome.received == outcome.size and not outcome.complete:
            with self.data.lock:
                chord = self._chord(group_id)
                parts = [] if chord is None else [chord.parts[i] for i in range(chord.size)]
            results = tuple(self._serializer.loads(p, TaskResult) for p in parts)
            return attrs.evolve(outcome, complete=True, results=results)
        return outcome


class NonAtomicChordCounter(MemoryBackend):
    """Reads the parts, then writes them in a second step, as two round trips would."""

    def chord_part_return(self, group_id: str, index: int, result: TaskResult) -> ChordOutcome:
        payload = self._serializer.dumps(result)
        with self.data.lock:
            chord: _Chord | None = self._chord(group_id)
            if chord is None or not 0 <= index < chord.size:
                raise ChordError(f"chord {group_id!r}: no size set or index {index} out of range")
            seen = dict(chord.parts)
        time.sleep(0.0005)  # the gap between the read and the write
        duplicate = index in seen
        seen.setdefault(index, payload)
        complete = not duplicate and len(seen) == chord.size
        with self.data.lock:
            chord.parts = {**chord.parts, **seen}
            chord.completed = chord.completed or complete
        results = None
        if complete:
            results = tuple(self._serializer.loads(seen[i], TaskResult) for i in range(chord.size))
        return ChordOutcome(
            group_id, index, complete, duplicate, len(seen), chord.size, results=results
        )


class _DeafListener(MemoryListener):
    def unsubscribe(self, task_ids: Iterable[str]) -> None:
        pass


class ListenerNeverUnsubscribes(MemoryBackend):
    """The push listener ignores unsubscribe."""

    def listener(self) -> MemoryListener:
        return _DeafListener(self.data)


class _PollingListener(MemoryListener):
    def wait(self, timeout: float) -> list[str]:
        time.sleep(timeout)
        return sorted(self.subscriptions)


class PushThatPolls(MemoryBackend):
    """Declares PUSH, but its listener "announces" every subscribed id on every wait."""

    def listener(self) -> MemoryListener:
        return _PollingListener(self.data)


class ExpiredStillReadable(MemoryBackend):
    """Reads keep expired results (expiry is checked only by cleanup)."""

    def _entry(self, task_id: str) -> _Entry | None:
        return self.data.results.get(task_id)


class WithoutBackDoor(MemoryBackend):
    """Correct, but offers no raw back door for planting payloads."""

    plant_payload = None  # type: ignore[assignment]  # hides the method, as a backend without one


#: every broken variant, by URL scheme (``faithful`` is the control, not broken).
VARIANTS: dict[str, type[MemoryBackend]] = {
    "faithful": Faithful,
    "no-back-door": WithoutBackDoor,
    "broken-ready-overwritten": ReadyOverwrittenByStarted,
    "broken-only-success-final": OnlySuccessIsFinal,
    "broken-overwrite-ignored": OverwriteIgnored,
    "broken-refusal-reported-stored": RefusalReportedAsStored,
    "broken-forget-does-nothing": ForgetDoesNothing,
    "broken-get-many-drops-missing": GetManyDropsMissing,
    "broken-ttl-ignored": TtlIgnored,
    "broken-expired-still-readable": ExpiredStillReadable,
    "broken-groups-never-expire": GroupsNeverExpire,
    "broken-delete-group-leaves-it": DeleteGroupLeavesIt,
    "broken-group-order-lost": GroupOrderLost,
    "broken-exception-type-lost": ExceptionTypeLost,
    "broken-large-values-truncated": LargeValuesTruncated,
    "broken-codec-header-ignored": CodecHeaderIgnored,
    "broken-corrupt-payload-crashes": CorruptPayloadCrashes,
    "broken-duplicates-counted-twice": DuplicatesCountedTwice,
    "broken-chord-completes-twice": ChordCompletesTwice,
    "broken-non-atomic-chord-counter": NonAtomicChordCounter,
    "broken-listener-never-unsubscribes": ListenerNeverUnsubscribes,
    "broken-push-that-polls": PushThatPolls,
}


class BrokenBackends:
    """A programmatic plugin serving every variant (pass it as ``connect(plugins=...)``)."""

    @staticmethod
    @hookimpl
    def resultstore_register_backends() -> Iterable[BackendSpec]:
        return [
            BackendSpec(
                scheme=scheme,
                target=f"{__name__}:{cls.__name__}",
                capabilities=cls.capabilities,
                summary=(cls.__doc__ or "").strip().splitlines()[0],
            )
            for scheme, cls in VARIANTS.items()
        ]
