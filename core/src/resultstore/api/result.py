"""Handles on stored results: wait for a task, a group or a chord, from threads or asyncio.

:class:`AsyncResult` (Celery's name) reads and waits on one task,
:class:`GroupResult` on many with one ``get_many`` per round trip, and
:class:`ChordResult` on a chord's callback; :func:`chord_part_done` is what a
worker calls when a header part finishes. Every wait goes through the store's
shared :class:`~resultstore.api.waiting.WaitHub`, and every timeout is wall-clock.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import sys
import time
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from resultstore.api.waiting import (
    Delivery,
    Inbox,
    WaitedStore,
    WaitHub,
    describe_ids,
    failing_note,
)
from resultstore.concepts.errors import (
    ChordError,
    ChordPartFailedError,
    ResultStoreError,
    ResultTimeoutError,
)
from resultstore.concepts.models import (
    ChordOutcome,
    ChordState,
    ExceptionInfo,
    Group,
    StoreOutcome,
    TaskResult,
)
from resultstore.concepts.remote import rebuild_exception
from resultstore.concepts.states import PROPAGATE_STATES, State
from resultstore.concepts.validation import (
    CheckedIds,
    check_group_id,
    check_task_id,
    check_task_ids,
)
from resultstore.payloads.codecs import Succeeded
from resultstore.plugin.protocols import Capability
from resultstore.plugin.retrying import deadline as bounded_by

if TYPE_CHECKING:
    import datetime as dt

__all__ = [
    "AsyncHandleStore",
    "AsyncResult",
    "ChordResult",
    "GroupResult",
    "HandleStore",
    "chord_part_done",
    "start_chord",
]


class HandleStore(WaitedStore, Protocol):
    """What a handle calls of its store: :class:`resultstore.ResultStore` is
    one. Declared here, a floor below the store that makes handles, so that
    handles never import it (the store imports this module, not the reverse)."""

    @property
    def allowed_exceptions(self) -> tuple[type[BaseException], ...]: ...

    @property
    def hub(self) -> WaitHub: ...

    def supports(self, capability: Capability) -> bool: ...

    def get_many_lean(
        self, task_ids: Sequence[str]
    ) -> dict[str, TaskResult | Succeeded | None]: ...

    def forget(self, task_id: str) -> None: ...

    def save_group(self, group_id: str, task_ids: Sequence[str]) -> Group: ...

    def get_group(self, group_id: str) -> Group | None: ...

    def delete_group(self, group_id: str) -> None: ...

    def set_chord_size(self, group_id: str, size: int) -> None: ...

    def chord_part_return(self, group_id: str, index: int, result: TaskResult) -> ChordOutcome: ...

    def get_chord(self, group_id: str) -> ChordState | None: ...

    def mark_as_done(self, task_id: str, value: Any) -> StoreOutcome: ...

    def mark_as_failure(self, task_id: str, exc: BaseException) -> StoreOutcome: ...


class AsyncHandleStore(Protocol):
    """What a handle awaits of an asyncio store (:class:`resultstore.AsyncResultStore`)."""

    async def get(self, task_id: str) -> TaskResult | None: ...

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]: ...


Allowed = Iterable[type[BaseException]]
#: resultstore's own exceptions that tasks' results may carry; always rebuilt as themselves.
_OWN_ALLOWED: tuple[type[BaseException], ...] = (ChordPartFailedError,)
_UNKNOWN_FAILURE = ExceptionInfo(
    type_name="RemoteError",
    module="resultstore",
    message="the task failed without a stored exception",
)


def _deadline(timeout: float | None) -> float | None:
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be None or >= 0 seconds, got {timeout}")
    return None if timeout is None else time.monotonic() + timeout


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


T = TypeVar("T")


def _read(deadline: float | None, read: Callable[[], T], timed_out: Callable[[], Exception]) -> T:
    """``read()`` bounded by the caller's ``deadline``: a store that does not
    answer in time ends it with ``timed_out()`` (a ResultTimeoutError)."""
    if deadline is None:
        return read()
    try:
        with bounded_by(deadline):
            return read()
    except ResultTimeoutError as exc:
        raise timed_out() from exc


async def _aread(
    deadline: float | None, read: Callable[[], Awaitable[T]], timed_out: Callable[[], Exception]
) -> T:
    """:func:`_read` for asyncio (no timer of its own: ten thousand waiters are
    common, and the backend's retries carry the deadline)."""
    if deadline is None:
        return await read()
    try:
        with bounded_by(deadline):
            return await read()
    except ResultTimeoutError as exc:
        raise timed_out() from exc


def _in_executor(call: Callable[..., T], *args: Any) -> Awaitable[T]:
    """``call(*args)`` in the default executor, with this task's context (its deadline)."""
    loop = asyncio.get_running_loop()
    return loop.run_in_executor(None, contextvars.copy_context().run, call, *args)


def _exception(store: HandleStore, meta: TaskResult, allowed: Allowed) -> BaseException:
    """The exception a failed result stands for, rebuilt (never imported)."""
    exc = rebuild_exception(
        meta.exception or _UNKNOWN_FAILURE,
        (*store.allowed_exceptions, *allowed, *_OWN_ALLOWED),
    )
    if meta.traceback:
        exc.add_note(f"Remote traceback of task {meta.task_id!r}:\n{meta.traceback.rstrip()}")
    return exc


def _outcome(store: HandleStore, meta: TaskResult, propagate: bool, allowed: Allowed) -> Any:
    """A ready result's value, or its exception (raised with ``propagate``)."""
    if meta.state in PROPAGATE_STATES:
        exc = _exception(store, meta, allowed)
        if propagate:
            raise exc
        return exc
    return meta.result


def _is_failure(meta: TaskResult | None) -> bool:
    return meta is not None and meta.state in PROPAGATE_STATES


class _AsyncInbox:
    """Deliveries from the hub's thread to one asyncio task."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._items: list[tuple[str, Delivery]] = []
        self._ready: asyncio.Future[None] | None = None

    def put(self, task_id: str, value: Delivery) -> None:
        try:
            self._loop.call_soon_threadsafe(self._put, task_id, value)
        except RuntimeError:  # the loop is closed: nobody waits any more
            return

    def _put(self, task_id: str, value: Delivery) -> None:
        self._items.append((task_id, value))
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    async def take(self, deadline: float | None) -> list[tuple[str, Delivery]]:
        if not self._items:
            self._ready = self._loop.create_future()
            try:
                async with asyncio.timeout(_left(deadline)):
                    await self._ready
            except TimeoutError:
                return []
            finally:
                self._ready = None
        items, self._items = self._items, []
        return items


def _resolve(future: asyncio.Future[Delivery], value: Delivery) -> None:
    if not future.done():
        future.set_result(value)


async def _await_one(
    hub: WaitHub, task_id: str, deadline: float | None, interval: float | None
) -> Delivery | None:
    """Wait for one id with a bare future (small enough for tens of thousands of waiters)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Delivery] = loop.create_future()

    def deliver(_task_id: str, value: Delivery) -> None:
        try:
            loop.call_soon_threadsafe(_resolve, future, value)
        except RuntimeError:  # the loop is closed: nobody waits any more
            return

    watch = hub.watch((task_id,), deliver, interval=interval)
    try:
        async with asyncio.timeout(_left(deadline)):
            return await future
    except TimeoutError:
        return None
    finally:
        # Cancellation lands here too: the id is unsubscribed when nobody else waits.
        watch.cancel()


