"""resultstore-redis runs the published contract suite on plain, TLS and Cluster servers."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from resultstore_contract import BackendContract, DeadServer
from resultstore_contract.servers import Server, start_redis

#: the bound a call to a stopped server must keep (the retry_total the dead clients get).
DEAD_RETRY_TOTAL = 1.0


def _isolated(url: str) -> str:
    """A key prefix of its own per test, so that tests share a server but no keys."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}key_prefix=t{uuid.uuid4().hex[:12]}:"


class TestRedisContract(BackendContract):
    @pytest.fixture
    def resultstore_url(self, redis_server: Server) -> str:
        return _isolated(redis_server.url)

    @pytest.fixture
    def dead_server(self, tmp_path: Path) -> Iterator[DeadServer]:
        """A redis-server of the test's own, which the dead-server check stops."""
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(start_redis(tmp_path / "dead-redis"))
            yield DeadServer(
                server.url,
                stop=stack.close,
                options={"retry_total": DEAD_RETRY_TOTAL},
                within=DEAD_RETRY_TOTAL,
            )


class TestRedisTLSContract(BackendContract):
    @pytest.fixture
    def resultstore_url(self, redis_tls_server: Server) -> str:
        return _isolated(f"{redis_tls_server.url}?ssl_ca_certs={redis_tls_server.ca_file}")


class TestRedisClusterContract(BackendContract):
    @pytest.fixture
    def resultstore_url(self, redis_cluster_server: Server) -> str:
        return _isolated(redis_cluster_server.url)
