"""resultstore-redis runs the published contract suite on plain, TLS and Cluster servers."""

from __future__ import annotations

import uuid

import pytest
from resultstore_contract import BackendContract
from resultstore_contract.servers import Server


def _isolated(url: str) -> str:
    """A key prefix of its own per test, so that tests share a server but no keys."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}key_prefix=t{uuid.uuid4().hex[:12]}:"


class TestRedisContract(BackendContract):
    @pytest.fixture
    def resultstore_url(self, redis_server: Server) -> str:
        return _isolated(redis_server.url)


class TestRedisTLSContract(BackendContract):
    @pytest.fixture
    def resultstore_url(self, redis_tls_server: Server) -> str:
        return _isolated(f"{redis_tls_server.url}?ssl_ca_certs={redis_tls_server.ca_file}")


class TestRedisClusterContract(BackendContract):
    @pytest.fixture
    def resultstore_url(self, redis_cluster_server: Server) -> str:
        return _isolated(redis_cluster_server.url)
