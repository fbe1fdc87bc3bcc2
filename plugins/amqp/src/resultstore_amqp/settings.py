"""The options of an ``amqp://`` / ``amqps://`` / ``rpc://`` URL, read once at connect.

Kept apart from the backend so that the URL rules (virtual host, TLS, the
defaults ``rpc://`` fills in) are checked without a broker.
"""

from __future__ import annotations

import re
import ssl
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import attrs
from resultstore import BackendURL, InvalidURLError
from resultstore.concepts.options import Options, parse_bool, parse_duration

__all__ = ["DEFAULT_PORT", "DEFAULT_TLS_PORT", "AmqpSettings"]

DEFAULT_PORT = 5672
DEFAULT_TLS_PORT = 5671
#: RabbitMQ's direct reply-to pseudo queue.
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")

_EXAMPLE = (
    "amqp://user:password@host:5672/vhost (or amqps://... for TLS, rpc://... for Celery users)"
)


def _positive_int(value: object) -> int:
    number = int(str(value))
    if number < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return number


def _queue_name(value: object) -> str | None:
    text = str(value).strip()
    if text.lower() in ("", "none"):
        return None
    if not _QUEUE_NAME.match(text) or text.startswith("amq."):
        raise ValueError(
            f"{text!r} is not a usable queue name: use 1-200 letters, digits or '_.:-', "
            f"not starting with 'amq.' (RabbitMQ reserves it)"
        )
    return text


def _seconds(default: float) -> Callable[[object], float]:
    def convert(value: object) -> float:
        seconds = parse_duration(value)
        return default if seconds is None else seconds

    return convert


def _clock(value: object) -> Callable[[], float]:
    if not callable(value):
        raise ValueError(f"expected a callable returning seconds (like time.time), got {value!r}")
    return value


def _ssl_value(value: object) -> bool | dict[str, Any]:
    if isinstance(value, dict):
        return value
    return parse_bool(value)


@attrs.frozen
class AmqpSettings:
    """Connection and reply-queue settings of one client.

    ``reply_queue`` None means a generated name, one per process and broker.
    """

    host: str
    port: int
    username: str
    password: str
    virtual_host: str
    ssl: bool | dict[str, Any]
    reply_queue: str | None
    persistent: bool
    direct_reply_to: bool
    prefetch: int
    heartbeat: float
    connect_timeout: float
    retry_total: float
    max_buffered: int
    store_timeout: float
    queue_expires: float | None
    expires: float | None
    clock: Callable[[], float]

    @classmethod
    def take_from(cls, url: BackendURL, options: Options, expires: float | None) -> AmqpSettings:
        if url.scheme not in ("amqp", "amqps", "rpc"):
            raise InvalidURLError(f"{url.scheme}:// is not an AMQP URL; write {_EXAMPLE}")
        if len(url.hosts) > 1:
            raise InvalidURLError(
                f"{url.redacted()} names {len(url.hosts)} hosts; the AMQP backend connects "
                f"to one broker: write {_EXAMPLE}"
            )
        tls_default: bool | dict[str, Any] = url.scheme == "amqps"
        tls: bool | dict[str, Any] = options.take("ssl", _ssl_value, tls_default)
        port = url.port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT)
        path = url.path or ""
        # "amqp://host/" and "amqp://host//" both name the default vhost "/"
        # (kombu's habit); "amqp://host/%2F" spells it out.
        vhost = "/" if path in ("", "/", "//") else urllib.parse.unquote(path[1:])
        reply_queue = options.take("reply_queue", _queue_name, None)
        direct = options.take("direct_reply_to", parse_bool, False)
        persistent = options.take("persistent", parse_bool, False)
        if direct and (persistent or reply_queue):
            raise InvalidURLError(
                f"{url.redacted()}: direct_reply_to=true reads from RabbitMQ's "
                f"{DIRECT_REPLY_TO} pseudo queue, which keeps nothing: it cannot be combined "
                f"with persistent=true or a reply_queue; drop one of them"
            )
        queue_expires = options.take("queue_expires", parse_duration, expires)
        return cls(
            host=url.host or "localhost",
            port=port,
            username=urllib.parse.unquote(url.username) if url.username else "guest",
            password=urllib.parse.unquote(url.password) if url.password else "guest",
            virtual_host=vhost,
            ssl=tls,
            reply_queue=reply_queue,
            persistent=persistent,
            direct_reply_to=direct,
            prefetch=options.take("prefetch", _positive_int, 1000),
            heartbeat=options.take("heartbeat", lambda v: parse_duration(v) or 0.0, 0.0),
            connect_timeout=options.take(
                "connect_timeout", lambda v: parse_duration(v) or 5.0, 5.0
            ),
            retry_total=options.take("retry_total", _seconds(10.0), 10.0),
            max_buffered=max(1, options.take("max_buffered", _positive_int, 10_000)),
            store_timeout=options.take("store_timeout", _seconds(30.0), 30.0),
            queue_expires=queue_expires,
            expires=expires,
            clock=options.take("clock", _clock, time.time),
        )

    def ssl_option(self) -> bool | dict[str, Any]:
        """What kombu takes as ``ssl``: False, True (verify against the system CAs) or a dict."""
        if isinstance(self.ssl, dict):
            return self.ssl
        if self.ssl:
            return {"cert_reqs": ssl.CERT_REQUIRED}
        return False

    def reader_key(self) -> tuple[Any, ...]:
        """Clients of one process with equal keys share one reply queue and one consumer."""
        return (
            self.host,
            self.port,
            self.username,
            self.password,
            self.virtual_host,
            repr(self.ssl),
            self.reply_queue,
            self.persistent,
            self.direct_reply_to,
            self.prefetch,
            self.heartbeat,
            self.max_buffered,
            self.queue_expires,
        )
