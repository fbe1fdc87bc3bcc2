"""From a backend URL and options to a redis-py client, and its retry policy.

Schemes: ``redis://`` and ``rediss://`` (TLS), ``redis+unix:///path.sock``,
``redis+sentinel://h1:26379,h2:26379/0?master_name=mymaster`` and
``redis+cluster://h1:7000,h2:7001``. Everything here imports redis lazily
from the factory, never at discovery time.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import attrs
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.backoff
import redis.cluster
import redis.exceptions
import redis.retry
import redis.sentinel
from resultstore import BackendURL, ConfigurationError, InvalidURLError
from resultstore.concepts.options import Options, parse_bool, parse_duration
from resultstore.plugin.retrying import Retry, time_left

__all__ = ["RETRYABLE", "ClientSettings", "build_client", "build_retry"]

#: errors after which the same call is tried again (the server went away,
#: timed out, is loading, or is a replica that a failover demoted).
RETRYABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
)

_CERT_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


def _cert_reqs(value: object) -> str:
    text = str(value).strip().lower()
    if text not in _CERT_REQS:
        raise ValueError(f"expected one of {', '.join(_CERT_REQS)}")
    return text


def _positive_int(value: object) -> int:
    number = int(str(value))
    if number <= 0:
        raise ValueError("expected a positive integer")
    return number


@attrs.frozen
class ClientSettings:
    """The options this plugin takes, with their defaults."""

    key_prefix: str = "resultstore:"
    max_connections: int = 50
    socket_timeout: float | None = 10.0
    socket_connect_timeout: float | None = 5.0
    health_check_interval: float = 30.0
    #: total seconds a call keeps retrying after connection errors.
    retry_total: float = 20.0
    master_name: str | None = None
    sentinel_password: str | None = None
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_cert_reqs: str = "required"
    ssl_check_hostname: bool = True
    client_name: str | None = None
    #: database number where the URL path cannot say it (redis+unix).
    db: int = 0
    #: deliver the value an announcement carries without reading the store.
    #: Off by default: whoever may PUBLISH could answer waiters with a value
    #: that is not stored (Redis ACLs can grant publish without write).
    trust_announcements: bool = False

    @classmethod
    def take_from(cls, options: Options) -> ClientSettings:
        d = cls()
        return cls(
            key_prefix=options.take("key_prefix", str, d.key_prefix),
            max_connections=options.take("max_connections", _positive_int, d.max_connections),
            socket_timeout=options.take("socket_timeout", parse_duration, d.socket_timeout),
            socket_connect_timeout=options.take(
                "socket_connect_timeout", parse_duration, d.socket_connect_timeout
            ),
            health_check_interval=options.take(
                "health_check_interval", float, d.health_check_interval
            ),
            retry_total=options.take("retry_total", float, d.retry_total),
            master_name=options.take("master_name", str, d.master_name),
            sentinel_password=options.take("sentinel_password", str, d.sentinel_password),
            ssl_ca_certs=options.take("ssl_ca_certs", str, d.ssl_ca_certs),
            ssl_certfile=options.take("ssl_certfile", str, d.ssl_certfile),
            ssl_keyfile=options.take("ssl_keyfile", str, d.ssl_keyfile),
            ssl_cert_reqs=options.take("ssl_cert_reqs", _cert_reqs, d.ssl_cert_reqs),
            ssl_check_hostname=options.take("ssl_check_hostname", parse_bool, d.ssl_check_hostname),
            client_name=options.take("client_name", str, d.client_name),
            db=options.take("db", int, d.db),
            trust_announcements=options.take(
                "trust_announcements", parse_bool, d.trust_announcements
            ),
        )


class _BoundedConnect:
    """Opens a connection (TCP connect, TLS handshake, the first commands)
    within the time the call has left (:func:`resultstore.plugin.retrying.time_left`),
    or ``retry_total`` on a call's first try: a TLS hello that a plaintext port
    never answers, or a server that accepts but does not reply, must not
    outlast either. The connection then reads with its configured timeout."""

    socket_timeout: float | None
    socket_connect_timeout: float | None
    _sock: Any

    def __init__(self, *args: Any, retry_total: float, **kwargs: Any) -> None:
        self._retry_total = retry_total
        super().__init__(*args, **kwargs)

    def _bound(self) -> float:
        left = time_left()
        return self._retry_total if left is None else left

    def on_connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        timeout = self.socket_timeout
        bound = self._bound()
        if self._sock is not None and (timeout is None or bound < timeout):
            self._sock.settimeout(bound)
        try:
            super().on_connect_check_health(*args, **kwargs)  # type: ignore[misc]  # redis-py's
        finally:
            if self._sock is not None:
                self._sock.settimeout(timeout)

    def _connect(self) -> Any:
        bound = self._bound()
        timeout, connect_timeout = self.socket_timeout, self.socket_connect_timeout
        self.socket_timeout = bound if timeout is None else min(timeout, bound)
        self.socket_connect_timeout = (
            bound if connect_timeout is None else min(connect_timeout, bound)
        )
        try:
            sock = super()._connect()  # type: ignore[misc]  # redis-py's classes, below
        finally:
            self.socket_timeout, self.socket_connect_timeout = timeout, connect_timeout
        sock.settimeout(timeout)
        return sock


class _Connection(_BoundedConnect, redis.Connection):
    pass


class _SSLConnection(_BoundedConnect, redis.SSLConnection):
    pass


class _UnixConnection(_BoundedConnect, redis.UnixDomainSocketConnection):
    pass


def _db(url: BackendURL, settings: ClientSettings) -> int:
    path = url.path.strip("/")
    if not path or url.scheme == "redis+unix":
        return settings.db
    try:
        return int(path)
    except ValueError:
        raise InvalidURLError(
            f"{url}: the path must be a database number such as /0, got {url.path!r}"
        ) from None


def _sentinel_path(url: BackendURL, settings: ClientSettings) -> tuple[str, int]:
    """``/mymaster/0``, ``/mymaster`` or ``/0?master_name=mymaster``."""
    parts = [p for p in url.path.split("/") if p]
    master, db = settings.master_name, settings.db
    if parts and not parts[-1].isdigit():
        master = parts.pop()
    elif len(parts) == 2:
        master = parts[0]
    if parts and parts[-1].isdigit():
        db = int(parts[-1])
    if not master:
        raise ConfigurationError(
            f"{url}: redis+sentinel needs the master's name, as in "
            f"redis+sentinel://h1:26379,h2:26379/mymaster/0 or ?master_name=mymaster"
        )
    return master, db


def _common(url: BackendURL, settings: ClientSettings, tls: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "username": url.username,
        "password": url.password,
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_connect_timeout,
        "health_check_interval": settings.health_check_interval,
        "client_name": settings.client_name,
    }
    if tls:
        kwargs.update(
            ssl=True,
            ssl_ca_certs=settings.ssl_ca_certs,
            ssl_certfile=settings.ssl_certfile,
            ssl_keyfile=settings.ssl_keyfile,
            ssl_cert_reqs=settings.ssl_cert_reqs,
            ssl_check_hostname=settings.ssl_check_hostname and settings.ssl_cert_reqs != "none",
        )
    return kwargs


def build_client(
    url: BackendURL, settings: ClientSettings, *, use_asyncio: bool = False
) -> tuple[Any, bool]:
    """A redis-py client for ``url`` (``redis.asyncio``'s when ``asyncio``) and
    whether it is a cluster client."""
    lib: Any = redis.asyncio if use_asyncio else redis
    scheme = url.scheme
    tls = scheme.startswith("rediss") or scheme.endswith("+tls")
    if scheme in ("redis", "rediss"):
        if len(url.hosts) > 1:
            raise InvalidURLError(
                f"{url} names several hosts; use redis+sentinel:// or redis+cluster:// for those"
            )
        kwargs = _common(url, settings, tls)
        kwargs.pop("ssl", None)  # the connection class says it already
        # One layer of retries, ours: bounded by total time, with full jitter.
        kwargs["retry"] = lib.retry.Retry(redis.backoff.NoBackoff(), 0)
        if use_asyncio:
            # The asyncio twin's retries cancel a try that outlasts the bound.
            connection_class = lib.SSLConnection if tls else lib.Connection
        else:
            connection_class = _SSLConnection if tls else _Connection
            kwargs["retry_total"] = settings.retry_total
        pool = lib.ConnectionPool(
            connection_class=connection_class,
            host=url.host or "localhost",
            port=url.port or 6379,
            db=_db(url, settings),
            max_connections=settings.max_connections,
            **kwargs,
        )
        return lib.Redis(connection_pool=pool), False
    if scheme == "redis+unix":
        if not url.path:
            raise InvalidURLError(
                f"{url}: give the socket path, as in redis+unix:///run/redis.sock"
            )
        kwargs = _common(url, settings, False)
        kwargs.pop("socket_connect_timeout")
        kwargs["retry"] = lib.retry.Retry(redis.backoff.NoBackoff(), 0)
        if not use_asyncio:
            kwargs["retry_total"] = settings.retry_total
        pool = lib.ConnectionPool(
            connection_class=lib.UnixDomainSocketConnection if use_asyncio else _UnixConnection,
            path=url.path,
            db=_db(url, settings),
            max_connections=settings.max_connections,
            **kwargs,
        )
        return lib.Redis(connection_pool=pool), False
    if scheme in ("redis+sentinel", "rediss+sentinel"):
        if not url.hosts:
            raise InvalidURLError(
                f"{url}: list the sentinels, as in redis+sentinel://h1:26379,h2:26379/0"
            )
        master_name, db = _sentinel_path(url, settings)
        sentinel_kwargs: dict[str, Any] = {
            "socket_timeout": settings.socket_timeout,
            "socket_connect_timeout": settings.socket_connect_timeout,
        }
        if settings.sentinel_password:
            sentinel_kwargs["password"] = settings.sentinel_password
        sentinel = lib.sentinel.Sentinel(
            [(host, port or 26379) for host, port in url.hosts],
            sentinel_kwargs=sentinel_kwargs,
            **_common(url, settings, tls),
        )
        client = sentinel.master_for(master_name, db=db, max_connections=settings.max_connections)
        return client, False
    if scheme in ("redis+cluster", "rediss+cluster"):
        if not url.hosts:
            raise InvalidURLError(
                f"{url}: list one or more cluster nodes, as in redis+cluster://h1:7000"
            )
        kwargs = _common(url, settings, tls)
        kwargs.pop("health_check_interval")
        client = lib.cluster.RedisCluster(
            startup_nodes=[lib.cluster.ClusterNode(host, port or 6379) for host, port in url.hosts],
            max_connections=settings.max_connections,
            **kwargs,
        )
        return client, True
    raise InvalidURLError(f"the redis plugin does not serve the scheme {scheme!r}")


def _refused_credentials(server: str, exc: BaseException) -> BaseException | None:
    """A clear error for a refused password, or None for the usual rule."""
    if isinstance(exc, redis.exceptions.AuthenticationError) or (
        isinstance(exc, redis.exceptions.ResponseError)
        and ("NOAUTH" in str(exc) or "WRONGPASS" in str(exc))
    ):
        return ConfigurationError(
            f"Redis at {server} refused the credentials ({exc}); put the right password "
            f"in the URL as redis://:PASSWORD@host:port/db (or USER:PASSWORD@ for ACL users)"
        )
    return None


def build_retry(url: BackendURL, settings: ClientSettings) -> Retry:
    """The retry policy of every call: RETRYABLE errors, within retry_total and
    the caller's deadline (:class:`resultstore.Retry`)."""
    server = url.redacted()
    return Retry(
        "Redis",
        server=server,
        total=settings.retry_total,
        retry_on=RETRYABLE,
        translate=functools.partial(_refused_credentials, server),
        secret=url.password,
    )
