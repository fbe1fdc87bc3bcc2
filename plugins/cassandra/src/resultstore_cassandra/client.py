"""From a ``cassandra://`` URL and options to a driver ``Cluster``, and bounded retries.

The URL is ``cassandra://[USER:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/[KEYSPACE]?OPTIONS``;
the options are listed in :class:`Settings` and in docs/backends/cassandra.md.
The ``cassandra-driver`` package is imported here, never by the entry-point module.
"""

from __future__ import annotations

import math
import re
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
from resultstore import (
    BackendConfig,
    BackendUnavailableError,
    ConfigurationError,
    InvalidURLError,
    Retry,
)
from resultstore.concepts.options import parse_bool
from resultstore.concepts.urls import BackendURL, redact

from resultstore_cassandra._driver import (
    EXEC_PROFILE_DEFAULT,
    AuthenticationFailed,
    Cluster,
    ConnectionException,
    ConsistencyLevel,
    CoordinationFailure,
    DCAwareRoundRobinPolicy,
    DefaultEndPoint,
    ErrorMessage,
    ExecutionProfile,
    ExponentialReconnectionPolicy,
    InvalidRequest,
    IsBootstrappingErrorMessage,
    NoHostAvailable,
    OperationTimedOut,
    OverloadedErrorMessage,
    PlainTextAuthProvider,
    ReadTimeout,
    RetryPolicy,
    ServerError,
    TokenAwarePolicy,
    TruncateError,
    Unauthorized,
    Unavailable,
    WriteTimeout,
    dict_factory,
    tuple_factory,
)

__all__ = [
    "DEFAULT_KEYSPACE",
    "DEFAULT_PORT",
    "LWT_PROFILE",
    "MAX_TTL",
    "Clock",
    "Retrier",
    "Settings",
    "build_cluster",
    "scrub",
    "transient",
]

T = TypeVar("T")
Clock = Callable[[], float]

DEFAULT_KEYSPACE = "resultstore"
DEFAULT_PORT = 9042
#: the execution profile whose rows are dicts (lightweight-transaction replies
#: name their columns, which differ between applied and refused).
LWT_PROFILE = "resultstore-lwt"
#: Cassandra refuses a TTL over 20 years.
MAX_TTL = 630_720_000

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
_SERIAL = frozenset({"SERIAL", "LOCAL_SERIAL"})
_NOT_FOR_WRITES = frozenset({"SERIAL", "LOCAL_SERIAL"})


def _name(value: object) -> str:
    text = str(value)
    if not _NAME.match(text):
        raise ValueError(
            f"{text!r} is not a usable Cassandra name (a letter, then letters, digits or "
            f"'_', at most 48 characters)"
        )
    return text


def _consistency(value: object) -> int:
    name = str(value).strip().upper()
    level = ConsistencyLevel.name_to_value.get(name)
    if level is None:
        raise ValueError(
            f"{value!r} is not a consistency level; use one of "
            f"{', '.join(sorted(ConsistencyLevel.name_to_value))}"
        )
    return int(level)


def _serial(value: object) -> int:
    name = str(value).strip().upper()
    if name not in _SERIAL:
        raise ValueError(f"{value!r} is not a serial consistency level; use LOCAL_SERIAL or SERIAL")
    return int(ConsistencyLevel.name_to_value[name])


def _positive_float(value: object) -> float:
    number = float(str(value))
    if not number > 0 or not math.isfinite(number):
        raise ValueError("expected a positive number of seconds")
    return number


def _positive_int(value: object) -> int:
    number = int(str(value))
    if number <= 0:
        raise ValueError("expected a positive integer")
    return number


def _protocol(value: object) -> int:
    number = int(str(value))
    if number not in (3, 4, 5, 65, 66):
        raise ValueError("expected a native protocol version: 3, 4 or 5 (DSE: 65, 66)")
    return number


def _file(value: object) -> str:
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    return str(path)


def _callable(value: Any) -> Clock:
    if not callable(value):
        raise ValueError("clock must be a callable returning seconds (like time.time)")
    clock: Clock = value
    return clock


