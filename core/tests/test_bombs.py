"""Decompression bombs: a small stored payload that inflates far past ``max_result_size``.

Every read path (sync, bulk, asyncio, result handles, the CLI) stops
inflating at the limit and raises CorruptPayloadError naming the limit and
the option, without ever holding the inflated body in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from click.testing import CliRunner
from resultstore import (
    CorruptPayloadError,
    ResultStore,
    ResultTooLargeError,
    State,
    TaskResult,
    connect,
    connect_async,
)
from resultstore.cli.commands import EXIT_STORE_ERROR, main
from resultstore.payloads.codecs import CodecOptions, decode_payload, encode_payload, make_envelope

LIMIT = 1024 * 1024
#: what a bomb inflates to: 64 times the limit.
INFLATED = 64 * LIMIT
#: the most a bounded read may hold at once: the limit, a copy, and slack.
MEMORY_BOUND = 6 * LIMIT


def zlib_bomb(total: int = INFLATED) -> bytes:
    # Compressed a mebibyte at a time: the test never holds what the bomb inflates to.
    compressor = zlib.compressobj(9)
    chunk = b"0" * LIMIT
    body = b"".join(compressor.compress(chunk) for _ in range(total // LIMIT))
    return make_envelope({"codec": "json", "comp": "zlib"}, body + compressor.flush())


def zstd_bomb(total: int = INFLATED, *, content_size: bool = True) -> bytes:
    compressor = zstandard.ZstdCompressor(level=3, write_content_size=content_size)
    return make_envelope({"codec": "json", "comp": "zstd"}, compressor.compress(b"0" * total))


BOMBS: dict[str, Callable[[], bytes]] = {
    "zlib": zlib_bomb,
    "zstd": zstd_bomb,
    "zstd-no-size": lambda: zstd_bomb(content_size=False),
}


@pytest.fixture(params=sorted(BOMBS))
def bomb(request: pytest.FixtureRequest) -> bytes:
    return BOMBS[request.param]()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "results.db"


@pytest.fixture
def store(db: Path) -> Iterator[ResultStore]:
    with connect(f"sqlite:///{db}", max_result_size=LIMIT) as opened:
        yield opened


def plant(db: Path, task_id: str, payload: bytes) -> None:
    """Write raw bytes where a result goes, as anyone who can write to the file could."""
    with connect(f"sqlite:///{db}"):  # makes the schema
        pass
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            "INSERT OR REPLACE INTO results (task_id, state, payload) VALUES (?, ?, ?)",
            (task_id, "SUCCESS", payload),
        )


def peak_of(call: Callable[[], Any]) -> tuple[BaseException | None, int]:
    """The exception ``call`` raised (None if it returned) and its peak traced memory."""
    tracemalloc.start()
    try:
        call()
    except BaseException as exc:  # the error under test
        return exc, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return None, 0


def assert_refused(error: BaseException | None, peak: int) -> None:
    assert isinstance(error, CorruptPayloadError), repr(error)
    message = str(error)
    assert "max_result_size" in message, "the message names the option"
    assert "1,048,576" in message, "the message names the limit"
    assert peak < MEMORY_BOUND, f"held {peak:,} bytes while refusing a bomb"


def test_decode_stops_at_the_limit(bomb: bytes) -> None:
    options = CodecOptions(max_result_size=LIMIT)
    error, peak = peak_of(lambda: decode_payload(bomb, TaskResult, options))
    assert_refused(error, peak)


def test_every_sync_read_path_stops_at_the_limit(store: ResultStore, db: Path, bomb: bytes) -> None:
    plant(db, "bomb", bomb)
    for call in (
        lambda: store.get("bomb"),
        lambda: store.get_many(["ok", "bomb"]),
        lambda: store.result("bomb").state,
        lambda: store.result("bomb").get(timeout=5),
        lambda: store.group_result("g", ["bomb"]).metas(),
    ):
        assert_refused(*peak_of(call))


def test_the_asyncio_read_paths_stop_at_the_limit(db: Path, bomb: bytes) -> None:
    plant(db, "bomb", bomb)

    async def main() -> None:
        async with await connect_async(f"sqlite:///{db}", max_result_size=LIMIT) as store:
            for read in (
                lambda: store.get("bomb"),
                lambda: store.get_many(["bomb"]),
                lambda: store.result("bomb").aget(timeout=5),
            ):
                with pytest.raises(CorruptPayloadError, match="max_result_size"):
                    await read()

    asyncio.run(main())


def test_the_cli_stops_at_the_limit(db: Path, bomb: bytes) -> None:
    plant(db, "bomb", bomb)
    runner = CliRunner()
    result = runner.invoke(main, ["--url", f"sqlite:///{db}?max_result_size=1m", "get", "bomb"])
    assert result.exit_code == EXIT_STORE_ERROR, result.output
    assert "CorruptPayloadError" in result.output
    assert "max_result_size" in result.output


def test_the_default_limit_bounds_a_big_bomb() -> None:
    # 256 MiB of zeros is about 256 KiB of zlib: read with the default 32 MiB limit.
    payload = zlib_bomb(256 * LIMIT)
    error, peak = peak_of(lambda: decode_payload(payload, TaskResult, CodecOptions()))
    assert isinstance(error, CorruptPayloadError)
    assert "33,554,432" in str(error)
    assert peak < 3 * 33_554_432 + len(payload)


@pytest.mark.parametrize("compression", ["zlib", "zstd"])
def test_results_up_to_the_limit_read_back(store: ResultStore, compression: str, db: Path) -> None:
    with connect(f"sqlite:///{db}", compression=compression, max_result_size=LIMIT) as writer:
        # Compressible: the body is near the limit, the payload far below it.
        value = "x" * (LIMIT - 200)
        writer.mark_as_done("big", value)
        got = store.get("big")
        assert got is not None
        assert got.result == value


@pytest.mark.parametrize("compression", ["zlib", "zstd"])
def test_a_writer_refuses_what_a_reader_with_its_limit_could_not_inflate(
    compression: str, db: Path
) -> None:
    with connect(f"sqlite:///{db}", compression=compression, max_result_size=LIMIT) as writer:
        with pytest.raises(ResultTooLargeError, match="before compression") as info:
            writer.mark_as_done("big", "x" * (2 * LIMIT))
        assert info.value.limit == LIMIT
        assert writer.get("big") is None


def test_no_limit_reads_what_a_limited_reader_refuses(db: Path) -> None:
    with connect(f"sqlite:///{db}", max_result_size="none") as store:
        plant(db, "big", zlib_bomb(4 * LIMIT))
        # Inflates fully (zeros are not JSON, so it is corrupt after inflating).
        with pytest.raises(CorruptPayloadError, match="not valid json"):
            store.get("big")


@pytest.mark.parametrize("compression", ["zlib", "zstd"])
def test_a_truncated_body_is_still_corrupt(compression: str) -> None:
    options = CodecOptions(compression=compression, compress_threshold=0)
    payload = encode_payload(TaskResult("t", State.SUCCESS, "y" * 5000), options)
    with pytest.raises(CorruptPayloadError):
        decode_payload(payload[:-8], TaskResult, options)
