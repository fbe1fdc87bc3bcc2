"""The one consumer of a process's reply queue, shared by every client and waiter.

A :class:`ReplyReader` owns one connection and one thread. It consumes the
reply queue (plus any extra reply queues a caller named, such as Celery's
per-thread ones), keeps the newest state per task in memory and applies the
reader-side rules: a ready state is never replaced unless the message says
``overwrite``, a redelivered message is ignored, and at most ``max_buffered``
results are held. Results a caller has read go first when room is needed;
when every held result is unread the reader stops taking messages (they wait
in the broker) and reads report :class:`BacklogLimitError` until room is made.
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from resultstore import READY_STATES, BackendUnavailableError, ResultStoreError

from resultstore_amqp.settings import DIRECT_REPLY_TO, AmqpSettings

__all__ = ["BacklogLimitError", "Entry", "ReplyReader", "reader_for", "release_reader"]

#: seconds one drain of the connection lasts before housekeeping runs.
DRAIN_SLICE = 0.25
#: messages one drain takes, at most, before announcing them.
DRAIN_BATCH = 500
#: how many message ids a reader remembers to ignore redeliveries.
SEEN_MAX = 100_000
_MAX_BACKOFF = 2.0

#: header names of a result message (the body is the encoded payload).
H_STATE = "rs-state"
H_OVERWRITE = "rs-overwrite"
H_SENT = "rs-sent"
H_EXPIRES = "rs-expires"
H_WAKE = "rs-wake"


class BacklogLimitError(ResultStoreError):
    """The reply queue holds more unread results than this client may buffer."""


@attrs.define(slots=True)
class Entry:
    """The newest result of one task as this client heard it."""

    state: str | None
    payload: bytes
    deadline: float | None
    read: bool = False

    @property
    def ready(self) -> bool:
        return self.state in READY_STATES


@attrs.frozen
class Applied:
    """What applying one message did: the outcome a self-store reports."""

    stored: bool
    state: str | None
    previous_state: str | None


class _Listener:
    """The reader's side of one push listener: subscribed ids and what was heard."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.subscribed: set[str] = set()
        self.heard: list[str] = []
        self.woken = False


