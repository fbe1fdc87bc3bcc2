"""Hostile input on a real MongoDB-protocol server: query operators as ids, bad text, huge expiry.

MongoDB takes a dict where an id goes as a query (``{"$gt": ""}`` matches
every document), so an id that is not a str must never reach it; the core
refuses it before the backend runs, through every API.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import resultstore
from resultstore import (
    ConfigurationError,
    EncodeError,
    InvalidIdError,
    InvalidStateError,
    State,
    TaskResult,
)
from resultstore_contract.servers import Server

OPERATORS: list[Any] = [{"$gt": ""}, {"$ne": None}, {"$regex": ".*"}, {"$exists": True}]


def _url(server: Server) -> str:
    database = f"t{uuid.uuid4().hex[:16]}"
    return f"{server.url}{'&' if '?' in server.url else '?'}database={database}"


@pytest.fixture
def url(mongodb_server: Server) -> str:
    return _url(mongodb_server)


@pytest.fixture
def store(url: str) -> Iterator[resultstore.ResultStore]:
    with resultstore.connect(url) as opened:
        yield opened


@pytest.mark.parametrize("operator", OPERATORS, ids=[str(o) for o in OPERATORS])
def test_a_query_operator_as_an_id_reads_and_deletes_nothing(
    store: resultstore.ResultStore, operator: Any
) -> None:
    store.mark_as_done("victim", "secret")
    store.save_group("victim-group", ["victim"])
    for call in (
        lambda: store.get(operator),
        lambda: store.get_many([operator]),
        lambda: store.forget(operator),
        lambda: store.get_group(operator),
        lambda: store.delete_group(operator),
        lambda: store.get_chord(operator),
        lambda: store.result(operator).state,
    ):
        with pytest.raises(InvalidIdError, match="must be a str, got dict"):
            call()
    victim = store.get("victim")
    assert victim is not None
    assert victim.result == "secret"
    assert store.get_group("victim-group") is not None


@pytest.mark.parametrize("operator", OPERATORS[:2], ids=[str(o) for o in OPERATORS[:2]])
def test_a_query_operator_as_an_id_through_the_native_asyncio_twin(url: str, operator: Any) -> None:
    async def main() -> None:
        async with await resultstore.connect_async(url) as store:
            assert store.native, "mongodb has its own asyncio twin"
            await store.mark_as_done("victim", "secret")
            with pytest.raises(InvalidIdError):
                await store.get(operator)
            with pytest.raises(InvalidIdError):
                await store.get_many([operator])
            with pytest.raises(InvalidIdError):
                await store.forget(operator)
            with pytest.raises(InvalidIdError):
                await store.result(operator).aget(timeout=1)
            victim = await store.get("victim")
            assert victim is not None
            assert victim.result == "secret"

    asyncio.run(main())


@pytest.mark.parametrize("bad", ["nul\x00id", "lone\ud800", "esc\x1b[2J"])
def test_text_mongodb_cannot_hold_is_the_documented_error(
    store: resultstore.ResultStore, bad: str
) -> None:
    for call in (
        lambda: store.mark_as_done(bad, 1),
        lambda: store.get(bad),
        lambda: store.forget(bad),
        lambda: store.save_group(bad, ["a"]),
    ):
        with pytest.raises(InvalidIdError):
            call()
    with pytest.raises(InvalidStateError):
        store.update_state("t", f"PROGRESS{bad}")
    with pytest.raises(InvalidStateError):
        store.update_state("t", "")
    assert store.get("t") is None


def test_nan_and_infinity_are_refused_not_stored_as_null(store: resultstore.ResultStore) -> None:
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(EncodeError, match="NaN or infinity"):
            store.mark_as_done("t", {"x": [1, bad]})
    assert store.get("t") is None


@pytest.mark.parametrize("expires", [1e12, 1e300])
def test_a_huge_expires_is_refused_at_connect(url: str, expires: float) -> None:
    with pytest.raises(ConfigurationError, match="100 years"):
        resultstore.connect(url, expires=expires)


def test_the_longest_expires_taken_stores(url: str) -> None:
    with resultstore.connect(url, expires=100 * 365 * 86400) as store:
        store.store(TaskResult("t", State.SUCCESS, 1))
        assert store.get("t") is not None
