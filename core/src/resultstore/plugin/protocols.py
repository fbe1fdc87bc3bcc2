"""The typed contract of a backend: one required protocol and small capabilities.

pluggy checks hook argument names only, so what a backend *is* lives here as
``typing.Protocol`` classes. A backend implements :class:`ResultBackend` and
declares, in ``capabilities``, which ``Supports*`` protocols it also
implements; code checks the declaration, never the backend's name.

A third party that only has a key-value store implements the small
:class:`KeyValueStore` instead and wraps it in
:class:`resultstore.KeyValueBackend`, which adds states,
groups, chords and expiry on top.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from resultstore.concepts.models import ChordOutcome, ChordState, Group, StoreOutcome, TaskResult

__all__ = [
    "AsyncResultBackend",
    "Capability",
    "KeyValueStore",
    "PushListener",
    "ResultBackend",
    "SupportsBatchStore",
    "SupportsBulkGet",
    "SupportsBulkPayloads",
    "SupportsCarriedResults",
    "SupportsChordBody",
    "SupportsChords",
    "SupportsCleanup",
    "SupportsGroups",
    "SupportsMigrate",
    "SupportsNativeAsync",
    "SupportsPush",
    "SupportsReplyTo",
    "SupportsWake",
]


class Capability(enum.StrEnum):
    """What a backend declares it can do, beyond :class:`ResultBackend`."""

    #: ``get_many`` fetches many results in few round trips (:class:`SupportsBulkGet`).
    BULK_GET = "bulk_get"
    #: ``get_payloads`` hands over many stored payloads undecoded, so that a join
    #: decodes only the values it returns (:class:`SupportsBulkPayloads`).
    BULK_PAYLOADS = "bulk_payloads"
    #: ``store_many`` writes many results in few round trips (:class:`SupportsBatchStore`).
    BATCH_STORE = "batch_store"
    #: waiters are woken by the store, without polling (:class:`SupportsPush`).
    PUSH = "push"
    #: the store deletes expired results by itself (TTL).
    AUTO_EXPIRY = "auto_expiry"
    #: ``cleanup()`` deletes expired results on demand (:class:`SupportsCleanup`).
    CLEANUP = "cleanup"
    #: groups can be saved, restored and deleted (:class:`SupportsGroups`).
    GROUPS = "groups"
    #: chord parts are recorded with exactly-once completion (:class:`SupportsChords`).
    CHORDS = "chords"
    #: results survive a restart of the store and of the writing process.
    PERSISTENT = "persistent"
    #: results are readable by any client, not only the process that wrote them.
    SHARED = "shared"
    #: the asyncio twin talks to the store natively, not through a thread pool.
    NATIVE_ASYNC = "native_async"
    #: ``migrate()`` creates the tables, indexes or templates ahead of first use
    #: (:class:`SupportsMigrate`; ``resultstore migrate`` calls it).
    MIGRATE = "migrate"


@runtime_checkable
class ResultBackend(Protocol):
    """The required protocol of every backend (sync API).

    The rule every backend enforces atomically, inside the store: **a ready
    state is final**. ``store`` of any state onto a task whose stored state
    is SUCCESS, FAILURE or REVOKED is refused (``StoreOutcome.stored`` is
    False, nothing is raised, the stored result stays) unless ``overwrite``
    is true. Unready states may follow one another freely.

    Results expire after the ``expires`` the backend was configured with
    (``None`` keeps them); an expired result reads as missing.
    """

    capabilities: frozenset[Capability]

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        """Store ``result`` unless a ready state is stored and ``overwrite`` is false."""
        ...

    def get(self, task_id: str) -> TaskResult | None:
        """The stored result, or None if the id is unknown, forgotten or expired."""
        ...

    def forget(self, task_id: str) -> None:
        """Delete the result; forgetting an unknown id is not an error."""
        ...

    def close(self) -> None:
        """Release connections and files; the backend is not used afterwards."""
        ...


@runtime_checkable
class SupportsBulkGet(Protocol):
    """Declared by ``Capability.BULK_GET``: many results in few round trips.

    Ids may repeat (each is a key once) and may be missing (None); the
    result must equal a ``get`` of each id. The core splits huge requests
    into batches, so a backend need not.
    """

    def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        """Every requested id as a key, None for the missing ones, in few round trips."""
        ...


@runtime_checkable
class SupportsBulkPayloads(Protocol):
    """Declared by ``Capability.BULK_PAYLOADS``, by backends that keep each
    result as the payload their serializer made: many of them, undecoded.

    The rules of ``get_many`` hold (ids may repeat or be missing); each
    payload is byte for byte what ``config.serializer.dumps`` returned, so
    that decoding it gives what ``get`` gives. The core reads a group's
    plain successes straight from these, without building their models.
    """

    def get_payloads(self, task_ids: Sequence[str]) -> dict[str, bytes | None]:
        """Every requested id as a key, None for the missing ones, in few round trips."""
        ...


@runtime_checkable
class SupportsBatchStore(Protocol):
    """Declared by ``Capability.BATCH_STORE``: many stores in few round trips.

    Each result is stored under the same rules as :meth:`ResultBackend.store`
    (ready-is-final per task, atomically), in order, so the same id twice
    behaves as two ``store`` calls; one outcome per result, in order.
    """

    def store_many(
        self, results: Sequence[TaskResult], *, overwrite: bool = False
    ) -> list[StoreOutcome]:
        """``store`` for each result, in order, in few round trips."""
        ...


@runtime_checkable
class SupportsGroups(Protocol):
    """Declared by ``Capability.GROUPS``: saved groups of task ids.

    A saved group expires like a result (``expires`` from the save); saving
    it again replaces it and restarts its expiry.
    """

    def save_group(self, group: Group) -> None:
        """Save (or replace) a group; it expires like results do."""
        ...

    def get_group(self, group_id: str) -> Group | None:
        """The saved group, or None."""
        ...

    def delete_group(self, group_id: str) -> None:
        """Delete a group (its members' results stay); unknown ids are not an error."""
        ...


@runtime_checkable
class SupportsChords(Protocol):
    """Declared by ``Capability.CHORDS``: header parts counted to exactly one completion.

    Rules beyond :meth:`chord_part_return`'s: a chord expires whole (size,
    parts and completion, never some parts without the others) ``expires``
    seconds after its last ``set_chord_size`` or ``chord_part_return``;
    once expired it reads as unknown, and a chord set up again starts empty.
    """

    def set_chord_size(self, group_id: str, size: int) -> None:
        """Declare how many header parts the chord ``group_id`` waits for.

        A negative size raises :class:`~resultstore.ChordError`. Size 0
        is accepted, but every part index is then out of range, so such a
        chord never completes: a chord with an empty header has nothing to
        wait for, and its caller runs the body at once. A second call on a
        live chord sets the new size and keeps the parts already recorded;
        call it once per chord, before any part can return.
        """
        ...

    def chord_part_return(self, group_id: str, index: int, result: TaskResult) -> ChordOutcome:
        """Record header part ``index`` (0-based) atomically.

        A part already recorded is ignored (``duplicate``). Exactly one call
        per chord, the one that records the last missing part, gets
        ``complete=True`` with every part's result in header order, however
        many processes race. Raises :class:`~resultstore.ChordError`
        when no size was set or ``index`` is out of range.
        """
        ...

    def get_chord(self, group_id: str) -> ChordState | None:
        """The chord's progress, or None."""
        ...


@runtime_checkable
class SupportsChordBody(Protocol):
    """Chords whose completion is recoverable: the store remembers whether the body was sent.

    Optional, found with ``isinstance``; :class:`~resultstore.ResultStore`
    falls back to "nothing to recover" for backends without it. The caller
    that completes a chord (``chord_part_return`` returned ``complete``)
    sends the body and then calls :meth:`mark_chord_body_sent`. If it dies
    in between, a later caller (a redelivered part, which comes back as a
    ``duplicate``) calls :meth:`claim_chord_body` until it gets the results
    and sends the body itself, or learns the body was sent.
    """

    def claim_chord_body(self, group_id: str, lease: float) -> ChordOutcome | None:
        """Claim the sending of a complete chord's body that is not marked sent.

        Returns None when the chord is unknown or expired, not complete, or
        its body is marked sent: nothing to do. Otherwise, atomically: when
        no claim exists, or the last one is at least ``lease`` seconds old,
        the caller gets the claim (stamped now) and a ``ChordOutcome`` with
        ``complete=True`` and every part's result (``index`` is -1); while a
        younger claim stands (the first call only records one), it gets
        ``complete=False`` and should ask again later. So a body whose sender
        died is sent ``lease`` seconds after the first claim, by one caller.
        """
        ...

    def mark_chord_body_sent(self, group_id: str) -> None:
        """Remember that the complete chord's body was sent: claims return None from now on.

        Unknown, expired or incomplete chords are left alone.
        """
        ...


@runtime_checkable
class SupportsCleanup(Protocol):
    """Declared by ``Capability.CLEANUP``: expired data deleted on demand.

    For stores that do not expire data by themselves (no ``AUTO_EXPIRY``);
    expired data already reads as missing, ``cleanup`` only frees the space.
    """

    def cleanup(self) -> int:
        """Delete expired results, groups and chords now; return how many results went."""
        ...


@runtime_checkable
class SupportsMigrate(Protocol):
    """Declared by ``Capability.MIGRATE``: the store's schema made ready on demand.

    For stores with tables, indexes or templates that the backend otherwise
    creates on first use: people who deploy with a migration step (or give
    the application a role that may not create tables) run it once ahead.
    """

    def migrate(self) -> str:
        """Create or bring up to date what the backend needs in the store (safe to
        run again, and concurrently); return one line saying what is there now,
        such as ``"schema version 1 in public.resultstore_*"``."""
        ...


@runtime_checkable
class PushListener(Protocol):
    """One connection that hears "this task was stored" announcements.

    The result API keeps one listener per process and backend, shared by
    all waiters; it subscribes ids while someone waits on them and
    unsubscribes them when nobody does any more.
    """

    def subscribe(self, task_ids: Iterable[str]) -> None:
        """Listen for these ids; in force on return.

        The hub subscribes, then reads the store, so a result stored after
        this returns must be announced, or a waiter misses it.
        """
        ...

    def unsubscribe(self, task_ids: Iterable[str]) -> None:
        """Stop listening for these ids (announcements for them may still arrive)."""
        ...

    def wait(self, timeout: float) -> list[str]:
        """Block up to ``timeout`` seconds; return the subscribed ids announced since.

        Return as soon as an announcement is read: never keep reading until
        the connection goes quiet, which under a steady stream of other
        results holds a waiter back for as long as the stream lasts. A tiny
        batch of what is already buffered is fine when it is bounded (a few
        dozen ids, well under a millisecond after the first one).

        Returns [] when the time runs out. Ids may repeat or be no longer
        subscribed; the hub ignores those. Raise on a broken connection: the
        hub closes this listener, backs off, opens a new one, subscribes
        every watched id again and reads them once. Called from the hub's
        thread only, as are subscribe and unsubscribe.
        """
        ...

    def close(self) -> None:
        """Release the connection; bounded, and closing twice is no error."""
        ...


@runtime_checkable
class SupportsWake(Protocol):
    """A push listener whose blocked :meth:`PushListener.wait` can be cut short.

    The hub applies new subscriptions between waits; a listener that can be
    woken lets a new waiter's subscription take effect at once instead of
    after the current wait slice.
    """

    def wake(self) -> None:
        """Make a ``wait()`` blocked in another thread return soon (thread-safe)."""
        ...


@runtime_checkable
class SupportsCarriedResults(Protocol):
    """A push listener whose announcements carry the stored result itself.

    After :meth:`PushListener.wait`, the hub takes the results that came
    with the announcements and delivers the ready ones without reading the
    store again; ids announced without a usable result are read as usual.
    """

    def take_carried(self) -> dict[str, TaskResult]:
        """The results announced since the last call (and forget them)."""
        ...


@runtime_checkable
class SupportsPush(Protocol):
    """Declared by ``Capability.PUSH``: waiters are woken by the store, not by polling.

    The store announces each stored task id (after the write is visible to
    readers) to every listener subscribed to it; a refused store (ready is
    final) must not announce its value.
    """

    def listener(self) -> PushListener:
        """Open a new push listener (the caller shares it and closes it)."""
        ...


@runtime_checkable
class SupportsReplyTo(Protocol):
    """A backend that delivers each result to the client that asked for it.

    Message backends (AMQP reply queues) keep no shared store: a result goes
    to the reply address of the client that sent the task, and only that
    client reads it. :meth:`ResultStore.store <resultstore.api.store.ResultStore.store>`
    calls :meth:`store_to` when given a ``reply_to``; every other backend
    ignores ``reply_to``, since its results are read from the store itself.
    """

    def reply_address(self, name: str | None = None) -> str:
        """The address this client reads results from (``name``: one more, made if needed).

        The sender of a task passes it along (as Celery's ``reply_to``) so
        that the worker's ``store`` reaches this client.
        """
        ...

    def store_to(
        self, result: TaskResult, reply_to: str, *, overwrite: bool = False
    ) -> StoreOutcome:
        """Send ``result`` to the client reading at ``reply_to``."""
        ...


@runtime_checkable
class AsyncResultBackend(Protocol):
    """The asyncio twin of :class:`ResultBackend`, with the same rules.

    Backends whose client has no asyncio API need not write one: the core
    drives the sync backend through a thread pool
    (:class:`resultstore.ThreadedAsyncBackend`).
    """

    capabilities: frozenset[Capability]

    async def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome: ...

    async def get(self, task_id: str) -> TaskResult | None: ...

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]: ...

    async def forget(self, task_id: str) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class SupportsNativeAsync(Protocol):
    """Declared by ``Capability.NATIVE_ASYNC``: the backend has an asyncio twin of its own."""

    def async_backend(self) -> AsyncResultBackend:
        """Build the native asyncio twin, configured like this backend.

        :func:`resultstore.connect_async` calls it once, inside the event
        loop that will use the twin, and awaits the twin's ``close()`` when
        done. Backends without it are driven through a thread pool.
        """
        ...


@runtime_checkable
class KeyValueStore(Protocol):
    """The few primitives from which a full backend can be built.

    Values are opaque bytes; ``ttl`` is in seconds (None = keep). Every method
    is atomic on its own; that is all :class:`KeyValueBackend` needs.
    """

    #: capabilities the store itself brings (PERSISTENT, SHARED, AUTO_EXPIRY, PUSH...).
    capabilities: frozenset[Capability]

    def get(self, key: str) -> bytes | None: ...

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values in the order of ``keys``, None where missing."""
        ...

    def set(self, key: str, value: bytes, ttl: float | None) -> None: ...

    def delete(self, keys: Sequence[str]) -> None: ...

    def compare_and_set(
        self, key: str, expected: bytes | None, value: bytes, ttl: float | None
    ) -> bool:
        """Set ``key`` to ``value`` only if it currently holds ``expected``
        (None = absent); return whether it did."""
        ...

    def add_to_set(self, key: str, member: str, ttl: float | None) -> tuple[bool, int]:
        """Add ``member`` to the set at ``key``; return (whether it was new,
        the set's size after the call), both from one atomic step."""
        ...

    def close(self) -> None: ...
