"""Hostile input on a real Redis: text Redis mangles, states with NUL, a huge expiry.

The core refuses each with the documented error before a command is sent
(these used to be a raw UnicodeEncodeError, an unreadable result, or a
redis-py error on every later store).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import resultstore
from resultstore import ConfigurationError, InvalidIdError, InvalidStateError
from resultstore_contract.servers import Server


@pytest.fixture
def store(redis_server: Server) -> Iterator[resultstore.ResultStore]:
    with resultstore.connect(redis_server.url, key_prefix=f"t{uuid.uuid4().hex[:8]}:") as opened:
        yield opened


@pytest.mark.parametrize("bad", ["lone\ud800", "nul\x00", "", "bell\x07"])
def test_ids_redis_cannot_take_are_the_documented_error(
    store: resultstore.ResultStore, bad: str
) -> None:
    for call in (
        lambda: store.mark_as_done(bad, 1),
        lambda: store.get(bad),
        lambda: store.get_many([bad]),
        lambda: store.forget(bad),
        lambda: store.save_group(bad, ["a"]),
        lambda: store.set_chord_size(bad, 1),
    ):
        with pytest.raises(InvalidIdError):
            call()


@pytest.mark.parametrize("state", ["PRO\x00GRESS", "", "lone\udfff"])
def test_a_state_redis_could_not_read_back_is_refused(
    store: resultstore.ResultStore, state: str
) -> None:
    with pytest.raises(InvalidStateError):
        store.update_state("t", state, {"n": 1})
    assert store.get("t") is None
    store.update_state("t", "PROGRESS", {"n": 1})
    got = store.get("t")
    assert got is not None
    assert got.state == "PROGRESS"


@pytest.mark.parametrize("expires", [1e300, 1e12])
def test_a_huge_expires_is_refused_at_connect(redis_server: Server, expires: float) -> None:
    with pytest.raises(ConfigurationError, match="100 years"):
        resultstore.connect(redis_server.url, expires=expires)
