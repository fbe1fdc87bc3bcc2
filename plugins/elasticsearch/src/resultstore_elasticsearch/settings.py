"""From a backend URL and options to the settings both products share.

``elasticsearch://`` and ``opensearch://`` speak HTTP, the ``+https`` schemes
HTTPS; several hosts are separated by commas; the URL path is the index
prefix. No client library is imported here.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections.abc import Callable
from typing import Any

import attrs
from resultstore import BackendConfig, BackendURL, ConfigurationError, InvalidURLError
from resultstore.concepts.options import parse_bool

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_PREFIX",
    "ELASTICSEARCH",
    "OPENSEARCH",
    "Clock",
    "Product",
    "Settings",
    "index_name",
]

Clock = Callable[[], float]

DEFAULT_PORT = 9200
DEFAULT_PREFIX = "resultstore"
_BAD_INDEX_CHARS = frozenset('\\/*?"<>| ,#:')


@attrs.frozen
class Product:
    """Which server a scheme family talks to, and with which client."""

    #: shown in messages: "Elasticsearch" or "OpenSearch".
    title: str
    #: the scheme without ``+https``.
    scheme: str
    #: the pip extra that brings the client.
    extra: str


ELASTICSEARCH = Product("Elasticsearch", "elasticsearch", "elasticsearch")
OPENSEARCH = Product("OpenSearch", "opensearch", "opensearch")


def index_name(value: object) -> str:
    """``value`` if the server accepts it as an index name, else a ValueError saying why."""
    text = str(value)
    if (
        not text
        or text != text.lower()
        or _BAD_INDEX_CHARS & set(text)
        or text[0] in "-_+"
        or text in {".", ".."}
        or len(text.encode()) > 200
    ):
        raise ValueError(
            f"{text!r} is not a usable index name: lowercase, no spaces or "
            f'\\/*?"<>|,#:, not starting with -, _ or +, at most 200 bytes'
        )
    return text


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


def _count(value: object) -> int | None:
    if value is None or str(value).strip().lower() in {"", "default", "none"}:
        return None
    number = int(str(value))
    if number < 0:
        raise ValueError("expected a count >= 0")
    return number


def _callable(value: Any) -> Clock:
    if not callable(value):
        raise ValueError("clock must be a callable returning seconds (like time.time)")
    clock: Clock = value
    return clock


def _readable_file(value: object) -> str:
    path = os.path.expanduser(str(value))
    if not os.path.isfile(path):
        raise ValueError(f"no such file: {path}")
    return path


def _api_key(value: object) -> str:
    """An API key as the server wants it in ``Authorization: ApiKey``: base64 of ``id:key``.

    Accepts that encoded form (what Kibana shows as "Encoded") or ``id:key``.
    """
    text = str(value).strip()
    if not text:
        raise ValueError("the API key is empty")
    if ":" in text:
        return base64.b64encode(text.encode()).decode()
    try:
        decoded = base64.b64decode(text, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(
            "expected the encoded API key (base64 of id:key, as the create API key call "
            "returns in 'encoded') or id:key"
        ) from None
    if ":" not in decoded:
        raise ValueError("the encoded API key does not hold id:key")
    return text


@attrs.frozen
class Settings:
    """What this plugin takes from a backend's configuration."""

    product: Product
    #: "http" or "https".
    scheme: str
    #: every (host, port) of the URL.
    hosts: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    #: base64 of ``id:key``, sent as ``Authorization: ApiKey ...``.
    api_key: str | None = attrs.field(default=None, repr=False)
    ca_certs: str | None = None
    verify_certs: bool = True
    client_cert: str | None = None
    client_key: str | None = None
    #: seconds one request may take.
    request_timeout: float = 10.0
    #: total seconds a call keeps trying after connection errors and 429/502/503/504.
    retry_total: float = 20.0
    prefix: str = DEFAULT_PREFIX
    results_index: str = f"{DEFAULT_PREFIX}-results"
    groups_index: str = f"{DEFAULT_PREFIX}-groups"
    chords_index: str = f"{DEFAULT_PREFIX}-chords"
    #: install the index template (mappings) on first use.
    create_template: bool = True
    #: shards and replicas of new indices (None: the server's defaults).
    shards: int | None = None
    replicas: int | None = None
    #: ids per mget, documents per _bulk, hits per cleanup search.
    chunk: int = 1000
    clock: Clock = time.time

    @classmethod
    def take_from(cls, config: BackendConfig, product: Product) -> Settings:
        """Take this plugin's options from ``config`` and check them."""
        url, options = config.url, config.options
        scheme = _scheme(url, product)
        hosts = tuple((host, port or DEFAULT_PORT) for host, port in url.hosts) or (
            ("localhost", DEFAULT_PORT),
        )
        path_prefix = url.path.strip("/")
        if "/" in path_prefix:
            raise InvalidURLError(
                f"{url.redacted()}: the URL path is the index prefix and holds one name, "
                f"as in {product.scheme}://localhost:9200/myapp; got {path_prefix!r}"
            )
        try:
            default_prefix = index_name(path_prefix or DEFAULT_PREFIX)
        except ValueError as exc:
            raise InvalidURLError(
                f"{url.redacted()}: the URL path is the index prefix; {exc}"
            ) from None
        prefix = options.take("prefix", index_name, default_prefix)
        api_key = options.take("api_key", _api_key, None)
        if api_key is not None and (url.username or url.password):
            raise ConfigurationError(
                f"{url.redacted()}: give a user and password or an api_key, not both"
            )
        ca_certs = options.take("ca_certs", _readable_file, None)
        verify = options.take("verify_certs", parse_bool, True)
        client_cert = options.take("client_cert", _readable_file, None)
        client_key = options.take("client_key", _readable_file, None)
        if scheme == "http" and (ca_certs or client_cert or client_key):
            raise ConfigurationError(
                f"{url.redacted()}: ca_certs, client_cert and client_key are for HTTPS; "
                f"use {product.scheme}+https://"
            )
        return cls(
            product=product,
            scheme=scheme,
            hosts=hosts,
            username=url.username,
            password=url.password,
            api_key=api_key,
            ca_certs=ca_certs,
            verify_certs=verify,
            client_cert=client_cert,
            client_key=client_key,
            request_timeout=options.take("request_timeout", _positive_float, 10.0),
            retry_total=options.take("retry_total", _positive_float, 20.0),
            prefix=prefix,
            results_index=options.take("results_index", index_name, f"{prefix}-results"),
            groups_index=options.take("groups_index", index_name, f"{prefix}-groups"),
            chords_index=options.take("chords_index", index_name, f"{prefix}-chords"),
            create_template=options.take("create_template", parse_bool, True),
            shards=options.take("shards", _count, None),
            replicas=options.take("replicas", _count, None),
            chunk=options.take("chunk", _positive_int, 1000),
            clock=options.take("clock", _callable, time.time),
        )

    @property
    def server(self) -> str:
        """The hosts, for messages (never the credentials)."""
        return ",".join(f"{host}:{port}" for host, port in self.hosts)

    @property
    def node_urls(self) -> list[str]:
        return [
            f"{self.scheme}://[{host}]:{port}" if ":" in host else f"{self.scheme}://{host}:{port}"
            for host, port in self.hosts
        ]

    @property
    def indices(self) -> tuple[str, str, str]:
        return (self.results_index, self.groups_index, self.chords_index)


def _scheme(url: BackendURL, product: Product) -> str:
    if url.scheme == product.scheme:
        return "http"
    if url.scheme == f"{product.scheme}+https":
        return "https"
    raise InvalidURLError(
        f"{url.redacted()}: this backend serves {product.scheme}:// and "
        f"{product.scheme}+https://, not {url.scheme}://"
    )
