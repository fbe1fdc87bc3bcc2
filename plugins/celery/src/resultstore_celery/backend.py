"""``ResultStoreBackend``: Celery's result-backend interface over any resultstore store.

Celery loads it from the ``celery.result_backends`` entry point ``resultstore``:
``result_backend = "resultstore+redis://localhost:6379/0"`` hands this class
``redis://localhost:6379/0``, which it opens with :func:`resultstore.connect`.
Waiting goes through the store's shared waiter (pub/sub where the store
pushes, adaptive polling elsewhere), and chords complete exactly once inside
the store instead of through Celery's ``chord_unlock`` polling task.
"""

from __future__ import annotations

import json
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import Any

from celery import states as celery_states  # type: ignore[import-untyped]  # celery ships no type information
from celery.backends.base import BaseBackend  # type: ignore[import-untyped]  # celery ships no type information
from celery.canvas import maybe_signature  # type: ignore[import-untyped]  # celery ships no type information
from celery.exceptions import (  # type: ignore[import-untyped]  # celery ships no type information
    ChordError as CeleryChordError,
)
from celery.exceptions import (
    ImproperlyConfigured,
)
from celery.exceptions import (
    TimeoutError as CeleryTimeoutError,
)
from celery.utils.functional import _regen  # type: ignore[import-untyped]  # celery ships no type information
from celery.utils.log import get_logger  # type: ignore[import-untyped]  # celery ships no type information
from resultstore import (
    BackendUnavailableError,
    Capability,
    ChordError,
    ChordOutcome,
    ConfigurationError,
    ExceptionInfo,
    ResultStore,
    SupportsReplyTo,
    TaskResult,
    connect,
)
from resultstore.api.waiting import Inbox, describe_ids, failing_note
from resultstore.concepts.urls import redact

from resultstore_celery.meta import (
    CELERY_EXCEPTIONS,
    MISSING_FAILURE,
    exception_info,
    pending_meta,
    rebuild,
    to_meta,
    to_task_result,
)
from resultstore_celery.settings import CHORD_SIZE_WAIT_SETTING, Settings, settings_from

__all__ = ["ResultStoreBackend"]

logger = get_logger(__name__)

#: how many chord sizes a process remembers having set (to skip Celery's repeat call).
_SIZED_MAX = 4096
#: how many chord headers a process keeps, to place each part without a read.
_HEADERS_MAX = 64
_SIZE_POLL = 0.01
_SIZE_POLL_MAX = 0.5
_SHAPE_SUFFIX = ".resultstore-shape"
#: the name marking a chord part that holds the values of a part and the tasks it added.
_ADDED_PART = "resultstore-celery:added"
_STRAY = -1
_READY = frozenset(celery_states.READY_STATES)

# Backends alive in this process; their locks are renewed in a forked child,
# where a lock held by a parent thread would never be released.
_backends: weakref.WeakSet[ResultStoreBackend] = weakref.WeakSet()


def _renew_locks() -> None:
    for backend in list(_backends):
        backend._lock = threading.Lock()


os.register_at_fork(after_in_child=_renew_locks)


def _member_ids(results: Iterable[Any]) -> list[str]:
    """Task ids of a Celery group's results, nested groups flattened in order."""
    ids: list[str] = []
    for result in results:
        members = getattr(result, "results", None)
        if members is not None:
            ids.extend(_member_ids(members))
        else:
            ids.append(str(result.id))
    return ids


def _shape(results: Iterable[Any]) -> list[Any]:
    """The nesting of a chord header's results: 0 for a task, a list for a group."""
    shape: list[Any] = []
    for result in results:
        members = getattr(result, "results", None)
        shape.append(0 if members is None else _shape(members))
    return shape


class _Added:
    """The values of a part and of the tasks it added to the chord, spliced in at its place."""

    __slots__ = ("values",)

    def __init__(self, values: Any) -> None:
        self.values = list(values) if isinstance(values, list | tuple) else [values]


def _unflatten(shape: list[Any], values: Iterator[Any]) -> list[Any]:
    out: list[Any] = []
    for node in shape:
        if node != 0:
            out.append(_unflatten(node, values))
            continue
        value = next(values)
        if isinstance(value, _Added):
            out.extend(value.values)
        else:
            out.append(value)
    return out


def _added_id(group_id: str, index: int) -> str:
    """Where the tasks a header part added to its chord are listed (the part first)."""
    return f"{group_id}.resultstore-added.{index}"


