"""Encryption over a real SQLite file: nothing readable lands on disk, and it reads back."""

from __future__ import annotations

from pathlib import Path

import pytest
import resultstore
from resultstore import UnknownCodecError
from resultstore_encryption import Encryption

MARKER = b"sqlite-plaintext-marker-91c2"


def _file_bytes(db: Path) -> bytes:
    # The WAL and shared-memory files may hold pages not yet checkpointed.
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


def _fill(url: str, *plugins: object) -> None:
    with resultstore.connect(url, plugins=plugins) as store:
        store.mark_as_done("t", MARKER.decode())
        store.save_group("g", ["member-" + MARKER.decode()])
        store.set_chord_size("c", 1)
        store.chord_part_return("c", 0, resultstore.TaskResult("p", "SUCCESS", MARKER.decode()))


def test_sqlite_file_holds_no_plaintext(tmp_path: Path, key1: bytes) -> None:
    db = tmp_path / "encrypted.db"
    url = f"sqlite:///{db}"
    _fill(url, Encryption(keys={"k1": key1}))
    assert _file_bytes(db)
    assert MARKER not in _file_bytes(db)

    with resultstore.connect(url, plugins=[Encryption(keys={"k1": key1})]) as store:
        got = store.get("t")
        assert got is not None
        assert got.result == MARKER.decode()
        group = store.get_group("g")
        assert group is not None
        assert group.task_ids == ("member-" + MARKER.decode(),)
    with resultstore.connect(url) as plain, pytest.raises(UnknownCodecError):
        plain.get("t")


def test_sqlite_control_plaintext_is_visible(tmp_path: Path) -> None:
    db = tmp_path / "plain.db"
    _fill(f"sqlite:///{db}")
    assert MARKER in _file_bytes(db)
