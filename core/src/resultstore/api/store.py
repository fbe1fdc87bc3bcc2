"""``connect()`` and :class:`ResultStore`, the object callers and workers use.

A :class:`ResultStore` wraps one backend: it fires the observer hooks, turns
exceptions into their stored description, falls back to one-by-one calls
where the backend declares no bulk capability, and refuses operations whose
capability is missing with an error that names it.
"""

from __future__ import annotations

import os
import threading
import traceback as tb
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from resultstore.api.result import AsyncResult, ChordResult, GroupResult
from resultstore.api.waiting import WaitHub
from resultstore.concepts.errors import BackendUnavailableError, UnsupportedOperationError
from resultstore.concepts.models import (
    ChordOutcome,
    ChordState,
    Group,
    StoreOutcome,
    TaskResult,
    utcnow,
)
from resultstore.concepts.options import Options, parse_expires
from resultstore.concepts.remote import TaskRevokedError, describe_exception
from resultstore.concepts.states import State
from resultstore.concepts.urls import BackendURL, parse_url
from resultstore.concepts.validation import (
    check_group,
    check_group_id,
    check_result,
    check_results,
    check_task_id,
    check_task_ids,
)
from resultstore.payloads.codecs import CodecOptions, Serializer, Succeeded
from resultstore.plugin.config import DEFAULT_EXPIRES, BackendConfig
from resultstore.plugin.discovery import find_backend
from resultstore.plugin.hooks import Hooks, build_hooks
from resultstore.plugin.protocols import (
    Capability,
    ResultBackend,
    SupportsBatchStore,
    SupportsBulkGet,
    SupportsBulkPayloads,
    SupportsChordBody,
    SupportsChords,
    SupportsCleanup,
    SupportsGroups,
    SupportsMigrate,
    SupportsReplyTo,
)
from resultstore.plugin.retrying import Closed

__all__ = ["URL_ENV", "ResultStore", "connect", "default_url"]

#: environment variable holding the URL used when none is given.
URL_ENV = "RESULTSTORE_URL"


def default_url() -> str:
    """``$RESULTSTORE_URL``, else the embedded SQLite file in the user's data folder."""
    if url := os.environ.get(URL_ENV):
        return url
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{base / 'resultstore' / 'results.db'}"


def connect(
    url: str | None = None,
    *,
    plugins: Iterable[object] = (),
    hooks: Hooks | None = None,
    allowed_exceptions: Iterable[type[BaseException]] = (),
    **options: Any,
) -> ResultStore:
    """Build the backend for ``url`` and return a :class:`ResultStore` over it.

    Options come from the URL's query string and from keywords (keywords
    win). Common ones: ``expires`` (seconds, ``none`` keeps results; default
    one day), ``codec`` (json, msgpack, pickle), ``accept``, ``compression``
    (zlib, zstd), ``compress_threshold``, ``max_result_size``; the rest
    belong to the backend. ``plugins`` are registered on top of the installed
    ones (or pass ready-made ``hooks``). ``allowed_exceptions`` are task
    exception classes that result handles rebuild as themselves.
    """
    parsed = parse_url(url if url is not None else default_url())
    if hooks is None:
        hooks = build_hooks(plugins)
    else:
        for plugin in plugins:
            hooks.register(plugin)
    spec = find_backend(parsed.scheme, hooks)
    taken = Options({**parsed.query, **options}, source=f"{parsed.scheme}:// ({parsed})")
    codec_options = CodecOptions.take_from(taken)
    default_expires: float | None = DEFAULT_EXPIRES
    expires = taken.take("expires", parse_expires, default_expires)
    serializer = Serializer(codec_options, hooks)
    backend = spec.load()(BackendConfig(parsed, serializer, taken, expires))
    try:
        taken.finish()
    except Exception:
        backend.close()
        raise
    return ResultStore(
        backend,
        url=parsed,
        hooks=hooks,
        serializer=serializer,
        allowed_exceptions=allowed_exceptions,
    )