def parse_replication(value: object) -> dict[str, Any]:
    """``DC:RF[,DC:RF...]`` (NetworkTopologyStrategy) or ``SimpleStrategy:RF``."""
    text = str(value).strip()
    items = [item.strip() for item in text.split(",") if item.strip()]
    pairs: list[tuple[str, int]] = []
    for item in items:
        name, sep, count = item.rpartition(":")
        if not sep or not name or not count.isdigit() or int(count) < 1:
            raise ValueError(
                f"{text!r} is not a replication; write DATACENTER:FACTOR[,DATACENTER:FACTOR...] "
                f"(NetworkTopologyStrategy, e.g. dc1:3,dc2:3) or SimpleStrategy:FACTOR "
                f"(one datacenter, development only)"
            )
        pairs.append((name, int(count)))
    if not pairs:
        raise ValueError("replication is empty; write DATACENTER:FACTOR, e.g. dc1:3")
    if pairs[0][0].lower() in ("simplestrategy", "simple"):
        if len(pairs) != 1:
            raise ValueError("SimpleStrategy takes one factor: SimpleStrategy:3")
        return {"class": "SimpleStrategy", "replication_factor": pairs[0][1]}
    replication: dict[str, Any] = {"class": "NetworkTopologyStrategy"}
    for name, factor in pairs:
        replication[name] = factor
    return replication


def scrub(text: str, secret: str | None) -> str:
    """``text`` without the password, in any spelling a client library may echo."""
    if secret:
        for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}:
            text = text.replace(form, "***")
    return redact(text)


@attrs.frozen
class Settings:
    """What the backend takes from its URL and options (see docs/backends/cassandra.md)."""

    #: (host, port) of every contact point; empty with a secure connect bundle.
    contact_points: tuple[tuple[str, int], ...] = ()
    keyspace: str = DEFAULT_KEYSPACE
    taskmeta_table: str = "resultstore_taskmeta"
    groupmeta_table: str = "resultstore_groupmeta"
    chordmeta_table: str = "resultstore_chordmeta"
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    read_consistency: int = ConsistencyLevel.LOCAL_QUORUM
    write_consistency: int = ConsistencyLevel.LOCAL_QUORUM
    serial_consistency: int = ConsistencyLevel.LOCAL_SERIAL
    local_dc: str | None = None
    protocol_version: int | None = None
    connect_timeout: float = 5.0
    request_timeout: float = 10.0
    tls: bool = False
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify: bool = True
    secure_connect_bundle: str | None = None
    create_tables: bool = True
    create_keyspace: bool = False
    replication: Mapping[str, Any] | None = None
    #: total seconds a call keeps trying after the driver gave up.
    retry_total: float = 20.0
    #: requests in flight at once for bulk reads and batch stores.
    concurrency: int = 64
    #: ids per query of a bulk read: 1 sends each to a replica of its own
    #: (token-aware); more means fewer requests, each fanned out by its coordinator.
    read_batch: int = 10
    clock: Clock = time.time

    @classmethod
    def take_from(cls, config: BackendConfig) -> Settings:
        url, options = config.url, config.options
        d = cls()
        path_keyspace = url.path.strip("/") or None
        if path_keyspace is not None and "/" in path_keyspace:
            raise InvalidURLError(
                f"{url.redacted()}: the path names one keyspace, as in "
                f"cassandra://host1,host2/my_keyspace"
            )
        keyspace = options.take("keyspace", _name, path_keyspace or d.keyspace)
        if path_keyspace is not None:
            try:
                _name(path_keyspace)
            except ValueError as exc:
                raise InvalidURLError(f"{url.redacted()}: {exc}") from None
        bundle = options.take("secure_connect_bundle", _file, None)
        settings = cls(
            contact_points=_contact_points(url, bundle),
            keyspace=keyspace,
            taskmeta_table=options.take("taskmeta_table", _name, d.taskmeta_table),
            groupmeta_table=options.take("groupmeta_table", _name, d.groupmeta_table),
            chordmeta_table=options.take("chordmeta_table", _name, d.chordmeta_table),
            username=url.username,
            password=url.password,
            read_consistency=options.take("read_consistency", _consistency, d.read_consistency),
            write_consistency=options.take("write_consistency", _consistency, d.write_consistency),
            serial_consistency=options.take("serial_consistency", _serial, d.serial_consistency),
            local_dc=options.take("local_dc", str, None) or None,
            protocol_version=options.take("protocol_version", _protocol, None),
            connect_timeout=options.take("connect_timeout", _positive_float, d.connect_timeout),
            request_timeout=options.take("request_timeout", _positive_float, d.request_timeout),
            tls=options.take("tls", parse_bool, d.tls),
            tls_ca_file=options.take("tls_ca_file", _file, None),
            tls_cert_file=options.take("tls_cert_file", _file, None),
            tls_key_file=options.take("tls_key_file", _file, None),
            tls_verify=options.take("tls_verify", parse_bool, d.tls_verify),
            secure_connect_bundle=bundle,
            create_tables=options.take("create_tables", parse_bool, d.create_tables),
            create_keyspace=options.take("create_keyspace", parse_bool, d.create_keyspace),
            replication=options.take("replication", parse_replication, None),
            retry_total=options.take("retry_total", _positive_float, d.retry_total),
            concurrency=options.take("concurrency", _positive_int, d.concurrency),
            read_batch=options.take("read_batch", _positive_int, d.read_batch),
            clock=options.take("clock", _callable, d.clock),
        )
        settings.check(url)
        return settings

    def check(self, url: BackendURL) -> None:
        """Refuse combinations that cannot work, saying how to fix them."""
        where = url.redacted()
        if ConsistencyLevel.value_to_name[self.write_consistency] in _NOT_FOR_WRITES:
            raise ConfigurationError(
                f"write_consistency for {where} cannot be SERIAL or LOCAL_SERIAL (that is "
                f"serial_consistency); use LOCAL_QUORUM or QUORUM"
            )
        if self.create_keyspace and self.replication is None:
            raise ConfigurationError(
                f"create_keyspace=true for {where} needs replication=DATACENTER:FACTOR (e.g. "
                f"replication=dc1:3); resultstore never picks a replication for you"
            )
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ConfigurationError(
                f"{where}: a client certificate needs both tls_cert_file and tls_key_file"
            )
        if self.secure_connect_bundle is not None and (self.tls or self.tls_ca_file):
            raise ConfigurationError(
                f"{where}: a secure connect bundle brings its own TLS settings; drop the tls "
                f"options"
            )

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.tls_ca_file is not None or self.tls_cert_file is not None

    @property
    def server(self) -> str:
        """The contact points, for messages (never the credentials)."""
        if self.secure_connect_bundle is not None:
            return f"Astra (secure connect bundle {Path(self.secure_connect_bundle).name})"
        return ",".join(f"{host}:{port}" for host, port in self.contact_points)

    def table(self, name: str) -> str:
        return f"{self.keyspace}.{name}"


