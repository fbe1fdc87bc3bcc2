"""The AMQP backend: each stored state is a message to the asking client's reply queue.

Nothing is kept in the broker but messages on their way. A worker's
``store(result, reply_to=...)`` publishes the encoded result to the queue the
client named (``correlation_id`` = task id, state and expiry in headers). The
client's process reads its reply queue with one :class:`ReplyReader` shared by
all its clients and waiters, keeps the newest state per task in memory and
applies ready-is-final there. A ``store`` without ``reply_to`` goes to this
process's own reply queue and returns the outcome its reader applied.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import amqp  # type: ignore[import-untyped]  # py-amqp ships no type information
import kombu.connection
import kombu.exceptions
from resultstore import (
    BackendConfig,
    BackendUnavailableError,
    Retry,
    Serializer,
    StoreOutcome,
    TaskResult,
    UnsupportedOperationError,
)

from resultstore_amqp.plugin import CAPABILITIES
from resultstore_amqp.reader import (
    H_EXPIRES,
    H_OVERWRITE,
    H_SENT,
    H_STATE,
    H_WAKE,
    ReplyReader,
    reader_for,
    release_reader,
)
from resultstore_amqp.settings import AmqpSettings

__all__ = ["AmqpBackend", "AmqpListener"]

CONTENT_TYPE = "application/x-resultstore"
#: publishes between two reads of the producer's socket for broker notices.
PUBLISH_CHECK = 64
#: seconds without a publish after which the producer reads its socket before the next.
IDLE_CHECK = 0.5

_TOKEN_PREFIX = uuid.uuid4().hex[:12]
_tokens = itertools.count()


#: kombu's connection class (untyped), called to make each connection.
_KOMBU_CONNECTION: Any = kombu.connection.Connection
#: errors after which the producer reconnects and tries again. A channel error
#: (a queue declared with other arguments, say) is the caller's to see as is.
_PUBLISH_ERRORS = (
    OSError,
    amqp.exceptions.ConnectionError,
    amqp.exceptions.RecoverableConnectionError,
    kombu.exceptions.OperationalError,
)


def _refused(exc: BaseException) -> BaseException | None:
    """A login the broker refused is not tried again: it names the fix."""
    if isinstance(exc, amqp.exceptions.AccessRefused):
        return BackendUnavailableError(
            f"RabbitMQ refused the login ({exc}); "
            f"check the user, password and virtual host in the URL"
        )
    return None


def _message_id() -> str:
    return f"{_TOKEN_PREFIX}{os.getpid():x}-{next(_tokens):x}"


class AmqpBackend:
    """Results delivered as messages to the reply queue of the client that asked."""

    capabilities = CAPABILITIES

    def __init__(self, config: BackendConfig) -> None:
        self.settings = settings = AmqpSettings.take_from(
            config.url, config.options, config.expires
        )
        config.options.finish()
        self.url = config.url
        self._serializer: Serializer = config.serializer
        self._clock = settings.clock
        self._expires = settings.expires
        self._expiration = (
            None if settings.expires is None else str(max(1, int(settings.expires * 1000)))
        )
        self._delivery_mode = 2 if settings.persistent else 1
        self._lock = threading.Lock()
        self.retry = Retry(
            "RabbitMQ",
            server=config.url.redacted(),
            total=settings.retry_total,
            retry_on=_PUBLISH_ERRORS,
            translate=_refused,
            secret=config.url.password,
        )
        self._producer: Any = None
        self._channel: Any = None
        self._declared: set[str] = set()
        self._amqp_caps: Any = None
        self._unchecked = 0
        self._last_publish = 0.0
        # Registered now, started on first read: a client that only writes
        # (a worker) never consumes, yet one that reads later still shares
        # the process's reader with clients opened before it.
        self._reader: ReplyReader | None = reader_for(settings, self.connection)
        self._closed = False

    def __repr__(self) -> str:
        return f"<AmqpBackend {self.url.redacted()}>"

    # -- connections -------------------------------------------------------------------

    def connection(self, *, heartbeat: bool = True) -> Any:
        """A new (unconnected) kombu connection to the broker.

        Only the reader's connection sends heartbeats (it checks them as it
        drains); an idle producer would be closed by the broker unnoticed.
        """
        s = self.settings
        return _KOMBU_CONNECTION(
            hostname=s.host,
            port=s.port,
            userid=s.username,
            password=s.password,
            virtual_host=s.virtual_host,
            ssl=s.ssl_option(),
            heartbeat=s.heartbeat if heartbeat else 0,
            connect_timeout=s.connect_timeout,
            transport="pyamqp",
        )

    def _where(self) -> str:
        return self.url.redacted()

    def _closed_error(self) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"this client of {self._where()} is closed; open another with resultstore.connect()"
        )

    def _publish_channel(self) -> Any:
        """The producer's channel (lock held), connected on first use."""
        if self._channel is None:
            connection = self.connection(heartbeat=False)
            try:
                connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
                self._channel = connection.channel()
            except Exception:
                connection.release()
                raise
            # py-amqp reads the socket after every publish (two timeout changes
            # and a recv) in case the broker said "connection blocked"; that
            # is most of a publish's system calls. The producer reads every
            # PUBLISH_CHECK publishes instead: broker notices and channel
            # errors still surface, a blocked broker still stops sendall.
            self._amqp_caps = self._channel.connection.client_properties.get("capabilities")
            self._producer = connection
            self._declared = set()
            self._unchecked = 0
        return self._channel

    def _publish(self, channel: Any, message: Any, routing_key: str) -> None:
        """One publish (lock held), reading the broker's notices every PUBLISH_CHECK."""
        caps = self._amqp_caps
        now = time.monotonic()
        if now - self._last_publish > IDLE_CHECK:
            # After a pause, read first: a broker that restarted meanwhile closed
            # this connection, and a message written to it would be lost unseen.
            with contextlib.suppress(TimeoutError):
                channel.connection.drain_events(timeout=0)
        self._last_publish = now
        self._unchecked += 1
        check = self._unchecked >= PUBLISH_CHECK or not isinstance(caps, dict)
        if check:
            self._unchecked = 0
        else:
            caps["connection.blocked"] = False
        try:
            channel.basic_publish(message, exchange="", routing_key=routing_key)
        finally:
            if isinstance(caps, dict):
                caps["connection.blocked"] = True

    def _drop_producer(self) -> None:
        producer, self._producer, self._channel = self._producer, None, None
        if producer is not None:
            try:
                producer.release()
            except Exception:  # it failed already; it is being thrown away
                return

    def _with_channel(self, action: Any) -> Any:
        """Run ``action(channel)`` on the producer; reconnect and try again within
        ``retry_total`` (and the caller's deadline) after connection errors."""

        def attempt() -> Any:
            with self._lock:
                if self._closed:
                    raise self._closed_error()
                try:
                    return action(self._publish_channel())
                except (amqp.exceptions.ChannelError, *_PUBLISH_ERRORS):
                    # A broken connection, or a channel the broker closed.
                    self._drop_producer()
                    raise

        return self.retry(attempt)

    @property
    def reader(self) -> ReplyReader:
        """This process's reader of the reply queue (started on first use)."""
        reader = self._reader
        if reader is None or reader.closed or reader.pid != os.getpid():
            with self._lock:
                if self._closed:
                    raise self._closed_error()
                reader = self._reader
                if reader is None or reader.closed or reader.pid != os.getpid():
                    reader = reader_for(self.settings, self.connection)
                    self._reader = reader
        # Every caller waits for the queue to exist: a result sent earlier is dropped.
        reader.start(self.settings.connect_timeout + 1.0)
        return reader

    # -- reply addresses (SupportsReplyTo) ----------------------------------------------------

    def reply_address(self, name: str | None = None) -> str:
        """The reply queue this process reads; with ``name``, declare and read that queue too."""
        reader = self.reader
        if self.settings.direct_reply_to:
            if name is not None:
                raise UnsupportedOperationError(
                    f"{self._where()}: with direct_reply_to=true results come back only to "
                    f"the address RabbitMQ gives this connection; named reply queues "
                    f"({name!r}) need direct_reply_to=false"
                )
            address = reader.direct_address
            if address is None:
                raise BackendUnavailableError(f"no direct reply-to address yet on {self._where()}")
            return address
        if name is None or reader.knows(name):
            return reader.queue if name is None else name
        # Declared here, before the caller sends its task: a result sent to a
        # queue that does not exist yet would be dropped by the broker.
        self._with_channel(lambda channel: self._declare(channel, reader, name))
        if reader.add_queue(name):
            # A no-op message wakes the reader so that it consumes the new queue now.
            self._send(reader.queue, b"", {H_WAKE: True}, None, None)
        return name

    def _declare(self, channel: Any, reader: ReplyReader, name: str) -> None:
        if name not in self._declared:
            reader.declare(channel, name)
            self._declared.add(name)

    # -- storing --------------------------------------------------------------------------

    def _headers(self, result: TaskResult, overwrite: bool) -> dict[str, Any]:
        return {
            H_STATE: str(result.state),
            H_OVERWRITE: overwrite,
            H_SENT: self._clock(),
            H_EXPIRES: self._expires,
        }

    def _send(
        self,
        routing_key: str,
        body: bytes,
        headers: dict[str, Any],
        task_id: str | None,
        message_id: str | None,
    ) -> None:
        properties: dict[str, Any] = {
            "content_type": CONTENT_TYPE,
            "content_encoding": "binary",
            "application_headers": headers,
            "delivery_mode": self._delivery_mode,
        }
        if task_id is not None:
            properties["correlation_id"] = task_id
        if message_id is not None:
            properties["message_id"] = message_id
        if self._expiration is not None:
            properties["expiration"] = self._expiration
        message = amqp.Message(body, **properties)
        self._with_channel(lambda channel: self._publish(channel, message, routing_key))

    def store_to(
        self, result: TaskResult, reply_to: str, *, overwrite: bool = False
    ) -> StoreOutcome:
        """Publish ``result`` to the reply queue ``reply_to``; the reader there applies it.

        Returns once the broker has the message: ``stored`` says it was
        sent, the reader keeps a ready state it holds unless ``overwrite``.
        """
        payload = self._serializer.dumps(result)
        self._send(
            reply_to, payload, self._headers(result, overwrite), result.task_id, _message_id()
        )
        return StoreOutcome(stored=True, state=result.state, previous_state=None)

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        """Send ``result`` to this process's own reply queue and return what its reader did."""
        return self.store_many([result], overwrite=overwrite)[0]

    def store_many(
        self, results: Sequence[TaskResult], *, overwrite: bool = False
    ) -> list[StoreOutcome]:
        payloads = [self._serializer.dumps(result) for result in results]
        reader = self.reader
        address = self.reply_address()
        ids = [_message_id() for _ in results]
        for message_id in ids:
            reader.expect(message_id)
        for result, payload, message_id in zip(results, payloads, ids, strict=True):
            self._send(
                address, payload, self._headers(result, overwrite), result.task_id, message_id
            )
        outcomes: list[StoreOutcome] = []
        for result, message_id in zip(results, ids, strict=True):
            applied = reader.outcome(message_id, self.settings.store_timeout)
            if applied is None:
                raise BackendUnavailableError(
                    f"the result of task {result.task_id!r} was sent to this client's reply "
                    f"queue {address!r} on {self._where()} but did not come back within "
                    f"{self.settings.store_timeout} s (store_timeout); is the broker reachable?"
                    f"{' ' + str(reader.error) if reader.error else ''}"
                )
            if applied.stored:
                outcomes.append(StoreOutcome(True, result.state, applied.previous_state))
            else:
                kept = applied.state or result.state
                outcomes.append(StoreOutcome(False, kept, applied.previous_state))
        return outcomes

    # -- reading ------------------------------------------------------------------------

    def get(self, task_id: str) -> TaskResult | None:
        return self.get_many([task_id])[task_id]

    def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        entries = self.reader.get_many(task_ids, self._clock())
        loads = self._serializer.loads
        return {
            task_id: None if entry is None else loads(entry.payload, TaskResult)
            for task_id, entry in entries.items()
        }

    def forget(self, task_id: str) -> None:
        self.reader.forget(task_id)

    def plant_payload(self, task_id: str, payload: bytes) -> None:
        """Hold raw bytes as ``task_id``'s result (the contract suite's corrupt-payload checks)."""
        self.reader.plant(task_id, payload)

    # -- waiting --------------------------------------------------------------------------

    def listener(self) -> AmqpListener:
        return AmqpListener(self.reader)

    # -- closing --------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.retry.close()
            reader, self._reader = self._reader, None
            self._drop_producer()
        if reader is not None and reader.pid == os.getpid():
            release_reader(reader)


class AmqpListener:
    """A push listener over the process's reply reader: it hears what the reader applies.

    Subscribing costs nothing on the broker (every result for this client
    arrives anyway); it only chooses which ids :meth:`wait` announces.
    Implements :class:`~resultstore.SupportsWake`.
    """

    def __init__(self, reader: ReplyReader) -> None:
        self._reader = reader
        self._state = reader.listener()

    def subscribe(self, task_ids: Iterable[str]) -> None:
        with self._state.cond:
            self._state.subscribed.update(task_ids)

    def unsubscribe(self, task_ids: Iterable[str]) -> None:
        with self._state.cond:
            self._state.subscribed.difference_update(task_ids)

    def wait(self, timeout: float) -> list[str]:
        return self._reader.wait(self._state, timeout)

    def wake(self) -> None:
        with self._state.cond:
            self._state.woken = True
            self._state.cond.notify_all()

    def close(self) -> None:
        self._reader.drop_listener(self._state)
