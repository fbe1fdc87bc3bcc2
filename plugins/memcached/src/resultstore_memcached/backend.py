"""The memcached backend: one round trip for a first store, atomic where it matters.

A result is written with ``add`` (one round trip when the task has no result
yet); over an existing one, ``gets`` then ``cas``, retried a bounded number
of times when another writer got in between, so a ready state stays final
without a lock. A chord part is an ``add`` of the part's own key (a second
copy of the same index is refused by memcached, so duplicates are ignored)
plus an ``incr`` of the chord's counter: exactly one caller sees the count
reach the size. See :mod:`resultstore_memcached.keys` for the keys.
"""

from __future__ import annotations

import itertools
import os
import random
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote, unquote

# pymemcache ships no type information.
from pymemcache.client.base import Client  # type: ignore[import-untyped]
from pymemcache.exceptions import MemcacheError  # type: ignore[import-untyped]
from resultstore import (
    BackendConfig,
    BackendUnavailableError,
    ChordError,
    ChordOutcome,
    ChordState,
    ConfigurationError,
    CorruptPayloadError,
    Group,
    Retry,
    Serializer,
    StoreOutcome,
    TaskResult,
)
from resultstore.concepts.states import READY_STATES, state_from_str

from resultstore_memcached.client import (
    MAX_EXPTIME,
    RETRYABLE,
    Foreign,
    Node,
    Ring,
    Settings,
    exptime,
    nodes_of,
)
from resultstore_memcached.errors import ItemTooLargeError
from resultstore_memcached.keys import KeyMaker
from resultstore_memcached.plugin import CAPABILITIES

__all__ = ["MAX_STORE_ATTEMPTS", "MemcachedBackend"]

T = TypeVar("T")

#: contention jitter from a generator of our own, so that a retry never reads or
#: moves the application's global ``random`` state; reseeded in forked children.
_JITTER = random.Random()
os.register_at_fork(after_in_child=_JITTER.seed)
#: a result to store: its key, state and framed value.
Write = tuple[str, str, bytes]
#: what a refused item size names: the task id, the item's size, what the item is.
Sizing = tuple[str, int, str]

#: gets/cas rounds one store tries before giving up. Each lost round means
#: another writer's store went through, so only a key rewritten without pause
#: exhausts it.
MAX_STORE_ATTEMPTS = 64

# A chord's counter holds size << 32 | parts counted, so one read gives both.
_COUNT_BITS = 32
_COUNT_MASK = (1 << _COUNT_BITS) - 1
_MAX_STATE_LINE = 1024
# What a stored item costs beyond its key and value (item header, CAS, CRLF);
# used only to refuse a batch before any of it is sent.
_ITEM_OVERHEAD = 64
# The done marker: the body is not sent yet, is being sent since a time, or was sent.
_UNSENT = b"unsent"
_CLAIMED = b"claimed:"
_SENT = b"1"
# memcached refuses to start with an -I below 1 KiB.
_MIN_ITEM_SIZE_MAX = 1024

_TOKEN_PREFIX = uuid.uuid4().hex[:12]
_tokens = itertools.count()

_STATE_LINES: dict[str, bytes] = {}
_STATES_BY_LINE: dict[bytes, str] = {}


def _token() -> bytes:
    """Unique per call across processes and hosts: marks a chord part as this call's."""
    return f"{_TOKEN_PREFIX}{os.getpid():x}.{next(_tokens):x}".encode("ascii")


def _state_line(state: str) -> bytes:
    line = _STATE_LINES.get(state)
    if line is None:
        line = quote(str(state), safe="").encode("ascii") + b"\n"
        if len(_STATE_LINES) < 256:
            _STATE_LINES[state] = line
            _STATES_BY_LINE[line[:-1]] = state_from_str(str(state))
    return line


