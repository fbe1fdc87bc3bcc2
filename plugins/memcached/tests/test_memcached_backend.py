"""The memcached backend's own rules: URLs, key mapping, expiry, item sizes, round trips."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import resultstore
from click.testing import CliRunner
from pymemcache.client.base import Client  # type: ignore[import-untyped]
from resultstore import (
    BackendUnavailableError,
    Capability,
    ChordError,
    ConfigurationError,
    CorruptPayloadError,
    InvalidURLError,
    ResultTooLargeError,
    State,
    TaskResult,
    UnknownOptionError,
)
from resultstore.cli.commands import main as cli
from resultstore_contract.servers import Server, start_memcached
from resultstore_memcached.client import MAX_RELATIVE_EXPTIME, exptime
from resultstore_memcached.errors import ItemTooLargeError

from . import _chord_worker

DAY = 86400


def _prefix() -> str:
    return f"b{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def prefix() -> str:
    return _prefix()


@pytest.fixture
def store(memcached_server: Server, prefix: str) -> Iterator[resultstore.ResultStore]:
    with resultstore.connect(memcached_server.url, key_prefix=prefix) as opened:
        yield opened


@pytest.fixture
def raw(memcached_server: Server) -> Iterator[Client]:
    client = Client(memcached_server.address, default_noreply=False)
    yield client
    client.close()


def _meta(address: tuple[str, int], line: str) -> str:
    """One meta command over a fresh connection; its first reply line."""
    with socket.create_connection(address, timeout=2) as sock:
        sock.sendall(line.encode() + b"\r\n")
        return sock.recv(4096).split(b"\r\n")[0].decode()


def _stats(address: tuple[str, int]) -> dict[str, int]:
    client = Client(address)
    try:
        return {k.decode(): v for k, v in client.stats().items() if isinstance(v, int)}
    finally:
        client.close()


# -- URLs and options ---------------------------------------------------------------


def test_celery_spelling_and_a_ring_spelled_with_semicolons(memcached_server: Server) -> None:
    address = f"{memcached_server.host}:{memcached_server.port}"
    prefix = _prefix()
    with resultstore.connect(f"cache+memcached://{address}/", key_prefix=prefix) as celery_style:
        celery_style.mark_as_done("same", 1)
    # The same server named twice is refused; one server plus a ';' is a ring of one.
    with resultstore.connect(f"memcached://{address};/", key_prefix=prefix) as plain:
        result = plain.get("same")
        assert result is not None
        assert result.result == 1


def test_unix_socket(tmp_path: Path) -> None:
    with (
        start_memcached(tmp_path / "unix", unix_socket=True) as server,
        resultstore.connect(server.url) as store,
    ):
        store.mark_as_done("u", {"over": "a socket"})
        result = store.get("u")
        assert result is not None
        assert result.result == {"over": "a socket"}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memcached://user:secret@127.0.0.1:1/", "no user or password"),
        ("memcached://127.0.0.1:1/0", "takes no path"),
        ("memcached+unix://", "give the socket's path"),
        ("memcached://127.0.0.1:1;127.0.0.1:1/", "twice"),
    ],
)
def test_bad_urls_say_how_to_write_them(url: str, message: str) -> None:
    with pytest.raises(InvalidURLError, match=message) as info:
        resultstore.connect(url)
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"key_prefix": "has space"}, ConfigurationError, "printable"),
        ({"key_prefix": "x" * 101}, ConfigurationError, "keep it to 100"),
        ({"timeout": "-1"}, ConfigurationError, "timeout"),
        ({"read_batch": "0"}, ConfigurationError, "read_batch"),
        ({"dead_timout": "5"}, UnknownOptionError, "dead_timeout"),
        ({"expires": 100 * 365 * DAY}, ConfigurationError, "2038"),
    ],
)
def test_bad_options_are_refused_at_connect(
    memcached_server: Server, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        resultstore.connect(memcached_server.url, **options)


def test_capabilities_say_it_is_a_cache(store: resultstore.ResultStore) -> None:
    assert Capability.PERSISTENT not in store.capabilities
    assert Capability.PUSH not in store.capabilities
    assert {Capability.AUTO_EXPIRY, Capability.CHORDS, Capability.BULK_GET} <= store.capabilities
    listing = CliRunner().invoke(cli, ["backends"], terminal_width=250)
    assert listing.exit_code == 0, listing.output
    line = next(row for row in listing.output.splitlines() if "cache+memcached" in row)
    assert "cache" in line
    assert "persistent" not in line


# -- keys ------------------------------------------------------------------------------


LOOK_ALIKES = [
    "plain",
    "Plain",
    "with space",
    "with  two spaces",
    "ünïcode ✓",
    "x" * 512,
    "x" * 300,
    "x" * 229,
    "#" + hashlib.sha256(b"plain").hexdigest(),
    "t#" + hashlib.sha256(b"with space").hexdigest(),
    "a:b",
    "a",
    "*?[%_",
]


def test_any_id_is_a_distinct_key(store: resultstore.ResultStore) -> None:
    for n, task_id in enumerate(LOOK_ALIKES):
        store.mark_as_done(task_id, n)
    got = store.get_many(LOOK_ALIKES)
    assert {task_id: r.result if r else None for task_id, r in got.items()} == {
        task_id: n for n, task_id in enumerate(LOOK_ALIKES)
    }
    store.forget("with space")
    assert store.get("with space") is None
    assert store.get("plain") is not None
    for n, group_id in enumerate(LOOK_ALIKES):
        store.save_group(group_id, [f"m{n}"])
        store.set_chord_size(group_id, n + 1)
    for n, group_id in enumerate(LOOK_ALIKES):
        group = store.get_group(group_id)
        assert group is not None
        assert group.task_ids == (f"m{n}",)
        chord = store.get_chord(group_id)
        assert chord is not None
        assert chord.size == n + 1


def test_keys_are_plain_where_memcached_allows_and_digests_elsewhere(
    store: resultstore.ResultStore, raw: Client, prefix: str
) -> None:
    store.mark_as_done("short-id", 1)
    store.mark_as_done("has space", 2)
    long_id = "L" * 300
    store.mark_as_done(long_id, 3)
    assert raw.get(f"{prefix}t:short-id") is not None
    assert raw.get(f"{prefix}t:has space".replace(" ", "_")) is None
    for task_id in ("has space", long_id):
        digest = hashlib.sha256(task_id.encode()).hexdigest()
        assert raw.get(f"{prefix}t#{digest}") is not None


# -- values ----------------------------------------------------------------------------


def test_a_value_another_program_wrote_is_named(
    store: resultstore.ResultStore, raw: Client, prefix: str
) -> None:
    raw.set(f"{prefix}t:celery", b'{"status": "SUCCESS"}')
    with pytest.raises(CorruptPayloadError, match="key_prefix of its own"):
        store.get("celery")
    # ...and a store over it is refused too, rather than guessing its state.
    with pytest.raises(CorruptPayloadError):
        store.mark_as_done("celery", 1)
    assert store.store(TaskResult("celery", State.SUCCESS, 2), overwrite=True).stored
    raw.set(f"{prefix}c:chord:n", b"not a number")
    with pytest.raises(CorruptPayloadError, match="size and count"):
        store.chord_part_return("chord", 0, TaskResult("p", State.SUCCESS))


def test_first_store_is_one_add_and_later_ones_gets_and_cas(
    memcached_server: Server, prefix: str
) -> None:
    # A store of its own, so that no other test's commands are counted.
    with resultstore.connect(memcached_server.url, key_prefix=prefix) as store:
        before = _stats(memcached_server.address)
        store.mark_as_done("once", 1)
        after = _stats(memcached_server.address)
        assert after["cmd_set"] - before["cmd_set"] == 1  # the add
        assert after["cmd_get"] - before["cmd_get"] == 0
        before = after
        assert not store.mark_as_started("once").stored
        after = _stats(memcached_server.address)
        assert after["cmd_set"] - before["cmd_set"] == 1  # the add that found it
        assert after["cmd_get"] - before["cmd_get"] == 1  # the gets; no cas over SUCCESS


# -- expiry ----------------------------------------------------------------------------


def test_the_expiry_rule() -> None:
    assert exptime(None) == 0
    assert exptime(2.0) == 3  # whole seconds, never less than asked
    assert exptime(0.2) == 2
    assert exptime(MAX_RELATIVE_EXPTIME - 1) == MAX_RELATIVE_EXPTIME
    assert exptime(MAX_RELATIVE_EXPTIME, now=lambda: 1_000_000.5) == 1_000_000 + (
        MAX_RELATIVE_EXPTIME + 1
    )


@pytest.mark.parametrize("days", [29, 40])
def test_long_expiry_is_sent_as_memcached_reads_it(
    memcached_server: Server, prefix: str, days: int
) -> None:
    """Over 30 days memcached reads an expiry as a Unix time: 40 days sent as a count
    of seconds would be a moment in 1970, and the result would vanish at once."""
    with resultstore.connect(memcached_server.url, key_prefix=prefix, expires=days * DAY) as store:
        store.mark_as_done("long", "kept")
        store.save_group("long-group", ["long"])
        store.set_chord_size("long-chord", 2)
        store.chord_part_return("long-chord", 0, TaskResult("p0", State.SUCCESS))
        time.sleep(1.1)  # past the second in which a wrong expiry would take effect
        result = store.get("long")
        assert result is not None
        assert result.result == "kept"
        assert store.get_group("long-group") is not None
        assert store.get_chord("long-chord") is not None
    # The server's own count of what is left: `mg <key> t` (meta get, memcached 1.6).
    for key in (f"{prefix}t:long", f"{prefix}g:long-group", f"{prefix}c:long-chord:n"):
        reply = _meta(memcached_server.address, f"mg {key} t")
        assert reply.startswith("HD t"), reply
        left = int(reply.split()[1][1:])
        assert days * DAY - 60 <= left <= days * DAY + 2, (key, left)


def test_results_expire_on_the_server(memcached_server: Server, prefix: str) -> None:
    with resultstore.connect(memcached_server.url, key_prefix=prefix, expires=1) as store:
        store.mark_as_done("brief", 1)
        assert store.get("brief") is not None
        deadline = time.monotonic() + 10
        while store.get("brief") is not None:
            assert time.monotonic() < deadline, "a 1 s result outlived 10 s"
            time.sleep(0.2)
        # Expired counts as absent: a new store is a first store again.
        assert store.mark_as_started("brief").previous_state is None


# -- item size -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_items(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_memcached(tmp_path_factory.mktemp("small"), item_size="64k") as server:
        yield server


def test_results_over_the_item_size_get_a_clear_error(small_items: Server) -> None:
    big = "x" * 100_000
    with resultstore.connect(small_items.url, key_prefix=_prefix()) as store:
        store.mark_as_done("fits", "y" * 30_000)
        with pytest.raises(ResultTooLargeError) as info:
            store.mark_as_done("big", big)
        error = info.value
        assert isinstance(error, ItemTooLargeError)
        assert error.limit == 65536
        assert "65,536 bytes" in str(error)
        assert "-I" in str(error)
        assert "'big'" in str(error)
        assert store.get("big") is None
        # The connection survived: later calls work.
        fits = store.get("fits")
        assert fits is not None
        assert fits.result == "y" * 30_000
        batch = [TaskResult(f"b{i}", State.SUCCESS, i) for i in range(5)]
        batch.insert(3, TaskResult("b-big", State.SUCCESS, big))
        with pytest.raises(ItemTooLargeError, match="Nothing of the batch was stored"):
            store.store_many(batch)
        assert store.get_many([r.task_id for r in batch]) == dict.fromkeys(r.task_id for r in batch)
        with pytest.raises(ItemTooLargeError, match="group 'g'"):
            store.save_group("g", [f"member-{'z' * 40}-{i}" for i in range(2000)])
        store.set_chord_size("c", 1)
        with pytest.raises(ItemTooLargeError, match="part 0 of chord 'c'"):
            store.chord_part_return("c", 0, TaskResult("p", State.SUCCESS, big))


# -- chords ----------------------------------------------------------------------------


def test_chord_state_and_errors(store: resultstore.ResultStore) -> None:
    with pytest.raises(ChordError, match="no size set"):
        store.chord_part_return("unsized", 0, TaskResult("p", State.SUCCESS))
    store.set_chord_size("empty", 0)
    with pytest.raises(ChordError, match="size 0"):
        store.chord_part_return("empty", 0, TaskResult("p", State.SUCCESS))
    store.set_chord_size("c", 3)
    with pytest.raises(ChordError, match="out of range"):
        store.chord_part_return("c", 3, TaskResult("p", State.SUCCESS))
    first = store.chord_part_return("c", 2, TaskResult("p2", State.SUCCESS, 2))
    again = store.chord_part_return("c", 2, TaskResult("p2", State.SUCCESS, 99))
    assert (first.duplicate, first.received) == (False, 1)
    assert (again.duplicate, again.received) == (True, 1)
    store.chord_part_return("c", 0, TaskResult("p0", State.SUCCESS, 0))
    last = store.chord_part_return("c", 1, TaskResult("p1", State.FAILURE))
    assert last.complete
    assert last.results is not None
    assert [r.task_id for r in last.results] == ["p0", "p1", "p2"]
    assert last.results[2].result == 2  # the first copy of a part wins
    state = store.get_chord("c")
    assert state is not None
    assert (state.received, state.completed) == (frozenset({0, 1, 2}), True)
    with pytest.raises(ChordError, match="between 0 and"):
        store.set_chord_size("huge", 2**32)


def test_chord_parts_from_four_processes_with_duplicates(memcached_server: Server) -> None:
    size = 1000
    prefix = _prefix()
    with resultstore.connect(memcached_server.url, key_prefix=prefix) as store:
        store.set_chord_size("big", size)
    rng = random.Random(7)
    indices = list(range(size)) + rng.sample(range(size), size // 10)
    rng.shuffle(indices)
    shares = [indices[i::4] for i in range(4)]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        reports = pool.starmap(
            _chord_worker.send_parts,
            [(memcached_server.url, prefix, "big", share) for share in shares],
        )
    completions = [c for report in reports for c in report]
    assert completions == [list(range(size))]


# -- a server that is not there --------------------------------------------------------


def test_a_dead_server_fails_within_retry_total(tmp_path: Path) -> None:
    with start_memcached(tmp_path / "gone") as server:
        url = server.url
    started = time.monotonic()
    with (
        resultstore.connect(url, retry_total=1) as store,
        pytest.raises(BackendUnavailableError, match=f"{server.host}:{server.port}"),
    ):
        store.mark_as_done("t", 1)
    assert time.monotonic() - started < 5


def test_large_results_fit_when_the_server_allows(tmp_path: Path) -> None:
    value = os.urandom(4 * 1024 * 1024 + 3)
    with (
        start_memcached(tmp_path / "large", item_size="8m", memory_mb=128) as server,
        resultstore.connect(server.url, codec="msgpack", max_result_size="16m") as store,
    ):
        store.mark_as_done("big", value)
        result = store.get("big")
        assert result is not None
        assert result.result == value
        assert store.get_many(["big"])["big"] == result


def test_round_trips_per_call(store: resultstore.ResultStore) -> None:
    (node,) = store.backend.ring.nodes  # type: ignore[attr-defined]

    def trips(call: Any) -> int:
        before = node.calls
        call()
        return int(node.calls - before)

    assert trips(lambda: store.mark_as_done("rt", 1)) == 1  # add
    assert trips(lambda: store.get("rt")) == 1
    assert trips(lambda: store.get_many([f"m{i}" for i in range(450)])) == 3  # read_batch=200
    assert (
        trips(lambda: store.store_many([TaskResult(f"b{i}", State.SUCCESS) for i in range(450)]))
        == 3
    )
    store.set_chord_size("rt-chord", 2)
    part = TaskResult("p", State.SUCCESS)
    assert trips(lambda: store.chord_part_return("rt-chord", 0, part)) == 3  # gat, add, incr
    assert trips(lambda: store.chord_part_return("rt-chord", 0, part)) == 2  # a duplicate: no incr
    # The last part also reads the parts and marks the chord done.
    assert trips(lambda: store.chord_part_return("rt-chord", 1, part)) == 5
