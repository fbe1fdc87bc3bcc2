"""A full backend built from any :class:`~resultstore.KeyValueStore`, plus
:class:`DictKeyValueStore`, the in-process store that shows a third party what to write.

Every key starts with the backend's ``prefix`` (default ``resultstore:``)::

    <prefix>task:<task_id>             a result: "rskv1 state=<state>\\n" + payload
    <prefix>group:<group_id>           a saved group's payload
    <prefix>chord:<group_id>:size      the header size, ASCII decimal
    <prefix>chord:<group_id>:parts     set of the part indices received (decimal strings)
    <prefix>chord:<group_id>:part:<i>  the payload of header part i
    <prefix>chord:<group_id>:done      set once one caller has completed the chord: b"unsent",
                                       then b"claimed:<unix time>" while a caller recovers the
                                       body, b"1" once the body was sent (or before this was kept)

A result's state is kept on a line of its own before the payload (percent-encoded),
so that enforcing "a ready state is final" never has to decode a payload, whatever
codec or encryption plugin wrote it. Every key is written with ``ttl=expires``; a
chord's size and parts set are refreshed by each part, while a part's payload lives
``expires`` after that part arrived, like any result.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, cast, runtime_checkable
from urllib.parse import quote, unquote

import attrs

from resultstore.concepts.errors import (
    BackendUnavailableError,
    ChordError,
    ConfigurationError,
    CorruptPayloadError,
    UnsupportedOperationError,
)
from resultstore.concepts.models import ChordOutcome, ChordState, Group, StoreOutcome, TaskResult
from resultstore.concepts.states import READY_STATES, state_from_str
from resultstore.concepts.validation import check_group_id, check_task_id, check_task_ids
from resultstore.payloads.codecs import Serializer
from resultstore.plugin.config import DEFAULT_EXPIRES, BackendConfig
from resultstore.plugin.protocols import Capability, KeyValueStore, PushListener, SupportsPush
from resultstore.plugin.retrying import Closed

__all__ = [
    "DEFAULT_PREFIX",
    "MAX_STORE_ATTEMPTS",
    "DictKeyValueStore",
    "KeyListener",
    "KeyValueBackend",
    "SupportsPurgeExpired",
]

#: jitter for retries: a generator of our own, so that the application's (and
#: hypothesis's) global ``random`` state is never read or moved by a retry;
#: reseeded in a forked child, as the global one is, so forks do not jitter alike.
_JITTER = random.Random()
os.register_at_fork(after_in_child=_JITTER.seed)

#: where the backend's keys live unless told otherwise.
DEFAULT_PREFIX = "resultstore:"

#: compare-and-set rounds one ``store`` tries before giving up. Every lost round
#: means another writer's store went through, so only a key rewritten without
#: pause for the whole loop exhausts it.
MAX_STORE_ATTEMPTS = 64

Clock = Callable[[], float]

_FRAME_MAGIC = b"rskv1 state="
# The chord's done marker while its body is not known to be sent (SupportsChordBody).
_UNSENT = b"unsent"
_CLAIMED = b"claimed:"
_MIN_SWEEP_INTERVAL = 1024
# A state is a short name; the bound only keeps a damaged value from being scanned whole.
_MAX_FRAME = 1024

# What the backend inherits from the store. NATIVE_ASYNC is left out on purpose:
# this backend is sync whatever the store's client can do.
_PASSED_THROUGH = frozenset(
    {
        Capability.PERSISTENT,
        Capability.SHARED,
        Capability.AUTO_EXPIRY,
        Capability.PUSH,
        Capability.CLEANUP,
    }
)
_ADDED = frozenset(
    {
        Capability.BULK_GET,
        Capability.BULK_PAYLOADS,
        Capability.BATCH_STORE,
        Capability.GROUPS,
        Capability.CHORDS,
    }
)


@runtime_checkable
class SupportsPurgeExpired(Protocol):
    """What a key-value store that declares CLEANUP implements.

    Stores without their own expiry (files, plain tables) declare CLEANUP and
    delete expired keys when asked; :meth:`KeyValueBackend.cleanup` calls this.
    """

    def purge_expired(self) -> list[str]:
        """Delete the expired keys now and return them."""
        ...


class KeyListener:
    """A :class:`~resultstore.PushListener` over task ids, on top of a
    key-value store's listener, which hears the *keys* that were written.

    A store that declares PUSH implements ``listener()`` returning a listener
    whose ids are keys: it announces a subscribed key whenever the key is set.
    """

    def __init__(self, inner: PushListener, key_prefix: str) -> None:
        self._inner = inner
        self._prefix = key_prefix

    def subscribe(self, task_ids: Iterable[str]) -> None:
        self._inner.subscribe([self._prefix + task_id for task_id in task_ids])

    def unsubscribe(self, task_ids: Iterable[str]) -> None:
        self._inner.unsubscribe([self._prefix + task_id for task_id in task_ids])

    def wait(self, timeout: float) -> list[str]:
        cut = len(self._prefix)
        return [key[cut:] for key in self._inner.wait(timeout) if key.startswith(self._prefix)]

    def close(self) -> None:
        self._inner.close()


def _frame(state: str, payload: bytes) -> bytes:
    return _FRAME_MAGIC + quote(str(state), safe="").encode("ascii") + b"\n" + payload


def _unframe(key: str, value: bytes) -> tuple[str, bytes]:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise CorruptPayloadError(
            f"key {key!r} holds {type(value).__name__}, not bytes; the key-value store "
            f"holds data that resultstore did not write there"
        )
    value = bytes(value)
    end = value.find(b"\n", 0, _MAX_FRAME)
    if not value.startswith(_FRAME_MAGIC) or end < 0:
        raise CorruptPayloadError(
            f"key {key!r} does not start with a resultstore state line (starts with "
            f"{value[:16]!r}); it was written by another program or is damaged. Forget "
            f"the task, or give the backend a prefix of its own"
        )
    raw = value[len(_FRAME_MAGIC) : end]
    try:
        state = unquote(raw.decode("ascii"), errors="strict")
    except UnicodeDecodeError:
        state = ""
    if not state:
        raise CorruptPayloadError(f"key {key!r} has a damaged state line {raw[:40]!r}")
    return state_from_str(state), value[end + 1 :]


def _backoff(attempt: int) -> None:
    # The first retry goes at once (the usual race is one other writer); after
    # that, random sleeps spread writers that keep colliding on one key.
    if attempt > 1:
        time.sleep(_JITTER.uniform(0, min(0.01, 0.0001 * 2**attempt)))


def _parse_prefix(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"prefix must be a string such as 'myapp:', got {type(value).__name__}")
    return value


class KeyValueBackend:
    """Every backend protocol, from the few atomic primitives of a :class:`KeyValueStore`.

    ``capabilities`` are the store's own (PERSISTENT, SHARED, AUTO_EXPIRY, PUSH,
    CLEANUP) plus BULK_GET, BULK_PAYLOADS, BATCH_STORE, GROUPS and CHORDS. ``listener()``
    needs a store that declares PUSH and ``cleanup()`` one that declares CLEANUP
    (see :class:`KeyListener` and :class:`SupportsPurgeExpired`).
    """

    capabilities: frozenset[Capability]

    def __init__(
        self,
        store: KeyValueStore,
        serializer: Serializer,
        *,
        expires: float | None = DEFAULT_EXPIRES,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        if expires is not None and not expires > 0:
            raise ConfigurationError(
                f"expires must be a positive number of seconds or None (keep), got {expires!r}"
            )
        own = frozenset(store.capabilities)
        self._pusher: SupportsPush | None = None
        self._purger: SupportsPurgeExpired | None = None
        if Capability.PUSH in own:
            if not isinstance(store, SupportsPush):
                raise ConfigurationError(
                    f"{type(store).__name__} declares the push capability but has no "
                    f"listener() method; implement listener() (announcing written keys) "
                    f"or remove push from its capabilities"
                )
            self._pusher = store
        if Capability.CLEANUP in own:
            if not isinstance(store, SupportsPurgeExpired):
                raise ConfigurationError(
                    f"{type(store).__name__} declares the cleanup capability but has no "
                    f"purge_expired() method; implement it or remove cleanup from its "
                    f"capabilities"
                )
            self._purger = store
        self.capabilities = (own & _PASSED_THROUGH) | _ADDED
        #: the key-value store underneath (public so that tools can inspect it).
        self.kv = store
        self._serializer = serializer
        self._expires = expires
        self._prefix = prefix

    @classmethod
    def from_config(cls, store: KeyValueStore, config: BackendConfig) -> KeyValueBackend:
        """Build one inside a backend factory: takes the ``prefix`` option from
        ``config.options`` and uses the config's serializer and expiry."""
        prefix = config.options.take("prefix", _parse_prefix, DEFAULT_PREFIX)
        return cls(store, config.serializer, expires=config.expires, prefix=prefix)

    def __repr__(self) -> str:
        return f"<KeyValueBackend over {type(self.kv).__name__} prefix={self._prefix!r}>"

    # -- keys ------------------------------------------------------------------

    # Every id becomes a key here: the core's id rule also holds for callers
    # that use a backend directly, skipping the ResultStore facade.
    def _task_key(self, task_id: str) -> str:
        return f"{self._prefix}task:{check_task_id(task_id)}"

    def _group_key(self, group_id: str) -> str:
        return f"{self._prefix}group:{check_group_id(group_id)}"

    def _chord_key(self, group_id: str, suffix: str) -> str:
        return f"{self._prefix}chord:{group_id}:{suffix}"

    def _part_key(self, group_id: str, index: int) -> str:
        return self._chord_key(group_id, f"part:{index}")

    # -- results -----------------------------------------------------------------

    def _decode(self, key: str, value: bytes) -> TaskResult:
        _, payload = _unframe(key, value)
        return self._serializer.loads(payload, TaskResult)

    def _put(
        self, key: str, state: str, value: bytes, overwrite: bool, current: bytes | None
    ) -> tuple[StoreOutcome, bytes | None]:
        """Write ``value`` unless a ready state is stored; return the outcome and
        the value the key held last (for later writes to the same key)."""
        for attempt in range(MAX_STORE_ATTEMPTS):
            if attempt:
                _backoff(attempt)
                current = self.kv.get(key)
            previous: str | None = None
            if current is not None:
                try:
                    previous, _ = _unframe(key, current)
                except CorruptPayloadError:
                    # Without a readable state the rule cannot be checked, so only
                    # an explicit overwrite may replace the damaged value.
                    if not overwrite:
                        raise
            if previous is not None and previous in READY_STATES and not overwrite:
                return StoreOutcome(stored=False, state=previous, previous_state=previous), current
            if self.kv.compare_and_set(key, current, value, self._expires):
                return StoreOutcome(stored=True, state=state, previous_state=previous), value
        raise BackendUnavailableError(
            f"storing {key!r} lost the compare-and-set race {MAX_STORE_ATTEMPTS} times in a "
            f"row: other writers rewrite this key without pause; find what stores this "
            f"task in a loop"
        )

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        key = self._task_key(result.task_id)
        value = _frame(result.state, self._serializer.dumps(result))
        outcome, _ = self._put(key, result.state, value, overwrite, self.kv.get(key))
        return outcome

    def store_many(
        self, results: Sequence[TaskResult], *, overwrite: bool = False
    ) -> list[StoreOutcome]:
        # Encode everything first, so that an unencodable result stores nothing.
        writes = [
            (self._task_key(r.task_id), r.state, _frame(r.state, self._serializer.dumps(r)))
            for r in results
        ]
        if not writes:
            return []
        keys = list(dict.fromkeys(key for key, _, _ in writes))
        known = dict(zip(keys, self.kv.get_many(keys), strict=True))
        outcomes = []
        for key, state, value in writes:
            outcome, known[key] = self._put(key, state, value, overwrite, known[key])
            outcomes.append(outcome)
        return outcomes

    def get(self, task_id: str) -> TaskResult | None:
        key = self._task_key(task_id)
        value = self.kv.get(key)
        return None if value is None else self._decode(key, value)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        return self._serializer.loads_many(self.get_payloads(task_ids))

    def get_payloads(self, task_ids: Sequence[str]) -> dict[str, bytes | None]:
        check_task_ids(task_ids)
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            return {}
        keys = [self._task_key(task_id) for task_id in ids]
        values = self.kv.get_many(keys)
        return {
            task_id: None if value is None else _unframe(key, value)[1]
            for task_id, key, value in zip(ids, keys, values, strict=True)
        }

    def forget(self, task_id: str) -> None:
        self.kv.delete([self._task_key(task_id)])

    def close(self) -> None:
        kv = self.kv
        if isinstance(kv, Closed):
            return
        # Every later call raises the documented error, whatever the store would do.
        self.kv = cast(KeyValueStore, Closed(f"this {type(kv).__name__} backend"))
        self._pusher = self._purger = cast(Any, self.kv)
        kv.close()

    def plant_payload(self, task_id: str, payload: bytes, state: str = "SUCCESS") -> None:
        """Put raw bytes where a result's payload would be (tests of corrupt payloads)."""
        self.kv.set(self._task_key(task_id), _frame(state, payload), self._expires)

    # -- groups ------------------------------------------------------------------

    def save_group(self, group: Group) -> None:
        self.kv.set(self._group_key(group.group_id), self._serializer.dumps(group), self._expires)

    def get_group(self, group_id: str) -> Group | None:
        value = self.kv.get(self._group_key(group_id))
        return None if value is None else self._serializer.loads(value, Group)

    def delete_group(self, group_id: str) -> None:
        self.kv.delete([self._group_key(group_id)])

    # -- chords ------------------------------------------------------------------

    def _chord_size(self, group_id: str) -> tuple[int, bytes] | None:
        key = self._chord_key(group_id, "size")
        raw = self.kv.get(key)
        if raw is None:
            return None
        text = bytes(raw).decode("ascii", errors="replace")
        if not text.isdigit():
            raise CorruptPayloadError(
                f"key {key!r} should hold the chord size as a decimal number but holds "
                f"{bytes(raw)[:20]!r}; call set_chord_size({group_id!r}, n) again"
            )
        return int(text), raw

    def set_chord_size(self, group_id: str, size: int) -> None:
        if size < 0:
            raise ChordError(f"chord size must be >= 0, got {size}")
        self.kv.set(self._chord_key(group_id, "size"), str(size).encode("ascii"), self._expires)

    def chord_part_return(self, group_id: str, index: int, result: TaskResult) -> ChordOutcome:
        payload = self._serializer.dumps(result)
        found = self._chord_size(group_id)
        if found is None:
            raise ChordError(
                f"chord {group_id!r} has no size set (or it expired); call "
                f"set_chord_size({group_id!r}, n) before its parts return"
            )
        size, raw_size = found
        if not 0 <= index < size:
            raise ChordError(f"chord {group_id!r} part index {index} is out of range 0..{size - 1}")
        ttl = self._expires
        # Each part keeps the chord alive. The size is refreshed only if nobody
        # changed it since we read it, so a concurrent set_chord_size is not undone.
        self.kv.compare_and_set(self._chord_key(group_id, "size"), raw_size, raw_size, ttl)
        # The payload lands before the index joins the set, so whoever sees the
        # set full can read every part. The first payload recorded for an index
        # wins, as a duplicate is ignored.
        self.kv.compare_and_set(self._part_key(group_id, index), None, payload, ttl)
        added, received = self.kv.add_to_set(self._chord_key(group_id, "parts"), str(index), ttl)
        results: tuple[TaskResult, ...] | None = None
        if added and received == size:
            parts = self._chord_results(group_id, size)
            # The done marker makes completion once-only even if the parts set was
            # lost and rebuilt (expired, evicted, deleted by hand).
            if self.kv.compare_and_set(self._chord_key(group_id, "done"), None, _UNSENT, ttl):
                results = parts
        return ChordOutcome(
            group_id=group_id,
            index=index,
            complete=results is not None,
            duplicate=not added,
            received=received,
            size=size,
            results=results,
        )

    def _chord_results(self, group_id: str, size: int) -> tuple[TaskResult, ...]:
        keys = [self._part_key(group_id, i) for i in range(size)]
        values = self.kv.get_many(keys)
        missing = [i for i, value in enumerate(values) if value is None]
        if missing:
            raise ChordError(
                f"chord {group_id!r} has every part recorded but the results of parts "
                f"{missing[:10]} expired first; its header ran longer than expires "
                f"({self._expires} s): raise expires for such chords"
            )
        return tuple(self._serializer.loads(v, TaskResult) for v in values if v is not None)

    def claim_chord_body(self, group_id: str, lease: float) -> ChordOutcome | None:
        found = self._chord_size(group_id)
        if found is None:
            return None
        size, _ = found
        done_key = self._chord_key(group_id, "done")
        mark = self.kv.get(done_key)
        if mark is None or not (mark == _UNSENT or bytes(mark).startswith(_CLAIMED)):
            return None  # open, or its body was sent
        now = time.time()
        claimed = None
        if mark != _UNSENT:
            try:
                claimed = float(bytes(mark)[len(_CLAIMED) :])
            except ValueError:
                claimed = 0.0  # unreadable: treat as an old claim
        stamp = _CLAIMED + repr(now).encode("ascii")
        if claimed is not None and now - claimed < lease:
            return ChordOutcome(group_id, -1, received=size, size=size)
        if not self.kv.compare_and_set(done_key, mark, stamp, self._expires):
            return ChordOutcome(group_id, -1, received=size, size=size)  # someone else moved it
        if claimed is None:
            return ChordOutcome(group_id, -1, received=size, size=size)  # the first claim waits
        results = self._chord_results(group_id, size)
        return ChordOutcome(group_id, -1, complete=True, received=size, size=size, results=results)

    def mark_chord_body_sent(self, group_id: str) -> None:
        done_key = self._chord_key(group_id, "done")
        for _ in range(MAX_STORE_ATTEMPTS):
            mark = self.kv.get(done_key)
            if mark is None or not (mark == _UNSENT or bytes(mark).startswith(_CLAIMED)):
                return
            if self.kv.compare_and_set(done_key, mark, b"1", self._expires):
                return

    def get_chord(self, group_id: str) -> ChordState | None:
        """The chord's progress; it reads every part key, as the store cannot list a set."""
        found = self._chord_size(group_id)
        if found is None:
            return None
        size, _ = found
        keys = [self._chord_key(group_id, "done")]
        keys += [self._part_key(group_id, i) for i in range(size)]
        values = self.kv.get_many(keys)
        received = frozenset(i for i, value in enumerate(values[1:]) if value is not None)
        return ChordState(group_id, size, received, completed=values[0] is not None)

    # -- cleanup and push (when the store has them) ------------------------------

    def cleanup(self) -> int:
        """Have the store purge expired keys; return how many were results."""
        if self._purger is None:
            raise UnsupportedOperationError(
                f"cleanup needs a key-value store that declares the cleanup capability; "
                f"{type(self.kv).__name__} does not (it expires keys by itself or not at all)"
            )
        task_prefix = f"{self._prefix}task:"
        return sum(1 for key in self._purger.purge_expired() if key.startswith(task_prefix))

    def listener(self) -> KeyListener:
        if self._pusher is None:
            raise UnsupportedOperationError(
                f"push waiting needs a key-value store that declares the push capability; "
                f"{type(self.kv).__name__} does not, so waiters poll"
            )
        return KeyListener(self._pusher.listener(), f"{self._prefix}task:")


