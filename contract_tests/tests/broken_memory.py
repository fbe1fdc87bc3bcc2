"""Deliberately broken variants of the memory backend, each under a URL scheme of its own.

Each class breaks one rule the way a real backend might (a read-then-write
that is not atomic, a column that truncates, a cleanup that forgets groups).
The contract suite must fail against every one of them and pass against
``faithful://``, the unbroken backend registered the same way.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import re
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from resultstore import (
    READY_STATES,
    BackendSpec,
    BackendUnavailableError,
    Capability,
    ChordError,
    ChordOutcome,
    CorruptPayloadError,
    DecodeError,
    Group,
    Serializer,
    State,
    StoreOutcome,
    TaskResult,
    hookimpl,
)
from resultstore.backends.memory import MemoryBackend, MemoryData, MemoryListener, _Chord, _Entry
from resultstore.plugin.config import DEFAULT_EXPIRES

#: the named memory stores whose "server" was stopped (see :func:`stop`).
_STOPPED: set[int] = set()
_STOPPED_LOCK = threading.Lock()


def stop(url: str) -> None:
    """Stop the "server" of the named memory store ``url``: its backends fail from now on."""
    from resultstore.backends.memory import _shared
    from resultstore.concepts.urls import parse_url

    parsed = parse_url(url)
    with _STOPPED_LOCK:
        _STOPPED.add(id(_shared((parsed.host or "") + parsed.path.strip("/"))))


class Stoppable(MemoryBackend):
    """The memory backend with a server that can be stopped: then every call fails at once.

    The broken variants' stand-in for a network backend whose server went
    away (the dead-server checks); until :func:`stop`, it is the memory backend.
    """

    #: seconds a call spends trying a stopped server before it gives up.
    retry_seconds = 0.0

    def _down(self, data: MemoryData) -> None:
        with _STOPPED_LOCK:
            stopped = id(data) in _STOPPED
        if stopped:
            time.sleep(self.retry_seconds)
            raise BackendUnavailableError("the memory server was stopped")

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name in _SERVER_CALLS:
            data = super().__getattribute__("data")
            if isinstance(data, MemoryData):
                super().__getattribute__("_down")(data)
        return value


_SERVER_CALLS = frozenset(
    {
        "store",
        "store_many",
        "get",
        "get_many",
        "forget",
        "save_group",
        "get_group",
        "delete_group",
        "set_chord_size",
        "chord_part_return",
        "get_chord",
        "cleanup",
    }
)


class Faithful(Stoppable):
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


class _DrainingListener(MemoryListener):
    def wait(self, timeout: float) -> list[str]:
        # Hands announcements over only once nothing came for 2 ms (at most 0.1 s on).
        heard = super().wait(timeout)
        until = time.monotonic() + 0.1
        while heard and time.monotonic() < until:
            more = super().wait(0.002)
            if not more:
                break
            heard.extend(more)
        return heard


class ListenerDrainsFirst(MemoryBackend):
    """The push listener delivers nothing until the announcements stop coming."""

    def listener(self) -> MemoryListener:
        return _DrainingListener(self.data)


class PushThatPolls(MemoryBackend):
    """Declares PUSH, but its listener "announces" every subscribed id on every wait."""

    def listener(self) -> MemoryListener:
        return _PollingListener(self.data)


class ExpiredStillReadable(MemoryBackend):
    """Reads keep expired results (expiry is checked only by cleanup)."""

    def _entry(self, task_id: str) -> _Entry | None:
        return self.data.results.get(task_id)


class GetManyFirstChunkOnly(MemoryBackend):
    """``get_many`` reads the first chunk of 100 ids and answers None for the rest."""

    def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        wanted = list(dict.fromkeys(task_ids))
        found = super().get_many(wanted[:100])
        return {task_id: found.get(task_id) for task_id in wanted}


class PayloadsMisalignedByRepeats(MemoryBackend):
    """``get_payloads`` pairs the ids as asked, repeats included, with the payloads of
    the distinct ids: after the first repeat each id gets a neighbour's payload."""

    def get_payloads(self, task_ids: Sequence[str]) -> dict[str, bytes | None]:
        distinct = list(dict.fromkeys(task_ids))
        found = super().get_payloads(distinct)
        return dict(zip(task_ids, [found[t] for t in distinct], strict=False))

    def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        # Its own reads are right: only the payloads it hands over are not.
        loads = self._serializer.loads
        return {
            task_id: None if payload is None else loads(payload, TaskResult)
            for task_id, payload in super().get_payloads(task_ids).items()
        }


