"""From Celery's configuration to the URL and options of a resultstore ``connect()``.

Precedence, most specific first: options in the backend URL's query, then
the ``resultstore_options`` setting, then what Celery's own result settings
(``result_expires``, ``result_serializer``, ``result_compression``) map to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from resultstore import ConfigurationError, default_url
from resultstore.concepts.options import parse_duration, parse_expires
from resultstore.concepts.urls import parse_url, redact

__all__ = [
    "ALLOWED_EXCEPTIONS_SETTING",
    "CHORD_BODY_LEASE_SETTING",
    "CHORD_SIZE_WAIT_SETTING",
    "DEFAULT_CHORD_BODY_LEASE",
    "OPTIONS_SETTING",
    "PICKLE_CONTENT_TYPE",
    "Settings",
    "settings_from",
    "store_url",
]

#: Celery setting: extra options for ``resultstore.connect()`` (a dict).
OPTIONS_SETTING = "resultstore_options"
#: Celery setting: exception classes (or "module.Class" names) rebuilt as themselves;
#: setting it (even to an empty list) turns on the strict mode, where no other
#: class is looked up among the caller's imported modules.
ALLOWED_EXCEPTIONS_SETTING = "resultstore_allowed_exceptions"
#: Celery setting: how long (seconds) a chord part waits for the chord's size;
#: by default as long as the chord lives (its expiry, ``result_expires``).
CHORD_SIZE_WAIT_SETTING = "resultstore_chord_size_wait"
#: Celery setting: seconds a redelivered chord part waits before it sends a body
#: that the worker completing the chord did not mark sent (default 10).
CHORD_BODY_LEASE_SETTING = "resultstore_chord_body_lease"
DEFAULT_CHORD_BODY_LEASE = 10.0
PICKLE_CONTENT_TYPE = "application/x-python-serialize"

# Celery's result_compression names, by what resultstore compresses with.
_COMPRESSIONS = {"zlib": "zlib", "gzip": "zlib", "zstd": "zstd"}
_CODECS = frozenset({"json", "msgpack", "pickle"})


@attrs.frozen
class Settings:
    """What the bridge passes to ``resultstore.connect()``."""

    url: str
    options: Mapping[str, Any]
    allowed_exceptions: tuple[type[BaseException], ...] = ()
    #: only built-in, Celery's and the allowed exception classes are rebuilt as themselves.
    strict_exceptions: bool = False
    #: how long a chord part waits for the chord's size (None: as long as it takes).
    chord_size_wait: float | None = None
    #: how long a claim on sending an unsent chord body stands (seconds).
    chord_body_lease: float = DEFAULT_CHORD_BODY_LEASE


def store_url(url: str | None) -> str:
    """The resultstore URL for what Celery hands the backend class.

    Celery strips ``resultstore+`` from ``resultstore+redis://...``, so the
    class gets ``redis://...``; a bare ``resultstore://`` (or no URL) means
    resultstore's default (``$RESULTSTORE_URL``, else a SQLite file).
    """
    if not url or url.rstrip("/") in ("resultstore:", "resultstore"):
        return default_url()
    scheme = url.partition("://")[0].lower()
    if scheme == "resultstore":
        raise ConfigurationError(
            f"result_backend {redact(url)!r} names no store; write "
            f"'resultstore+<url of the store>', for example "
            f"'resultstore+redis://localhost:6379/0' or 'resultstore+sqlite:///results.db'"
        )
    return url


def _rpc_on_broker(url: str, conf: Mapping[str, Any]) -> str:
    """``rpc://`` with no host means the broker, as in Celery: take its address."""
    head, sep, query = url.partition("?")
    if head.lower().rstrip("/") != "rpc:":
        return url
    broker = str(conf.get("broker_url") or "")
    scheme, found, rest = broker.partition("://")
    if not found or scheme.lower() not in ("amqp", "amqps", "pyamqp"):
        raise ConfigurationError(
            f"result_backend 'resultstore+rpc://' sends results through the broker, but the "
            f"broker {redact(broker) or '(none)'!r} is not RabbitMQ (amqp://); write the "
            f"RabbitMQ address yourself: 'resultstore+rpc://user:password@host:5672/vhost'"
        )
    return f"rpc://{rest.partition('?')[0]}{sep}{query}"


def _expires(value: Any) -> float | None:
    # Celery: None or 0 keeps results forever; a timedelta was already made seconds.
    if value is None:
        return None
    seconds = float(value.total_seconds() if hasattr(value, "total_seconds") else value)
    return None if seconds <= 0 else seconds