def _contact_points(url: BackendURL, bundle: str | None) -> tuple[tuple[str, int], ...]:
    if bundle is not None:
        if url.hosts:
            raise InvalidURLError(
                f"{url.redacted()}: with secure_connect_bundle the bundle names the servers; "
                f"leave the hosts out: cassandra://CLIENT_ID:SECRET@/keyspace"
                f"?secure_connect_bundle=/path/secure-connect.zip"
            )
        return ()
    if not url.hosts:
        raise InvalidURLError(
            f"{url.redacted()} names no host; write cassandra://HOST[:PORT][,HOST...]/KEYSPACE, "
            f"e.g. cassandra://10.0.0.1,10.0.0.2/results"
        )
    return tuple((host, port or DEFAULT_PORT) for host, port in url.hosts)


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.tls_ca_file)
    if not settings.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    return context


def build_cluster(settings: Settings) -> Cluster:
    """A driver Cluster for ``settings`` (not yet connected)."""
    balancing = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.local_dc))
    common: dict[str, Any] = {
        "load_balancing_policy": balancing,
        # The driver's own policy: a read timeout once when enough replicas
        # answered, an unavailable coordinator once on the next host. Past it,
        # Retrier tries again until retry_total.
        "retry_policy": RetryPolicy(),
        "request_timeout": settings.request_timeout,
        "consistency_level": settings.read_consistency,
        "serial_consistency_level": settings.serial_consistency,
    }
    profiles = {
        EXEC_PROFILE_DEFAULT: ExecutionProfile(row_factory=tuple_factory, **common),
        LWT_PROFILE: ExecutionProfile(row_factory=dict_factory, **common),
    }
    kwargs: dict[str, Any] = {
        "execution_profiles": profiles,
        "connect_timeout": settings.connect_timeout,
        # Back soon after a node restarts (the driver's default waits up to 10 minutes).
        "reconnection_policy": ExponentialReconnectionPolicy(0.2, 10.0),
        "compression": False,
    }
    if settings.username is not None:
        kwargs["auth_provider"] = PlainTextAuthProvider(settings.username, settings.password or "")
    if settings.protocol_version is not None:
        kwargs["protocol_version"] = settings.protocol_version
    if settings.secure_connect_bundle is not None:
        kwargs["cloud"] = {"secure_connect_bundle": settings.secure_connect_bundle}
    else:
        ports = {port for _, port in settings.contact_points}
        if len(ports) == 1:
            kwargs["contact_points"] = [host for host, _ in settings.contact_points]
            kwargs["port"] = ports.pop()
        else:
            kwargs["contact_points"] = [
                DefaultEndPoint(host, port) for host, port in settings.contact_points
            ]
        if settings.uses_tls:
            kwargs["ssl_context"] = _ssl_context(settings)
    try:
        return Cluster(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"cassandra-driver refused the configuration of {settings.server}: "
            f"{scrub(str(exc), settings.password)}"
        ) from None


