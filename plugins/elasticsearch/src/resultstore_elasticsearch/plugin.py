"""Entry-point module of resultstore-elasticsearch: declares the schemes, imports no client."""

from __future__ import annotations

from collections.abc import Iterable

from resultstore import BackendSpec, Capability, hookimpl

_CAPABILITIES = frozenset(
    {
        Capability.BULK_GET,
        Capability.BATCH_STORE,
        Capability.CLEANUP,
        Capability.GROUPS,
        Capability.CHORDS,
        Capability.PERSISTENT,
        Capability.SHARED,
        Capability.NATIVE_ASYNC,
        Capability.MIGRATE,
    }
)
_ELASTICSEARCH = "resultstore_elasticsearch.backend:ElasticsearchBackend"
_OPENSEARCH = "resultstore_elasticsearch.backend:OpenSearchBackend"
_SCHEMES = {
    "elasticsearch": (_ELASTICSEARCH, "Elasticsearch 8 over HTTP: searchable result documents"),
    "elasticsearch+https": (_ELASTICSEARCH, "Elasticsearch 8 over HTTPS"),
    "opensearch": (_OPENSEARCH, "OpenSearch 2 over HTTP: searchable result documents"),
    "opensearch+https": (_OPENSEARCH, "OpenSearch 2 over HTTPS"),
}


@hookimpl
def resultstore_register_backends() -> Iterable[BackendSpec]:
    return [
        BackendSpec(
            scheme=scheme,
            target=target,
            capabilities=_CAPABILITIES,
            summary=summary,
            distribution="resultstore-elasticsearch",
            clock_option="clock",
        )
        for scheme, (target, summary) in _SCHEMES.items()
    ]
