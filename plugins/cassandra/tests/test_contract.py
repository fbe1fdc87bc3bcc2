"""resultstore-cassandra runs the published contract suite on one node, and its basic and
asyncio groups again on a node with PasswordAuthenticator.

Both classes use one keyspace for the session (schema changes take seconds on
Cassandra); the suite's ids are unique per test. The whole suite runs once:
a second full run through a password changes nothing but the login, which the
basic and asyncio groups (and test_cassandra_backend.py) already cover.
"""

from __future__ import annotations

import pytest
from resultstore_contract import AsyncContract, BackendContract, BasicContract
from resultstore_contract.servers import free_port

#: a loopback port nothing listens on, and options that bound every call to it.
_DEAD_URL = (
    f"cassandra://127.0.0.1:{free_port()}/nowhere"
    "?retry_total=1&connect_timeout=0.5&request_timeout=0.5"
)


class TestCassandraContract(BackendContract):
    """One node without authentication: every group of the contract."""

    clock_option = "clock"
    dead_url = _DEAD_URL

    @pytest.fixture
    def resultstore_url(self, cassandra_url: str) -> str:
        return cassandra_url


class TestCassandraAuthContract(AsyncContract, BasicContract):
    """One node with PasswordAuthenticator; the URL carries the user and password."""

    clock_option = "clock"

    @pytest.fixture
    def resultstore_url(self, cassandra_auth_url: str) -> str:
        return cassandra_auth_url
