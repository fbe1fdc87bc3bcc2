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

from resultstore.errors import PayloadError
from resultstore.models import TaskResult

__all__ = ["RedisListener"]


class RedisListener:
    """A :class:`~resultstore.protocols.PushListener` over one pub/sub connection.

    Announcements carry the stored value, but anyone allowed to ``PUBLISH``
    can send one, so by default they are only wake-ups: the hub reads the
    announced ids from the store. With ``trust_carried`` the values are
    handed over as they came (:class:`~resultstore.protocols.SupportsCarriedResults`),
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
        """Ids announced within ``timeout`` seconds (all pending ones once one came)."""
        announced: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            message = self._pubsub.get_message(
                timeout=max(0.0, remaining) if not announced else 0.0
            )
            if message is None:
                if announced or remaining <= 0:
                    return announced
                continue
            kind = message.get("type")
            if kind == "pong":
                return announced  # woken on purpose: a new waiter arrived
            if kind != "message":
                continue
            channel = message["channel"]
            if isinstance(channel, bytes):
                channel = channel.decode("utf-8", "replace")
            task_id = channel[self._prefix_len :]
            if task_id in self._subscribed:
                announced.append(task_id)
                if self._trust_carried:
                    self._carry(task_id, message["data"])

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
