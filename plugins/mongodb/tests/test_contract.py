"""resultstore-mongodb runs the published contract suite on a replica set and a standalone."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
from resultstore_contract import BackendContract, DeadServer
from resultstore_contract.servers import Server, start_mongodb

#: the bound a call to a stopped server must keep (the retry_total the dead clients get).
DEAD_RETRY_TOTAL = 1.0


def _dead(workdir: Path, *, standalone: bool) -> Iterator[DeadServer]:
    """A SecantusDB of the test's own, which the dead-server check stops."""
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(start_mongodb(workdir, standalone=standalone))
        joiner = "&" if "?" in server.url else "?"
        yield DeadServer(
            f"{server.url}{joiner}database=dead",
            stop=stack.close,
            options={"retry_total": DEAD_RETRY_TOTAL},
            within=DEAD_RETRY_TOTAL,
        )


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

    @pytest.fixture
    def dead_server(self, tmp_path: Path) -> Iterator[DeadServer]:
        yield from _dead(tmp_path / "dead-mongodb", standalone=False)


class TestMongoStandaloneContract(BackendContract):
    """A standalone server: no change streams, so waiting polls."""

    clock_option = "clock"

    @pytest.fixture
    def resultstore_url(self, mongodb_standalone_server: Server) -> Iterator[str]:
        yield from _isolated(mongodb_standalone_server)

    @pytest.fixture
    def dead_server(self, tmp_path: Path) -> Iterator[DeadServer]:
        yield from _dead(tmp_path / "dead-mongodb", standalone=True)
