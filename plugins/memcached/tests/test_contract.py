"""resultstore-memcached runs the published contract suite on one server and on a ring of three."""

from __future__ import annotations

import uuid

import pytest
from resultstore_contract import BackendContract
from resultstore_contract.servers import Server


def _isolated(url: str) -> str:
    """A key prefix of its own per test, so that tests share a server but no keys."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}key_prefix=t{uuid.uuid4().hex[:12]}:"


class TestMemcachedContract(BackendContract):
    @pytest.fixture
    def resultstore_url(self, memcached_server: Server) -> str:
        return _isolated(memcached_server.url)


class TestMemcachedRingContract(BackendContract):
    @pytest.fixture
    def resultstore_url(self, memcached_ring_server: Server) -> str:
        return _isolated(memcached_ring_server.url)