def _codec(serializer: str, accept: Iterable[str]) -> dict[str, Any]:
    name = str(serializer).strip().lower()
    if name not in _CODECS:
        raise ConfigurationError(
            f"result_serializer={serializer!r} has no resultstore codec; set "
            f"result_serializer to json, msgpack or pickle, or give the codec in the "
            f"backend URL (e.g. 'resultstore+redis://localhost:6379/0?codec=msgpack')"
        )
    options: dict[str, Any] = {}
    if name != "json":
        options["codec"] = name
    if name == "pickle":
        if PICKLE_CONTENT_TYPE not in set(accept) and "pickle" not in set(accept):
            raise ConfigurationError(
                "result_serializer='pickle' runs code when a result is read, so the bridge "
                "uses it only when you also accept it: add 'pickle' to "
                "result_accept_content (or accept_content)"
            )
        options["accept"] = "json,msgpack,pickle"
    return options


def _compression(value: Any) -> dict[str, Any]:
    if not value:
        return {}
    name = str(value).strip().lower()
    if name not in _COMPRESSIONS:
        raise ConfigurationError(
            f"result_compression={value!r} is not available to resultstore; use "
            f"'zlib' (or 'gzip', stored as zlib) or 'zstd', or leave it unset"
        )
    return {"compression": _COMPRESSIONS[name]}


def _allowed(value: Any) -> tuple[type[BaseException], ...]:
    if not value:
        return ()
    from celery.utils.imports import symbol_by_name  # type: ignore[import-untyped]  # celery ships no type information

    items = [value] if isinstance(value, str | type) else list(value)
    classes: list[type[BaseException]] = []
    for item in items:
        # Names are resolved here, from the app's own configuration, never
        # from anything a result says.
        try:
            cls = symbol_by_name(item) if isinstance(item, str) else item
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigurationError(
                f"{ALLOWED_EXCEPTIONS_SETTING} lists {item!r}, which cannot be imported "
                f"({exc}); list exception classes or their 'module.Class' names"
            ) from None
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise ConfigurationError(
                f"{ALLOWED_EXCEPTIONS_SETTING} lists {item!r}, which is not an exception "
                f"class; list exception classes or their 'module.Class' names"
            )
        classes.append(cls)
    return tuple(classes)


def settings_from(
    url: str | None,
    conf: Mapping[str, Any],
    *,
    expires: Any,
    serializer: str,
    accept: Iterable[str],
) -> Settings:
    """The URL, options and allow-listed exceptions for one Celery app's backend.

    ``expires``, ``serializer`` and ``accept`` are what Celery's backend base
    class made of ``result_expires``, ``result_serializer`` and the accepted
    content types.
    """
    target = _rpc_on_broker(store_url(url), conf)
    in_url = set(parse_url(target).query)
    mapped: dict[str, Any] = {"expires": _expires(expires)}
    mapped.update(_codec(serializer, accept))
    mapped.update(_compression(conf.get("result_compression")))
    extra = conf.get(OPTIONS_SETTING) or {}
    if not isinstance(extra, Mapping):
        raise ConfigurationError(
            f"{OPTIONS_SETTING} must be a dict of resultstore options, "
            f"e.g. {{'key_prefix': 'myapp:'}}; got {type(extra).__name__}"
        )
    options = {**mapped, **extra}
    listed = conf.get(ALLOWED_EXCEPTIONS_SETTING)
    query = parse_url(target).query
    try:
        # A chord lives as long as its results: parts wait for the size that long.
        size_wait = parse_expires(query.get("expires", options.get("expires")))
        wait_setting = conf.get(CHORD_SIZE_WAIT_SETTING)
        if wait_setting is not None:
            size_wait = parse_duration(wait_setting)
    except ValueError as exc:
        raise ConfigurationError(
            f"{CHORD_SIZE_WAIT_SETTING} / expires: {exc}; give a number of seconds"
        ) from None
    try:
        lease = parse_duration(conf.get(CHORD_BODY_LEASE_SETTING, DEFAULT_CHORD_BODY_LEASE))
    except ValueError as exc:
        lease = None
        problem = str(exc)
    else:
        problem = "none keeps no claim"
    if lease is None:
        raise ConfigurationError(
            f"{CHORD_BODY_LEASE_SETTING}: {problem}; give a positive number of seconds "
            f"(default {DEFAULT_CHORD_BODY_LEASE:g})"
        )
    return Settings(
        url=target,
        options={k: v for k, v in options.items() if k not in in_url},
        allowed_exceptions=_allowed(listed),
        strict_exceptions=listed is not None,
        chord_size_wait=size_wait,
        chord_body_lease=lease,
    )
