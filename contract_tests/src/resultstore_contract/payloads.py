"""Large payloads, byte for byte: a megabyte and more, and odd sizes around chunk boundaries.

Stores cut values into pieces (a 64 KiB page or frame, a 1 MiB item, a
16 MiB document) and the bugs sit at the edges: the byte one past a
boundary dropped, a last piece lost, a value cut to a column's width. Each
check stores a payload of an exact encoded size (the size the backend is
handed, headers included) made of incompressible bytes, and reads it back
through ``get``, ``get_many`` and a second client.

A backend that keeps less than the connection's ``max_result_size`` declares
its own limit (``max_payload_size``); sizes above either are skipped, and the
skip says so.
"""

from __future__ import annotations

import random

import pytest
from resultstore import ResultStore, State, TaskResult

from resultstore_contract.support import ContractBase, IdFactory, StoreFactory

__all__ = ["PayloadContract", "sized_result"]

KIB = 1024
MIB = 1024 * KIB
#: encoded payload sizes, by name: both sides of 64 KiB and 1 MiB, and a few megabytes.
SIZES: dict[str, int] = {
    "64KiB-1": 64 * KIB - 1,
    "64KiB": 64 * KIB,
    "64KiB+1": 64 * KIB + 1,
    "1MiB-1": MIB - 1,
    "1MiB": MIB,
    "1MiB+1": MIB + 1,
    "4MiB+3": 4 * MIB + 3,
}


def sized_result(store: ResultStore, task_id: str, size: int) -> TaskResult:
    """A SUCCESS result whose payload, as ``store`` encodes it, is exactly ``size`` bytes.

    The value is incompressible bytes (so compression cannot hide a boundary),
    adjusted until the encoding (codec, compression, plugins) has the size asked.
    """
    rng = random.Random(size)
    length = size
    for _ in range(12):
        value = rng.randbytes(max(0, length))
        result = TaskResult(task_id, State.SUCCESS, value)
        encoded = len(store.serializer.dumps(result))
        if encoded == size:
            return result
        length += size - encoded
    raise AssertionError(f"could not make a payload of exactly {size} bytes (got {encoded})")


class PayloadContract(ContractBase):
    """Payloads of exact sizes around common chunk boundaries round-trip byte for byte."""

    @pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
    def test_payload_exact_size_round_trips(
        self,
        connect_store: StoreFactory,
        max_payload_size: int | None,
        new_id: IdFactory,
        size: int,
    ) -> None:
        # msgpack carries bytes as they are; json would need text.
        store = connect_store(codec="msgpack")
        limit = store.serializer.options.max_result_size
        if max_payload_size is not None and size > max_payload_size:
            pytest.skip(f"a {size:,}-byte payload is over the backend's max_payload_size")
        if limit is not None and size > limit:
            pytest.skip(f"a {size:,}-byte payload is over max_result_size={limit:,}")
        result = sized_result(store, new_id(), size)
        assert store.store(result).stored
        got = store.get(result.task_id)
        assert got is not None, f"a {size:,}-byte payload reads as missing"
        assert isinstance(got.result, bytes)
        assert len(got.result) == len(result.result), (
            f"a {size:,}-byte payload came back with a value of {len(got.result):,} bytes "
            f"instead of {len(result.result):,}"
        )
        if got.result != result.result:
            pairs = enumerate(zip(got.result, result.result, strict=True))
            first = next(i for i, (a, b) in pairs if a != b)
            raise AssertionError(f"a {size:,}-byte payload came back changed from byte {first:,}")
        assert got == result
        other = connect_store(codec="msgpack")
        assert other.get_many([result.task_id, new_id("missing")])[result.task_id] == result

    def test_payload_large_text_round_trips(
        self, connect_store: StoreFactory, max_payload_size: int | None, new_id: IdFactory
    ) -> None:
        # 1 MiB + 1 characters, one to four bytes each in UTF-8, under json.
        rng = random.Random(7)
        alphabet = "abcé€𝄞\\\"'\t\n{}[]\u2028"
        text = "".join(rng.choices(alphabet, k=MIB + 1))
        size = len(text.encode("utf-8")) + 4 * KIB
        if max_payload_size is not None and size > max_payload_size:
            pytest.skip(f"a {size:,}-byte payload is over the backend's max_payload_size")
        store = connect_store(codec="json")
        limit = store.serializer.options.max_result_size
        if limit is not None and size > limit:
            pytest.skip(f"a {size:,}-byte payload is over max_result_size={limit:,}")
        result = TaskResult(new_id(), State.SUCCESS, {"text": text, "tail": "end"})
        store.store(result)
        got = store.get(result.task_id)
        assert got is not None
        assert got.result["text"] == text, "a 1 MiB text came back changed"
        assert got == result