class ReplyReader:
    """Consumes a reply queue on its own thread and keeps the newest state per task."""

    def __init__(self, settings: AmqpSettings, connect: Callable[[], Any]) -> None:
        self.settings = settings
        self._connect = connect
        self.queue = settings.reply_queue or f"resultstore.reply.{uuid.uuid4().hex}"
        self._extra: dict[str, None] = {}
        self._consuming: set[str] = set()
        self._lock = threading.Condition(threading.Lock())
        self._entries: collections.OrderedDict[str, Entry] = collections.OrderedDict()
        self._read_order: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._unread = 0
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._outcomes: dict[str, Applied | None] = {}
        self._held: collections.deque[Any] = collections.deque()
        # Task ids applied during the current drain, announced when it ends.
        self._heard: list[str] = []
        self._listeners: weakref.WeakSet[_Listener] = weakref.WeakSet()
        self._closed = False
        self._started = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: Any = None
        self._channel: Any = None
        self._unacked_tag: int | None = None
        self._unacked = 0
        self._last_purge = 0.0
        self.users = 0
        self.pid = os.getpid()
        #: the connection error while the reader is cut off from the broker, else None.
        self.error: BaseException | None = None
        #: how many times the reader (re)connected; >1 after a broker restart.
        self.connects = 0
        #: the direct reply-to address of the current connection (direct_reply_to only).
        self.direct_address: str | None = None
        self.full = False

    # -- life cycle ------------------------------------------------------------------

    def start(self, timeout: float) -> None:
        """Start the consumer thread and wait until it consumes (or failed once)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="resultstore-amqp-reader", daemon=True
                )
                self._thread.start()
        if not self._started.wait(timeout):
            raise BackendUnavailableError(
                f"no reply queue on {self._where()} after {timeout} s; is RabbitMQ running there?"
            )
        if self.connects == 0 and self.error is not None:
            raise BackendUnavailableError(
                f"cannot consume the reply queue on {self._where()}: {self.error}"
            ) from self.error

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
            self._lock.notify_all()
        for listener in list(self._listeners):
            with listener.cond:
                listener.cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=DRAIN_SLICE * 4 + 1)
        self._disconnect()

    @property
    def closed(self) -> bool:
        return self._closed

    def _where(self) -> str:
        s = self.settings
        return f"amqp://{s.host}:{s.port}/{s.virtual_host}"

    # -- what clients call (any thread) ---------------------------------------------------

    def knows(self, name: str) -> bool:
        with self._lock:
            return name == self.queue or name in self._extra

    def add_queue(self, name: str) -> bool:
        """Consume ``name`` too (declared by the caller); False if it was already."""
        with self._lock:
            if name == self.queue or name in self._extra:
                return False
            self._extra[name] = None
            return True

    def expect(self, message_id: str) -> None:
        with self._lock:
            self._outcomes[message_id] = None

    def outcome(self, message_id: str, timeout: float) -> Applied | None:
        """The outcome of a message this process sent to itself, once applied."""
        deadline = time.monotonic() + timeout
        with self._lock:
            try:
                while self._outcomes.get(message_id) is None:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._closed:
                        return None
                    self._lock.wait(left)
                return self._outcomes[message_id]
            finally:
                self._outcomes.pop(message_id, None)

    def get_many(self, task_ids: Iterable[str], now: float) -> dict[str, Entry | None]:
        """The held entries (reading a ready one makes it evictable).

        While the buffer is full, an id not held may be waiting in the broker:
        that raises :class:`BacklogLimitError`, unless something was found,
        since reading it made room and the reader goes on.
        """
        found: dict[str, Entry | None] = {}
        with self._lock:
            for task_id in task_ids:
                entry = self._entries.get(task_id)
                if entry is not None and entry.deadline is not None and entry.deadline <= now:
                    entry = None
                if entry is not None and entry.ready and not entry.read:
                    self._mark_read(task_id, entry)
                found[task_id] = entry
            if self.full and all(entry is None for entry in found.values()):
                raise self._backlog_error()
        return found

    def forget(self, task_id: str) -> None:
        with self._lock:
            entry = self._entries.pop(task_id, None)
            if entry is not None:
                self._forgotten(task_id, entry)

    def plant(self, task_id: str, payload: bytes) -> None:
        """Replace the held result by raw bytes (the contract suite's back door)."""
        with self._lock:
            old = self._entries.pop(task_id, None)
            if old is not None:
                self._forgotten(task_id, old)
            self._entries[task_id] = Entry(None, payload, None)
            self._unread += 1
        self._announce([task_id])

    def buffered(self) -> tuple[int, int]:
        """(results held, of which unread)."""
        with self._lock:
            return len(self._entries), self._unread

    # -- listeners ------------------------------------------------------------------

    def listener(self) -> _Listener:
        listener = _Listener()
        self._listeners.add(listener)
        return listener

    def drop_listener(self, listener: _Listener) -> None:
        self._listeners.discard(listener)
        with listener.cond:
            listener.cond.notify_all()

    def wait(self, listener: _Listener, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        with listener.cond:
            while not listener.heard and not listener.woken and not self._closed:
                if self.error is not None or self.full:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                listener.cond.wait(left)
            heard, listener.heard = listener.heard, []
            listener.woken = False
        if not heard:
            if self._closed:
                raise ResultStoreError(f"the reply reader of {self._where()} was closed")
            if self.error is not None:
                raise BackendUnavailableError(
                    f"the reply queue {self.queue!r} on {self._where()} cannot be consumed "
                    f"({self.error}); reconnecting"
                ) from self.error
            if self.full:
                raise self._backlog_error()
        return heard

    def _backlog_error(self) -> BacklogLimitError:
        return BacklogLimitError(
            f"the reply queue {self.queue!r} holds more results than max_buffered="
            f"{self.settings.max_buffered} and none of the {len(self._entries)} held ones was "
            f"read yet; the rest wait in RabbitMQ. Read or forget results (every get() of a "
            f"ready result frees room), or connect with a larger max_buffered"
        )

    def _announce(self, task_ids: Iterable[str]) -> None:
        ids = list(task_ids)
        for listener in list(self._listeners):
            with listener.cond:
                mine = [t for t in ids if t in listener.subscribed]
                if mine:
                    listener.heard.extend(mine)
                    listener.cond.notify_all()

    def _notify_listeners(self) -> None:
        for listener in list(self._listeners):
            with listener.cond:
                listener.cond.notify_all()

    # -- the buffer (lock held) ----------------------------------------------------------

    def _mark_read(self, task_id: str, entry: Entry) -> None:
        entry.read = True
        self._unread -= 1
        self._read_order[task_id] = None
        if self.full:
            self.full = False
            self._lock.notify_all()

    def _forgotten(self, task_id: str, entry: Entry) -> None:
        if entry.read:
            self._read_order.pop(task_id, None)
        else:
            self._unread -= 1
        if self.full:
            self.full = False
            self._lock.notify_all()

    def _make_room(self) -> bool:
        """Room for one more task: drop expired, then read results; False when all are unread."""
        bound = self.settings.max_buffered
        if len(self._entries) < bound:
            return True
        self._purge(time.time())
        # Make room for a tenth of the bound at once: evicting one result per
        # message would scan the table on every message of a burst.
        target = bound - max(1, bound // 10)
        while len(self._entries) > target and self._read_order:
            task_id, _ = self._read_order.popitem(last=False)
            self._entries.pop(task_id, None)
        return len(self._entries) < bound

    def _purge(self, now: float) -> None:
        """Drop expired results, at most once a second (it scans the table)."""
        if now - self._last_purge < 1.0:
            return
        self._last_purge = now
        gone = [t for t, e in self._entries.items() if e.deadline is not None and e.deadline <= now]
        for task_id in gone:
            self._forgotten(task_id, self._entries.pop(task_id))

    def _apply(self, message: Any) -> bool:
        """Apply one message (lock held); False when it must wait for room."""
        props = message.properties
        headers = props.get("application_headers") or {}
        task_id = props.get("correlation_id")
        message_id = props.get("message_id")
        if headers.get(H_WAKE) or not task_id:
            return True
        if message_id is not None and message_id in self._seen:
            return True  # a redelivery: applied before
        state = headers.get(H_STATE)
        state = state.decode() if isinstance(state, bytes) else state
        overwrite = bool(headers.get(H_OVERWRITE))
        sent, expires = headers.get(H_SENT), headers.get(H_EXPIRES)
        # The sender's clock decides what has expired by the time it sent.
        now = time.time() if sent is None else max(float(sent), time.time())
        entry = self._entries.get(task_id)
        if entry is not None and entry.deadline is not None and entry.deadline <= now:
            self._forgotten(task_id, self._entries.pop(task_id))
            entry = None
        previous = entry.state if entry is not None else None
        if entry is not None and entry.ready and not overwrite:
            applied = Applied(False, previous, previous)
        else:
            if entry is None and not self._make_room():
                return False
            deadline = None if expires is None or sent is None else float(sent) + float(expires)
            body = message.body
            payload = body if isinstance(body, bytes) else bytes(body, "latin-1")
            if entry is not None:
                self._forgotten(task_id, self._entries.pop(task_id))
            self._entries[task_id] = Entry(state, payload, deadline)
            self._unread += 1
            applied = Applied(True, state, previous)
        if message_id is not None:
            self._seen[message_id] = None
            if len(self._seen) > SEEN_MAX:
                self._seen.popitem(last=False)
            if message_id in self._outcomes:
                self._outcomes[message_id] = applied
                self._lock.notify_all()
        return True

    # -- the consumer thread ------------------------------------------------------------

    def _on_message(self, message: Any) -> None:
        with self._lock:
            if self._held or not self._apply(message):
                self._held.append(message)
                self.full = True
                applied = False
            else:
                applied = True
        if self.full:
            self._notify_listeners()
        if applied:
            self._acked_later(message.delivery_tag)
            props = message.properties
            task_id = props.get("correlation_id")
            if task_id:
                self._heard.append(task_id)

    def _acked_later(self, tag: int | None) -> None:
        if tag is None or self._direct():
            return
        self._unacked_tag = tag
        self._unacked += 1
        if self._unacked >= max(1, self.settings.prefetch // 4):
            self._flush_acks()

    def _flush_acks(self) -> None:
        if self._unacked_tag is not None and self._channel is not None:
            tag, self._unacked_tag, self._unacked = self._unacked_tag, None, 0
            self._channel.basic_ack(tag, multiple=True)

    def _direct(self) -> bool:
        return self.settings.direct_reply_to

    def _release_held(self) -> None:
        """Apply held messages while there is room (consumer thread)."""
        released: list[str] = []
        tags: list[int] = []
        with self._lock:
            while self._held:
                message = self._held[0]
                if not self._apply(message):
                    self.full = True
                    break
                self._held.popleft()
                tags.append(message.delivery_tag)
                task_id = message.properties.get("correlation_id")
                if task_id:
                    released.append(task_id)
            if not self._held:
                self.full = False
        for tag in tags:
            self._acked_later(tag)
        if released:
            self._announce(released)

    def _queue_arguments(self) -> dict[str, Any]:
        expires = self.settings.queue_expires
        return {} if expires is None else {"x-expires": max(1, int(expires * 1000))}

    def declare(self, channel: Any, name: str) -> None:
        """Declare reply queue ``name`` on ``channel`` with this reader's settings."""
        s = self.settings
        channel.queue_declare(
            queue=name,
            durable=s.persistent,
            # A generated name dies with its client; a named queue outlives restarts.
            auto_delete=not s.persistent and s.reply_queue is None,
            arguments=self._queue_arguments(),
        )

    def _setup(self) -> None:
        connection = self._connect()
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
        channel = connection.channel()
        self._connection, self._channel = connection, channel
        self._consuming = set()
        if self._direct():
            channel.basic_consume(queue=DIRECT_REPLY_TO, no_ack=True, callback=self._on_message)
            self.direct_address = self._probe_direct_address(channel)
        else:
            channel.basic_qos(0, self.settings.prefetch, False)
            self._consume_new()

    def _consume_new(self) -> None:
        with self._lock:
            names = [self.queue, *self._extra]
        for name in names:
            if name not in self._consuming:
                self.declare(self._channel, name)
                self._channel.basic_consume(queue=name, callback=self._on_message)
                self._consuming.add(name)

    def _probe_direct_address(self, channel: Any) -> str:
        """The direct reply-to name RabbitMQ gives this channel's consumer."""
        import amqp  # type: ignore[import-untyped]  # py-amqp ships no type information

        probe, _, _ = channel.queue_declare(queue="", exclusive=True, auto_delete=True)
        channel.basic_publish(
            amqp.Message(b"", reply_to=DIRECT_REPLY_TO), exchange="", routing_key=probe
        )
        deadline = time.monotonic() + self.settings.connect_timeout
        while time.monotonic() < deadline:
            got = channel.basic_get(probe, no_ack=True)
            if got is not None:
                channel.queue_delete(probe)
                return str(got.properties["reply_to"])
            time.sleep(0.005)
        raise BackendUnavailableError(
            f"RabbitMQ on {self._where()} gave no direct reply-to address; "
            f"is it older than 3.4? connect with direct_reply_to=false"
        )

    def _disconnect(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._unacked_tag, self._unacked = None, 0
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.release()

    def _run(self) -> None:
        backoff = 0.05
        while not self._closed:
            try:
                if self._connection is None:
                    self._setup()
                    self.connects += 1
                    self.error = None
                    self._started.set()
                    backoff = 0.05
                    with self._lock:
                        # Messages held for room were not acked: the broker resends them.
                        self._held.clear()
                        self.full = False
                self._step()
            except Exception as exc:
                self.error = exc
                self._disconnect()
                self._started.set()
                self._notify_listeners()
                with self._lock:
                    if self.closed:
                        break
                    self._lock.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)

    def _step(self) -> None:
        connection = self._connection
        assert connection is not None
        if self._held:
            self._release_held()
            if self._held:
                self._flush_acks()
                with self._lock:
                    if self.full and not self._closed:
                        self._lock.wait(DRAIN_SLICE)
                if self.settings.heartbeat:
                    connection.heartbeat_check()
                return
        with self._lock:
            extra_pending = any(n not in self._consuming for n in self._extra)
        if extra_pending:
            self._consume_new()
        try:
            connection.drain_events(timeout=DRAIN_SLICE)
            # Take whatever else is already waiting before announcing: a burst
            # wakes each waiting thread once, not once per message.
            sock = connection.connection.sock
            taken = 1
            while taken < DRAIN_BATCH and select.select([sock], [], [], 0)[0]:
                connection.drain_events(timeout=DRAIN_SLICE)
                taken += 1
        except TimeoutError:
            self._flush_acks()
            with self._lock:
                self._purge(time.time())
        finally:
            heard, self._heard = self._heard, []
            if heard:
                self._announce(heard)
        if self.settings.heartbeat:
            connection.heartbeat_check()


_readers: dict[tuple[Any, ...], ReplyReader] = {}
_readers_lock = threading.Lock()


def _forget_readers() -> None:
    # A forked child inherits no thread: it opens readers of its own.
    global _readers_lock
    _readers.clear()
    _readers_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_readers)


def reader_for(settings: AmqpSettings, connect: Callable[[], Any]) -> ReplyReader:
    """The process's reader for these settings (one more user of it)."""
    key = settings.reader_key()
    with _readers_lock:
        reader = _readers.get(key)
        if reader is None or reader.closed or reader.pid != os.getpid():
            reader = _readers[key] = ReplyReader(settings, connect)
        reader.users += 1
        return reader


def release_reader(reader: ReplyReader) -> None:
    """One user less; the last one closes the reader."""
    with _readers_lock:
        reader.users -= 1
        if reader.users > 0:
            return
        for key, value in list(_readers.items()):
            if value is reader:
                del _readers[key]
    reader.close()
