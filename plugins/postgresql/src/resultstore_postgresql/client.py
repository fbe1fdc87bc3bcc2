"""How a ``postgresql://`` URL becomes libpq connection parameters and backend settings.

The URL's host, port, user, password and database, plus every query option
the backend does not take itself, are passed to libpq as they are
(``sslmode``, ``sslrootcert``, ``application_name``, ``options``...); libpq
itself refuses the names it does not know, and the error says so.
"""

from __future__ import annotations

import math
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import attrs
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from resultstore import BackendConfig, ConfigurationError, UnknownOptionError
from resultstore.concepts.options import parse_bool

from resultstore_postgresql.schema import Tables, check_identifier

__all__ = ["Settings", "settings_from_config"]

Clock = Callable[[], float]

#: options the backend takes; every other option is a libpq parameter.
OWN_OPTIONS = (
    "batch_size",
    "clock",
    "notify",
    "notify_results",
    "pool_max",
    "pool_min",
    "pool_timeout",
    "prepare_threshold",
    "retry_total",
    "schema",
    "table_prefix",
)


#: psycopg's own default: a connection prepares a statement on its fifth run.
PREPARE_THRESHOLD: int | None = 5


@attrs.frozen
class Settings:
    """Everything the backend needs from its URL and options."""

    conninfo: str = attrs.field(repr=False)
    password: str | None = attrs.field(repr=False)
    server: str
    tables: Tables
    clock: Clock
    retry_total: float
    pool_min: int
    pool_max: int
    pool_timeout: float
    batch_size: int
    notify: bool
    #: announce small ready results with their payload, and take them from announcements.
    notify_results: bool
    #: executions of a statement before a connection prepares it (None: never).
    prepare_threshold: int | None

    def pool_arguments(self) -> dict[str, Any]:
        """What the sync and the asyncio connection pools are both built with."""
        return {
            "min_size": self.pool_min,
            "max_size": self.pool_max,
            "kwargs": {"autocommit": True, "prepare_threshold": self.prepare_threshold},
            "timeout": self.pool_timeout,
        }


def settings_from_config(config: BackendConfig) -> Settings:
    url = config.url
    options = config.options
    tables = Tables(
        schema=check_identifier("schema", options.take("schema", str, "public")),
        prefix=check_identifier(
            "table_prefix", options.take("table_prefix", str, "resultstore_"), empty=True
        ),
    )
    clock = options.take("clock", _callable, time.time)
    retry_total = options.take("retry_total", _positive, 10.0)
    pool_min = options.take("pool_min", _count, 1)
    pool_max = options.take("pool_max", _count, 10)
    if pool_max < max(1, pool_min):
        raise ConfigurationError(
            f"pool_max={pool_max} is below pool_min={pool_min} (or 0); give pool_max >= "
            f"pool_min and >= 1"
        )
    pool_timeout = options.take("pool_timeout", _positive, 30.0)
    batch_size = options.take("batch_size", _count, 1000)
    notify = options.take("notify", parse_bool, True)
    notify_results = options.take("notify_results", parse_bool, False)
    prepare_threshold = options.take("prepare_threshold", _threshold, PREPARE_THRESHOLD)
    libpq = {name: str(value) for name, value in options.remaining().items()}
    for name in libpq:
        options.take(name, str, "")
    options.finish()
    params: dict[str, Any] = {}
    if url.host:
        params["host"] = urllib.parse.unquote(url.host)
    if url.port:
        params["port"] = url.port
    if url.username:
        params["user"] = urllib.parse.unquote(url.username)
    if url.password:
        params["password"] = urllib.parse.unquote(url.password)
    database = urllib.parse.unquote(url.path.lstrip("/"))
    if database:
        params["dbname"] = database
    params.update(libpq)
    params.setdefault("connect_timeout", "10")
    try:
        conninfo = make_conninfo("", **params)
        conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise UnknownOptionError(
            f"{url.redacted()!r}: {_first_line(exc)}; options are libpq connection parameters "
            f"(sslmode, application_name, connect_timeout, ...) or the backend's own: "
            f"{', '.join(OWN_OPTIONS)}"
        ) from None
    return Settings(
        conninfo=conninfo,
        password=params.get("password"),
        server=url.redacted(),
        tables=tables,
        clock=clock,
        retry_total=retry_total,
        pool_min=pool_min,
        pool_max=pool_max,
        pool_timeout=pool_timeout,
        batch_size=batch_size,
        notify=notify,
        notify_results=notify_results,
        prepare_threshold=prepare_threshold,
    )


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _callable(value: Any) -> Clock:
    if not callable(value):
        raise ValueError("clock must be a callable returning seconds (like time.time)")
    clock: Clock = value
    return clock


def _positive(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number of seconds, got {value!r}")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of seconds such as 10, got {value!r}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"expected a finite number of seconds > 0, got {value!r}")
    return seconds


def _threshold(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and value.lower() in ("none", "off", "")):
        return None
    return _count(value)


def _count(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a whole number such as 10, got {value!r}") from None
    if number < 0:
        raise ValueError(f"expected a whole number >= 0, got {value!r}")
    return number
