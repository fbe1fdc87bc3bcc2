"""Altered payloads, swapped headers and unknown keys are refused with specific errors."""

from __future__ import annotations

import pytest
from encryption_support import connect, memory, raw_result
from hypothesis import given, settings
from hypothesis import strategies as st
from resultstore import CorruptPayloadError, DecodeError, UnknownCodecError
from resultstore_encryption import DecryptionError, Encryption, UnknownKeyError, generate_key


def _flip(payload: bytes, index: int) -> bytes:
    return payload[:index] + bytes([payload[index] ^ 0x01]) + payload[index + 1 :]


def test_a_flipped_ciphertext_byte_fails_authentication(key1: bytes) -> None:
    store = connect("memory://", Encryption(keys={"k1": key1}))
    store.mark_as_done("t", {"v": 1})
    raw = raw_result(store, "t")
    memory(store).plant_payload("t", _flip(raw, len(raw) - 20))
    with pytest.raises(DecryptionError, match="failed authentication") as info:
        store.get("t")
    assert isinstance(info.value, CorruptPayloadError)
    assert info.value.kid == "k1"
    assert "different key under the same key id" in str(info.value)


def test_a_flipped_tag_byte_fails_authentication(key1: bytes) -> None:
    store = connect("memory://", Encryption(keys={"k1": key1}))
    store.mark_as_done("t", {"v": 1})
    raw = raw_result(store, "t")
    memory(store).plant_payload("t", _flip(raw, len(raw) - 1))
    with pytest.raises(DecryptionError):
        store.get("t")


def test_swapping_the_key_id_fails_even_when_both_ids_hold_the_same_key(key1: bytes) -> None:
    # Same key under both ids: only the header being authenticated catches the swap.
    store = connect("memory://", Encryption(keys={"a": key1, "b": key1}))
    store.mark_as_done("t", 1)
    raw = raw_result(store, "t")
    assert raw.startswith(b"rs1 enc=aesgcm;kid=a\n")
    memory(store).plant_payload("t", raw.replace(b"kid=a\n", b"kid=b\n", 1))
    with pytest.raises(DecryptionError) as info:
        store.get("t")
    assert info.value.kid == "b"


def test_an_added_header_field_fails_authentication(key1: bytes) -> None:
    store = connect("memory://", Encryption(keys={"k1": key1}))
    store.mark_as_done("t", 1)
    raw = raw_result(store, "t")
    memory(store).plant_payload("t", raw.replace(b"kid=k1\n", b"kid=k1;x=1\n", 1))
    with pytest.raises(DecryptionError):
        store.get("t")


def test_a_different_key_under_the_same_id_fails_authentication(key1: bytes, key2: bytes) -> None:
    writer = connect("memory://", Encryption(keys={"k1": key1}))
    writer.mark_as_done("t", 1)
    reader = connect("memory://", Encryption(keys={"k1": key2}))
    memory(reader).plant_payload("t", raw_result(writer, "t"))
    with pytest.raises(DecryptionError, match="kid=k1"):
        reader.get("t")


def test_a_truncated_payload_is_refused(key1: bytes) -> None:
    store = connect("memory://", Encryption(keys={"k1": key1}))
    memory(store).plant_payload("t", b"rs1 enc=aesgcm;kid=k1\n" + b"\x00" * 20)
    with pytest.raises(DecryptionError, match="shorter than nonce and tag"):
        store.get("t")


def test_a_header_without_key_id_is_refused(key1: bytes) -> None:
    store = connect("memory://", Encryption(keys={"k1": key1}))
    memory(store).plant_payload("t", b"rs1 enc=aesgcm\n" + b"\x00" * 40)
    with pytest.raises(DecryptionError, match="names no key id"):
        store.get("t")


def test_unknown_key_id_names_it_and_the_fix(key1: bytes, key2: bytes) -> None:
    writer = connect("memory://", Encryption(keys={"2025-11": key2}))
    writer.mark_as_done("t", 1)
    reader = connect("memory://", Encryption(keys={"2025-01": key1}))
    memory(reader).plant_payload("t", raw_result(writer, "t"))
    with pytest.raises(UnknownKeyError) as info:
        reader.get("t")
    assert isinstance(info.value, UnknownCodecError)
    assert info.value.kid == "2025-11"
    message = str(info.value)
    assert "'2025-11'" in message
    assert "it has: 2025-01" in message
    assert "RESULTSTORE_ENCRYPTION_KEYS" in message


def test_an_unknown_algorithm_asks_for_an_upgrade(key1: bytes) -> None:
    store = connect("memory://", Encryption(keys={"k1": key1}))
    memory(store).plant_payload("t", b"rs1 enc=xchacha;kid=k1\n" + b"\x00" * 40)
    with pytest.raises(UnknownCodecError, match=r"enc=xchacha.*upgrade resultstore-encryption"):
        store.get("t")


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_no_single_byte_change_is_ever_accepted(data: st.DataObject) -> None:
    keys = {"k1": generate_key(), "k2": generate_key()}
    encryption = Encryption(keys=keys)
    store = connect("memory://", encryption)
    store.mark_as_done("t", data.draw(st.text(max_size=20)))
    raw = raw_result(store, "t")
    index = data.draw(st.integers(0, len(raw) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda b: b != raw[index]))
    memory(store).plant_payload("t", raw[:index] + bytes([value]) + raw[index + 1 :])
    with pytest.raises(DecodeError):
        store.get("t")


def test_a_payload_without_any_header_is_corrupt(key1: bytes) -> None:
    store = connect("memory://", Encryption(keys={"k1": key1}))
    memory(store).plant_payload("t", b"not a resultstore payload")
    with pytest.raises(CorruptPayloadError, match="does not start with a resultstore header"):
        store.get("t")
