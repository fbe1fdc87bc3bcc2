"""Shared fixtures: one keyspace per server for the whole session (schema changes are slow)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from resultstore_contract.servers import Server, cql_query


def credentials_of(server: Server) -> tuple[str, str] | None:
    if server.username is not None and server.password is not None:
        return (server.username, server.password)
    return None


def keyspace_url(server: Server, keyspace: str) -> str:
    """The server's URL for ``keyspace``, created on first use (one replica: a test node)."""
    return f"{server.url}/{keyspace}?create_keyspace=true&replication=SimpleStrategy:1"


def _session_keyspace(server: Server) -> Iterator[str]:
    keyspace = f"t{uuid.uuid4().hex[:16]}"
    yield keyspace_url(server, keyspace)
    cql_query(
        server.address,
        f"DROP KEYSPACE IF EXISTS {keyspace}",
        credentials=credentials_of(server),
        timeout=60,
    )


@pytest.fixture(scope="session")
def cassandra_url(cassandra_server: Server) -> Iterator[str]:
    """A keyspace of the session on the plain node; tests share it through unique ids."""
    yield from _session_keyspace(cassandra_server)


@pytest.fixture(scope="session")
def cassandra_auth_url(cassandra_auth_server: Server) -> Iterator[str]:
    """A keyspace of the session on the node with PasswordAuthenticator."""
    yield from _session_keyspace(cassandra_auth_server)
