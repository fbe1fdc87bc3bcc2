"""resultstore-postgresql runs the published contract suite on a real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import ClassVar

import pytest
from resultstore_contract import BackendContract, WaitingContract
from resultstore_contract.servers import Server, free_port


def _isolated(url: str) -> str:
    """Tables of its own per test (a table prefix), so tests share a server but no rows."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}table_prefix=t{uuid.uuid4().hex[:12]}_"


class TestPostgreSQLContract(BackendContract):
    # A port nothing listens on; retry_total bounds every call.
    dead_url = f"postgresql://u:p@127.0.0.1:{free_port()}/db?retry_total=1&connect_timeout=1"

    @pytest.fixture
    def resultstore_url(self, postgresql_server: Server) -> str:
        return _isolated(postgresql_server.url)


class TestPostgreSQLNotifyResultsWaiting(WaitingContract):
    """The waiting checks again, with results carried by the announcements."""

    store_options: ClassVar[Mapping[str, object]] = {"notify_results": True}

    @pytest.fixture
    def resultstore_url(self, postgresql_server: Server) -> str:
        return _isolated(postgresql_server.url)
