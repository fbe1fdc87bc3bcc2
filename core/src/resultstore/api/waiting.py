"""The per-process waiting machinery: one hub per store that every waiter shares.

A :class:`WaitHub` owns one background thread. On a backend that declares
``Capability.PUSH`` it holds one push listener, subscribes exactly the ids
someone waits on, and fetches a result only when the store announced it;
elsewhere it polls all pending ids with one ``get_many`` per poll, at an
interval that starts short and backs off to a cap. Waiters (sync threads,
asyncio tasks, group joins) register a :class:`Watch` and get called back
once per id when that id's result is ready.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, Protocol, cast

from resultstore.concepts.errors import BackendUnavailableError, PayloadError
from resultstore.concepts.models import TaskResult
from resultstore.concepts.urls import BackendURL
from resultstore.plugin.protocols import (
    Capability,
    PushListener,
    ResultBackend,
    SupportsCarriedResults,
    SupportsPush,
    SupportsWake,
)

__all__ = [
    "DEFAULT_MAX_INTERVAL",
    "DEFAULT_MIN_INTERVAL",
    "Delivery",
    "Inbox",
    "WaitHub",
    "WaitedStore",
    "Watch",
    "describe_ids",
    "failing_note",
]

#: first poll interval after a waiter arrives (seconds).
DEFAULT_MIN_INTERVAL = 0.01
#: the interval polling backs off to when nothing becomes ready (Celery's default too).
DEFAULT_MAX_INTERVAL = 0.5
#: how long one listener wait lasts before the hub applies new subscriptions.
PUSH_SLICE = 0.05
#: ids per get_many call; keeps statements and messages a sane size.
BATCH_SIZE = 1000
_MAX_BACKOFF = 2.0

#: what a watch callback receives for one id: its ready result, or the error
#: that stops it from ever being read (a payload that does not decode, a closed store).
Delivery = TaskResult | BaseException
Callback = Callable[[str, Delivery], None]


class Inbox:
    """Deliveries from the hub's thread to one waiting thread: pass ``put`` as
    a watch callback, then ``take`` what arrived."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._items: list[tuple[str, Delivery]] = []

    def put(self, task_id: str, value: Delivery) -> None:
        with self._cond:
            self._items.append((task_id, value))
            self._cond.notify()

    def take(self, deadline: float | None) -> list[tuple[str, Delivery]]:
        """Everything delivered so far; waits for at least one item until
        ``deadline`` (``time.monotonic()`` seconds; None waits forever)."""
        with self._cond:
            while not self._items:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return []
                self._cond.wait(left)
            items, self._items = self._items, []
            return items


class Watch:
    """One waiter's registration: the ids it still waits on and its callback.

    The callback runs in the hub's thread, once per id, and must be quick
    (set an event, hand over to an event loop). :meth:`cancel` is idempotent
    and safe from any thread.
    """

    __slots__ = ("__weakref__", "_hub", "callback", "interval", "remaining")

    def __init__(
        self, hub: WaitHub, task_ids: Iterable[str], callback: Callback, interval: float | None
    ) -> None:
        self._hub = hub
        self.callback = callback
        self.interval = interval
        self.remaining: set[str] = set(task_ids)

    @property
    def done(self) -> bool:
        return not self.remaining

    def cancel(self) -> None:
        """Stop waiting; ids nobody else waits on are unsubscribed."""
        self._hub._cancel(self)


class WaitedStore(Protocol):
    """What a :class:`WaitHub` reads of its store (a
    :class:`~resultstore.ResultStore` is one); declared here so that the
    waiting machinery sits below the store that owns a hub, not beside it."""

    @property
    def url(self) -> BackendURL: ...

    @property
    def backend(self) -> ResultBackend: ...

    @property
    def capabilities(self) -> frozenset[Capability]: ...

    def get(self, task_id: str) -> TaskResult | None: ...

    def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]: ...


