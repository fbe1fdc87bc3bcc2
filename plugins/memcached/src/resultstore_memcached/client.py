"""Connections to one memcached or a ring of them, the expiry rule, and bounded retries.

Each server is a :class:`Node` with a small pool of pymemcache ``Client``
connections (thread-safe: a connection is used by one thread at a time). A
:class:`Ring` places keys on nodes by rendezvous (highest random weight)
hashing, the consistent hashing pymemcache's ``HashClient`` uses, over a tag
(a chord's keys share one), and takes a node out of the ring for
``dead_timeout`` seconds after ``retry_attempts`` connection errors in a row,
so that its keys move to the other nodes instead of failing. ``HashClient``
itself is not used: inside its retry window it answers ``False``/``None`` for a
failing node without raising, which would read as "key exists" to an ``add``
and as "missing" to an ``incr``, and its bookkeeping is not thread-safe.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs

# pymemcache ships no type information.
from pymemcache.client.base import Client  # type: ignore[import-untyped]
from pymemcache.exceptions import MemcacheUnexpectedCloseError  # type: ignore[import-untyped]
from resultstore import BackendUnavailableError, BackendURL, ConfigurationError, InvalidURLError
from resultstore.concepts.options import Options, parse_bool, parse_duration
from resultstore.plugin.retrying import time_left

from resultstore_memcached.keys import check_prefix

__all__ = [
    "FLAGS",
    "MAX_EXPTIME",
    "MAX_RELATIVE_EXPTIME",
    "RETRYABLE",
    "Foreign",
    "Node",
    "Ring",
    "Settings",
    "exptime",
    "nodes_of",
]

T = TypeVar("T")

#: memcached reads an expiry of more seconds than this as an absolute Unix time.
MAX_RELATIVE_EXPTIME = 30 * 24 * 3600
#: memcached parses the expiry as a signed 32-bit number (a Unix time in 2038).
MAX_EXPTIME = 2**31 - 1
#: the flags word of every value this plugin writes ("rs"); anything else is foreign.
FLAGS = 0x7273

#: errors after which a call is tried again: the server went away or timed out.
RETRYABLE: tuple[type[BaseException], ...] = (OSError, MemcacheUnexpectedCloseError)

_DEFAULT_PORT = 11211


def exptime(expires: float | None, now: Callable[[], float] = time.time) -> int:
    """The expiry to send for ``expires`` seconds: 0 keeps the key.

    memcached counts whole seconds on its own clock, so the key lives at
    least ``expires`` and at most one second more. Past 30 days the protocol
    reads the number as an absolute Unix time, so it is sent as one.
    """
    if expires is None:
        return 0
    seconds = math.ceil(expires) + 1
    if seconds <= MAX_RELATIVE_EXPTIME:
        return seconds
    return int(now()) + seconds


class Foreign:
    """A value whose flags say resultstore did not write it (or an older format)."""

    __slots__ = ("flags", "value")

    def __init__(self, flags: int, value: bytes) -> None:
        self.flags = flags
        self.value = value


class _Serde:
    """pymemcache serde: our bytes as they are, tagged with :data:`FLAGS`."""

    def serialize(self, key: Any, value: bytes) -> tuple[bytes, int]:
        return value, FLAGS

    def deserialize(self, key: Any, value: bytes, flags: int) -> bytes | Foreign:
        return value if flags == FLAGS else Foreign(flags, value)


_SERDE = _Serde()


def _positive(convert: Callable[[Any], T]) -> Callable[[Any], T]:
    def check(value: Any) -> T:
        number = convert(value)
        if not number > 0:  # type: ignore[operator]  # int or float, both ordered
            raise ValueError(f"expected a positive number, got {value!r}")
        return number

    return check


def _seconds(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds is None:
        raise ValueError("expected a positive number of seconds")
    return seconds


def _count(value: Any) -> int:
    number = int(str(value))
    if number < 0:
        raise ValueError(f"expected a whole number >= 0, got {value!r}")
    return number


@attrs.frozen
class Settings:
    """The options this plugin takes, with their defaults."""

    key_prefix: str = "resultstore:"
    #: seconds to open a connection.
    connect_timeout: float = 2.0
    #: seconds a request may wait for its reply.
    timeout: float = 5.0
    #: total seconds a call keeps retrying after connection errors.
    retry_total: float = 5.0
    #: connection errors in a row after which a ring node is taken out.
    retry_attempts: int = 2
    #: seconds a node that was taken out stays out before it is tried again.
    dead_timeout: float = 30.0
    #: idle connections kept per server.
    max_pool_size: int = 32
    #: keys per memcached ``get`` command when reading many.
    read_batch: int = 200
    #: TCP_NODELAY on each connection.
    no_delay: bool = True

    @classmethod
    def take_from(cls, options: Options) -> Settings:
        d = cls()
        return cls(
            key_prefix=options.take("key_prefix", check_prefix, d.key_prefix),
            connect_timeout=options.take("connect_timeout", _seconds, d.connect_timeout),
            timeout=options.take("timeout", _seconds, d.timeout),
            retry_total=options.take("retry_total", _seconds, d.retry_total),
            retry_attempts=options.take("retry_attempts", _count, d.retry_attempts),
            dead_timeout=options.take("dead_timeout", _seconds, d.dead_timeout),
            max_pool_size=options.take("max_pool_size", _positive(int), d.max_pool_size),
            read_batch=options.take("read_batch", _positive(int), d.read_batch),
            no_delay=options.take("no_delay", parse_bool, d.no_delay),
        )


def nodes_of(url: BackendURL) -> list[tuple[str, int] | str]:
    """The servers a URL names: ``(host, port)`` pairs, or one unix socket path."""
    if url.username or url.password:
        raise InvalidURLError(
            f"{url.redacted()}: memcached's text protocol has no user or password; "
            f"remove them from the URL (protect the servers by network instead)"
        )
    if url.scheme == "memcached+unix":
        if url.hosts or not url.path.strip("/"):
            raise InvalidURLError(
                f"{url.redacted()}: give the socket's path, as in "
                f"memcached+unix:///run/memcached/memcached.sock"
            )
        return [url.path]
    if not url.hosts:
        raise InvalidURLError(
            f"{url.redacted()}: name at least one server, as in memcached://127.0.0.1:11211/ "
            f"or memcached://h1:11211;h2:11211/ for a ring"
        )
    if url.path.strip("/"):
        raise InvalidURLError(
            f"{url.redacted()}: memcached has no databases, so the URL takes no path "
            f"({url.path!r}); use key_prefix to keep apps apart"
        )
    nodes: list[tuple[str, int] | str] = []
    for host, port in url.hosts:
        node = (host, port or _DEFAULT_PORT)
        if node in nodes:
            raise InvalidURLError(f"{url.redacted()} names {host}:{node[1]} twice")
        nodes.append(node)
    return nodes


def _name(spec: tuple[str, int] | str) -> str:
    return spec if isinstance(spec, str) else f"{spec[0]}:{spec[1]}"


class Node:
    """One memcached server and a pool of connections to it."""

    def __init__(self, spec: tuple[str, int] | str, settings: Settings) -> None:
        self.spec = spec
        self.name = _name(spec)
        self._settings = settings
        self._idle: list[Client] = []
        self._max_idle = settings.max_pool_size
        self._closed = False
        #: connection errors in a row (reset by any success).
        self.failures = 0
        #: round trips made (for tests and metrics; approximate across threads).
        self.calls = 0
        #: ``time.monotonic()`` until which the ring leaves this node out.
        self.dead_until = 0.0
        self._item_size_max: int | None = None
        # A call's first try runs before the retry sets a deadline: bound it by
        # retry_total when that is shorter than the connection's own timeouts.
        slowest = max(settings.timeout, settings.connect_timeout)
        self._first_try = settings.retry_total if settings.retry_total < slowest else None

    def __repr__(self) -> str:
        return f"<memcached node {self.name}>"

    def _connect(self) -> Client:
        s = self._settings
        return Client(
            self.spec,
            serde=_SERDE,
            connect_timeout=s.connect_timeout,
            timeout=s.timeout,
            no_delay=s.no_delay and not isinstance(self.spec, str),
            default_noreply=False,
        )

    def call(self, fn: Callable[[Client], T]) -> T:
        """``fn`` with a connection of the pool; a connection that failed is dropped."""
        if self._closed:
            raise BackendUnavailableError(
                f"this memcached backend (server {self.name}) was closed; connect() again to use it"
            )
        self.calls += 1
        try:
            client = self._idle.pop()
        except IndexError:
            client = self._connect()
        left = time_left()
        if left is None:
            left = self._first_try
        try:
            result = fn(client) if left is None else self._bounded(client, fn, left)
        except BaseException:
            client.close()
            raise
        if self.failures:
            self.failures = 0
        if len(self._idle) < self._max_idle and not self._closed:
            self._idle.append(client)
        else:
            client.close()
        return result

    def _bounded(self, client: Client, fn: Callable[[Client], T], left: float) -> T:
        """``fn`` with the connection's timeouts cut to the ``left`` seconds the caller
        (or the running retry) has, so that one try cannot outlast the bound."""
        s = self._settings
        client.connect_timeout = min(s.connect_timeout, left)
        client.timeout = min(s.timeout, left)
        if client.sock is not None:
            client.sock.settimeout(client.timeout)
        try:
            return fn(client)
        finally:
            client.connect_timeout, client.timeout = s.connect_timeout, s.timeout
            if client.sock is not None:
                client.sock.settimeout(s.timeout)

    def item_size_max(self) -> int | None:
        """The server's largest item in bytes (its ``-I``), asked once; None if unknown."""
        if self._item_size_max is None:
            try:
                stats = self.call(lambda c: c.stats("settings"))
            except Exception:
                return None
            value = stats.get(b"item_size_max")
            self._item_size_max = int(value) if value is not None else None
        return self._item_size_max

    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()


