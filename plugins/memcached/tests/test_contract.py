"""resultstore-memcached runs the published contract suite on one server and on a ring of three."""

from __future__ import annotations

import uuid

import pytest
from resultstore_contract import BackendContract
from resultstore_contract.servers import Server, free_port

#: memcached's largest item is 1 MiB by default (its -I), key and item header
#: included: payloads up to this size fit on every server the tests start.
MAX_PAYLOAD = 1024 * 1024 - 1024


def _isolated(url: str) -> str:
    """A key prefix of its own per test, so that tests share a server but no keys."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}key_prefix=t{uuid.uuid4().hex[:12]}:"


class TestMemcachedContract(BackendContract):
    max_payload_size = MAX_PAYLOAD
    # A port nothing listens on; retry_total bounds every call.
    dead_url = f"memcached://127.0.0.1:{free_port()}/?retry_total=1"

    @pytest.fixture
    def resultstore_url(self, memcached_server: Server) -> str:
        return _isolated(memcached_server.url)


class TestMemcachedRingContract(BackendContract):
    max_payload_size = MAX_PAYLOAD
    dead_url = f"memcached://127.0.0.1:{free_port()};127.0.0.1:{free_port()}/?retry_total=1"

    @pytest.fixture
    def resultstore_url(self, memcached_ring_server: Server) -> str:
        return _isolated(memcached_ring_server.url)
