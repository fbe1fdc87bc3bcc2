"""Results, groups and chord parts go through encryption and come back equal."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import pytest
from encryption_support import connect, memory, raw_result
from resultstore import ResultTooLargeError, State, TaskResult
from resultstore.payloads.codecs import CodecOptions, encode_payload, parse_envelope
from resultstore_encryption import Encryption
from resultstore_encryption.plugin import NONCE_SIZE, TAG_SIZE

MARKER = "plaintext-marker-7f3a"


def _result(task_id: str, **fields: object) -> TaskResult:
    return TaskResult(
        task_id,
        State.SUCCESS,
        {"value": MARKER, "n": [1, 2, 3]},
        date_done=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        name=f"tasks.{MARKER}",
        args=(MARKER,),
        kwargs={"k": MARKER},
        **fields,  # type: ignore[arg-type]  # test-only passthrough of model fields
    )


def test_result_round_trip_and_stored_bytes_hide_everything(key1: bytes) -> None:
    store = connect("memory://", Encryption(keys={"k1": key1}))
    result = _result("task-secret-id")
    assert store.store(result).stored
    assert store.get("task-secret-id") == result
    raw = raw_result(store, "task-secret-id")
    fields, _ = parse_envelope(raw)
    assert fields == {"enc": "aesgcm", "kid": "k1"}
    for plain in (MARKER.encode(), b"task-secret-id", b"codec=", b"SUCCESS"):
        assert plain not in raw


def test_plain_store_does_show_the_marker() -> None:
    # The control for the test above: without the plugin the marker is visible.
    store = connect("memory://")
    store.store(_result("t"))
    assert MARKER.encode() in raw_result(store, "t")


def test_failure_with_traceback_round_trips(key1: bytes) -> None:
    store = connect("memory://", Encryption(keys={"k1": key1}))
    try:
        raise ValueError(MARKER)
    except ValueError as exc:
        store.mark_as_failure("f", exc)
    got = store.get("f")
    assert got is not None
    assert got.state == State.FAILURE
    assert got.exception is not None
    assert got.exception.message == MARKER
    assert got.traceback is not None
    assert MARKER in got.traceback
    assert MARKER.encode() not in raw_result(store, "f")


def test_get_many_and_store_many(key1: bytes) -> None:
    store = connect("memory://", Encryption(keys={"k1": key1}))
    results = [_result(f"t{i}") for i in range(3)]
    store.store_many(results)
    assert store.get_many(["t0", "t1", "t2", "missing"]) == {
        "t0": results[0],
        "t1": results[1],
        "t2": results[2],
        "missing": None,
    }


def test_ready_state_rule_still_holds(key1: bytes) -> None:
    store = connect("memory://", Encryption(keys={"k1": key1}))
    store.mark_as_done("t", 1)
    outcome = store.mark_as_started("t")
    assert not outcome.stored
    got = store.get("t")
    assert got is not None
    assert got.result == 1


def test_group_round_trip_is_encrypted(key1: bytes) -> None:
    store = connect("memory://", Encryption(keys={"k1": key1}))
    group = store.save_group("group-secret", ["member-a", "member-b"])
    assert store.get_group("group-secret") == group
    payload, _ = memory(store).data.groups["group-secret"]
    assert parse_envelope(payload)[0]["enc"] == "aesgcm"
    assert b"member-a" not in payload


def test_chord_parts_round_trip_in_header_order(key1: bytes) -> None:
    store = connect("memory://", Encryption(keys={"k1": key1}))
    store.set_chord_size("c", 3)
    parts = [TaskResult(f"part{i}", State.SUCCESS, f"{MARKER}-{i}") for i in range(3)]
    first = store.chord_part_return("c", 2, parts[2])
    duplicate = store.chord_part_return("c", 2, parts[2])
    store.chord_part_return("c", 0, parts[0])
    last = store.chord_part_return("c", 1, parts[1])
    assert not first.complete
    assert duplicate.duplicate
    assert not duplicate.complete
    assert last.complete
    assert last.results == tuple(parts)
    for payload in memory(store).data.chords["c"].parts.values():
        assert parse_envelope(payload)[0]["enc"] == "aesgcm"
        assert MARKER.encode() not in payload


def test_codec_and_compression_are_hidden(key1: bytes) -> None:
    store = connect(
        "memory://",
        Encryption(keys={"k1": key1}),
        codec="msgpack",
        compression="zlib",
        compress_threshold=0,
    )
    result = TaskResult("t", State.SUCCESS, b"\x00bytes need msgpack" * 50)
    store.store(result)
    assert store.get("t") == result
    raw = raw_result(store, "t")
    assert b"msgpack" not in raw
    assert b"zlib" not in raw
    inner = Encryption(keys={"k1": key1}).decrypt(raw)
    assert parse_envelope(inner)[0] == {"codec": "msgpack", "comp": "zlib"}


def test_each_payload_gets_a_fresh_nonce(key1: bytes) -> None:
    encryption = Encryption(keys={"k1": key1})
    inner = b"rs1 codec=json\n{}"
    one, two = encryption.encrypt(inner), encryption.encrypt(inner)
    assert one != two
    assert encryption.decrypt(one) == encryption.decrypt(two) == inner


def test_an_instance_pickles_with_its_keys_for_worker_processes(key1: bytes, key2: bytes) -> None:
    original = Encryption(keys={"k2": key2, "k1": key1}, require_encryption=True)
    copy = pickle.loads(pickle.dumps(original))
    assert copy.keyring == original.keyring
    assert copy.require_encryption
    payload = b"rs1 codec=json\n{}"
    assert copy.decrypt(original.encrypt(payload)) == payload
    assert original.decrypt(copy.encrypt(payload)) == payload


def test_size_limit_applies_to_the_encrypted_payload(key1: bytes) -> None:
    result = _result("t")
    plain_size = len(encode_payload(result, CodecOptions()))
    header = b"rs1 enc=aesgcm;kid=k1\n"
    encrypted_size = len(header) + NONCE_SIZE + plain_size + TAG_SIZE
    limit = plain_size + 10  # room for the plaintext, not for the envelope

    assert connect("memory://", max_result_size=limit).store(result).stored
    store = connect("memory://", Encryption(keys={"k1": key1}), max_result_size=limit)
    with pytest.raises(ResultTooLargeError) as info:
        store.store(result)
    assert info.value.size == encrypted_size
    assert info.value.limit == limit
    assert store.get("t") is None
