"""From a backend URL and options to a pymongo client, and bounded retries.

``mongodb://`` and ``mongodb+srv://`` URLs take every option pymongo takes
(``replicaSet``, ``authSource``, ``tls``, ``tlsCAFile``, timeouts,
``maxPoolSize`` ...), in the query string or as keywords to ``connect()``,
next to this plugin's own options (``database`` and the collection names).
pymongo itself is imported here, never by the entry-point module.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import attrs
import pymongo
import pymongo.common
import pymongo.errors
import pymongo.uri_parser
from resultstore import (
    BackendConfig,
    BackendURL,
    ConfigurationError,
    InvalidURLError,
    UnknownOptionError,
)
from resultstore.concepts.options import parse_bool
from resultstore.plugin.retrying import Retry, scrub, time_left

__all__ = [
    "DEFAULT_DATABASE",
    "DEFAULT_SOCKET_TIMEOUT_MS",
    "Clock",
    "MongoRetry",
    "Settings",
    "build_client",
    "scrub",
    "server_identity",
]

T = TypeVar("T")
Clock = Callable[[], float]

#: the database when neither the URL path nor the ``database`` option names one.
DEFAULT_DATABASE = "resultstore"
#: how long a call waits for a server's answer unless socketTimeoutMS says otherwise.
DEFAULT_SOCKET_TIMEOUT_MS = 60_000

#: options the backend sets on the client itself: results depend on them.
_RESERVED = frozenset(
    {"document_class", "tz_aware", "tzinfo", "type_registry", "datetime_conversion"}
)

#: server error codes after which the same call is tried again (a primary
#: stepping down or shutting down, an interrupted or timed-out operation).
_RETRY_CODES = frozenset({6, 7, 50, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})
#: AuthenticationFailed, Unauthorized.
_AUTH_FAILED, _UNAUTHORIZED = 18, 13


def _positive_float(value: object) -> float:
    number = float(str(value))
    if not number > 0:
        raise ValueError("expected a positive number of seconds")
    return number


def _positive_int(value: object) -> int:
    number = int(str(value))
    if number <= 0:
        raise ValueError("expected a positive integer")
    return number


def _callable(value: Any) -> Clock:
    if not callable(value):
        raise ValueError("clock must be a callable returning seconds (like time.time)")
    clock: Clock = value
    return clock


_BAD_DATABASE_CHARS = frozenset('/\\. "$*<>:|?\0')


def _database(value: object) -> str:
    text = str(value)
    if not text or _BAD_DATABASE_CHARS & set(text):
        raise ValueError(f'{text!r} is not a MongoDB database name (no spaces or /\\."$*<>:|?)')
    return text


def _collection(value: object) -> str:
    text = str(value)
    if not text or "$" in text or "\0" in text or text.startswith("system."):
        raise ValueError(f"{text!r} is not a MongoDB collection name (no '$', not system.*)")
    return text


def _auto_bool(value: object) -> bool | None:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    return parse_bool(value)


def _base_uri(url: BackendURL) -> str:
    """The URL as pymongo reads it: everything up to the query string."""
    return url.raw.split("?", 1)[0].split("#", 1)[0]


def _validate_uri(url: BackendURL, base: str) -> str | None:
    """Check the hosts, credentials and database of ``base``; return the database named."""
    srv = url.scheme == "mongodb+srv"
    # parse_uri resolves +srv names through DNS; the shape is checked without that.
    probe = "mongodb://" + base.split("://", 1)[1] if srv else base
    try:
        parsed = pymongo.uri_parser.parse_uri(probe)
    except (pymongo.errors.PyMongoError, ValueError) as exc:
        raise InvalidURLError(
            f"{url.redacted()} is not a usable MongoDB URL: {scrub(str(exc), url.password)}; "
            f"the form is mongodb://[USER:PASSWORD@]HOST[:PORT][,HOST...]/[DATABASE][?OPTIONS] "
            f"(percent-encode ':', '/', '?', '#', '@' in the user and password)"
        ) from None
    if srv and (len(url.hosts) != 1 or url.port is not None):
        raise InvalidURLError(
            f"{url.redacted()}: a mongodb+srv:// URL names exactly one host and no port "
            f"(the DNS SRV record lists the servers), as in mongodb+srv://cluster0.example.net/"
        )
    database: str | None = parsed.get("database")
    return database


@attrs.frozen
class Settings:
    """What this plugin takes from a backend's configuration."""

    #: the URL as pymongo reads it (with the password: never print it).
    uri: str = attrs.field(repr=False)
    database: str = DEFAULT_DATABASE
    taskmeta_collection: str = "resultstore_taskmeta"
    groupmeta_collection: str = "resultstore_groupmeta"
    chordmeta_collection: str = "resultstore_chordmeta"
    #: total seconds a call keeps trying after connection errors.
    retry_total: float = 20.0
    #: create the indexes (state, date_done, group_id, TTL) on first use.
    create_indexes: bool = True
    #: wait through change streams: None = when the server has them.
    change_streams: bool | None = None
    #: ids per ``$in`` query of a bulk read. Fewer round trips with more; some
    #: servers (SecantusDB) slow down more than linearly past ~100.
    read_batch: int = 100
    clock: Clock = time.time
    #: every other option, for MongoClient (pymongo validates them).
    client_options: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @classmethod
    def take_from(cls, config: BackendConfig) -> Settings:
        """Take this plugin's options, then every remaining one for pymongo, and check them."""
        url, options = config.url, config.options
        base = _base_uri(url)
        path_database = _validate_uri(url, base)
        d = cls(uri=base)
        settings = cls(
            uri=base,
            database=options.take("database", _database, path_database or d.database),
            taskmeta_collection=options.take(
                "taskmeta_collection", _collection, d.taskmeta_collection
            ),
            groupmeta_collection=options.take(
                "groupmeta_collection", _collection, d.groupmeta_collection
            ),
            chordmeta_collection=options.take(
                "chordmeta_collection", _collection, d.chordmeta_collection
            ),
            retry_total=options.take("retry_total", _positive_float, d.retry_total),
            create_indexes=options.take("create_indexes", parse_bool, d.create_indexes),
            change_streams=options.take("change_streams", _auto_bool, d.change_streams),
            read_batch=options.take("read_batch", _positive_int, d.read_batch),
            clock=options.take("clock", _callable, d.clock),
        )
        ours = [
            "database",
            "taskmeta_collection",
            "groupmeta_collection",
            "chordmeta_collection",
            "retry_total",
            "create_indexes",
            "change_streams",
            "clock",
            "read_batch",
        ]
        client_options: dict[str, Any] = {}
        for name in list(options.remaining()):
            value = options.take(name, _same, None)
            _check_client_option(url, name, value, ours)
            client_options[name] = value
        return attrs.evolve(settings, client_options=client_options)

    @property
    def server(self) -> str:
        """The hosts, for messages (never the credentials)."""
        netloc = self.uri.split("://", 1)[1].split("/", 1)[0]
        return netloc.rpartition("@")[2] or "localhost"


