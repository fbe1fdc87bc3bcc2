"""Push waiting over LISTEN/NOTIFY: one listening connection per process and backend.

Every store announces its task id on the tables' channel, inside the same
statement as the write, so an announcement is only ever heard after the
write committed. The listener keeps the subscribed ids itself and filters
the channel. After a lost connection it reconnects and reports every
subscribed id once, since announcements made while it was away are lost.

With ``notify_results`` an announcement of a small ready result also carries
its payload (the id, a newline, the payload in base64): the listener hands
the decoded result over (:class:`~resultstore.SupportsCarriedResults`) and
the waiter needs no read. Anyone who may connect can send a NOTIFY, so this
is only on when the URL says so.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import select
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from resultstore import PayloadError, Retry, TaskResult

from resultstore_postgresql.client import Settings

__all__ = ["CARRY_LIMIT", "NotifyListener"]

#: the largest payload an announcement carries: in base64 (with its line
#: breaks) and after an id, it stays under NOTIFY's 8000 bytes.
CARRY_LIMIT = 5000

Conn = psycopg.Connection[tuple[Any, ...]]


class NotifyListener:
    """A :class:`~resultstore.PushListener` (and ``SupportsWake``) on one connection."""

    def __init__(
        self,
        settings: Settings,
        retry: Retry,
        decode: Callable[[bytes], TaskResult] | None = None,
    ) -> None:
        self._settings = settings
        self._retry = retry
        #: set when announcements are trusted to carry results (``notify_results``).
        self._decode = decode
        self._carried: dict[str, TaskResult] = {}
        self._lock = threading.Lock()
        self._subscribed: set[str] = set()
        self._conn: Conn | None = None
        self._closed = False
        self._missed = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._conn = self._retry(self._connect)

    def _connect(self) -> Conn:
        conn: Conn = psycopg.connect(self._settings.conninfo, autocommit=True)
        try:
            conn.execute(f'LISTEN "{self._settings.tables.channel}"')
        except BaseException:
            conn.close()
            raise
        return conn

    def subscribe(self, task_ids: Iterable[str]) -> None:
        with self._lock:
            self._subscribed.update(task_ids)

    def unsubscribe(self, task_ids: Iterable[str]) -> None:
        with self._lock:
            self._subscribed.difference_update(task_ids)

    def wake(self) -> None:
        # OSError: a wake is already pending (pipe full), or the listener was closed.
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except (BlockingIOError, OSError):
            pass

    def wait(self, timeout: float) -> list[str]:
        deadline = time.monotonic() + max(0.0, timeout)
        heard: set[str] = set()
        conn = self._conn
        if conn is None or conn.closed:
            conn = self._reconnect(deadline)
            if conn is None:
                return []
        try:
            left = max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([conn.fileno(), self._wake_r], [], [], left)
            if self._wake_r in readable:
                self._drain_wake()
            # timeout=0: take what has arrived, never block here.
            for note in conn.notifies(timeout=0.0):
                task_id, _, carried = note.payload.partition("\n")
                heard.add(task_id)
                if carried and self._decode is not None:
                    self._carry(task_id, carried)
        except (psycopg.OperationalError, OSError, ValueError):
            if self._closed:
                return []
            self._drop()
            self._missed = True
        with self._lock:
            if self._missed and self._conn is not None:
                self._missed = False
                return sorted(self._subscribed)
            return sorted(heard & self._subscribed)

    def _carry(self, task_id: str, carried: str) -> None:
        # Undecodable, or about another task: the hub reads the store instead.
        assert self._decode is not None
        with contextlib.suppress(PayloadError, binascii.Error, ValueError):
            result = self._decode(base64.b64decode(carried))
            if result.task_id == task_id:
                self._carried[task_id] = result

    def take_carried(self) -> dict[str, TaskResult]:
        """Results that came with the announcements, when they are trusted (else none)."""
        carried, self._carried = self._carried, {}
        return carried

    def _reconnect(self, deadline: float) -> Conn | None:
        while not self._closed:
            try:
                self._conn = self._connect()
                self._missed = True
                return self._conn
            except psycopg.OperationalError:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                time.sleep(min(0.2, left))
        return None

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def close(self) -> None:
        self._closed = True
        self._drop()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