def _slot_id(group_id: str, index: int) -> str:
    """The small chord of a header part and the tasks it added."""
    return f"{group_id}.resultstore-slot.{index}"


def _shape_id(group_id: str) -> str:
    """Where a nested chord header's shape is saved (as a one-member group)."""
    return f"{group_id}{_SHAPE_SUFFIX}"


class ResultStoreBackend(BaseBackend):  # type: ignore[misc]  # Celery's base class is untyped
    """A Celery result backend whose results live in a resultstore store.

    One instance serves every thread of a process (resultstore stores are
    thread-safe); a forked child opens a store of its own on first use.
    """

    #: joins read every member in one ``get_many`` and wait through the shared waiter.
    supports_native_join = True

    def __init__(self, app: Any, url: str | None = None, **kwargs: Any) -> None:
        super().__init__(app, url=url, **kwargs)
        # Celery otherwise builds one backend per thread.
        self.thread_safe = True
        try:
            self.settings: Settings = settings_from(
                url,
                app.conf,
                expires=self.expires,
                serializer=self.serializer,
                accept=self.accept,
            )
        except ConfigurationError as exc:
            raise ImproperlyConfigured(str(exc)) from exc
        self.allowed_exceptions: tuple[type[BaseException], ...] = (
            *CELERY_EXCEPTIONS,
            *self.settings.allowed_exceptions,
        )
        # Celery's rule by default: a class whose module the reader imported
        # already comes back as itself; the allow-list alone in strict mode.
        self.imported_exceptions = not self.settings.strict_exceptions
        self._extended = bool(app.conf.find_value_for_key("extended", "result"))
        self._lock = threading.Lock()
        self._store: ResultStore | None = None
        self._pid = 0
        self._sized: OrderedDict[str, int] = OrderedDict()
        self._headers: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        # Tasks running here that called add_to_chord(): (group id, index, added ids).
        self._adders: dict[str, tuple[str, int, list[str]]] = {}
        _backends.add(self)
        self._open()

    # -- the store -------------------------------------------------------------

    def _open(self) -> ResultStore:
        with self._lock:
            if self._store is None or self._pid != os.getpid():
                # A store inherited through fork() is left alone: its sockets
                # and threads belong to the parent process.
                try:
                    self._store = connect(
                        self.settings.url,
                        allowed_exceptions=self.allowed_exceptions,
                        **self.settings.options,
                    )
                except ConfigurationError as exc:
                    raise ImproperlyConfigured(f"result_backend {self.as_uri()!r}: {exc}") from exc
                self._pid = os.getpid()
            return self._store

    @property
    def store(self) -> ResultStore:
        """The :class:`~resultstore.ResultStore` this process reads and writes through."""
        store = self._store
        if store is not None and self._pid == os.getpid():
            return store
        return self._open()

    def close(self) -> None:
        """Close this process's store (a later use opens it again)."""
        with self._lock:
            store, self._store = self._store, None
        if store is not None and self._pid == os.getpid():
            store.close()

    def as_uri(self, include_password: bool = False) -> str:
        url = self.settings.url if include_password else redact(self.settings.url)
        return f"resultstore+{url}"

    def __reduce__(self, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        return super().__reduce__(args, {**(kwargs or {}), "url": self.url})

    @property
    def supports_autoexpire(self) -> bool:
        # Celery beat schedules its daily backend_cleanup task only when this is False.
        return Capability.AUTO_EXPIRY in self.store.capabilities

    def exception_safe_to_retry(self, exc: BaseException) -> bool:
        return isinstance(exc, BackendUnavailableError)

    def prepare_compression(self, compression: Any) -> None:
        # resultstore compresses (result_compression is passed on as its
        # ``compression`` option), so Celery must not compress as well.
        return None

    def cleanup(self) -> None:
        """Celery beat's daily ``backend_cleanup``: delete expired results now."""
        if Capability.CLEANUP in self.store.capabilities:
            self.store.cleanup()

    # -- exceptions ------------------------------------------------------------

    def encode_result(self, result: Any, state: str) -> Any:
        if state in self.EXCEPTION_STATES and isinstance(result, BaseException):
            # resultstore describes the exception itself; Celery's dict form
            # would lose the module and the cause chain.
            return result
        return self.prepare_value(result)

    def exception_to_python(self, exc: Any) -> BaseException | None:
        """Rebuild an exception safely: never import, never call anything but the class."""
        if not exc:
            return None
        if isinstance(exc, BaseException):
            return exc
        return self._rebuild(exception_info(exc))

    def _rebuild(self, info: ExceptionInfo) -> BaseException:
        return rebuild(info, self.allowed_exceptions, imported=self.imported_exceptions)

    # -- storing ---------------------------------------------------------------

    def _task_result(
        self, task_id: str, result: Any, state: str, traceback: Any, request: Any
    ) -> TaskResult:
        return to_task_result(
            task_id,
            result,
            state,
            traceback=traceback,
            request=request,
            extended=self._extended,
            children=self.current_task_children(request),
        )

    def _store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: Any = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        # A ready state already stored stays: the store refuses the write
        # atomically (Celery's own backends only check SUCCESS, and racily).
        # reply_to routes the result to the caller on message backends
        # (resultstore+rpc://); stores that are read by everyone ignore it.
        self.store.store(
            self._task_result(task_id, result, state, traceback, request),
            reply_to=getattr(request, "reply_to", None) or None,
        )
        return result

    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Before a task is sent: make the reply queue Celery names in it read by this process.

        Celery puts ``app.thread_oid`` in each task's ``reply_to``; on a
        store that delivers results to their caller (``SupportsReplyTo``)
        that queue is declared and consumed before the task leaves.
        """
        backend = self.store.backend
        if isinstance(backend, SupportsReplyTo):
            backend.reply_address(self.app.thread_oid)

    def _forget(self, task_id: str) -> None:
        self.store.forget(task_id)

    # -- reading ---------------------------------------------------------------

    def _meta(self, result: TaskResult) -> dict[str, Any]:
        return to_meta(result, self.allowed_exceptions, imported=self.imported_exceptions)

    def _get_task_meta_for(self, task_id: str) -> dict[str, Any]:
        found = self.store.get(task_id)
        return pending_meta(task_id) if found is None else self._meta(found)

    def task_result_exists(self, task_id: str) -> bool:
        return self.store.get(task_id) is not None

    def _remember(self, task_id: str, meta: dict[str, Any]) -> None:
        if meta["status"] == celery_states.SUCCESS:
            self._cache[task_id] = meta

    def _cached(self, task_id: str) -> dict[str, Any] | None:
        try:
            meta: dict[str, Any] = self._cache[task_id]
        except KeyError:
            return None
        return meta

    # -- waiting ---------------------------------------------------------------

    def _watch(
        self,
        task_ids: Sequence[str],
        timeout: float | None,
        interval: float | None,
        on_interval: Callable[[], Any] | None,
    ) -> Generator[tuple[str, TaskResult], None, None]:
        """Yield each id's ready result as the store's waiter delivers it.

        Raises Celery's TimeoutError once ``timeout`` seconds passed with
        ids still pending; calls ``on_interval`` every ``interval`` seconds
        meanwhile (Celery checks parent failures there).
        """
        started = time.monotonic()
        deadline = None if timeout is None else started + max(0.0, timeout)
        tick = interval if interval is not None and interval > 0 else None
        pending = set(task_ids)
        inbox = Inbox()
        hub = self.store.hub
        watch = hub.watch(pending, inbox.put, interval=tick)
        try:
            while pending:
                until = deadline
                if on_interval is not None and tick is not None:
                    until = (
                        time.monotonic() + tick
                        if until is None
                        else min(until, time.monotonic() + tick)
                    )
                items = inbox.take(until)
                for task_id, delivery in items:
                    if isinstance(delivery, BaseException):
                        raise delivery
                    pending.discard(task_id)
                    yield task_id, delivery
                if not pending:
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    raise CeleryTimeoutError(
                        f"The operation timed out: {describe_ids(pending)} not ready after "
                        f"{time.monotonic() - started:.3f}s (timeout={timeout}s)"
                        f"{failing_note(hub)}"
                    )
                if not items and on_interval is not None:
                    on_interval()
        finally:
            watch.cancel()

    def wait_for(
        self,
        task_id: str,
        timeout: float | None = None,
        interval: float | None = 0.5,
        no_ack: bool = True,
        on_interval: Callable[[], Any] | None = None,
    ) -> dict[str, Any]:
        """Wait for one task; push where the store announces results, polling elsewhere."""
        self._ensure_not_eager()
        meta: dict[str, Any] = self.get_task_meta(task_id)
        if meta["status"] in _READY:
            return meta
        for _task_id, result in self._watch((task_id,), timeout, interval, on_interval):
            meta = self._meta(result)
            self._remember(task_id, meta)
        if on_interval is not None:
            # Celery's own waiting calls on_interval once more after the result
            # arrived: a chord's get() raises a failed header part's exception
            # (found in the parents) rather than the body's ChordError.
            on_interval()
        return meta

    def _fresh(
        self, task_id: str, result: TaskResult, on_message: Callable[[Any], Any] | None
    ) -> dict[str, Any]:
        meta = self._meta(result)
        self._remember(task_id, meta)
        if on_message is not None:
            on_message(meta)
        return meta

    def get_many(  # noqa: PLR0917  # Celery's signature, positional arguments included
        self,
        task_ids: Iterable[str],
        timeout: float | None = None,
        interval: float | None = 0.5,
        no_ack: bool = True,
        on_message: Callable[[dict[str, Any]], Any] | None = None,
        on_interval: Callable[[], Any] | None = None,
        max_iterations: int | None = None,
        READY_STATES: frozenset[str] = _READY,  # Celery's keyword name
    ) -> Generator[tuple[str, dict[str, Any]], None, None]:
        """Yield ``(task_id, meta)`` for each id once ready: one read, then the shared waiter.

        ``max_iterations`` (Celery's poll count) bounds the wait to that many
        ``interval`` periods, after which the iteration simply stops;
        ``max_iterations=1`` reads once and returns.
        """
        unknown: list[str] = []
        for task_id in dict.fromkeys(str(t) for t in task_ids):
            cached = self._cached(task_id)
            if cached is not None and cached["status"] in READY_STATES:
                yield task_id, cached
            else:
                unknown.append(task_id)
        found = self.store.get_many(unknown) if unknown else {}
        pending: list[str] = []
        for task_id in unknown:
            result = found.get(task_id)
            if result is None or result.state not in READY_STATES:
                pending.append(task_id)
            else:
                yield task_id, self._fresh(task_id, result, on_message)
        if not pending or (max_iterations is not None and max_iterations <= 1):
            return
        bounded = False
        if max_iterations is not None:
            budget = (interval or 0.5) * (max_iterations - 1)
            bounded = timeout is None or budget < timeout
            timeout = budget if bounded else timeout
        try:
            for task_id, result in self._watch(pending, timeout, interval, on_interval):
                yield task_id, self._fresh(task_id, result, on_message)
        except CeleryTimeoutError:
            # Celery stops after max_iterations polls without an error.
            if not bounded:
                raise

    # -- groups ----------------------------------------------------------------

    def _save_group(self, group_id: str, result: Any) -> Any:
        self.store.save_group(group_id, _member_ids(result.results))
        return result

    def _restore_group(self, group_id: str) -> dict[str, Any] | None:
        group = self.store.get_group(group_id)
        if group is None:
            return None
        members = [self.app.AsyncResult(task_id, backend=self) for task_id in group.task_ids]
        return {
            "result": self.app.GroupResult(group_id, members, app=self.app),
            "date_done": None if group.date_done is None else group.date_done.isoformat(),
        }

    def _delete_group(self, group_id: str) -> None:
        self.store.delete_group(group_id)

    # -- chords ----------------------------------------------------------------

    def _chords(self) -> bool:
        return Capability.CHORDS in self.store.capabilities

    def _set_size(self, group_id: str, size: int) -> None:
        self.store.set_chord_size(group_id, size)
        self._sized[group_id] = size
        while len(self._sized) > _SIZED_MAX:
            self._sized.popitem(last=False)

    def ensure_chords_allowed(self) -> None:
        """Refuse chords where neither the store nor Celery's fallback can run them.

        Without CHORDS, Celery's ``chord_unlock`` task reads the header's
        results from a worker, which only a SHARED store allows (not one that
        sends each result to its caller, such as ``rpc://``).
        """
        capabilities = self.store.capabilities
        if Capability.CHORDS not in capabilities and Capability.SHARED not in capabilities:
            raise NotImplementedError(
                f"{self.as_uri()} cannot run chords: its results reach only the client that "
                f"sent each task, so no worker can gather a chord's header. Use a store with "
                f"chords (resultstore+redis://...) for chords"
            )

    def apply_chord(self, header_result_args: Sequence[Any], body: Any, **kwargs: Any) -> None:
        """Prepare a chord before its header is sent: save the header, set the size.

        Stores without chord support fall back to Celery's ``chord_unlock`` task.
        """
        if not self._chords():
            super().apply_chord(header_result_args, body, **kwargs)
            return
        group_id, results = header_result_args[0], header_result_args[1]
        self._refuse_reapplied(group_id)
        if isinstance(results, _regen):
            if int(self.app.conf.task_protocol or 2) >= 2:
                # A header given as a generator is counted as it is sent:
                # Celery calls set_chord_size() before sending its last task.
                return
            # Protocol 1 messages carry no group_index, so each part is found
            # by its id in the saved header: freeze the generator's tasks now
            # (Celery sends the same, now frozen, signatures afterwards).
            results = list(results)
        ids = _member_ids(results)
        if Capability.GROUPS in self.store.capabilities:
            self.store.save_group(group_id, ids)
            shape = _shape(results)
            if any(isinstance(node, list) for node in shape):
                # Groups in the header (a chain ending in a group, a nested
                # chord with a group body) give the body nested lists.
                self.store.save_group(_shape_id(group_id), (json.dumps(shape),))
        self._set_size(group_id, len(ids))

    def _refuse_reapplied(self, group_id: str) -> None:
        state = self.store.get_chord(group_id)
        if state is not None and state.completed:
            raise CeleryChordError(
                f"chord {group_id!r} completed already: a resultstore chord runs once per "
                f"group id, and its parts' and body's results are final. Re-applying a "
                f"frozen chord reuses its ids; build or clone the chord anew "
                f"(e.g. sig.clone() or chord(header, body) again) to run it again"
            )

    def set_chord_size(self, group_id: str, chord_size: int) -> None:
        if not self._chords() or self._sized.get(group_id) == chord_size:
            return
        self._set_size(group_id, chord_size)

    def add_to_chord(self, group_id: str, result: Any) -> None:
        """``Task.add_to_chord()``: the new task's value joins the body's, next to the caller's.

        The calling part and the tasks it adds form a small chord of their
        own (a "slot") at the caller's place in the header; whoever
        completes the slot records the caller's part with every value, so
        the chord's own size never changes. The slot's members are saved
        before the new task is sent, so that it finds its place.
        """
        from celery import current_task

        request = getattr(current_task, "request", None)
        adder = getattr(request, "id", None)
        if not self._chords() or Capability.GROUPS not in self.store.capabilities:
            raise NotImplementedError(
                f"{self.as_uri()} has no chords with saved headers, so Task.add_to_chord() "
                f"cannot grow one; start a new chord (or a group) from the task instead"
            )
        if request is None or not adder or getattr(request, "group", None) != group_id:
            raise NotImplementedError(
                "Task.add_to_chord() grows the chord of the task calling it; call it from a "
                "task of that chord's header"
            )
        header = self._header(group_id)
        index = getattr(request, "group_index", None)
        if header is None or not isinstance(index, int) or self._part_index(request) != index:
            raise NotImplementedError(
                f"chord {group_id!r}: Task.add_to_chord() works for a plain task of a header "
                f"given as a list; this task is part of a generator header, a nested chain or "
                f"group, or carries no group_index (task_protocol=1): start a new chord (or a "
                f"group) from the task instead"
            )
        with self._lock:
            added = self._adders.setdefault(adder, (group_id, index, []))[2]
            added.append(str(result.id))
            members = (adder, *added)
            while len(self._adders) > _SIZED_MAX:
                self._adders.pop(next(iter(self._adders)))
        # The slot's size first: a new task can only return after it is sent.
        self.store.set_chord_size(_slot_id(group_id, index), len(members))
        self.store.save_group(_added_id(group_id, index), members)

    def _slot_position(self, request: Any, index: int) -> int | None:
        """The part's place in its slot: 0 for a task that called add_to_chord(), k for the
        k-th task it added, ``_STRAY`` for one added by an earlier run of a redelivered part;
        None for a plain part (the only read is for ids not in the header)."""
        task_id = request.id
        with self._lock:
            entry = self._adders.pop(task_id, None)
        if entry is not None:
            return 0
        header = self._header(request.group)
        if header is None or task_id in header:
            return None
        members = self.store.get_group(_added_id(request.group, index))
        if members is None:
            return None
        if task_id not in members.task_ids[1:]:
            # Added by an earlier run of a redelivered part, whose new run
            # added others in its place: its value is not the body's.
            return _STRAY
        return members.task_ids.index(task_id)

    def _record_in_slot(
        self, group_id: str, index: int, position: int, part: TaskResult
    ) -> ChordOutcome | None:
        """Record a part of a grown place; the slot's completer records the chord's part."""
        slot_id = _slot_id(group_id, index)
        slot = self._record_part(slot_id, position, part)
        if not (slot.complete and slot.results is not None):
            if not slot.duplicate:
                return None
            claim = self._claim(slot_id)  # the slot's completer may have died
            if claim is None or claim.results is None:
                return None
            slot = claim
        results = slot.results or ()
        failed = slot.failed_parts
        merged = (
            failed[0]
            if failed
            else TaskResult(
                results[0].task_id,
                celery_states.SUCCESS,
                [r.result for r in results],
                name=_ADDED_PART,
            )
        )
        outcome = self._record_part(group_id, index, merged)
        self.store.mark_chord_body_sent(slot_id)
        return outcome

    def _header(self, group_id: str) -> tuple[str, ...] | None:
        """The chord's header task ids as apply_chord() saved them (read once per process)."""
        header = self._headers.get(group_id)
        if header is None and Capability.GROUPS in self.store.capabilities:
            group = self.store.get_group(group_id)
            if group is not None:
                header = self._headers[group_id] = group.task_ids
                while len(self._headers) > _HEADERS_MAX:
                    self._headers.popitem(last=False)
        return header

    def _part_index(self, request: Any) -> int:
        """The part's position in the header, from which the body gets its values in order.

        Celery's ``group_index`` is used when the saved header agrees with
        it; the task of a chord nested in the header carries the index it
        has inside the inner chord, so it is found by its id instead.
        """
        task_id = request.id
        index = getattr(request, "group_index", None)
        header = self._header(request.group)
        if header is not None:
            if isinstance(index, int) and 0 <= index < len(header) and header[index] == task_id:
                return index
            if task_id in header:
                return header.index(task_id)
        if isinstance(index, int):
            return index
        raise ChordError(
            f"chord {request.group!r}: task {task_id!r} carries no group_index and is not "
            f"in the saved header; send the chord from Celery >= 5.1"
        )

    def _record_part(self, group_id: str, index: int, part: TaskResult) -> ChordOutcome:
        started = time.monotonic()
        bound = self.settings.chord_size_wait
        pause = _SIZE_POLL
        sized = False
        while True:
            try:
                return self.store.chord_part_return(group_id, index, part)
            except ChordError:
                # A header sent from a generator gets its size just before
                # its last task is sent; an earlier part may get here first
                # and waits for it as long as the chord lives.
                if self.store.get_chord(group_id) is not None:
                    if sized:
                        raise  # a size is set: the part itself is wrong
                    sized = True  # the size may have arrived since: once more
                    continue
                waited = time.monotonic() - started
                if bound is not None and waited >= bound:
                    raise ChordError(
                        f"chord {group_id!r}: part {index} waited {waited:.1f}s for the chord's "
                        f"size, which never came (the sender stopped before sending the "
                        f"whole header?); the wait is bounded by result_expires or "
                        f"{CHORD_SIZE_WAIT_SETTING}"
                    ) from None
                time.sleep(pause if bound is None else min(pause, bound - waited))
                pause = min(pause * 2, _SIZE_POLL_MAX)

    def on_chord_part_return(self, request: Any, state: str, result: Any, **kwargs: Any) -> None:
        """Record a header part; the one call that completes the chord sends the body.

        A failed (or revoked) part fails the body with Celery's ChordError
        and calls its errbacks, once every part is in.
        """
        group_id, task_id = getattr(request, "group", None), getattr(request, "id", None)
        if not group_id or not task_id or not getattr(request, "chord", None):
            return
        if not self._chords():
            return  # chord_unlock, started by apply_chord(), does the joining
        callback = maybe_signature(request.chord, app=self.app)
        part = to_task_result(task_id, self.encode_result(result, state), state)
        try:
            index = self._part_index(request)
            position = self._slot_position(request, index)
            if position == _STRAY:
                logger.warning("Chord %r: %r, added by an earlier run, ignored", group_id, task_id)
                return
            if position is None:
                outcome = self._record_part(group_id, index, part)
            else:
                grown = self._record_in_slot(group_id, index, position, part)
                if grown is None:
                    return
                outcome = grown
        except ChordError as exc:
            logger.exception("Chord %r: part %r could not be recorded", group_id, task_id)
            self._fail_chord(callback, CeleryChordError(str(exc)), exc)
            return
        if outcome.complete and outcome.results is not None:
            self._finish(group_id, callback, outcome)
        elif outcome.duplicate:
            # A redelivered part (acks_late) of a chord that may have completed
            # in a worker that died before sending the body.
            self._recover(group_id, callback)

    def _finish(self, group_id: str, callback: Any, outcome: ChordOutcome) -> None:
        """Send the body (or fail it), then tell the store it was sent."""
        failed = outcome.failed_parts
        if failed:
            culprit = failed[0]
            cause = self._rebuild(culprit.exception or MISSING_FAILURE)
            error = CeleryChordError(f"Dependency {culprit.task_id} raised {cause!r}")
            logger.error("Chord %r failed: %s", group_id, error)
            self._fail_chord(callback, error, cause)
        else:
            values = self._nested(
                group_id,
                [
                    _Added(part.result) if part.name == _ADDED_PART else part.result
                    for part in outcome.results or ()
                ],
            )
            publish = getattr(self.app.amqp, "_retry_publish", None)
            try:
                if publish is not None:
                    publish(callback.delay, values)
                else:
                    callback.delay(values)
            except Exception as exc:
                logger.exception("Chord %r: sending the body failed", group_id)
                self._fail_chord(callback, CeleryChordError(f"Callback error: {exc!r}"), exc)
        try:
            self.store.mark_chord_body_sent(group_id)
        except Exception:
            # The body is away; unmarked, a redelivered part may send it again.
            logger.warning("Chord %r: body sent, not marked sent", group_id, exc_info=True)

    def _recover(self, group_id: str, callback: Any) -> None:
        """Send the body of a complete chord whose body the store does not know sent."""
        claim = self._claim(group_id)
        if claim is not None:
            self._finish(group_id, callback, claim)

    def _claim(self, group_id: str) -> ChordOutcome | None:
        """The results of a complete chord whose body the store does not know sent, or None.

        The store's claim makes one caller get them, and only once the last
        claim (the first one waits too, in case the completing worker is
        alive and still sending) is ``resultstore_chord_body_lease`` old.
        """
        lease = self.settings.chord_body_lease
        give_up = time.monotonic() + 3 * lease + 5.0
        while True:
            claim = self.store.claim_chord_body(group_id, lease)
            if claim is None:
                return None  # open, sent, or a store that does not remember bodies
            if claim.complete and claim.results is not None:
                logger.warning(
                    "Chord %r completed but its body was never marked sent (the worker "
                    "that completed it stopped?): sending it now",
                    group_id,
                )
                return claim
            if time.monotonic() >= give_up:
                logger.error(
                    "Chord %r: gave up recovering its body after %.0fs; another part's "
                    "redelivery may still send it",
                    group_id,
                    3 * lease + 5.0,
                )
                return None
            time.sleep(min(lease / 4, 0.5))

    def _nested(self, group_id: str, values: list[Any]) -> list[Any]:
        """The body's values, nested as the header's groups were (one read per chord)."""
        flat: list[Any] = [0] * len(values)
        if Capability.GROUPS not in self.store.capabilities:
            return _unflatten(flat, iter(values))
        saved = self.store.get_group(_shape_id(group_id))
        if saved is None or len(saved.task_ids) != 1:
            return _unflatten(flat, iter(values))
        try:
            shape = json.loads(saved.task_ids[0])
            return _unflatten(shape, iter(values))
        except (ValueError, TypeError, StopIteration):
            logger.warning("Chord %r: unusable header shape %r ignored", group_id, saved)
            return _unflatten(flat, iter(values))

    def _fail_chord(self, callback: Any, error: BaseException, cause: BaseException) -> None:
        """Fail the body with ``error`` and call its errbacks (Celery's way)."""
        try:
            # Celery's chord_error_from_stack reads the traceback of the
            # exception being handled, so there must be one.
            raise error from cause
        except CeleryChordError as exc:
            self.chord_error_from_stack(callback, exc)
