"""``memory://``: the in-process reference backend.

Thread-safe, everything under one lock, so that each operation is plainly
atomic; payloads are encoded like in any other store, so codec errors and
corrupt payloads behave as they would elsewhere. ``memory://`` makes a new
private store; ``memory://NAME`` shares one store by name within the process.
Push waiting is in-process. Pass ``clock=`` (a callable returning seconds)
to control expiry in tests.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import attrs

from resultstore.concepts.errors import ChordError
from resultstore.concepts.models import ChordOutcome, ChordState, Group, StoreOutcome, TaskResult
from resultstore.concepts.states import READY_STATES
from resultstore.payloads.codecs import Serializer
from resultstore.plugin.config import BackendConfig
from resultstore.plugin.protocols import Capability
from resultstore.plugin.retrying import Closed

__all__ = ["MemoryBackend", "MemoryData", "MemoryListener"]

Clock = Callable[[], float]


@attrs.define
class _Entry:
    state: str
    payload: bytes
    expires_at: float | None


@attrs.define
class _Chord:
    size: int
    parts: dict[int, bytes] = attrs.Factory(dict)
    completed: bool = False
    expires_at: float | None = None
    #: when the sending of the body was last claimed (SupportsChordBody).
    body_claimed_at: float | None = None
    body_sent: bool = False


class MemoryListener:
    """A push listener fed directly by the store it listens to."""

    def __init__(self, data: MemoryData) -> None:
        self._data = data
        self._cond = threading.Condition()
        self._subscribed: set[str] = set()
        self._announced: list[str] = []
        self._closed = False
        data.add_listener(self)

    def subscribe(self, task_ids: Iterable[str]) -> None:
        with self._cond:
            self._subscribed.update(task_ids)

    def unsubscribe(self, task_ids: Iterable[str]) -> None:
        with self._cond:
            self._subscribed.difference_update(task_ids)

    @property
    def subscriptions(self) -> frozenset[str]:
        with self._cond:
            return frozenset(self._subscribed)

    def announce(self, task_id: str) -> None:
        with self._cond:
            if task_id in self._subscribed:
                self._announced.append(task_id)
                self._cond.notify_all()

    def wake(self) -> None:
        """Cut a blocked :meth:`wait` short (a new waiter arrived)."""
        with self._cond:
            self._cond.notify_all()

    def wait(self, timeout: float) -> list[str]:
        with self._cond:
            if not self._announced and not self._closed:
                self._cond.wait(timeout)
            announced, self._announced = self._announced, []
            return announced

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._subscribed.clear()
            self._cond.notify_all()
        self._data.remove_listener(self)


class MemoryData:
    """The state of one in-memory store, possibly shared by several backends."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.results: dict[str, _Entry] = {}
        self.groups: dict[str, tuple[bytes, float | None]] = {}
        self.chords: dict[str, _Chord] = {}
        self._listeners: weakref.WeakSet[MemoryListener] = weakref.WeakSet()

    def add_listener(self, listener: MemoryListener) -> None:
        with self.lock:
            self._listeners.add(listener)

    def remove_listener(self, listener: MemoryListener) -> None:
        with self.lock:
            self._listeners.discard(listener)

    def announce(self, task_id: str) -> None:
        with self.lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener.announce(task_id)


_named: dict[str, MemoryData] = {}
_named_lock = threading.Lock()


def _shared(name: str) -> MemoryData:
    with _named_lock:
        return _named.setdefault(name, MemoryData())


