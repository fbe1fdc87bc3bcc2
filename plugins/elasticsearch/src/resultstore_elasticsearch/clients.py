"""The two thin client adapters: the ``elasticsearch`` client (8.x) and ``opensearch-py``.

Each sends a :class:`~resultstore_elasticsearch.transport.Call` through its
client's low-level ``perform_request`` and hands back the status and the
decoded body, whatever the status; transport failures become
:class:`~resultstore_elasticsearch.transport.Unreachable`. The clients'
own retries are off: :class:`~resultstore_elasticsearch.transport.Runner`
retries with backoff and a total bound. Each client library is imported
only when its product is used.
"""

from __future__ import annotations

from typing import Any

from resultstore import ConfigurationError

from resultstore_elasticsearch.settings import ELASTICSEARCH, Settings
from resultstore_elasticsearch.transport import AsyncAdapter, Call, SyncAdapter, Unreachable

__all__ = ["async_adapter", "sync_adapter"]

_JSON = {"accept": "application/json", "content-type": "application/json"}
_NDJSON = {"accept": "application/json", "content-type": "application/x-ndjson"}
#: every error status: the adapters return them instead of raising.
_ALL_ERRORS = tuple(range(400, 600))


def _missing(settings: Settings, exc: ImportError) -> ConfigurationError:
    product = settings.product
    return ConfigurationError(
        f"the {product.scheme}:// backend needs the {product.title} client ({exc}); "
        f"install it with: pip install 'resultstore-elasticsearch[{product.extra}]'"
    )


def _headers(call: Call) -> dict[str, str]:
    return _NDJSON if call.ndjson else _JSON


# -- elasticsearch (8.x client) ----------------------------------------------------------


def _es_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "request_timeout": settings.request_timeout,
        "max_retries": 0,
        "retry_on_timeout": False,
        "http_compress": False,
    }
    if settings.username is not None:
        kwargs["basic_auth"] = (settings.username, settings.password or "")
    if settings.api_key is not None:
        kwargs["api_key"] = settings.api_key
    if settings.scheme == "https":
        kwargs["verify_certs"] = settings.verify_certs
        if not settings.verify_certs:
            kwargs["ssl_show_warn"] = False
        if settings.ca_certs is not None:
            kwargs["ca_certs"] = settings.ca_certs
        if settings.client_cert is not None:
            kwargs["client_cert"] = settings.client_cert
        if settings.client_key is not None:
            kwargs["client_key"] = settings.client_key
    return kwargs


class _ElasticsearchSync:
    def __init__(self, settings: Settings) -> None:
        try:
            import elastic_transport
            import elasticsearch
        except ImportError as exc:
            raise _missing(settings, exc) from None
        self._transport_error = elastic_transport.TransportError
        client = elasticsearch.Elasticsearch(settings.node_urls, **_es_kwargs(settings))
        self._root = client
        self._client = client.options(ignore_status=_ALL_ERRORS)

    def perform(self, call: Call) -> tuple[int, Any]:
        try:
            response = self._client.perform_request(
                call.method, call.path, params=call.params, headers=_headers(call), body=call.body
            )
        except self._transport_error as exc:
            raise Unreachable(str(exc)) from exc
        return response.meta.status, response.body

    def close(self) -> None:
        self._root.close()


class _ElasticsearchAsync:
    def __init__(self, settings: Settings) -> None:
        try:
            import elastic_transport
            import elasticsearch
        except ImportError as exc:
            raise _missing(settings, exc) from None
        self._transport_error = elastic_transport.TransportError
        client = elasticsearch.AsyncElasticsearch(settings.node_urls, **_es_kwargs(settings))
        self._root = client
        self._client = client.options(ignore_status=_ALL_ERRORS)

    async def perform(self, call: Call) -> tuple[int, Any]:
        try:
            response = await self._client.perform_request(
                call.method, call.path, params=call.params, headers=_headers(call), body=call.body
            )
        except self._transport_error as exc:
            raise Unreachable(str(exc)) from exc
        return response.meta.status, response.body

    async def close(self) -> None:
        await self._root.close()


# -- opensearch-py ----------------------------------------------------------------------


def _os_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "timeout": settings.request_timeout,
        "max_retries": 0,
        "retry_on_timeout": False,
        "use_ssl": settings.scheme == "https",
    }
    if settings.username is not None:
        kwargs["http_auth"] = (settings.username, settings.password or "")
    if settings.api_key is not None:
        kwargs["headers"] = {"authorization": f"ApiKey {settings.api_key}"}
    if settings.scheme == "https":
        kwargs["verify_certs"] = settings.verify_certs
        if not settings.verify_certs:
            kwargs["ssl_show_warn"] = False
            kwargs["ssl_assert_hostname"] = False
        if settings.ca_certs is not None:
            kwargs["ca_certs"] = settings.ca_certs
        if settings.client_cert is not None:
            kwargs["client_cert"] = settings.client_cert
        if settings.client_key is not None:
            kwargs["client_key"] = settings.client_key
    return kwargs


def _os_hosts(settings: Settings) -> list[dict[str, Any]]:
    return [{"host": host, "port": port} for host, port in settings.hosts]


def _os_error(exc: Any) -> tuple[int, Any] | None:
    """(status, body) of an opensearch-py error that carries an HTTP answer."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status, getattr(exc, "info", None)
    return None


class _OpenSearchSync:
    def __init__(self, settings: Settings) -> None:
        try:
            import opensearchpy
        except ImportError as exc:
            raise _missing(settings, exc) from None
        self._errors = opensearchpy.exceptions
        self._client = opensearchpy.OpenSearch(_os_hosts(settings), **_os_kwargs(settings))

    def perform(self, call: Call) -> tuple[int, Any]:
        try:
            body = self._client.transport.perform_request(
                call.method, call.path, params=call.params, headers=_headers(call), body=call.body
            )
        except self._errors.TransportError as exc:
            answer = _os_error(exc)
            if answer is None:
                raise Unreachable(str(exc)) from exc
            return answer
        return 200, body

    def close(self) -> None:
        self._client.close()


class _OpenSearchAsync:
    def __init__(self, settings: Settings) -> None:
        try:
            import opensearchpy
        except ImportError as exc:
            raise _missing(settings, exc) from None
        self._errors = opensearchpy.exceptions
        self._client = opensearchpy.AsyncOpenSearch(_os_hosts(settings), **_os_kwargs(settings))

    async def perform(self, call: Call) -> tuple[int, Any]:
        try:
            body = await self._client.transport.perform_request(
                call.method, call.path, params=call.params, headers=_headers(call), body=call.body
            )
        except self._errors.TransportError as exc:
            answer = _os_error(exc)
            if answer is None:
                raise Unreachable(str(exc)) from exc
            return answer
        return 200, body

    async def close(self) -> None:
        await self._client.close()


def sync_adapter(settings: Settings) -> SyncAdapter:
    """The blocking client of ``settings.product``."""
    if settings.product == ELASTICSEARCH:
        return _ElasticsearchSync(settings)
    return _OpenSearchSync(settings)


def async_adapter(settings: Settings) -> AsyncAdapter:
    """The asyncio client of ``settings.product`` (build it inside the running loop)."""
    if settings.product == ELASTICSEARCH:
        return _ElasticsearchAsync(settings)
    return _OpenSearchAsync(settings)