# -- the reference store --------------------------------------------------------


@attrs.define
class _Item:
    value: bytes | set[str]
    expires_at: float | None


class DictKeyValueStore:
    """A thread-safe in-process :class:`~resultstore.KeyValueStore`.

    It is the reference for third-party stores: each method below is one
    atomic step (here, under one lock), which is all :class:`KeyValueBackend`
    relies on. Keys hold bytes or a set of strings, like Redis strings and
    sets; using a key as the other kind raises TypeError. A ``ttl`` applies
    from the write that gave it; expired keys read as absent and are swept
    from memory as writes go on. ``clock`` returns seconds (tests pass a
    fake one).
    """

    capabilities: frozenset[Capability] = frozenset({Capability.AUTO_EXPIRY})

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._items: dict[str, _Item] = {}
        self._writes_since_sweep = 0
        self._sweep_after = _MIN_SWEEP_INTERVAL

    # Every helper below runs under self._lock.

    def _deadline(self, ttl: float | None) -> float | None:
        if ttl is None:
            return None
        if not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds or None, got {ttl!r}")
        return self._clock() + ttl

    def _live(self, key: str) -> _Item | None:
        item = self._items.get(key)
        if item is not None and item.expires_at is not None and item.expires_at <= self._clock():
            del self._items[key]
            return None
        return item

    def _bytes(self, key: str) -> bytes | None:
        item = self._live(key)
        if item is None:
            return None
        if not isinstance(item.value, bytes):
            raise TypeError(f"key {key!r} holds a set, not bytes")
        return item.value

    def _write(self, key: str, item: _Item) -> None:
        self._items[key] = item
        # A sweep costs O(keys); running one after as many writes as there were
        # keys left by the last sweep keeps that O(1) amortized per write while
        # memory stays within about twice the live keys.
        self._writes_since_sweep += 1
        if self._writes_since_sweep >= self._sweep_after:
            self._sweep()

    def _sweep(self) -> list[str]:
        self._writes_since_sweep = 0
        now = self._clock()
        dead = [
            key
            for key, item in self._items.items()
            if item.expires_at is not None and item.expires_at <= now
        ]
        for key in dead:
            del self._items[key]
        self._sweep_after = max(len(self._items), _MIN_SWEEP_INTERVAL)
        return dead

    # -- KeyValueStore -------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._bytes(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        with self._lock:
            return [self._bytes(key) for key in keys]

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        with self._lock:
            self._write(key, _Item(value, self._deadline(ttl)))

    def delete(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._items.pop(key, None)

    def compare_and_set(
        self, key: str, expected: bytes | None, value: bytes, ttl: float | None
    ) -> bool:
        with self._lock:
            if self._bytes(key) != expected:
                return False
            self._write(key, _Item(value, self._deadline(ttl)))
            return True

    def add_to_set(self, key: str, member: str, ttl: float | None) -> tuple[bool, int]:
        with self._lock:
            deadline = self._deadline(ttl)
            item = self._live(key)
            if item is None:
                item = _Item(set(), deadline)
                self._write(key, item)
            if not isinstance(item.value, set):
                raise TypeError(f"key {key!r} holds bytes, not a set")
            added = member not in item.value
            item.value.add(member)
            item.expires_at = deadline
            return added, len(item.value)

    def close(self) -> None:
        """Nothing to release; the data stays readable by other holders of the store."""

    # -- extras --------------------------------------------------------------------

    def purge_expired(self) -> list[str]:
        """Delete the expired keys now and return them (see :class:`SupportsPurgeExpired`)."""
        with self._lock:
            return self._sweep()

    def __len__(self) -> int:
        """How many keys are stored, expired ones not yet swept included."""
        with self._lock:
            return len(self._items)
