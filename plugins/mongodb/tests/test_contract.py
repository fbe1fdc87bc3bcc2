"""resultstore-mongodb runs the published contract suite on a replica set and a standalone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest
from resultstore_contract import BackendContract
from resultstore_contract.servers import Server


def _isolated(server: Server) -> Iterator[str]:
    """A database of its own per test, dropped afterwards: tests share a server, no data."""
    database = f"t{uuid.uuid4().hex[:16]}"
    joiner = "&" if "?" in server.url else "?"
    yield f"{server.url}{joiner}database={database}"
    client: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(server.url) as client:
        client.drop_database(database)


class TestMongoReplicaSetContract(BackendContract):
    """A one-member replica set: change streams, so waiting is pushed."""

    clock_option = "clock"

    @pytest.fixture
    def resultstore_url(self, mongodb_server: Server) -> Iterator[str]:
        yield from _isolated(mongodb_server)


class TestMongoStandaloneContract(BackendContract):
    """A standalone server: no change streams, so waiting polls."""

    clock_option = "clock"

    @pytest.fixture
    def resultstore_url(self, mongodb_standalone_server: Server) -> Iterator[str]:
        yield from _isolated(mongodb_standalone_server)