def _same(value: Any) -> Any:
    return value


def _check_client_option(url: BackendURL, name: str, value: Any, ours: list[str]) -> None:
    source = f"{url.scheme}:// ({url.redacted()})"
    if name.lower() in _RESERVED:
        raise ConfigurationError(
            f"option {name} for {source} is set by resultstore-mongodb itself "
            f"(results are read as plain dicts with UTC datetimes); remove it"
        )
    shown = "***" if "password" in name.lower() else repr(value)
    try:
        pymongo.common.validate(name, value)
    except pymongo.errors.ConfigurationError as exc:
        if "unknown option" in str(exc).lower():
            raise UnknownOptionError(
                f"unknown option(s) {name} for {source}; accepted: {', '.join(sorted(ours))}, "
                f"the common ones (codec, expires, ...) and every MongoClient / URI option "
                f"(replicaSet, authSource, tls, tlsCAFile, serverSelectionTimeoutMS, "
                f"maxPoolSize...)"
            ) from None
        raise ConfigurationError(
            f"option {name}={shown} for {source}: {scrub(str(exc), url.password)}"
        ) from None
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"option {name}={shown} for {source}: {scrub(str(exc), url.password)}"
        ) from None


def server_identity(client: Any) -> frozenset[tuple[Any, Any]]:
    """The writable servers and the ids of their processes, as the client last saw
    them (no I/O). It changes when a server restarts or another one takes over;
    it is empty while the client knows no writable server."""
    return frozenset(
        (description.address, (description.topology_version or {}).get("processId"))
        for description in client.topology_description.server_descriptions().values()
        if description.is_writable
    )


