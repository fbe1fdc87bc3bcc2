"""The published contract suite, on real Elasticsearch and real OpenSearch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from resultstore_contract import BackendContract
from resultstore_contract.servers import Server

from tests._isolation import isolated


class TestElasticsearchContract(BackendContract):
    """Elasticsearch 8.19 through the elasticsearch client."""

    clock_option = "clock"
    dead_url = "elasticsearch://127.0.0.1:1/dead?retry_total=2"

    @pytest.fixture
    def resultstore_url(self, elasticsearch_server: Server) -> Iterator[str]:
        yield from isolated(elasticsearch_server)


class TestOpenSearchContract(BackendContract):
    """OpenSearch 2.19 through opensearch-py."""

    clock_option = "clock"
    dead_url = "opensearch://127.0.0.1:1/dead?retry_total=2"

    @pytest.fixture
    def resultstore_url(self, opensearch_server: Server) -> Iterator[str]:
        yield from isolated(opensearch_server)
