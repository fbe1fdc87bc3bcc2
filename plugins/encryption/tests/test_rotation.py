"""Key rotation and migrating a plaintext store, across stores that share data."""

from __future__ import annotations

import pytest
from encryption_support import connect, raw_result
from resultstore import UnknownCodecError
from resultstore.payloads.codecs import parse_envelope
from resultstore_encryption import (
    Encryption,
    Keyring,
    UnencryptedPayloadError,
    UnknownKeyError,
)


def test_rotation_keeps_old_results_readable(memory_url: str, key1: bytes, key2: bytes) -> None:
    before = connect(memory_url, Encryption(keys={"k1": key1}))
    before.mark_as_done("old", "written under k1")

    after = connect(memory_url, Encryption(keys={"k2": key2, "k1": key1}))
    after.mark_as_done("new", "written under k2")

    assert parse_envelope(raw_result(after, "old"))[0]["kid"] == "k1"
    assert parse_envelope(raw_result(after, "new"))[0]["kid"] == "k2"
    old, new = after.get("old"), after.get("new")
    assert old is not None
    assert old.result == "written under k1"
    assert new is not None
    assert new.result == "written under k2"

    # A reader not yet given k2 is told which id it lacks.
    with pytest.raises(UnknownKeyError, match="'k2'"):
        before.get("new")
    # Once k1 is retired, what it wrote is unreadable, with the same error.
    retired = connect(memory_url, Encryption(keys=Keyring.from_mapping({"k2": key2})))
    with pytest.raises(UnknownKeyError, match="'k1'"):
        retired.get("old")


def test_rotation_with_keyring_rotate(memory_url: str, key1: bytes, key2: bytes) -> None:
    ring = Keyring.from_mapping({"k1": key1})
    connect(memory_url, Encryption(keys=ring)).mark_as_done("a", 1)
    store = connect(memory_url, Encryption(keys=ring.rotate("k2", key2)))
    store.mark_as_done("b", 2)
    assert parse_envelope(raw_result(store, "b"))[0]["kid"] == "k2"
    got = store.get("a")
    assert got is not None
    assert got.result == 1


def test_plaintext_results_pass_through(memory_url: str, key1: bytes) -> None:
    plain = connect(memory_url)
    plain.mark_as_done("legacy", {"v": 1})
    encrypted = connect(memory_url, Encryption(keys={"k1": key1}))
    got = encrypted.get("legacy")
    assert got is not None
    assert got.result == {"v": 1}
    # The plaintext payload was not rewritten by reading it.
    assert raw_result(encrypted, "legacy").startswith(b"rs1 codec=json")


def test_require_encryption_refuses_plaintext(memory_url: str, key1: bytes) -> None:
    connect(memory_url).mark_as_done("legacy", {"v": 1})
    strict = connect(memory_url, Encryption(keys={"k1": key1}, require_encryption=True))
    strict.mark_as_done("fresh", 2)
    fresh = strict.get("fresh")
    assert fresh is not None
    assert fresh.result == 2
    with pytest.raises(UnencryptedPayloadError, match=r"not encrypted \(header: codec=json\)"):
        strict.get("legacy")


def test_a_reader_without_the_plugin_is_told_to_install_it(memory_url: str, key1: bytes) -> None:
    connect(memory_url, Encryption(keys={"k1": key1})).mark_as_done("t", 1)
    with pytest.raises(UnknownCodecError, match="resultstore-encryption"):
        connect(memory_url).get("t")