def _like(pattern: str) -> re.Pattern[str]:
    """SQLite's ``LIKE``: ``_`` any character, ``%`` any run, ASCII case ignored."""
    parts = ("." if c == "_" else ".*" if c == "%" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


class ForgetMatchesLike(MemoryBackend):
    """``forget`` deletes ``WHERE task_id LIKE ?``: wildcards and case match lookalikes."""

    def forget(self, task_id: str) -> None:
        match = _like(task_id).fullmatch
        with self.data.lock:
            for key in [k for k in self.data.results if match(k)]:
                del self.data.results[key]


class PayloadsCutAtOneMiB(MemoryBackend):
    """Payloads over 1 MiB lose their tail, like a store that keeps one 1 MiB chunk."""

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        outcome = super().store(result, overwrite=overwrite)
        with self.data.lock:
            entry = self.data.results.get(result.task_id)
            if outcome.stored and entry is not None:
                entry.payload = entry.payload[: 1024 * 1024]
        return outcome


class DateDoneStoredAsLocalTime(MemoryBackend):
    """``date_done`` is written as the local wall-clock time labelled UTC (right only on UTC)."""

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        if result.date_done is not None:
            local = result.date_done.astimezone().replace(tzinfo=dt.UTC)
            result = attrs.evolve(result, date_done=local)
        return super().store(result, overwrite=overwrite)


class ExpiryNotRestarted(MemoryBackend):
    """A store keeps the expiry of the result it replaces (a SET with KEEPTTL)."""

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        with self.data.lock:
            before = self._entry(result.task_id)
            kept = None if before is None else before.expires_at
            outcome = super().store(result, overwrite=overwrite)
            entry = self.data.results.get(result.task_id)
            if outcome.stored and entry is not None and before is not None:
                entry.expires_at = kept
        return outcome


class ExpiredReadyStillRefuses(MemoryBackend):
    """The ready-is-final check reads the row without looking at its expiry."""

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        with self.data.lock:
            raw = self.data.results.get(result.task_id)
            if raw is not None and raw.state in READY_STATES and not overwrite:
                return StoreOutcome(stored=False, state=raw.state, previous_state=raw.state)
            return super().store(result, overwrite=overwrite)


_PARTS: dict[tuple[int, str], dict[int, bytes]] = {}


class ChordPartsOutliveTheChord(MemoryBackend):
    """Part results are kept apart from the chord, first write wins, without expiry: a
    chord set up again under an expired one's id completes with the expired parts."""

    def chord_part_return(self, group_id: str, index: int, result: TaskResult) -> ChordOutcome:
        outcome = super().chord_part_return(group_id, index, result)
        with self.data.lock:
            kept = _PARTS.setdefault((id(self.data), group_id), {})
            kept.setdefault(index, self._serializer.dumps(result))
            payloads = [kept[i] for i in range(outcome.size)] if outcome.complete else []
        if not outcome.complete:
            return outcome
        results = tuple(self._serializer.loads(p, TaskResult) for p in payloads)
        return attrs.evolve(outcome, results=results)


class _CarryingListener(MemoryListener):
    """Announcements carry the writer's payload; the listener decodes it with its own codecs
    (a payload it cannot decode is left out: that id is read as usual)."""

    def __init__(self, data: MemoryData, serializer: Serializer) -> None:
        super().__init__(data)
        self._serializer = serializer
        self._carried: dict[str, bytes] = {}

    def carry(self, task_id: str, payload: bytes) -> None:
        with self._cond:
            if task_id in self._subscribed:
                self._carried[task_id] = payload

    def take_carried(self) -> dict[str, TaskResult]:
        with self._cond:
            carried, self._carried = self._carried, {}
        results = {}
        for task_id, payload in carried.items():
            try:
                results[task_id] = self._serializer.loads(payload, TaskResult)
            except DecodeError:
                continue
        return results


_CARRIERS: dict[int, list[_CarryingListener]] = {}


class RefusedStoreAnnounced(MemoryBackend):
    """Every store is published with the offered result, refused or not (publish, then check)."""

    def listener(self) -> MemoryListener:
        listener = _CarryingListener(self.data, self._serializer)
        _CARRIERS.setdefault(id(self.data), []).append(listener)
        return listener

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        payload = self._serializer.dumps(result)
        for listener in _CARRIERS.get(id(self.data), []):
            listener.carry(result.task_id, payload)
        self.data.announce(result.task_id)
        return super().store(result, overwrite=overwrite)


class StoreManyNotAtomic(MemoryBackend):
    """``store_many`` reads every state, then writes the batch (two round trips, no check)."""

    def store_many(
        self, results: Sequence[TaskResult], *, overwrite: bool = False
    ) -> list[StoreOutcome]:
        with self.data.lock:
            seen = {r.task_id: self._entry(r.task_id) for r in results}
            states = {t: None if e is None else e.state for t, e in seen.items()}
        time.sleep(0.002)  # the gap between the read and the write
        outcomes = []
        for result in results:
            previous = states[result.task_id]
            if previous in READY_STATES and not overwrite:
                outcomes.append(StoreOutcome(False, previous, previous))
                continue
            with self.data.lock:
                self.data.results[result.task_id] = _Entry(
                    result.state, self._serializer.dumps(result), self._expiry()
                )
            self.data.announce(result.task_id)
            states[result.task_id] = result.state
            outcomes.append(StoreOutcome(True, result.state, previous))
        return outcomes


class _LossyTwin:
    """A "native" asyncio twin over a copy of the backend (calls run in threads)."""

    def __init__(self, backend: MemoryBackend) -> None:
        self.backend = backend
        self.capabilities = backend.capabilities
        self._closed = False

    def _open(self) -> MemoryBackend:
        if self._closed:
            raise BackendUnavailableError("this asyncio twin was closed")
        return self.backend

    async def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        return await asyncio.to_thread(self._open().store, result, overwrite=overwrite)

    async def get(self, task_id: str) -> TaskResult | None:
        return await asyncio.to_thread(self._open().get, task_id)

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        return await asyncio.to_thread(self._open().get_many, task_ids)

    async def forget(self, task_id: str) -> None:
        await asyncio.to_thread(self._open().forget, task_id)

    async def close(self) -> None:
        self._closed = True


class AsyncTwinLosesOptions(MemoryBackend):
    """The asyncio twin is built with default options: json, no compression, no clock."""

    capabilities = MemoryBackend.capabilities | {Capability.NATIVE_ASYNC}

    def async_backend(self) -> _LossyTwin:
        twin = copy.copy(self)
        twin._serializer = Serializer()
        twin._expires = DEFAULT_EXPIRES
        twin._clock = time.time
        return _LossyTwin(twin)


class CloseIsANoOp(MemoryBackend):
    """``close()`` does nothing: the backend keeps working for whoever holds it."""

    def close(self) -> None:
        pass


class DeadServerIgnoresTimeout(Stoppable):
    """With the server stopped, every call tries for 4 s, whatever the caller's timeout."""

    retry_seconds = 4.0


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
    # One per check the issue asked for; each is caught by that check alone.
    "broken-get-many-first-chunk-only": GetManyFirstChunkOnly,
    "broken-payloads-misaligned-by-repeats": PayloadsMisalignedByRepeats,
    "broken-forget-matches-like": ForgetMatchesLike,
    "broken-payloads-cut-at-1mib": PayloadsCutAtOneMiB,
    "broken-date-done-local-time": DateDoneStoredAsLocalTime,
    "broken-expiry-not-restarted": ExpiryNotRestarted,
    "broken-expired-ready-still-refuses": ExpiredReadyStillRefuses,
    "broken-chord-parts-outlive-the-chord": ChordPartsOutliveTheChord,
    "broken-refused-store-announced": RefusedStoreAnnounced,
    "broken-store-many-not-atomic": StoreManyNotAtomic,
    "broken-async-twin-loses-options": AsyncTwinLosesOptions,
    "broken-close-is-a-no-op": CloseIsANoOp,
    "broken-dead-server-ignores-timeout": DeadServerIgnoresTimeout,
    "broken-listener-drains-first": ListenerDrainsFirst,
}