class AsyncResult:
    """One task's result: its state and metadata, and a way to wait for its value.

    A result in a ready state is cached in the handle (it is final); other
    states are read from the store on every access. ``allowed`` lists
    exception classes that may be rebuilt as themselves, on top of the
    store's ``allowed_exceptions``.
    """

    __slots__ = ("_allowed", "_astore", "_cache", "store", "task_id")

    def __init__(
        self,
        task_id: str,
        store: HandleStore,
        *,
        allowed: Allowed = (),
        astore: AsyncHandleStore | None = None,
    ) -> None:
        self.task_id = check_task_id(task_id)
        self.store = store
        self._allowed = tuple(allowed)
        self._astore = astore
        self._cache: TaskResult | None = None

    def __repr__(self) -> str:
        return f"<AsyncResult {self.task_id}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return self.task_id == other.task_id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.task_id)

    @property
    def id(self) -> str:
        return self.task_id

    # -- reading -----------------------------------------------------------------

    def _remember(self, meta: TaskResult | None) -> TaskResult | None:
        if meta is not None and meta.ready:
            self._cache = meta
        return meta

    @property
    def meta(self) -> TaskResult | None:
        """The stored :class:`TaskResult` (None if the store has none), cached once ready."""
        if self._cache is not None:
            return self._cache
        return self._remember(self.store.get(self.task_id))

    @property
    def state(self) -> str:
        """The task's state; PENDING when the store has no result for it."""
        meta = self.meta
        return State.PENDING if meta is None else meta.state

    status = state

    @property
    def result(self) -> Any:
        """The value (SUCCESS), the exception (FAILURE, REVOKED, RETRY) or the meta (custom)."""
        meta = self.meta
        if meta is None:
            return None
        if meta.exception is not None or meta.state in PROPAGATE_STATES:
            return self._exception(meta, ())
        return meta.result

    info = result

    @property
    def traceback(self) -> str | None:
        meta = self.meta
        return None if meta is None else meta.traceback

    @property
    def date_done(self) -> dt.datetime | None:
        meta = self.meta
        return None if meta is None else meta.date_done

    def _field(self, name: str) -> Any:
        meta = self.meta
        return None if meta is None else getattr(meta, name)

    @property
    def name(self) -> str | None:
        value: str | None = self._field("name")
        return value

    @property
    def args(self) -> tuple[Any, ...] | None:
        value: tuple[Any, ...] | None = self._field("args")
        return value

    @property
    def kwargs(self) -> dict[str, Any] | None:
        value = self._field("kwargs")
        return None if value is None else dict(value)

    @property
    def worker(self) -> str | None:
        value: str | None = self._field("worker")
        return value

    @property
    def retries(self) -> int | None:
        value: int | None = self._field("retries")
        return value

    @property
    def queue(self) -> str | None:
        value: str | None = self._field("queue")
        return value

    @property
    def group_id(self) -> str | None:
        value: str | None = self._field("group_id")
        return value

    @property
    def parent_id(self) -> str | None:
        value: str | None = self._field("parent_id")
        return value

    @property
    def parent(self) -> AsyncResult | None:
        parent_id = self.parent_id
        return None if parent_id is None else self._sibling(parent_id)

    @property
    def children(self) -> tuple[AsyncResult, ...]:
        meta = self.meta
        return () if meta is None else tuple(self._sibling(c) for c in meta.children)

    def _sibling(self, task_id: str) -> AsyncResult:
        return AsyncResult(task_id, self.store, allowed=self._allowed, astore=self._astore)

    def ready(self) -> bool:
        """True once the task is SUCCESS, FAILURE or REVOKED."""
        meta = self.meta
        return meta is not None and meta.ready

    def successful(self) -> bool:
        meta = self.meta
        return meta is not None and meta.state == State.SUCCESS

    def failed(self) -> bool:
        """True when the task ended in FAILURE (or was REVOKED)."""
        return _is_failure(self.meta)

    def exists(self) -> bool:
        """True when the store holds a result; PENDING alone cannot tell an unknown id apart."""
        return self.meta is not None

    def forget(self) -> None:
        """Delete the stored result (and the cached copy)."""
        self._cache = None
        self.store.forget(self.task_id)

    # -- values and exceptions -----------------------------------------------------

    def _exception(self, meta: TaskResult, allowed: Allowed) -> BaseException:
        return _exception(self.store, meta, (*self._allowed, *allowed))

    def _outcome(self, meta: TaskResult, propagate: bool, allowed: Allowed) -> Any:
        return _outcome(self.store, meta, propagate, (*self._allowed, *allowed))

    def _timeout(self, timeout: float | None, started: float, meta: TaskResult | None) -> Exception:
        state = State.PENDING if meta is None else meta.state
        return ResultTimeoutError(
            f"task {self.task_id!r} was not ready after waiting "
            f"{time.monotonic() - started:.3f}s (timeout={timeout}s); last seen state: {state}"
            f"{_unread_note(self.store)}"
        )

    # -- waiting -------------------------------------------------------------------

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float | None = None,
        allowed: Allowed = (),
    ) -> Any:
        """Wait until the task is ready and return its value.

        A FAILURE or REVOKED task's exception is raised when ``propagate``
        is true (returned otherwise), rebuilt safely: built-in exceptions,
        allow-listed classes (``allowed``, the handle's and the store's) as
        themselves, anything else as a :class:`~resultstore.RemoteError`.
        ``timeout`` is wall-clock seconds; running out raises
        :class:`~resultstore.ResultTimeoutError`. ``interval`` caps
        the poll interval on backends without push.
        """
        started = time.monotonic()
        deadline = _deadline(timeout)
        meta = _read(deadline, lambda: self.meta, lambda: self._timeout(timeout, started, None))
        if meta is None or not meta.ready:
            inbox = Inbox()
            watch = self.store.hub.watch((self.task_id,), inbox.put, interval=interval)
            try:
                items = inbox.take(deadline)
            finally:
                watch.cancel()
            if not items:
                raise self._timeout(timeout, started, meta)
            meta = _settle(items[0][1])
            self._remember(meta)
        return self._outcome(meta, propagate, allowed)

    wait = get

    async def _ameta(self) -> TaskResult | None:
        if self._cache is not None:
            return self._cache
        if self._astore is not None:
            meta = await self._astore.get(self.task_id)
        else:
            meta = await _in_executor(self.store.get, self.task_id)
        return self._remember(meta)

    async def aget(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float | None = None,
        allowed: Allowed = (),
    ) -> Any:
        """The asyncio twin of :meth:`get`; cancelling it leaves nothing subscribed."""
        started = time.monotonic()
        deadline = _deadline(timeout)
        meta = await _aread(deadline, self._ameta, lambda: self._timeout(timeout, started, None))
        if meta is None or not meta.ready:
            delivered = await _await_one(self.store.hub, self.task_id, deadline, interval)
            if delivered is None:
                raise self._timeout(timeout, started, meta)
            meta = _settle(delivered)
            self._remember(meta)
        return self._outcome(meta, propagate, allowed)

    def __await__(self) -> Generator[Any, None, Any]:
        return self.aget().__await__()


