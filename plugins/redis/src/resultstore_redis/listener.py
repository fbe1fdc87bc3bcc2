"""Push waiting over Redis pub/sub: one connection, many task channels.

The result API keeps one listener per process and store and tells it which
task ids are being waited on; this class maps them to channels. Sends
(subscribe, unsubscribe) are serialised by a lock; reading happens only in
:meth:`RedisListener.wait`, on the waiting machinery's thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from resultstore import PayloadError, TaskResult

__all__ = ["BATCH_IDS", "BATCH_SECONDS", "RedisListener"]

#: at most this many announced ids are handed over by one :meth:`RedisListener.wait`
BATCH_IDS = 32
#: and only those already read within this many seconds of the first one
BATCH_SECONDS = 0.0005


class RedisListener:
    """A :class:`~resultstore.PushListener` over one pub/sub connection.

    Announcements carry the stored value, but anyone allowed to ``PUBLISH``
    can send one, so by default they are only wake-ups: the hub reads the
    announced ids from the store. With ``trust_carried`` the values are
    handed over as they came (:class:`~resultstore.SupportsCarriedResults`),
    each only for the id it names itself.
    """

    def __init__(
        self,
        client: Any,
        channel: Callable[[str], str],
        prefix_len: int,
        decode: Callable[[bytes], TaskResult],
        *,
        trust_carried: bool = False,
    ) -> None:
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._channel = channel
        self._prefix_len = prefix_len
        self._decode = decode
        self._trust_carried = trust_carried
        self._lock = threading.Lock()
        self._subscribed: set[str] = set()
        self._carried: dict[str, TaskResult] = {}

    @property
    def subscriptions(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._subscribed)

    def subscribe(self, task_ids: Iterable[str]) -> None:
        new = [t for t in task_ids if t not in self._subscribed]
        if not new:
            return
        with self._lock:
            self._pubsub.subscribe(*(self._channel(t) for t in new))
            self._subscribed.update(new)

    def unsubscribe(self, task_ids: Iterable[str]) -> None:
        gone = [t for t in task_ids if t in self._subscribed]
        if not gone:
            return
        with self._lock:
            self._subscribed.difference_update(gone)
            if self._pubsub.connection is not None:
                self._pubsub.unsubscribe(*(self._channel(t) for t in gone))

    def wait(self, timeout: float) -> list[str]:
        """Ids announced within ``timeout`` seconds, handed over as soon as read.

        Once one announcement came, only what is already waiting on the
        connection joins it, and only up to :data:`BATCH_IDS` ids or
        :data:`BATCH_SECONDS` after the first: under a steady stream of other
        results a waiter is never held back until the socket goes quiet.
        """
        announced: list[str] = []
        deadline = time.monotonic() + timeout
        first = 0.0
        while True:
            if announced:
                if len(announced) >= BATCH_IDS or time.monotonic() - first >= BATCH_SECONDS:
                    return announced
                message = self._pubsub.get_message(timeout=0.0)
            else:
                remaining = deadline - time.monotonic()
                message = self._pubsub.get_message(timeout=max(0.0, remaining))
                if message is None and remaining <= 0:
                    return announced
            if message is None:
                if announced:
                    return announced
                continue
            kind = message.get("type")
            if kind == "pong":
                return announced  # woken on purpose: a new waiter arrived
            task_id = self._subscribed_id(message) if kind == "message" else None
            if task_id is not None:
                if not announced:
                    first = time.monotonic()
                announced.append(task_id)
                if self._trust_carried:
                    self._carry(task_id, message["data"])

    def _subscribed_id(self, message: dict[str, Any]) -> str | None:
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode("utf-8", "replace")
        task_id: str = channel[self._prefix_len :]
        return task_id if task_id in self._subscribed else None

    def _carry(self, task_id: str, data: bytes) -> None:
        # Undecodable, or about another task: the hub reads the store instead.
        with contextlib.suppress(PayloadError):
            result = self._decode(data)
            if result.task_id == task_id:
                self._carried[task_id] = result

    def wake(self) -> None:
        """Cut a blocked :meth:`wait` short: a PING on the connection answers at once."""
        with self._lock:
            if self._subscribed and self._pubsub.connection is not None:
                self._pubsub.ping()

    def take_carried(self) -> dict[str, TaskResult]:
        """Results that came with the announcements, when they are trusted (else none)."""
        carried, self._carried = self._carried, {}
        return carried

    def close(self) -> None:
        with self._lock:
            self._subscribed.clear()
            self._pubsub.close()
