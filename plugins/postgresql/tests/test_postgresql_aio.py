"""The asyncio twin's own paths: first-use tables, a refused login, a dead server."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
import resultstore
from resultstore import State, TaskResult
from resultstore_contract.servers import Server, free_port


def _prefix() -> str:
    return f"a{uuid.uuid4().hex[:10]}_"


def test_the_twin_is_native_and_creates_the_tables_on_first_use(
    postgresql_server: Server,
) -> None:
    prefix = _prefix()
    url = f"{postgresql_server.url}?table_prefix={prefix}"

    async def scenario() -> None:
        async with await resultstore.connect_async(url) as astore:
            assert astore.native
            assert (await astore.store(TaskResult("t", State.SUCCESS, 3))).stored
            again = await astore.store(TaskResult("t", State.FAILURE))
            assert (again.stored, again.state) == (False, State.SUCCESS)
            assert (await astore.get_many(["t", "none"]))["t"] == TaskResult("t", State.SUCCESS, 3)

    asyncio.run(scenario())
    with psycopg.connect(postgresql_server.url) as conn:
        row = conn.execute(f'SELECT state FROM "{prefix}results"').fetchone()
    assert row == ("SUCCESS",)


def test_a_wrong_password_is_a_configuration_error_in_asyncio(postgresql_server: Server) -> None:
    url = postgresql_server.url.replace(str(postgresql_server.password), "wrong-secret")

    async def scenario() -> None:
        async with await resultstore.connect_async(f"{url}?retry_total=2") as astore:
            await astore.get("t")

    with pytest.raises(resultstore.ConfigurationError, match="password") as caught:
        asyncio.run(scenario())
    assert "wrong-secret" not in str(caught.value)


def test_a_dead_server_fails_an_asyncio_call_within_retry_total() -> None:
    url = f"postgresql://u:p@127.0.0.1:{free_port()}/db?retry_total=1&connect_timeout=1"

    async def scenario() -> None:
        async with await resultstore.connect_async(url) as astore:
            await astore.store(TaskResult("t", State.SUCCESS, 1))

    with pytest.raises(resultstore.BackendUnavailableError, match="retry_total=1"):
        asyncio.run(scenario())