def _unread_note(store: HandleStore) -> str:
    """Why the store may not have been read, for a timeout's message."""
    exc = sys.exc_info()[1]
    if isinstance(exc, ResultTimeoutError):
        # The store itself did not answer within the caller's timeout.
        return f"; the store could not be read in time: {exc}"
    try:
        return failing_note(store.hub)
    except ResultStoreError:  # closed meanwhile
        return ""


def _settle(value: Delivery) -> TaskResult:
    """A delivered result, or raise the error that stopped the hub reading it."""
    if isinstance(value, BaseException):
        raise value
    return value


class GroupResult:
    """The results of a group of tasks, in group order.

    Reads fetch every member not yet known to be ready with one
    ``get_many``; waits register one watch for all pending members.
    """

    def __init__(
        self,
        group_id: str,
        task_ids: Sequence[str],
        store: HandleStore,
        *,
        allowed: Allowed = (),
        astore: AsyncHandleStore | None = None,
    ) -> None:
        self.group_id = check_group_id(group_id)
        check_task_ids(task_ids)
        self.store = store
        self._astore = astore
        self._allowed = tuple(allowed)
        self._task_ids = CheckedIds(task_ids)
        self._unique = CheckedIds(dict.fromkeys(self._task_ids))
        # What the group knows: each member's ready result, by id. Handles are
        # built only when asked for (a join of thousands never needs them).
        # A plain success read in bulk stays a Succeeded until its model is wanted.
        self._ready: dict[str, TaskResult | Succeeded] = {}
        self._failures = False  # whether any ready member failed (or was revoked)
        self._handles: tuple[AsyncResult, ...] | None = None
        self._handles_by_id: dict[str, list[AsyncResult]] = {}

    @property
    def results(self) -> tuple[AsyncResult, ...]:
        """One handle per member, in group order (holding what the group has read)."""
        if self._handles is None:
            handles = tuple(
                AsyncResult(task_id, self.store, allowed=self._allowed, astore=self._astore)
                for task_id in self._task_ids
            )
            by_id: dict[str, list[AsyncResult]] = collections.defaultdict(list)
            for handle in handles:
                handle._cache = self._model(handle.task_id)
                by_id[handle.task_id].append(handle)
            self._handles, self._handles_by_id = handles, dict(by_id)
        return self._handles

    def __repr__(self) -> str:
        return f"<GroupResult {self.group_id} of {len(self._task_ids)}>"

    def __len__(self) -> int:
        return len(self._task_ids)

    def __iter__(self) -> Iterator[AsyncResult]:
        return iter(self.results)

    def __getitem__(self, index: int) -> AsyncResult:
        return self.results[index]

    @property
    def id(self) -> str:
        return self.group_id

    @property
    def task_ids(self) -> tuple[str, ...]:
        return self._task_ids

    # -- saving ------------------------------------------------------------------

    @classmethod
    def restore(
        cls, group_id: str, store: HandleStore, *, allowed: Allowed = ()
    ) -> GroupResult | None:
        """The saved group ``group_id``, or None when it was never saved or has expired."""
        group = store.get_group(group_id)
        return None if group is None else cls(group_id, group.task_ids, store, allowed=allowed)

    def save(self) -> Group:
        """Save the group so that :meth:`restore` (and ``resultstore watch``) can find it."""
        return self.store.save_group(self.group_id, self.task_ids)

    def delete(self) -> None:
        """Delete the saved group; its members' results stay."""
        self.store.delete_group(self.group_id)

    def forget(self) -> None:
        """Delete the saved group (where groups are supported) and every member's result."""
        if self.store.supports(Capability.GROUPS):
            self.delete()
        for handle in self.results:
            handle.forget()
        self._ready.clear()
        self._failures = False

    # -- reading -----------------------------------------------------------------

    def _model(self, task_id: str) -> TaskResult | None:
        """The member's ready result as a model (decoding a bulk-read success once)."""
        meta = self._ready.get(task_id)
        if isinstance(meta, Succeeded):
            meta = self._ready[task_id] = meta.full()
        return meta

    def _absorb(self, found: Mapping[str, TaskResult | Succeeded | None]) -> None:
        ready = self._ready
        handles = self._handles_by_id
        for task_id, meta in found.items():
            if meta is not None and meta.ready:
                ready[task_id] = meta
                if meta.state in PROPAGATE_STATES:
                    self._failures = True
                if task_id in handles:
                    model = self._model(task_id)
                    for handle in handles[task_id]:
                        handle._cache = model

    def _unknown(self) -> CheckedIds:
        ready = self._ready
        if not ready:
            return self._unique
        return CheckedIds([t for t in self._unique if t not in ready])

    def _metas(self, found: Mapping[str, TaskResult | Succeeded | None]) -> list[TaskResult | None]:
        ready = self._ready
        return [
            self._model(t) if t in ready else found.get(t)  # type: ignore[misc]  # unready: a model
            for t in self._task_ids
        ]

    def _refresh(self) -> Mapping[str, TaskResult | Succeeded | None]:
        """Read every member not known to be ready, in one bulk read, and keep the ready ones."""
        unknown = self._unknown()
        found = self.store.get_many_lean(unknown) if unknown else {}
        self._absorb(found)
        return found

    def metas(self) -> list[TaskResult | None]:
        """Every member's stored result (None where missing), in group order, in one read."""
        return self._metas(self._refresh())

    def state_counts(self) -> dict[str, int]:
        """How many members are in each state (PENDING for results the store lacks)."""
        counts = collections.Counter(
            State.PENDING if meta is None else meta.state for meta in self.metas()
        )
        return dict(counts)

    def completed_count(self) -> int:
        """How many members succeeded (Celery's meaning of "completed")."""
        return sum(1 for m in self.metas() if m is not None and m.state == State.SUCCESS)

    def ready_count(self) -> int:
        """How many members are ready (succeeded, failed or revoked)."""
        return sum(1 for m in self.metas() if m is not None and m.ready)

    def ready(self) -> bool:
        return all(m is not None and m.ready for m in self.metas())

    def successful(self) -> bool:
        return all(m is not None and m.state == State.SUCCESS for m in self.metas())

    def failed(self) -> bool:
        """True when any member ended in FAILURE or was REVOKED."""
        return any(_is_failure(m) for m in self.metas())

    def waiting(self) -> bool:
        return not self.ready()

    # -- waiting -------------------------------------------------------------------

    def _pending(self) -> set[str]:
        ready = self._ready
        if len(ready) == len(self._unique):
            return set()
        return {t for t in self._unique if t not in ready}

    def _raise_first_failure(self, task_ids: Iterable[str], allowed: Allowed) -> None:
        """Raise the exception of the earliest failed member (group order) among ``task_ids``."""
        if not self._failures:
            return
        wanted = set(task_ids)
        ready = self._ready
        for task_id in self._task_ids:
            meta = ready.get(task_id)
            if (
                task_id in wanted
                and isinstance(meta, TaskResult)
                and meta.state in PROPAGATE_STATES
            ):
                _outcome(self.store, meta, True, (*self._allowed, *allowed))

    def _take(self, items: list[tuple[str, Delivery]], pending: set[str]) -> list[str]:
        """Absorb delivered results; return the ids that became ready."""
        done = []
        for task_id, value in items:
            self._absorb({task_id: _settle(value)})
            pending.discard(task_id)
            done.append(task_id)
        return done

    def _timeout(self, timeout: float | None, started: float, pending: set[str]) -> Exception:
        ready = sum(1 for t in self._task_ids if t not in pending)
        return ResultTimeoutError(
            f"group {self.group_id!r}: {describe_ids(pending)} not ready after waiting "
            f"{time.monotonic() - started:.3f}s (timeout={timeout}s); "
            f"{ready} of {len(self._task_ids)} results are ready{_unread_note(self.store)}"
        )

    def _values(self, propagate: bool, allowed: Allowed) -> list[Any]:
        ready = self._ready
        if not self._failures:
            return [ready[task_id].result for task_id in self._task_ids]
        allowed = (*self._allowed, *allowed)
        values = []
        for task_id in self._task_ids:
            meta = ready[task_id]  # every member is ready here
            if isinstance(meta, TaskResult) and meta.state in PROPAGATE_STATES:
                values.append(_outcome(self.store, meta, propagate, allowed))
            else:
                values.append(meta.result)
        return values

    def join(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float | None = None,
        allowed: Allowed = (),
    ) -> list[Any]:
        """Wait for every member and return their values in group order.

        With ``propagate``, the first failure seen is raised at once
        (without waiting for the others; among failures seen together, the
        earliest in group order). ``timeout`` is wall-clock for the whole group.
        """
        started = time.monotonic()
        deadline = _deadline(timeout)
        _read(deadline, self._refresh, lambda: self._timeout(timeout, started, self._pending()))
        pending = self._pending()
        if propagate:
            self._raise_first_failure(self._task_ids, allowed)
        if pending:
            inbox = Inbox()
            watch = self.store.hub.watch(pending, inbox.put, interval=interval)
            try:
                while pending:
                    items = inbox.take(deadline)
                    if not items:
                        raise self._timeout(timeout, started, pending)
                    done = self._take(items, pending)
                    if propagate:
                        self._raise_first_failure(done, allowed)
            finally:
                watch.cancel()
        return self._values(propagate, allowed)

    get = join
    join_native = join

    def as_completed(
        self, timeout: float | None = None, interval: float | None = None
    ) -> Generator[AsyncResult, None, None]:
        """Yield each member's handle as it becomes ready (members already ready first).

        The handles hold their result, so ``handle.get()`` does not wait. The
        ``timeout`` covers the whole iteration; closing the iterator early
        (``break``) stops the wait.
        """
        started = time.monotonic()
        deadline = _deadline(timeout)
        _read(deadline, self._refresh, lambda: self._timeout(timeout, started, self._pending()))
        pending = self._pending()
        for handle in self.results:
            if handle.task_id not in pending:
                yield handle
        if not pending:
            return
        inbox = Inbox()
        watch = self.store.hub.watch(pending, inbox.put, interval=interval)
        try:
            while pending:
                items = inbox.take(deadline)
                if not items:
                    raise self._timeout(timeout, started, pending)
                for task_id in self._take(items, pending):
                    yield from self._handles_by_id[task_id]
        finally:
            watch.cancel()

    # -- asyncio ---------------------------------------------------------------------

    async def ametas(self) -> list[TaskResult | None]:
        """:meth:`metas` without blocking the event loop."""
        unknown = self._unknown()
        found: Mapping[str, TaskResult | Succeeded | None] = {}
        if unknown:
            if self._astore is not None:
                found = await self._astore.get_many(unknown)
            else:
                found = await _in_executor(self.store.get_many_lean, unknown)
        self._absorb(found)
        return self._metas(found)

    async def ajoin(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float | None = None,
        allowed: Allowed = (),
    ) -> list[Any]:
        """The asyncio twin of :meth:`join`; cancelling it leaves nothing subscribed."""
        started = time.monotonic()
        deadline = _deadline(timeout)
        await _aread(
            deadline, self.ametas, lambda: self._timeout(timeout, started, self._pending())
        )
        pending = self._pending()
        if propagate:
            self._raise_first_failure(self._task_ids, allowed)
        if pending:
            inbox = _AsyncInbox()
            watch = self.store.hub.watch(pending, inbox.put, interval=interval)
            try:
                while pending:
                    items = await inbox.take(deadline)
                    if not items:
                        raise self._timeout(timeout, started, pending)
                    done = self._take(items, pending)
                    if propagate:
                        self._raise_first_failure(done, allowed)
            finally:
                watch.cancel()
        return self._values(propagate, allowed)

    async def aas_completed(
        self, timeout: float | None = None, interval: float | None = None
    ) -> AsyncGenerator[AsyncResult, None]:
        """The asyncio twin of :meth:`as_completed`; close it (or finish it) to stop waiting."""
        started = time.monotonic()
        deadline = _deadline(timeout)
        await _aread(
            deadline, self.ametas, lambda: self._timeout(timeout, started, self._pending())
        )
        pending = self._pending()
        for handle in self.results:
            if handle.task_id not in pending:
                yield handle
        if not pending:
            return
        inbox = _AsyncInbox()
        watch = self.store.hub.watch(pending, inbox.put, interval=interval)
        try:
            while pending:
                items = await inbox.take(deadline)
                if not items:
                    raise self._timeout(timeout, started, pending)
                for task_id in self._take(items, pending):
                    for handle in self._handles_by_id[task_id]:
                        yield handle
        finally:
            watch.cancel()

    def __await__(self) -> Generator[Any, None, list[Any]]:
        return self.ajoin().__await__()