#: the new checks, by the broken variant that only they catch: parts of the test names.
#: The first names the check made for the variant, which must catch it; any other
#: failure must be in one of the names that follow it.
CAUGHT_ONLY_BY: dict[str, tuple[str, ...]] = {
    "broken-get-many-first-chunk-only": ("test_bulk_get_many_beyond_one_batch",),
    "broken-payloads-misaligned-by-repeats": ("test_bulk_payloads_decode_to_what_get_returns",),
    "broken-forget-matches-like": ("test_ids_lookalikes_are_distinct_results",),
    "broken-payloads-cut-at-1mib": ("test_payload_exact_size_round_trips", "test_payload_"),
    # The time zone checks: date_done round trips, and the machine under a zone.
    "broken-date-done-local-time": ("test_tz_date_done_round_trips_exactly", "test_tz_"),
    # The state machine models expiry on a clock too, and may find this one as well.
    "broken-expiry-not-restarted": (
        "test_expiry_each_store_restarts_the_expiry",
        "test_machine_matches_a_plain_dict_model",
    ),
    "broken-expired-ready-still-refuses": (
        "test_expiry_expired_ready_result_no_longer_refuses_a_store",
    ),
    "broken-chord-parts-outlive-the-chord": (
        "test_expiry_chord_parts_and_group_expire_with_their_chord",
    ),
    # Waiters that were already waiting, and the listener itself.
    "broken-refused-store-announced": (
        "test_refused_stores_are_not_announced_with_their_value",
        "test_refused_stores_are_invisible_to_waiters",
    ),
    "broken-store-many-not-atomic": ("store_many_never_loses_a_ready_state",),
    "broken-async-twin-loses-options": ("test_async_twin_keeps_the_store_options",),
    "broken-close-is-a-no-op": (
        "test_lifecycle_every_call_after_close_raises_the_documented_error",
    ),
    "broken-dead-server-ignores-timeout": (
        "test_lifecycle_dead_server_fails_every_call_within_its_bound",
    ),
    "broken-listener-drains-first": ("test_wait_wake_latency_under_a_stream_of_other_results",),
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