class ResultStore:
    """One backend, with hooks, conveniences for workers, and declared capabilities."""

    def __init__(
        self,
        backend: ResultBackend,
        *,
        url: BackendURL,
        hooks: Hooks,
        serializer: Serializer,
        allowed_exceptions: Iterable[type[BaseException]] = (),
    ) -> None:
        self.backend = backend
        self.url = url
        self.hooks = hooks
        self.serializer = serializer
        #: task exception classes that result handles rebuild as themselves.
        self.allowed_exceptions: tuple[type[BaseException], ...] = tuple(allowed_exceptions)
        self._observed = hooks.observes()
        # Checked once: isinstance on a runtime protocol costs more than a store's own work.
        self._routes = isinstance(backend, SupportsReplyTo)
        self._hub: WaitHub | None = None
        self._hub_lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"<ResultStore {self.url.redacted()}>"

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.backend.capabilities

    def supports(self, capability: Capability) -> bool:
        return capability in self.backend.capabilities

    def _require(self, capability: Capability, operation: str) -> Any:
        if capability not in self.backend.capabilities:
            raise UnsupportedOperationError(
                f"{operation} needs the {capability.value!r} capability, which the "
                f"{self.url.scheme}:// backend does not declare; use a backend that has it "
                f"(run 'resultstore backends' to see each backend's capabilities)"
            )
        return self.backend

    # -- storing -------------------------------------------------------------

    def store(
        self, result: TaskResult, *, overwrite: bool = False, reply_to: str | None = None
    ) -> StoreOutcome:
        """Store a result; a ready state already stored is kept unless ``overwrite``.

        ``reply_to`` is the reply address of the client that sent the task
        (Celery's ``request.reply_to``): backends that deliver results to
        their caller (:class:`~resultstore.SupportsReplyTo`) send
        the result there; every other backend ignores it.
        """
        check_result(result)
        if reply_to and self._routes:
            routed = cast(SupportsReplyTo, self.backend)
            outcome = routed.store_to(result, reply_to, overwrite=overwrite)
        else:
            outcome = self.backend.store(result, overwrite=overwrite)
        if self._observed:
            self.hooks.on_store(self.url.redacted(), result, outcome)
        return outcome

    def store_many(
        self, results: Sequence[TaskResult], *, overwrite: bool = False
    ) -> list[StoreOutcome]:
        """Store many results, in few round trips where the backend can."""
        check_results(results)
        if Capability.BATCH_STORE in self.backend.capabilities:
            batch = cast(SupportsBatchStore, self.backend)
            outcomes = batch.store_many(results, overwrite=overwrite)
        else:
            outcomes = [self.backend.store(r, overwrite=overwrite) for r in results]
        if self._observed:
            url = self.url.redacted()
            for result, outcome in zip(results, outcomes, strict=True):
                self.hooks.on_store(url, result, outcome)
        return outcomes

    def mark_as_started(self, task_id: str, **fields: Any) -> StoreOutcome:
        return self.store(TaskResult(task_id, State.STARTED, **fields))

    def mark_as_done(self, task_id: str, value: Any, **fields: Any) -> StoreOutcome:
        return self.store(TaskResult(task_id, State.SUCCESS, value, date_done=utcnow(), **fields))

    def mark_as_failure(
        self, task_id: str, exc: BaseException, *, state: str = State.FAILURE, **fields: Any
    ) -> StoreOutcome:
        """Store ``exc`` (with its traceback and cause chain) as a FAILURE (or RETRY, REVOKED)."""
        trace = fields.pop("traceback", None)
        if trace is None and exc.__traceback__ is not None:
            trace = "".join(tb.format_exception(exc))
        ready = state in (State.FAILURE, State.REVOKED)
        return self.store(
            TaskResult(
                task_id,
                state,
                exception=describe_exception(exc),
                traceback=trace,
                date_done=utcnow() if ready else None,
                **fields,
            )
        )

    def mark_as_retry(self, task_id: str, exc: BaseException, **fields: Any) -> StoreOutcome:
        return self.mark_as_failure(task_id, exc, state=State.RETRY, **fields)

    def mark_as_revoked(self, task_id: str, reason: str = "revoked", **fields: Any) -> StoreOutcome:
        return self.mark_as_failure(
            task_id, TaskRevokedError(reason), state=State.REVOKED, **fields
        )

    def update_state(
        self, task_id: str, state: str, meta: Any = None, **fields: Any
    ) -> StoreOutcome:
        """Store a custom or unready state, with ``meta`` (e.g. progress) as its result."""
        return self.store(TaskResult(task_id, state, meta, **fields))

    # -- reading -------------------------------------------------------------

    def get(self, task_id: str) -> TaskResult | None:
        """The stored result, or None if unknown, forgotten or expired."""
        return self.backend.get(check_task_id(task_id))

    def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        """Every id as a key (None where missing), in few round trips where possible."""
        check_task_ids(task_ids)
        return self._get_many(task_ids)

    def _get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        if Capability.BULK_GET in self.backend.capabilities:
            return cast(SupportsBulkGet, self.backend).get_many(task_ids)
        return {task_id: self.backend.get(task_id) for task_id in task_ids}

    def get_many_lean(self, task_ids: Sequence[str]) -> dict[str, TaskResult | Succeeded | None]:
        """:meth:`get_many`, except that a plain SUCCESS may come as a
        :class:`~resultstore.Succeeded` (its value; ``full()`` for the rest),
        from backends that declare ``BULK_PAYLOADS``. Joins read this way."""
        check_task_ids(task_ids)
        if Capability.BULK_PAYLOADS not in self.backend.capabilities:
            return cast("dict[str, TaskResult | Succeeded | None]", self._get_many(task_ids))
        payloads = cast(SupportsBulkPayloads, self.backend).get_payloads(task_ids)
        return self.serializer.loads_lean(payloads)

    def forget(self, task_id: str) -> None:
        self.backend.forget(check_task_id(task_id))
        if self._observed:
            self.hooks.on_forget(self.url.redacted(), task_id)

    # -- groups and chords -----------------------------------------------------

    def save_group(self, group_id: str, task_ids: Sequence[str]) -> Group:
        check_group(group_id, task_ids)
        group = Group(group_id, tuple(task_ids), date_done=utcnow())
        cast(SupportsGroups, self._require(Capability.GROUPS, "save_group")).save_group(group)
        return group

    def get_group(self, group_id: str) -> Group | None:
        return cast(SupportsGroups, self._require(Capability.GROUPS, "get_group")).get_group(
            check_group_id(group_id)
        )

    def delete_group(self, group_id: str) -> None:
        cast(SupportsGroups, self._require(Capability.GROUPS, "delete_group")).delete_group(
            check_group_id(group_id)
        )

    def set_chord_size(self, group_id: str, size: int) -> None:
        chords = cast(SupportsChords, self._require(Capability.CHORDS, "set_chord_size"))
        chords.set_chord_size(check_group_id(group_id), size)

    def chord_part_return(self, group_id: str, index: int, result: TaskResult) -> ChordOutcome:
        """Record header part ``index``; ``complete`` is True for exactly one caller."""
        chords = cast(SupportsChords, self._require(Capability.CHORDS, "chord_part_return"))
        check_group_id(group_id)
        check_result(result)
        outcome = chords.chord_part_return(group_id, index, result)
        if self._observed:
            self.hooks.on_chord_part_return(self.url.redacted(), group_id, index, result, outcome)
        return outcome

    def get_chord(self, group_id: str) -> ChordState | None:
        return cast(SupportsChords, self._require(Capability.CHORDS, "get_chord")).get_chord(
            check_group_id(group_id)
        )

    def claim_chord_body(self, group_id: str, lease: float) -> ChordOutcome | None:
        """Claim the sending of a complete chord's unsent body (see :class:`SupportsChordBody`).

        Backends that do not remember whether a body was sent answer None
        (nothing to recover).
        """
        self._require(Capability.CHORDS, "claim_chord_body")
        if not lease > 0:
            raise ValueError(f"lease must be a positive number of seconds, got {lease!r}")
        if not isinstance(self.backend, SupportsChordBody):
            return None
        return self.backend.claim_chord_body(check_group_id(group_id), lease)

    def mark_chord_body_sent(self, group_id: str) -> None:
        """Remember that a complete chord's body was sent (a no-op where not remembered)."""
        self._require(Capability.CHORDS, "mark_chord_body_sent")
        if isinstance(self.backend, SupportsChordBody):
            self.backend.mark_chord_body_sent(check_group_id(group_id))

    # -- result handles and waiting ---------------------------------------------

    @property
    def hub(self) -> WaitHub:
        """The one waiter this store shares in this process (made on first use)."""
        with self._hub_lock:
            if self._closed:
                raise BackendUnavailableError(
                    f"{self!r} was closed; connect() again to wait on results"
                )
            # A forked child inherits no thread: it gets a hub of its own.
            if self._hub is None or self._hub.pid != os.getpid():
                self._hub = WaitHub(self)
            return self._hub

    def result(self, task_id: str) -> AsyncResult:
        """A handle to read and wait on the result of ``task_id``."""
        return AsyncResult(task_id, self)

    def group_result(self, group_id: str, task_ids: Sequence[str]) -> GroupResult:
        """A handle on the results of ``task_ids`` (not saved: call ``save()`` for that)."""
        return GroupResult(group_id, task_ids, self)

    def restore_group(self, group_id: str) -> GroupResult | None:
        """A handle on the saved group ``group_id``, or None if it was never saved or expired."""
        return GroupResult.restore(group_id, self)

    def chord_result(
        self, group_id: str, header_ids: Sequence[str], callback_id: str
    ) -> ChordResult:
        """A handle on a chord: its header group and its callback's result."""
        return ChordResult(group_id, header_ids, callback_id, self)

    # -- housekeeping ------------------------------------------------------------

    def cleanup(self) -> int:
        """Delete expired results now; return how many went."""
        return cast(SupportsCleanup, self._require(Capability.CLEANUP, "cleanup")).cleanup()

    def migrate(self) -> str:
        """Create the store's tables, indexes or templates now (they are otherwise
        created on first use); return one line saying what is there."""
        return cast(SupportsMigrate, self._require(Capability.MIGRATE, "migrate")).migrate()

    def close(self) -> None:
        """Stop the waiting machinery (waiters get an error), then close the backend.

        Closing again does nothing; every other call on a closed store raises
        :class:`~resultstore.BackendUnavailableError`, whatever the backend.
        """
        with self._hub_lock:
            if self._closed:
                return
            hub, self._hub = self._hub, None
            self._closed = True
        if hub is not None and hub.pid == os.getpid():
            hub.close()
        backend = self.backend
        # Whatever the backend does after close(), the store raises the documented error.
        self.backend = cast(ResultBackend, Closed(repr(self), capabilities=backend.capabilities))
        self._routes = False
        backend.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