class ChordResult:
    """A chord as its caller sees it: the header group and the callback's result."""

    def __init__(
        self,
        group_id: str,
        header_ids: Sequence[str],
        callback_id: str,
        store: HandleStore,
        *,
        allowed: Allowed = (),
        astore: AsyncHandleStore | None = None,
    ) -> None:
        self.group_id = group_id
        self.store = store
        self.header = GroupResult(group_id, header_ids, store, allowed=allowed, astore=astore)
        self.callback = AsyncResult(callback_id, store, allowed=allowed, astore=astore)

    def __repr__(self) -> str:
        return f"<ChordResult {self.group_id} -> {self.callback.task_id}>"

    @property
    def id(self) -> str:
        return self.callback.task_id

    @property
    def state(self) -> str:
        return self.callback.state

    def progress(self) -> ChordState | None:
        """How many header parts were recorded, and whether the chord completed."""
        return self.store.get_chord(self.group_id)

    def ready(self) -> bool:
        return self.callback.ready()

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float | None = None,
        allowed: Allowed = (),
    ) -> Any:
        """Wait for the callback's value (a failed header part raises ChordPartFailedError)."""
        return self.callback.get(timeout, propagate, interval, allowed)

    async def aget(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float | None = None,
        allowed: Allowed = (),
    ) -> Any:
        return await self.callback.aget(timeout, propagate, interval, allowed)

    def __await__(self) -> Generator[Any, None, Any]:
        return self.aget().__await__()


