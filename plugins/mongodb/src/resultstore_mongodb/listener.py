"""Push waiting over a MongoDB change stream on the results collection.

The result API keeps one listener per process and store and tells it which
task ids are being waited on. The listener keeps one change stream open on
the whole collection and picks the subscribed ids out of it client-side, so
that subscribing and unsubscribing (which happen all the time) cost no
round trip and never reopen the stream. Inserts and replacements carry the
stored document, so a woken waiter needs no second read.

pymongo resumes a stream with its resume token after a dropped connection
or a lost cursor, which is right while the same server process answers.
A server that restarted may not have kept its history (an in-memory test
server, a restored backup): it accepts the old token and then skips
events. So when the writable server's process changed (a restart, a
failover), the listener opens a fresh stream and announces every
subscribed id once, and the hub reads them all: nothing stored meanwhile
is missed, whatever the server kept.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pymongo
import pymongo.errors
from resultstore import BackendUnavailableError, PayloadError, TaskResult

__all__ = ["AWAIT_MS", "BATCH_IDS", "BATCH_SECONDS", "ChangeStreamListener"]

#: how long one getMore waits on the server for new events (milliseconds).
AWAIT_MS = 50
#: at most this many announced ids are handed over by one wait
BATCH_IDS = 32
#: and only those already buffered within this many seconds of the first one
BATCH_SECONDS = 0.0005
#: extra seconds a wait may take for a slow answer (beyond its own timeout).
_GRACE = 5.0
_PIPELINE = [{"$match": {"operationType": {"$in": ["insert", "replace", "update"]}}}]


def _buffered(stream: Any) -> bool:
    """Whether the stream holds events already fetched (no round trip to read them).

    pymongo has no public call for this; without the attribute, the answer
    is False and the listener simply returns what it has sooner.
    """
    data = getattr(getattr(stream, "_cursor", None), "_data", None)
    return isinstance(data, collections.deque) and bool(data)


class ChangeStreamListener:
    """A :class:`~resultstore.PushListener` over one change stream, whose
    announcements carry the stored result where the event has it
    (:class:`~resultstore.SupportsCarriedResults`)."""

    def __init__(
        self,
        collection: Any,
        decode: Callable[[Mapping[str, Any]], TaskResult],
        identity: Callable[[], frozenset[Any]],
        *,
        open_timeout: float = 10.0,
    ) -> None:
        self._collection = collection
        self._decode = decode
        self._identity = identity
        self._open_timeout = open_timeout
        self._lock = threading.Lock()
        self._subscribed: set[str] = set()
        self._carried: dict[str, TaskResult] = {}
        self._stream: Any = None
        self._server: frozenset[Any] = frozenset()
        self.opens = 0  # how many streams this listener opened (for tests and metrics)
        self._open()

    def _open(self) -> None:
        with pymongo.timeout(self._open_timeout):
            stream = self._collection.watch(_PIPELINE, max_await_time_ms=AWAIT_MS)
        self._close_stream()
        # Known now: the stream was just opened on it.
        self._stream, self._server = stream, self._identity()
        self.opens += 1

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(pymongo.errors.PyMongoError):
                stream.close()

    @property
    def subscriptions(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._subscribed)

    def subscribe(self, task_ids: Iterable[str]) -> None:
        with self._lock:
            self._subscribed.update(task_ids)

    def unsubscribe(self, task_ids: Iterable[str]) -> None:
        with self._lock:
            self._subscribed.difference_update(task_ids)

    def _server_changed(self) -> bool:
        current = self._identity()
        # Empty while the client knows no writable server: undecided until it does.
        return bool(current) and current != self._server

    def wait(self, timeout: float) -> list[str]:
        """Ids announced within ``timeout`` seconds, handed over as soon as read.

        Once one change came, only changes already buffered join it, up to
        :data:`BATCH_IDS` ids or :data:`BATCH_SECONDS` after the first: a
        waiter is never held back behind a long batch of other results.
        """
        if self._stream is None:
            raise BackendUnavailableError("the change stream listener is closed")
        announced: list[str] = []
        deadline = time.monotonic() + timeout
        first = 0.0
        while True:
            if self._server_changed():
                # The stream may have resumed past events the server lost:
                # start afresh, and have every waited-on id read once.
                self._open()
                return sorted(self.subscriptions)
            try:
                with pymongo.timeout(max(0.0, deadline - time.monotonic()) + _GRACE):
                    change = self._stream.try_next()
            except pymongo.errors.PyMongoError as exc:
                self._close_stream()
                raise BackendUnavailableError(
                    f"the change stream on {self._collection.full_name} failed "
                    f"({type(exc).__name__}); the waiting hub reopens it"
                ) from exc
            if change is None:
                if announced or time.monotonic() >= deadline:
                    return announced
                continue
            self._take(change, announced)
            if not announced:
                continue
            if not first:
                first = time.monotonic()
            if (
                not _buffered(self._stream)
                or len(announced) >= BATCH_IDS
                or time.monotonic() - first >= BATCH_SECONDS
            ):
                return announced

    def _take(self, change: Mapping[str, Any], announced: list[str]) -> None:
        key = change.get("documentKey")
        task_id = key.get("_id") if isinstance(key, Mapping) else None
        if not isinstance(task_id, str):
            return
        with self._lock:
            if task_id not in self._subscribed:
                return
        announced.append(task_id)
        document = change.get("fullDocument")
        if isinstance(document, Mapping):
            # Undecodable: the hub reads it instead and reports the error.
            with contextlib.suppress(PayloadError):
                self._carried[task_id] = self._decode(document)

    def take_carried(self) -> dict[str, TaskResult]:
        """Results that came with the announcements (inserts and replacements)."""
        carried, self._carried = self._carried, {}
        return carried

    def close(self) -> None:
        with self._lock:
            self._subscribed.clear()
        self._close_stream()