def build_client(settings: Settings, *, use_asyncio: bool = False) -> Any:
    """A MongoClient (AsyncMongoClient with ``use_asyncio``) for ``settings``."""
    given = {name.lower() for name in settings.client_options}
    kwargs: dict[str, Any] = {"appname": "resultstore-mongodb"}
    # A call's first try is bounded by these (the retries by pymongo.timeout):
    # waiting for a server no longer than retry_total, and for an answer no
    # longer than a stuck server deserves (pymongo waits forever by default).
    if "serverselectiontimeoutms" not in given:
        kwargs["serverSelectionTimeoutMS"] = max(1, int(settings.retry_total * 1000))
    if "sockettimeoutms" not in given:
        kwargs["socketTimeoutMS"] = DEFAULT_SOCKET_TIMEOUT_MS
    kwargs.update(settings.client_options)
    kwargs.update(document_class=dict, tz_aware=True, tzinfo=dt.UTC)
    factory: Any = pymongo.AsyncMongoClient if use_asyncio else pymongo.MongoClient
    try:
        return factory(settings.uri, **kwargs)
    except pymongo.errors.PyMongoError as exc:
        secret = _password(settings.uri)
        raise ConfigurationError(
            f"pymongo refused the configuration of {settings.server}: {scrub(str(exc), secret)}"
        ) from None


def _password(uri: str) -> str | None:
    userinfo = uri.split("://", 1)[1].split("/", 1)[0].rpartition("@")[0]
    if ":" not in userinfo:
        return None
    return urllib.parse.unquote_plus(userinfo.split(":", 1)[1])


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, pymongo.errors.ConnectionFailure):
        return True  # AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError, NotPrimary
    if isinstance(exc, pymongo.errors.PyMongoError) and exc.has_error_label("RetryableWriteError"):
        return True
    return isinstance(exc, pymongo.errors.OperationFailure) and exc.code in _RETRY_CODES


def _refusal(server: str, secret: str | None, exc: BaseException) -> BaseException | None:
    """A clear error for refused credentials or rights, or None for the usual rule."""
    if isinstance(exc, pymongo.errors.OperationFailure) and exc.code == _AUTH_FAILED:
        return ConfigurationError(
            f"MongoDB at {server} refused the credentials ({scrub(str(exc), secret)}); "
            f"put the right user and password in the URL as "
            f"mongodb://USER:PASSWORD@host/database, with authSource=DB when the user is "
            f"defined in another database than the URL's"
        )
    if isinstance(exc, pymongo.errors.OperationFailure) and exc.code == _UNAUTHORIZED:
        return ConfigurationError(
            f"MongoDB at {server} did not allow an operation ({scrub(str(exc), secret)}); "
            f"grant the user readWrite on the database "
            f"(and createIndex, or pass create_indexes=false once the indexes exist)"
        )
    if isinstance(exc, pymongo.errors.ConfigurationError):
        return ConfigurationError(
            f"MongoDB client configuration for {server}: {scrub(str(exc), secret)}"
        )
    return None


def _bounded(call: Callable[[], T]) -> T:
    # Under pymongo.timeout() only when something bounds the call: it costs a
    # few percent of every call, and a first try without a caller's deadline
    # is bounded by the client's own timeouts (defaulted from retry_total).
    left = time_left()
    if left is None:
        return call()
    with pymongo.timeout(left):
        return call()


async def _abounded(call: Callable[[], Awaitable[T]]) -> T:
    left = time_left()
    if left is None:
        return await call()
    with pymongo.timeout(left):
        return await call()


class MongoRetry(Retry):
    """:class:`resultstore.Retry` for pymongo: transient errors are tried again
    (pymongo retries a retryable read or write once by itself; this covers a
    restarting or standalone server), and every bounded try runs under
    ``pymongo.timeout()`` with the time left, so server selection and sockets
    never wait past retry_total or the caller's deadline."""

    def __init__(self, server: str, total: float, secret: str | None) -> None:
        super().__init__(
            "MongoDB",
            server=server,
            total=total,
            retry_on=_retryable,
            translate=functools.partial(_refusal, server, secret),
            secret=secret,
        )

    def __call__(self, call: Callable[[], T]) -> T:
        return super().__call__(functools.partial(_bounded, call))

    async def run_async(self, call: Callable[[], Awaitable[T]]) -> T:
        return await super().run_async(functools.partial(_abounded, call))