class MemoryBackend:
    """The reference implementation of every protocol in :mod:`resultstore.plugin.protocols`."""

    capabilities = frozenset(
        {
            Capability.BULK_GET,
            Capability.BULK_PAYLOADS,
            Capability.BATCH_STORE,
            Capability.PUSH,
            Capability.AUTO_EXPIRY,
            Capability.CLEANUP,
            Capability.GROUPS,
            Capability.CHORDS,
        }
    )

    def __init__(self, config: BackendConfig) -> None:
        self._serializer: Serializer = config.serializer
        self._expires = config.expires
        self._clock: Clock = config.options.take("clock", _callable, time.time)
        name = (config.url.host or "") + config.url.path.strip("/")
        self.data = _shared(name) if name else MemoryData()

    # -- helpers -------------------------------------------------------------

    def _expiry(self) -> float | None:
        return None if self._expires is None else self._clock() + self._expires

    def _live(self, expires_at: float | None) -> bool:
        return expires_at is None or expires_at > self._clock()

    def _entry(self, task_id: str) -> _Entry | None:
        entry = self.data.results.get(task_id)
        if entry is not None and not self._live(entry.expires_at):
            del self.data.results[task_id]
            return None
        return entry

    def plant_payload(self, task_id: str, payload: bytes, state: str = "SUCCESS") -> None:
        """Put raw bytes where a result would be (tests of corrupt payloads)."""
        with self.data.lock:
            self.data.results[task_id] = _Entry(state, payload, self._expiry())

    # -- ResultBackend -----------------------------------------------------------

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        payload = self._serializer.dumps(result)
        with self.data.lock:
            current = self._entry(result.task_id)
            previous = current.state if current is not None else None
            if previous in READY_STATES and not overwrite:
                return StoreOutcome(stored=False, state=previous, previous_state=previous)
            self.data.results[result.task_id] = _Entry(result.state, payload, self._expiry())
        self.data.announce(result.task_id)
        return StoreOutcome(stored=True, state=result.state, previous_state=previous)

    def store_many(
        self, results: Sequence[TaskResult], *, overwrite: bool = False
    ) -> list[StoreOutcome]:
        return [self.store(result, overwrite=overwrite) for result in results]

    def get(self, task_id: str) -> TaskResult | None:
        with self.data.lock:
            entry = self._entry(task_id)
        return None if entry is None else self._serializer.loads(entry.payload, TaskResult)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        return self._serializer.loads_many(self.get_payloads(task_ids))

    def get_payloads(self, task_ids: Sequence[str]) -> dict[str, bytes | None]:
        with self.data.lock:
            entries = {task_id: self._entry(task_id) for task_id in task_ids}
        return {
            task_id: None if entry is None else entry.payload for task_id, entry in entries.items()
        }

    def forget(self, task_id: str) -> None:
        with self.data.lock:
            self.data.results.pop(task_id, None)

    def close(self) -> None:
        # The data stays with other backends sharing it; this one is done with it.
        self.data = cast(MemoryData, Closed("this memory:// backend"))

    # -- groups ------------------------------------------------------------------

    def save_group(self, group: Group) -> None:
        payload = self._serializer.dumps(group)
        with self.data.lock:
            self.data.groups[group.group_id] = (payload, self._expiry())

    def get_group(self, group_id: str) -> Group | None:
        with self.data.lock:
            item = self.data.groups.get(group_id)
            if item is None or not self._live(item[1]):
                self.data.groups.pop(group_id, None)
                return None
        return self._serializer.loads(item[0], Group)

    def delete_group(self, group_id: str) -> None:
        with self.data.lock:
            self.data.groups.pop(group_id, None)

    # -- chords ------------------------------------------------------------------

    def _chord(self, group_id: str) -> _Chord | None:
        chord = self.data.chords.get(group_id)
        if chord is not None and not self._live(chord.expires_at):
            del self.data.chords[group_id]
            return None
        return chord

    def set_chord_size(self, group_id: str, size: int) -> None:
        if size < 0:
            raise ChordError(f"chord size must be >= 0, got {size}")
        with self.data.lock:
            chord = self._chord(group_id)
            if chord is None:
                self.data.chords[group_id] = _Chord(size, expires_at=self._expiry())
            else:
                chord.size = size
                chord.expires_at = self._expiry()

    def chord_part_return(self, group_id: str, index: int, result: TaskResult) -> ChordOutcome:
        payload = self._serializer.dumps(result)
        parts: list[bytes] = []
        with self.data.lock:
            chord = self._chord(group_id)
            if chord is None:
                raise ChordError(
                    f"chord {group_id!r} has no size set (or it expired); call "
                    f"set_chord_size({group_id!r}, n) before its parts return"
                )
            if not 0 <= index < chord.size:
                raise ChordError(
                    f"chord {group_id!r} part index {index} is out of range 0..{chord.size - 1}"
                )
            chord.expires_at = self._expiry()
            duplicate = index in chord.parts
            if not duplicate:
                chord.parts[index] = payload
            complete = not duplicate and not chord.completed and len(chord.parts) == chord.size
            if complete:
                chord.completed = True
                parts = [chord.parts[i] for i in range(chord.size)]
            received, size = len(chord.parts), chord.size
        results = tuple(self._serializer.loads(p, TaskResult) for p in parts) if complete else None
        return ChordOutcome(
            group_id=group_id,
            index=index,
            complete=complete,
            duplicate=duplicate,
            received=received,
            size=size,
            results=results,
        )

    def get_chord(self, group_id: str) -> ChordState | None:
        with self.data.lock:
            chord = self._chord(group_id)
            if chord is None:
                return None
            return ChordState(group_id, chord.size, frozenset(chord.parts), chord.completed)

    def claim_chord_body(self, group_id: str, lease: float) -> ChordOutcome | None:
        with self.data.lock:
            chord = self._chord(group_id)
            if chord is None or not chord.completed or chord.body_sent:
                return None
            now = self._clock()
            claimed = chord.body_claimed_at
            if claimed is None or now - claimed < lease:
                if claimed is None:
                    chord.body_claimed_at = now
                return ChordOutcome(group_id, -1, received=len(chord.parts), size=chord.size)
            chord.body_claimed_at = now
            parts = [chord.parts[i] for i in range(chord.size)]
        results = tuple(self._serializer.loads(p, TaskResult) for p in parts)
        return ChordOutcome(
            group_id, -1, complete=True, received=len(parts), size=len(parts), results=results
        )

    def mark_chord_body_sent(self, group_id: str) -> None:
        with self.data.lock:
            chord = self._chord(group_id)
            if chord is not None and chord.completed:
                chord.body_sent = True

    # -- cleanup and push --------------------------------------------------------

    def cleanup(self) -> int:
        with self.data.lock:
            now = self._clock()
            dead = [
                k
                for k, e in self.data.results.items()
                if e.expires_at is not None and e.expires_at <= now
            ]
            for key in dead:
                del self.data.results[key]
            for gid in [
                g for g, (_, exp) in self.data.groups.items() if exp is not None and exp <= now
            ]:
                del self.data.groups[gid]
            for cid in [
                c
                for c, ch in self.data.chords.items()
                if ch.expires_at is not None and ch.expires_at <= now
            ]:
                del self.data.chords[cid]
        return len(dead)

    def listener(self) -> MemoryListener:
        return MemoryListener(self.data)


def _callable(value: Any) -> Clock:
    if not callable(value):
        raise ValueError("clock must be a callable returning seconds (like time.time)")
    clock: Clock = value
    return clock