def start_chord(
    store: HandleStore, group_id: str, header_ids: Sequence[str], callback_id: str
) -> ChordResult:
    """Prepare a chord before its header runs: save the header group, set the chord size.

    Call it before any part can return. Workers then report each finished
    part with :func:`chord_part_done`.
    """
    if not header_ids:
        raise ChordError(
            f"chord {group_id!r} has an empty header, so no part would ever complete it; "
            f"run the callback directly with an empty list instead"
        )
    if store.supports(Capability.GROUPS):
        store.save_group(group_id, header_ids)
    store.set_chord_size(group_id, len(header_ids))
    return ChordResult(group_id, header_ids, callback_id, store)


def chord_part_done(
    store: HandleStore,
    group_id: str,
    index: int,
    result: TaskResult,
    *,
    callback_id: str,
    callback: Callable[[list[Any]], Any],
) -> ChordOutcome:
    """Record header part ``index``; on the part that completes the chord, run the callback.

    Store the part's own result first (as for any task). Whatever number of
    processes race, exactly one call gets ``complete=True``: it calls
    ``callback`` with the header's values in header order and stores its
    return value (or the exception it raised) as the result of
    ``callback_id``. If a part ended in FAILURE or REVOKED the callback does
    not run; ``callback_id`` gets a FAILURE with
    :class:`~resultstore.ChordPartFailedError` naming the first such part.
    """
    outcome = store.chord_part_return(group_id, index, result)
    if not outcome.complete or outcome.results is None:
        return outcome
    parts = outcome.results
    failed = outcome.failed_parts
    if failed:
        part = failed[0]
        position = next(i for i, r in enumerate(parts) if r is part)
        info = part.exception or _UNKNOWN_FAILURE
        error = ChordPartFailedError(
            group_id, position, part.task_id, str(part.state), f"{info.type_name}: {info.message}"
        )
        error.__cause__ = rebuild_exception(info, (*store.allowed_exceptions, *_OWN_ALLOWED))
        store.mark_as_failure(callback_id, error)
        return outcome
    try:
        value = callback([part.result for part in parts])
    except Exception as exc:
        store.mark_as_failure(callback_id, exc)
    else:
        store.mark_as_done(callback_id, value)
    return outcome
