"""FileKeyValueStore on its own: files, expiry, cleanup and atomic steps across processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import resultstore
from resultstore import BackendUnavailableError, CorruptPayloadError, InvalidURLError, State
from resultstore_template import FileKeyValueStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def kv(tmp_path: Path, clock: FakeClock) -> FileKeyValueStore:
    return FileKeyValueStore(tmp_path / "kv", clock=clock)


def test_set_get_delete(kv: FileKeyValueStore) -> None:
    assert kv.get("a") is None
    kv.set("a", b"one", None)
    kv.set("b", b"", None)
    assert kv.get_many(["a", "b", "c"]) == [b"one", b"", None]
    kv.delete(["a", "c"])
    assert kv.get("a") is None
    assert kv.get("b") == b""


@pytest.mark.parametrize(
    "key", ["with/slash", "../escape", "ünïcode ✓", "x" * 2000, "line\nbreak", ""]
)
def test_any_key_stays_inside_the_folder(kv: FileKeyValueStore, key: str) -> None:
    kv.set(key, b"v", None)
    assert kv.get(key) == b"v"
    files = [p for p in (kv.folder / "keys").rglob("*") if p.is_file()]
    assert len(files) == 1
    assert files[0].is_relative_to(kv.folder)


def test_a_new_store_on_the_folder_reads_what_was_written(
    kv: FileKeyValueStore, clock: FakeClock
) -> None:
    kv.set("k", b"persisted", 60)
    kv.add_to_set("s", "m", None)
    again = FileKeyValueStore(kv.folder, clock=clock)
    assert again.get("k") == b"persisted"
    assert again.add_to_set("s", "m", None) == (False, 1)


def test_expired_keys_read_as_absent_until_purged(kv: FileKeyValueStore, clock: FakeClock) -> None:
    kv.set("short", b"1", 10)
    kv.set("long", b"2", 100)
    kv.set("kept", b"3", None)
    clock.now += 10
    assert kv.get_many(["short", "long", "kept"]) == [None, b"2", b"3"]
    assert kv.purge_expired() == ["short"]
    assert kv.purge_expired() == []
    clock.now += 1000
    assert sorted(kv.purge_expired()) == ["long"]
    assert kv.get("kept") == b"3"
    remaining = [p for p in (kv.folder / "keys").rglob("*") if p.is_file()]
    assert len(remaining) == 1


def test_rewriting_a_key_restarts_its_expiry(kv: FileKeyValueStore, clock: FakeClock) -> None:
    kv.set("k", b"1", 10)
    clock.now += 9
    kv.set("k", b"2", 10)
    clock.now += 9
    assert kv.get("k") == b"2"
    assert kv.purge_expired() == []


def test_ttl_must_be_positive(kv: FileKeyValueStore) -> None:
    with pytest.raises(ValueError, match="positive"):
        kv.set("k", b"v", 0)


def test_compare_and_set(kv: FileKeyValueStore, clock: FakeClock) -> None:
    assert kv.compare_and_set("k", None, b"1", None)
    assert not kv.compare_and_set("k", None, b"2", None)
    assert not kv.compare_and_set("k", b"0", b"2", None)
    assert kv.compare_and_set("k", b"1", b"2", 5)
    assert kv.get("k") == b"2"
    clock.now += 5
    # An expired key counts as absent for the comparison too.
    assert kv.compare_and_set("k", None, b"3", None)


def test_add_to_set(kv: FileKeyValueStore, clock: FakeClock) -> None:
    assert kv.add_to_set("s", "0", 10) == (True, 1)
    assert kv.add_to_set("s", "a\nb", 10) == (True, 2)
    assert kv.add_to_set("s", "0", 10) == (False, 2)
    clock.now += 10
    assert kv.add_to_set("s", "0", 10) == (True, 1)


def test_a_key_is_bytes_or_a_set_not_both(kv: FileKeyValueStore) -> None:
    kv.set("b", b"x", None)
    kv.add_to_set("s", "m", None)
    with pytest.raises(TypeError, match="not a set"):
        kv.add_to_set("b", "m", None)
    with pytest.raises(TypeError, match="not bytes"):
        kv.get("s")


def test_a_damaged_file_names_itself(kv: FileKeyValueStore) -> None:
    kv.set("k", b"v", None)
    (path,) = [p for p in (kv.folder / "keys").rglob("*") if p.is_file()]
    path.write_bytes(b"not a filekv file")
    with pytest.raises(CorruptPayloadError, match=str(path)):
        kv.get("k")
    # cleanup walks past it rather than failing on it
    assert kv.purge_expired() == []


def test_an_unwritable_folder_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(BackendUnavailableError, match="cannot use"):
        FileKeyValueStore(blocker / "kv")


@pytest.mark.parametrize(
    ("url", "message"),
    [("filekv://host/x", "has a host part"), ("filekv://", "names no folder")],
)
def test_bad_urls_say_how_to_write_them(url: str, message: str) -> None:
    with pytest.raises(InvalidURLError, match=message):
        resultstore.connect(url)


def test_cleanup_through_the_facade(tmp_path: Path, clock: FakeClock) -> None:
    url = f"filekv:///{tmp_path}/store"
    with resultstore.connect(url, clock=clock, expires=10) as store:
        store.mark_as_done("old", 1)
        clock.now += 5
        store.mark_as_done("new", 2)
        clock.now += 6
        assert store.cleanup() == 1
        assert store.get("old") is None
        got = store.get("new")
        assert got is not None
        assert got.state == State.SUCCESS


# -- atomicity across processes ------------------------------------------------------


def _increment(folder: str, times: int) -> int:
    """Add one to the counter ``times`` times with compare_and_set; return the retries."""
    kv = FileKeyValueStore(Path(folder))
    retries = 0
    for _ in range(times):
        while True:
            current = kv.get("counter")
            new = str(int(current or b"0") + 1).encode()
            if kv.compare_and_set("counter", current, new, None):
                break
            retries += 1
    return retries


def _join(folder: str, member: str) -> tuple[bool, int]:
    return FileKeyValueStore(Path(folder)).add_to_set("members", member, None)


def test_compare_and_set_loses_no_update_across_processes(tmp_path: Path) -> None:
    workers, times = 4, 50
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.starmap(_increment, [(str(tmp_path), times)] * workers)
    assert FileKeyValueStore(tmp_path).get("counter") == str(workers * times).encode()


def test_add_to_set_sizes_are_exact_across_processes(tmp_path: Path) -> None:
    members = [str(i) for i in range(24)]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        outcomes = pool.starmap(_join, [(str(tmp_path), m) for m in members])
    assert all(added for added, _ in outcomes)
    # Each addition saw its own size: exactly one caller saw the set complete.
    assert sorted(size for _, size in outcomes) == list(range(1, len(members) + 1))