def _get_many(client: Client, chunk: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = client.get_many(chunk)
    return found


def _gets_many(client: Client, chunk: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = client.gets_many(chunk)
    return found


def _bound(
    op: Callable[[Client, list[str]], dict[str, Any]], chunk: list[str]
) -> Callable[[Client], dict[str, Any]]:
    return lambda client: op(client, chunk)


def _backoff(attempt: int) -> None:
    # The first retry goes at once (the usual race is one other writer); then
    # random sleeps spread writers that keep colliding on one key.
    if attempt > 1:
        time.sleep(_JITTER.uniform(0, min(0.01, 0.0001 * 2**attempt)))


class MemcachedBackend:
    """Results, groups and chords in memcached (one server or a ring); waiters poll."""

    capabilities = CAPABILITIES

    def __init__(self, config: BackendConfig) -> None:
        settings = Settings.take_from(config.options)
        config.options.finish()
        self.url = config.url
        self.settings = settings
        specs = nodes_of(config.url)
        self._serializer: Serializer = config.serializer
        self._expires = config.expires
        if self._expires is not None and exptime(self._expires) > MAX_EXPTIME:
            raise ConfigurationError(
                f"expires={self._expires:g} s reaches past 2038-01-19, the last time memcached "
                f"can hold as an expiry (a 32-bit Unix time); use a shorter expires, or "
                f"expires=none to keep results until memcached evicts them"
            )
        self.keys = KeyMaker(settings.key_prefix)
        self.ring = Ring(specs, settings)
        self.retry = Retry(
            "memcached",
            server=", ".join(node.name for node in self.ring.nodes),
            total=settings.retry_total,
            retry_on=RETRYABLE,
        )

    def __repr__(self) -> str:
        return f"<MemcachedBackend {self.url.redacted()}>"

    # -- plumbing ------------------------------------------------------------------

    def _exptime(self) -> int:
        return exptime(self._expires)

    def _error(self, exc: MemcacheError, node: Node, sizing: Sizing | None) -> BaseException:
        """What to raise for an error reply: the item size, or a clear unavailable error."""
        text = str(exc)
        if sizing is not None and ("too large" in text or "out of memory" in text):
            label, size, what = sizing
            limit = node.item_size_max() or 0
            return ItemTooLargeError(label, size, limit, node.name, what=what)
        return BackendUnavailableError(
            f"memcached at {node.name} answered with an error ({type(exc).__name__}: {text}); "
            f"check that the address is a memcached server (1.5.3 or later) and its log"
        )

    def _run(self, tag: str, fn: Callable[[Client], T], sizing: Sizing | None = None) -> T:
        """``fn`` on the node that holds ``tag``, retried after connection errors.

        ``sizing`` (label, item size, what) turns a refused item size into
        :class:`ItemTooLargeError`."""
        ring = self.ring
        node = ring.single or ring.pick(tag)
        # The first try goes straight to the node; only a failure pays for the retry.
        try:
            return node.call(fn)
        except RETRYABLE as exc:
            ring.failed(node)
            failure: BaseException | None = exc
        except MemcacheError as exc:
            raise self._error(exc, node, sizing) from None

        def attempt() -> T:
            nonlocal failure
            if failure is not None:
                # Hand the first failure to the retry, which then pauses and tries again.
                error, failure = failure, None
                raise error
            node = ring.pick(tag)
            try:
                return node.call(fn)
            except RETRYABLE:
                ring.failed(node)
                raise
            except MemcacheError as exc:
                raise self._error(exc, node, sizing) from None

        return self.retry(attempt)

    def _once(self, tag: str, fn: Callable[[Client], T], what: str) -> T:
        """``fn`` sent once: for commands that must not be repeated (``incr``)."""
        node = self.ring.pick(tag)
        try:
            return node.call(fn)
        except RETRYABLE as exc:
            self.ring.failed(node)
            raise BackendUnavailableError(
                f"memcached at {node.name} failed during {what} ({type(exc).__name__}: {exc}); "
                f"it is not sent again because it may have counted already"
            ) from exc
        except MemcacheError as exc:
            raise self._error(exc, node, None) from None

    def _per_node(
        self,
        keys: Sequence[str],
        tag: Callable[[str], str],
        op: Callable[[Client, list[str]], dict[str, Any]],
        sizing: Sizing | None = None,
    ) -> tuple[dict[str, Any], int]:
        """``op`` over every key, ``read_batch`` keys at a time on the node that holds
        them; after a connection error only the keys not done yet are placed again
        (the ring may have moved them) and sent. Returns what ``op`` returned, merged,
        and how many tries it took."""
        out: dict[str, Any] = {}
        pending = dict.fromkeys(keys)
        batch = self.settings.read_batch
        ring = self.ring
        tries = 0

        def attempt() -> None:
            nonlocal tries
            tries += 1
            groups: dict[int, tuple[Node, list[str]]] = {}
            if ring.single is not None:
                groups[0] = (ring.single, list(pending))
            else:
                for key in pending:
                    node = ring.pick(tag(key))
                    groups.setdefault(id(node), (node, []))[1].append(key)
            for node, node_keys in groups.values():
                for start in range(0, len(node_keys), batch):
                    chunk = node_keys[start : start + batch]
                    try:
                        out.update(node.call(_bound(op, chunk)))
                    except RETRYABLE:
                        ring.failed(node)
                        raise
                    except MemcacheError as exc:
                        raise self._error(exc, node, sizing) from None
                    for key in chunk:
                        del pending[key]

        if pending:
            self.retry(attempt)
        return out, tries

    def _write(
        self, tag: str, label: str, value: bytes, fn: Callable[[Client], T], what: str = ""
    ) -> T:
        """``_run`` for a command that stores ``value``: too large raises ItemTooLargeError."""
        return self._run(tag, fn, (label, len(value) + len(tag), what))

    # -- values ----------------------------------------------------------------------

    def _frame(self, state: str, payload: bytes) -> bytes:
        return _state_line(state) + payload

    @staticmethod
    def _foreign(key: str, raw: Any) -> CorruptPayloadError:
        flags = raw.flags if isinstance(raw, Foreign) else None
        return CorruptPayloadError(
            f"key {key!r} holds a value resultstore did not write (memcached flags {flags}); "
            f"another program uses these keys: give the backend a key_prefix of its own, or "
            f"forget the task"
        )

    def _unframe(self, key: str, raw: bytes | Foreign) -> tuple[str, bytes]:
        if type(raw) is not bytes:
            raise self._foreign(key, raw)
        end = raw.find(b"\n", 0, _MAX_STATE_LINE)
        if end <= 0:
            raise CorruptPayloadError(
                f"key {key!r} does not start with a state line (starts with {raw[:16]!r}); "
                f"it was written by another program or is damaged: forget the task"
            )
        line = raw[:end]
        state = _STATES_BY_LINE.get(line)
        if state is None:
            try:
                state = state_from_str(unquote(line.decode("ascii"), errors="strict"))
            except UnicodeDecodeError:
                raise CorruptPayloadError(
                    f"key {key!r} has a damaged state line {line[:40]!r}"
                ) from None
        return state, raw[end + 1 :]

    def _decode(self, key: str, raw: bytes | Foreign) -> TaskResult:
        return self._serializer.loads(self._payload(key, raw), TaskResult)

    def _payload(self, key: str, raw: bytes | Foreign) -> bytes:
        """The payload under a stored value's state line."""
        if type(raw) is bytes:
            end = raw.find(b"\n", 0, _MAX_STATE_LINE)
            if end > 0:
                return raw[end + 1 :]
        return self._unframe(key, raw)[1]

    # -- storing -----------------------------------------------------------------------

    def _add(
        self, key: str, value: bytes, expire: int, label: str, *, what: str = "", tag: str = ""
    ) -> tuple[bool, bool]:
        """``add``: whether it stored, and whether it was sent more than once
        (then a "not stored" may be this very call's earlier try)."""
        tries = 0

        def add(client: Client) -> bool:
            nonlocal tries
            tries += 1
            return bool(client.add(key, value, expire=expire, noreply=False))

        return self._write(tag or key, label, value, add, what), tries > 1

    def _put(
        self,
        key: str,
        state: str,
        value: bytes,
        overwrite: bool,
        label: str,
        *,
        tried_add: bool,
        ambiguous: bool = False,
    ) -> StoreOutcome:
        expire = self._exptime()
        for attempt in range(MAX_STORE_ATTEMPTS):
            if attempt:
                _backoff(attempt)
            if not tried_add:
                added, retried = self._add(key, value, expire, label)
                ambiguous = ambiguous or retried
                if added:
                    return StoreOutcome(stored=True, state=state, previous_state=None)
            current, cas = self._run(key, lambda c: c.gets(key))
            if current is None:
                tried_add = False  # deleted or expired meanwhile: add again
                continue
            if ambiguous and current == value:
                # Our own earlier try went through before its reply was lost.
                return StoreOutcome(stored=True, state=state, previous_state=None)
            previous: str | None = None
            try:
                previous, _ = self._unframe(key, current)
            except CorruptPayloadError:
                # Without a readable state the rule cannot be checked, so only
                # an explicit overwrite may replace the damaged value.
                if not overwrite:
                    raise
            if previous is not None and previous in READY_STATES and not overwrite:
                return StoreOutcome(stored=False, state=previous, previous_state=previous)
            tries = 0

            def swap(client: Client, cas: Any = cas) -> bool | None:
                nonlocal tries
                tries += 1
                reply: bool | None = client.cas(key, value, cas, expire=expire, noreply=False)
                return reply

            swapped = self._write(key, label, value, swap)
            ambiguous = ambiguous or tries > 1
            if swapped:
                return StoreOutcome(stored=True, state=state, previous_state=previous)
            tried_add = swapped is False  # EXISTS: read again; NOT_FOUND: add again
        raise BackendUnavailableError(
            f"storing {key!r} lost the gets/cas race {MAX_STORE_ATTEMPTS} times in a row: "
            f"other writers rewrite this task without pause; find what stores it in a loop"
        )

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        value = _state_line(result.state) + self._serializer.dumps(result)
        key = self.keys.task(result.task_id)
        if not overwrite:
            added, retried = self._add(key, value, self._exptime(), result.task_id)
            if added:
                return StoreOutcome(stored=True, state=result.state, previous_state=None)
            return self._put(
                key,
                result.state,
                value,
                overwrite,
                result.task_id,
                tried_add=True,
                ambiguous=retried,
            )
        return self._put(key, result.state, value, overwrite, result.task_id, tried_add=False)

    def _check_batch_sizes(self, results: Sequence[TaskResult], writes: Sequence[Write]) -> None:
        """Refuse a batch with an item its server would refuse, before any of it is sent."""
        largest = max(len(key) + len(value) for key, _, value in writes) + _ITEM_OVERHEAD
        if largest <= _MIN_ITEM_SIZE_MAX:
            return  # every server takes this much; no need to ask
        limits = [node.item_size_max() for node in self.ring.nodes]
        if all(limit is None or largest <= limit for limit in limits):
            return
        for result, (key, _, value) in zip(results, writes, strict=True):
            node = self.ring.pick(key)
            limit = node.item_size_max()
            size = len(key) + len(value) + _ITEM_OVERHEAD
            if limit is not None and size > limit:
                raise ItemTooLargeError(result.task_id, size, limit, node.name, batch=True)

    def store_many(
        self, results: Sequence[TaskResult], *, overwrite: bool = False
    ) -> list[StoreOutcome]:
        # Encode everything first, so that an unencodable result stores nothing.
        writes = [
            (self.keys.task(r.task_id), r.state, self._frame(r.state, self._serializer.dumps(r)))
            for r in results
        ]
        if not writes:
            return []
        self._check_batch_sizes(results, writes)
        first: dict[str, bytes] = {}
        for key, _, value in writes:
            first.setdefault(key, value)
        added: dict[str, bool] = {}
        ambiguous = False
        if not overwrite:
            added, ambiguous = self._add_many(first)
        outcomes = []
        seen: set[str] = set()
        for result, (key, state, value) in zip(results, writes, strict=True):
            if key not in seen and added.get(key):
                outcomes.append(StoreOutcome(stored=True, state=state, previous_state=None))
            else:
                tried = key not in seen and not overwrite
                outcomes.append(
                    self._put(
                        key,
                        state,
                        value,
                        overwrite,
                        result.task_id,
                        tried_add=tried,
                        ambiguous=ambiguous,
                    )
                )
            seen.add(key)
        return outcomes

    def _add_many(self, values: dict[str, bytes]) -> tuple[dict[str, bool], bool]:
        """Pipelined ``add`` of every key: one round trip per server and ``read_batch``
        keys. Also returns whether any was sent twice (a "not stored" may be our own)."""
        expire = self._exptime()

        def add(client: Client, chunk: list[str]) -> dict[str, bool]:
            # pymemcache pipelines a storage command over many keys (its
            # set_many does the same with "set"); one reply per key, in order.
            replies = client._store_cmd(b"add", {k: values[k] for k in chunk}, expire, False)
            return {key: bool(reply) for key, reply in replies.items()}

        largest = max(len(value) for value in values.values())
        sizing = ("", largest, "a result of this batch")
        added, tries = self._per_node(list(values), lambda key: key, add, sizing)
        return added, tries > 1

    # -- reading -------------------------------------------------------------------------

    def get(self, task_id: str) -> TaskResult | None:
        key = self.keys.task(task_id)
        raw = self._run(key, lambda c: c.get(key))
        return None if raw is None else self._decode(key, raw)

    def _fetch(self, keys: Sequence[str], tag: Callable[[str], str]) -> dict[str, Any]:
        """Every key's raw value (missing ones left out), in chunks per server."""
        found, _ = self._per_node(keys, tag, _get_many)
        return found

    def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        return self._serializer.loads_many(self.get_payloads(task_ids))

    def get_payloads(self, task_ids: Sequence[str]) -> dict[str, bytes | None]:
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            return {}
        keys = [self.keys.task(task_id) for task_id in ids]
        found = self._fetch(keys, lambda key: key)
        out: dict[str, bytes | None] = {}
        for task_id, key in zip(ids, keys, strict=True):
            raw = found.get(key)
            out[task_id] = None if raw is None else self._payload(key, raw)
        return out

    def forget(self, task_id: str) -> None:
        key = self.keys.task(task_id)
        self._run(key, lambda c: c.delete(key, noreply=False))

    def close(self) -> None:
        self.retry.close()
        self.ring.close()

    def plant_payload(self, task_id: str, payload: bytes, state: str = "SUCCESS") -> None:
        """Put raw bytes where a result's payload would be (tests of corrupt payloads)."""
        key = self.keys.task(task_id)
        value = self._frame(state, payload)
        self._run(key, lambda c: c.set(key, value, expire=self._exptime(), noreply=False))

    # -- groups --------------------------------------------------------------------------

    def save_group(self, group: Group) -> None:
        key = self.keys.group(group.group_id)
        value = self._serializer.dumps(group)
        expire = self._exptime()
        self._write(
            key,
            group.group_id,
            value,
            lambda c: c.set(key, value, expire=expire, noreply=False),
            f"group {group.group_id!r}",
        )

    def get_group(self, group_id: str) -> Group | None:
        key = self.keys.group(group_id)
        raw = self._run(key, lambda c: c.get(key))
        if raw is None:
            return None
        if type(raw) is not bytes:
            raise self._foreign(key, raw)
        return self._serializer.loads(raw, Group)

    def delete_group(self, group_id: str) -> None:
        key = self.keys.group(group_id)
        self._run(key, lambda c: c.delete(key, noreply=False))

    # -- chords --------------------------------------------------------------------------

    def _counter_value(self, key: str, raw: Any) -> tuple[int, int]:
        if type(raw) is bytes and raw.isdigit():
            number = int(raw)
            return number >> _COUNT_BITS, number & _COUNT_MASK
        raise CorruptPayloadError(
            f"key {key!r} should hold a chord's size and count as a number but holds "
            f"{raw!r:.40}; another program uses these keys: give the backend a key_prefix "
            f"of its own"
        )

    def set_chord_size(self, group_id: str, size: int) -> None:
        if not 0 <= size <= _COUNT_MASK:
            raise ChordError(f"chord size must be between 0 and {_COUNT_MASK}, got {size}")
        tag = self.keys.chord(group_id)
        key = self.keys.counter(tag)
        value = str(size << _COUNT_BITS).encode("ascii")
        expire = self._exptime()
        self._run(tag, lambda c: c.set(key, value, expire=expire, noreply=False))

    def _lost(self, group_id: str) -> ChordError:
        return ChordError(
            f"chord {group_id!r} has no size set, or its state is gone (expired, evicted by "
            f"memcached, or its server went down); call set_chord_size({group_id!r}, n) "
            f"before its parts return, and see the memcached backend's page on what a cache "
            f"can lose"
        )

    def chord_part_return(self, group_id: str, index: int, result: TaskResult) -> ChordOutcome:
        payload = self._serializer.dumps(result)
        tag = self.keys.chord(group_id)
        counter = self.keys.counter(tag)
        expire = self._exptime()
        gat = b"gat " + str(expire).encode("ascii")
        # One round trip reads the size and count and keeps the chord alive for
        # another `expires` ("gat" = get and touch, memcached 1.5.3 and later).
        raw = self._run(tag, lambda c: c._fetch_cmd(gat, [counter], False).get(counter))
        if raw is None:
            raise self._lost(group_id)
        size, counted = self._counter_value(counter, raw)
        if not 0 <= index < size:
            raise ChordError(
                f"chord {group_id!r} part index {index} is out of range 0..{size - 1}"
                if size
                else f"chord {group_id!r} has size 0, so it takes no parts (index {index})"
            )
        part = self.keys.part(tag, index)
        token = _token()
        value = token + b"\n" + payload
        what = f"part {index} of chord {group_id!r}"
        added, retried = self._add(part, value, expire, result.task_id, what=what, tag=tag)
        if not added and retried:
            # A lost reply: the part may be this call's own earlier try.
            mine = self._run(tag, lambda c: c.get(part))
            added = type(mine) is bytes and mine.startswith(token + b"\n")
        if not added:
            return ChordOutcome(
                group_id=group_id,
                index=index,
                complete=False,
                duplicate=True,
                received=counted,
                size=size,
                results=None,
            )
        number = self._once(tag, lambda c: c.incr(counter, 1), f"the count of chord {group_id!r}")
        if number is None:
            raise self._lost(group_id)
        size, received = number >> _COUNT_BITS, number & _COUNT_MASK
        results: tuple[TaskResult, ...] | None = None
        if received == size:
            parts = self._chord_results(group_id, tag, size)
            done = self.keys.done(tag)
            stored, _ = self._add(done, _UNSENT, expire, group_id, tag=tag)
            if stored:
                results = parts
        return ChordOutcome(
            group_id=group_id,
            index=index,
            complete=results is not None,
            duplicate=False,
            received=received,
            size=size,
            results=results,
        )

    def _chord_results(self, group_id: str, tag: str, size: int) -> tuple[TaskResult, ...]:
        keys = [self.keys.part(tag, i) for i in range(size)]
        found = self._fetch(keys, lambda _: tag)
        missing = [i for i, key in enumerate(keys) if key not in found]
        if missing:
            raise ChordError(
                f"chord {group_id!r} has all {size} parts counted but the results of parts "
                f"{missing[:10]} are gone (expired, evicted by memcached, or lost with a "
                f"server); the chord cannot complete: run it again"
            )
        results = []
        for key in keys:
            raw = found[key]
            if type(raw) is not bytes:
                raise self._foreign(key, raw)
            _, _, payload = raw.partition(b"\n")
            results.append(self._serializer.loads(payload, TaskResult))
        return tuple(results)

    def claim_chord_body(self, group_id: str, lease: float) -> ChordOutcome | None:
        """Claim the sending of a complete chord's body not marked sent (see
        :class:`~resultstore.SupportsChordBody`): ``gets``/``cas`` on the done marker."""
        tag = self.keys.chord(group_id)
        counter, done = self.keys.counter(tag), self.keys.done(tag)
        found, _ = self._per_node([counter, done], lambda _: tag, _gets_many)
        if counter not in found or done not in found:
            return None
        size, _ = self._counter_value(counter, found[counter][0])
        mark, cas = found[done]
        if type(mark) is not bytes or not (mark == _UNSENT or mark.startswith(_CLAIMED)):
            return None  # its body was sent
        waiting = ChordOutcome(group_id, -1, received=size, size=size)
        now = time.time()
        claimed: float | None = None
        if mark != _UNSENT:
            try:
                claimed = float(mark[len(_CLAIMED) :])
            except ValueError:
                claimed = 0.0  # unreadable: an old claim
        if claimed is not None and now - claimed < lease:
            return waiting
        stamp = _CLAIMED + repr(now).encode("ascii")
        expire = self._exptime()
        swapped = self._run(tag, lambda c: c.cas(done, stamp, cas, expire=expire, noreply=False))
        if not swapped or claimed is None:
            return waiting  # someone else moved it, or the first claim only records itself
        results = self._chord_results(group_id, tag, size)
        return ChordOutcome(group_id, -1, complete=True, received=size, size=size, results=results)

    def mark_chord_body_sent(self, group_id: str) -> None:
        tag = self.keys.chord(group_id)
        done = self.keys.done(tag)
        expire = self._exptime()
        for attempt in range(MAX_STORE_ATTEMPTS):
            if attempt:
                _backoff(attempt)
            mark, cas = self._run(tag, lambda c: c.gets(done))
            if type(mark) is not bytes or not (mark == _UNSENT or mark.startswith(_CLAIMED)):
                return  # unknown, expired, incomplete or already sent

            def sent(client: Client, cas: Any = cas) -> bool:
                return bool(client.cas(done, _SENT, cas, expire=expire, noreply=False))

            if self._run(tag, sent):
                return

    def get_chord(self, group_id: str) -> ChordState | None:
        tag = self.keys.chord(group_id)
        counter = self.keys.counter(tag)
        raw = self._run(tag, lambda c: c.get(counter))
        if raw is None:
            return None
        size, _ = self._counter_value(counter, raw)
        done = self.keys.done(tag)
        parts = [self.keys.part(tag, i) for i in range(size)]
        found = self._fetch([done, *parts], lambda _: tag)
        received = frozenset(i for i, key in enumerate(parts) if key in found)
        return ChordState(group_id, size, received, completed=done in found)