def _score(node: str, tag: str) -> int:
    digest = hashlib.blake2b(f"{node}-{tag}".encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big")


class Ring:
    """Places tags on nodes (rendezvous hashing) and takes failing nodes out for a while."""

    def __init__(self, specs: Sequence[tuple[str, int] | str], settings: Settings) -> None:
        if not specs:
            raise ConfigurationError("a memcached ring needs at least one server")
        self.nodes = [Node(spec, settings) for spec in specs]
        self.single = self.nodes[0] if len(self.nodes) == 1 else None
        self._settings = settings
        self._lock = threading.Lock()
        self._live = list(self.nodes)

    def __repr__(self) -> str:
        return f"<memcached ring {', '.join(n.name for n in self.nodes)}>"

    def pick(self, tag: str) -> Node:
        """The node that holds ``tag``: the live node with the highest score."""
        if self.single is not None:
            return self.single
        live = self._live
        if len(live) < len(self.nodes):
            live = self._revive()
        # With every node out, place keys as if all were up: the calls fail
        # and are retried rather than being refused outright.
        candidates = live or self.nodes
        return max(candidates, key=lambda node: _score(node.name, tag))

    def _revive(self) -> list[Node]:
        now = time.monotonic()
        with self._lock:
            if any(n.dead_until and n.dead_until <= now for n in self.nodes):
                for node in self.nodes:
                    if node.dead_until and node.dead_until <= now:
                        node.dead_until = 0.0
                        node.failures = 0
                self._live = [n for n in self.nodes if not n.dead_until]
            return self._live

    def failed(self, node: Node) -> None:
        """Count a connection error on ``node``; enough in a row take it out of the ring."""
        with self._lock:
            node.failures += 1
            if self.single is not None or node.dead_until:
                return
            if node.failures >= max(1, self._settings.retry_attempts):
                node.dead_until = time.monotonic() + self._settings.dead_timeout
                self._live = [n for n in self.nodes if not n.dead_until]

    def close(self) -> None:
        for node in self.nodes:
            node.close()