class WaitHub:
    """The shared waiter of one :class:`~resultstore.ResultStore` in one process.

    Get it from ``store.hub`` rather than building one. Counters
    (``round_trips``, ``polls``, ``listens``, ``listener_opens``,
    ``failures``) make the strategy observable: on a push backend
    ``round_trips`` only grows when a watched id was announced, newly
    watched, or after the listener was reopened.
    """

    def __init__(
        self,
        store: WaitedStore,
        *,
        min_interval: float = DEFAULT_MIN_INTERVAL,
        max_interval: float = DEFAULT_MAX_INTERVAL,
        push_slice: float = PUSH_SLICE,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        if not 0 < min_interval <= max_interval:
            raise ValueError(
                f"need 0 < min_interval <= max_interval, got {min_interval} and {max_interval}"
            )
        self.store = store
        self.mode: Literal["push", "poll"] = (
            "push" if Capability.PUSH in store.capabilities else "poll"
        )
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.push_slice = push_slice
        self.batch_size = batch_size
        self.pid = os.getpid()

        self._cond = threading.Condition(threading.Lock())
        self._watches: dict[str, list[Watch]] = {}
        # Push: ids to subscribe then fetch, and ids nobody waits on any more.
        self._new: set[str] = set()
        self._gone: set[str] = set()
        self._caps: collections.Counter[float] = collections.Counter()
        self._interval = min_interval
        self._last_poll = 0.0
        self._generation = 0
        self._applied = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self.listener: PushListener | None = None

        self.round_trips = 0
        self.polls = 0
        self.listens = 0
        self.listener_opens = 0
        self.failures = 0
        self.last_error: BaseException | None = None
        #: the error of the hub's latest step, None once a step succeeded again.
        self.failing: BaseException | None = None

    def __repr__(self) -> str:
        return f"<WaitHub {self.mode} {self.store.url.redacted()} watching={self.watched}>"

    # -- what waiters call -------------------------------------------------------

    @property
    def watched(self) -> int:
        """How many distinct ids someone waits on now."""
        with self._cond:
            return len(self._watches)

    @property
    def running(self) -> bool:
        """True while the hub's thread is alive (it starts with the first watch)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def interval(self) -> float:
        """The current poll interval, after backing off and capping by waiters' ``interval``."""
        with self._cond:
            return self._current_interval()

    def _current_interval(self) -> float:
        cap = min(self._caps, default=self.max_interval)
        return min(self._interval, cap, self.max_interval)

    def watched_ids(self) -> frozenset[str]:
        with self._cond:
            return frozenset(self._watches)

    def watch(
        self, task_ids: Iterable[str], callback: Callback, *, interval: float | None = None
    ) -> Watch:
        """Call ``callback(task_id, delivery)`` once for each id when it is ready.

        ``interval`` caps the poll interval while this watch lasts (polling
        backends only). The hub checks each newly watched id once soon after,
        so a result stored before the call is delivered too.
        """
        if interval is not None and interval <= 0:
            raise ValueError(f"interval must be a positive number of seconds, got {interval}")
        watch = Watch(self, task_ids, callback, interval)
        added = False
        with self._cond:
            if self._closed:
                raise BackendUnavailableError(
                    f"the store {self.store.url.redacted()} was closed; "
                    f"connect() again to wait on results"
                )
            for task_id in watch.remaining:
                waiters = self._watches.get(task_id)
                if waiters is None:
                    self._watches[task_id] = [watch]
                    self._new.add(task_id)
                    self._gone.discard(task_id)
                    added = True
                else:
                    waiters.append(watch)
            if interval is not None:
                self._caps[interval] += 1
            self._interval = self.min_interval
            self._generation += 1
            self._ensure_thread()
            self._cond.notify_all()
            listener: object = self.listener
        if added and isinstance(listener, SupportsWake):
            # Cut the current listen short so the new ids are subscribed now.
            with contextlib.suppress(Exception):
                listener.wake()
        return watch

    def _cancel(self, watch: Watch) -> None:
        with self._cond:
            if self._drop(watch, watch.remaining):
                self._generation += 1
                self._cond.notify_all()

    def _drop(self, watch: Watch, task_ids: Iterable[str]) -> bool:
        """Forget ``watch`` for ``task_ids`` (lock held); True if any id lost its last waiter."""
        emptied = False
        for task_id in list(task_ids):
            watch.remaining.discard(task_id)
            waiters = self._watches.get(task_id)
            if waiters is None:
                continue
            try:
                waiters.remove(watch)
            except ValueError:
                continue
            if not waiters:
                del self._watches[task_id]
                self._new.discard(task_id)
                if self.mode == "push":
                    self._gone.add(task_id)
                emptied = True
        if not watch.remaining and watch.interval is not None:
            self._caps[watch.interval] -= 1
            if self._caps[watch.interval] <= 0:
                del self._caps[watch.interval]
            watch.interval = None
        return emptied

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every registration made so far was applied and checked once.

        On a push backend that means subscribed (and unsubscribed) on the
        listener, then read once; when polling, included in a completed
        poll. Returns False if ``timeout`` ran out first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._generation
            while self._applied < target and not self._closed:
                if self._thread is None:
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self) -> None:
        """Stop the thread, close the listener; pending waiters get a BackendUnavailableError."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            pending = {w for ws in self._watches.values() for w in ws}
            self._watches.clear()
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        if self.listener is not None:
            _close_quietly(self.listener)
            self.listener = None
        for watch in pending:
            error = BackendUnavailableError(
                f"the store {self.store.url.redacted()} was closed while waiting for "
                f"{describe_ids(watch.remaining)}; connect() again to wait on results"
            )
            for task_id in list(watch.remaining):
                watch.remaining.discard(task_id)
                _call(watch, task_id, error)

    # -- the hub thread ----------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"resultstore-hub-{self.mode}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        backoff = self.min_interval
        while True:
            try:
                step = self._push_step if self.mode == "push" else self._poll_step
                if not step():
                    return
                backoff = self.min_interval
                self.failing = None
            except Exception as exc:
                # A dead listener or an unreachable store: start over after a
                # pause; reopening resubscribes and refetches every watched id.
                self.failures += 1
                self.last_error = self.failing = exc
                if self.listener is not None:
                    _close_quietly(self.listener)
                    self.listener = None
                with self._cond:
                    if self._closed:
                        return
                    self._cond.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)

    def _idle(self) -> bool:
        """Park while nobody waits (lock held); False once the hub is closed."""
        while not self._watches and not self._gone and not self._closed:
            self._applied = self._generation
            self._cond.notify_all()
            self._cond.wait()
        return not self._closed

    def _push_step(self) -> bool:
        with self._cond:
            if not self._idle():
                return False
            generation = self._generation
            reopen = self.listener is None
            if reopen and not self._watches:
                # Nothing to listen for: a fresh listener would have nothing to drop.
                self._gone.clear()
                self._mark_applied_locked(generation)
                return True
            if reopen:
                self._new.clear()
                new = set(self._watches)
            else:
                new, self._new = self._new, set()
            gone = {task_id for task_id in self._gone if task_id not in self._watches}
            self._gone = set()
        try:
            if reopen:
                self.listener = cast(SupportsPush, self.store.backend).listener()
                self.listener_opens += 1
            listener = cast(PushListener, self.listener)
            if gone:
                listener.unsubscribe(gone)
            if new:
                listener.subscribe(new)
        except BaseException:
            with self._cond:
                # Put back what was not applied, for the next attempt.
                self._new.update(t for t in new if t in self._watches)
                self._gone.update(t for t in gone if t not in self._watches)
            raise
        if new:
            # Subscribe first, then look: a result stored before the
            # subscription took effect is found here instead of announced.
            self._fetch(sorted(new))
        self._mark_applied(generation)
        with self._cond:
            if not self._watches or self._closed:
                return not self._closed
        announced = listener.wait(self.push_slice)
        self.listens += 1
        if announced:
            self._take_announced(listener, announced)
        return True

    def _take_announced(self, listener: PushListener, announced: Sequence[str]) -> None:
        """Deliver what the announcements carried; read the other announced ids."""
        carried = listener.take_carried() if isinstance(listener, SupportsCarriedResults) else {}
        with self._cond:
            wanted = [t for t in dict.fromkeys(announced) if t in self._watches]
        ready: dict[str, Delivery] = {
            t: carried[t] for t in wanted if t in carried and carried[t].ready
        }
        if ready:
            self._deliver(ready)
        rest = [t for t in wanted if t not in ready]
        if rest:
            self._fetch(rest)

    def _poll_step(self) -> bool:
        with self._cond:
            if not self._idle():
                return False
            generation = self._generation
            self._new.clear()
            self._gone.clear()
            due = self._last_poll + self._current_interval()
            now = time.monotonic()
            if now < due:
                self._cond.wait(due - now)
                return True
            ids = list(self._watches)
        self._last_poll = time.monotonic()
        self.polls += 1
        progressed = self._fetch(ids)
        self._mark_applied(generation)
        with self._cond:
            if progressed:
                self._interval = max(self.min_interval, self._interval / 2)
            else:
                self._interval = min(self.max_interval, self._interval * 1.5)
        return True

    def _mark_applied(self, generation: int) -> None:
        with self._cond:
            self._mark_applied_locked(generation)

    def _mark_applied_locked(self, generation: int) -> None:
        if generation > self._applied:
            self._applied = generation
            self._cond.notify_all()

    def _fetch(self, task_ids: Sequence[str]) -> bool:
        """Read ``task_ids`` in batches and deliver the ready ones; True if any was."""
        progressed = False
        for start in range(0, len(task_ids), self.batch_size):
            batch = task_ids[start : start + self.batch_size]
            found: dict[str, Delivery | None]
            try:
                self.round_trips += 1
                found = dict(self.store.get_many(batch))
            except PayloadError:
                # One bad payload must not hide the others: read them one by one.
                found = {}
                for task_id in batch:
                    self.round_trips += 1
                    try:
                        found[task_id] = self.store.get(task_id)
                    except PayloadError as exc:
                        found[task_id] = exc
            ready = {
                task_id: value
                for task_id, value in found.items()
                if isinstance(value, BaseException) or (value is not None and value.ready)
            }
            if ready:
                progressed = True
                self._deliver(ready)
        return progressed

    def _deliver(self, ready: dict[str, Delivery]) -> None:
        calls: list[tuple[Watch, str, Delivery]] = []
        with self._cond:
            for task_id, value in ready.items():
                for watch in self._watches.get(task_id, ()):
                    calls.append((watch, task_id, value))
                for watch in list(self._watches.get(task_id, ())):
                    if self._drop(watch, (task_id,)):
                        # An unsubscribe to apply: flush() waits for it too.
                        self._generation += 1
        for watch, task_id, value in calls:
            _call(watch, task_id, value)


def _call(watch: Watch, task_id: str, value: Delivery) -> None:
    try:
        watch.callback(task_id, value)
    except Exception:  # a broken waiter must not stop the hub serving the others
        watch.cancel()


def _close_quietly(listener: PushListener) -> None:
    try:
        listener.close()
    except Exception:  # it is being thrown away because it failed already
        return


def describe_ids(task_ids: Iterable[str], limit: int = 3) -> str:
    """``task 'a'`` or ``tasks 'a', 'b', 'c' and 7 more``, for messages."""
    ids = sorted(task_ids)
    shown = ", ".join(repr(t) for t in ids[:limit])
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return f"task {shown}{more}" if len(ids) == 1 else f"tasks {shown}{more}"


def failing_note(hub: WaitHub) -> str:
    """``; ...`` explaining that the hub cannot read the store right now, or ``""``."""
    error = hub.failing
    if error is None:
        return ""
    return (
        f"; meanwhile the store could not be read ({type(error).__name__}: {error}), "
        f"so the result may be ready but unseen: check that the store is reachable"
    )