#: errors after which the same call is tried again.
_TRANSIENT: tuple[type[BaseException], ...] = (
    NoHostAvailable,
    OperationTimedOut,
    Unavailable,
    ReadTimeout,
    WriteTimeout,
    CoordinationFailure,
    ConnectionException,
    OverloadedErrorMessage,
    IsBootstrappingErrorMessage,
    ServerError,
    TruncateError,
    OSError,
)


#: the server's CAS_WRITE_UNKNOWN error (protocol v5): a Paxos proposal reached fewer
#: replicas than a quorum, so it may or may not take effect. The driver has no class for it.
_CAS_WRITE_UNKNOWN = 0x1700


def transient(exc: BaseException) -> bool:
    """Whether the same call may be tried again (the backend's writes are safe to repeat:
    plain ones are idempotent, conditional ones recognise their own writer token)."""
    if isinstance(exc, _TRANSIENT):
        return True
    return isinstance(exc, ErrorMessage) and getattr(exc, "code", None) == _CAS_WRITE_UNKNOWN


def _auth_failure(exc: BaseException) -> bool:
    if isinstance(exc, AuthenticationFailed):
        return True
    if isinstance(exc, NoHostAvailable):
        errors = list(exc.errors.values())
        return bool(errors) and all(isinstance(e, AuthenticationFailed) for e in errors)
    return False


class Retrier:
    """Runs a call again after transient errors, bounded by ``retry_total`` and the
    caller's deadline (:class:`resultstore.Retry`), and refuses calls once closed.

    The driver's retry policy runs first, inside each call; this adds
    exponential backoff with full jitter on top, and ends with a
    :class:`BackendUnavailableError` that names the contact points and never
    the password. Refused credentials and missing rights become a
    :class:`ConfigurationError` at once.
    """

    def __init__(self, settings: Settings, total: float | None = None) -> None:
        self.server = settings.server
        self.secret = settings.password
        self.username = settings.username
        self.retry = Retry(
            "Cassandra",
            server=settings.server,
            total=settings.retry_total if total is None else total,
            retry_on=transient,
            translate=self.translate,
            secret=settings.password,
        )
        #: set by the backend's close(): every later call fails at once.
        self.closed = False

    @property
    def retries(self) -> int:
        """How many times a call was tried again (for tests and metrics)."""
        return self.retry.retries

    def detail(self, exc: BaseException) -> str:
        text = scrub(f"{type(exc).__name__}: {exc}", self.secret)
        return text if len(text) <= 300 else text[:300] + "..."

    def error(self, exc: BaseException) -> BaseException | None:
        """The error to raise instead of ``exc``, ``exc`` itself, or None to retry."""
        final = self.translate(exc)
        if final is not None:
            return final
        return None if transient(exc) else exc

    def translate(self, exc: BaseException) -> BaseException | None:
        """The clear error for ``exc`` when it is not worth a retry, else None."""
        if _auth_failure(exc):
            return ConfigurationError(
                f"Cassandra at {self.server} refused the credentials of user "
                f"{self.username!r}; put the right user and password in the URL as "
                f"cassandra://USER:PASSWORD@host/keyspace (percent-encode ':', '/', '@')"
            )
        if isinstance(exc, Unauthorized):
            return ConfigurationError(
                f"Cassandra at {self.server} did not allow an operation "
                f"({self.detail(exc)}); GRANT the role MODIFY and SELECT on the keyspace "
                f"(and CREATE, or pass create_tables=false once the tables exist)"
            )
        if isinstance(exc, InvalidRequest):
            text = str(exc).lower()
            if "keyspace" in text and ("does not exist" in text or "doesn't exist" in text):
                return ConfigurationError(
                    f"Cassandra at {self.server}: {self.detail(exc)}; create the keyspace "
                    f"(CREATE KEYSPACE ... WITH replication = {{'class': "
                    f"'NetworkTopologyStrategy', 'dc1': 3}}) or pass create_keyspace=true"
                    f"&replication=dc1:3"
                )
            if "unconfigured table" in text:
                return ConfigurationError(
                    f"Cassandra at {self.server}: {self.detail(exc)}; the tables are missing: "
                    f"pass create_tables=true (the default) once, or create them by hand "
                    f"(docs/backends/cassandra.md has the CQL)"
                )
            return ConfigurationError(
                f"Cassandra at {self.server} refused a request: {self.detail(exc)}"
            )
        return None

    def _check_open(self) -> None:
        if self.closed:
            raise BackendUnavailableError(
                f"this Cassandra backend ({self.server}) was closed; connect again"
            )

    def __call__(self, call: Callable[[], T]) -> T:
        self._check_open()
        return self.retry(call)

    async def run_async(self, call: Callable[[], Awaitable[T]]) -> T:
        """The same policy for a coroutine function (the asyncio twin)."""
        self._check_open()
        return await self.retry.run_async(call)
