"""The embedded ``sqlite://`` backend: real files, real threads and spawned processes."""

from __future__ import annotations

import multiprocessing
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import _sqlite_workers as workers
import pytest
from resultstore import (
    READY_STATES,
    BackendUnavailableError,
    ChordError,
    ConfigurationError,
    CorruptPayloadError,
    InvalidURLError,
    State,
    UnknownOptionError,
    build_hooks,
    connect,
)
from resultstore.backends.sqlite import SCHEMA_VERSION, SQLiteBackend
from resultstore.concepts.models import ExceptionInfo, Group, TaskResult, utcnow
from resultstore.plugin.discovery import find_backend

open_backend = workers.open_backend


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "results.db"


@pytest.fixture
def backend(db: Path) -> Iterator[SQLiteBackend]:
    b = open_backend(db)
    yield b
    b.close()


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as executor:
        # Start all four processes up front, so the racing tests race.
        assert sorted(executor.map(workers.ready, range(4))) == [0, 1, 2, 3]
        yield executor


def raw(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db, isolation_level=None)


# -- wiring --------------------------------------------------------------------


def test_capabilities_are_the_declared_ones() -> None:
    spec = find_backend("sqlite", build_hooks())
    assert spec.load() is SQLiteBackend
    assert SQLiteBackend.capabilities == spec.capabilities


def test_connect_builds_it_from_a_url_with_options(db: Path) -> None:
    with connect(f"sqlite:///{db}?timeout=5", expires=60) as store:
        assert isinstance(store.backend, SQLiteBackend)
        assert store.backend.timeout == 5.0
        store.mark_as_done("t", {"answer": 42})
        got = store.get("t")
        assert got is not None
        assert (got.state, got.result) == (State.SUCCESS, {"answer": 42})


def test_file_is_wal_with_the_schema_version(backend: SQLiteBackend, db: Path) -> None:
    conn = raw(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"results", "groups", "chords", "chord_parts"} <= tables
    conn.close()


# -- URLs ------------------------------------------------------------------------


def test_relative_path_is_under_cwd_and_parents_are_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with connect("sqlite:///sub/dir/rel.db") as store:
        assert store.backend.path == tmp_path / "sub" / "dir" / "rel.db"  # type: ignore[attr-defined]
        store.mark_as_started("t")
    assert (tmp_path / "sub" / "dir" / "rel.db").is_file()


def test_absolute_path_takes_four_slashes_and_is_percent_decoded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/with%20space.db"
    assert url.startswith("sqlite:////")
    with connect(url) as store:
        store.mark_as_started("t")
    assert (tmp_path / "with space.db").is_file()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite://", "names no database file"),
        ("sqlite:///:memory:", "in-memory SQLite database"),
        ("sqlite:///file::memory:?cache=shared", "in-memory SQLite database"),
    ],
)
def test_memory_databases_are_refused_with_memory_scheme_advice(url: str, expected: str) -> None:
    with pytest.raises(InvalidURLError, match=expected) as info:
        connect(url)
    assert "memory://" in str(info.value)
    assert "shared by processes" in str(info.value)


def test_a_host_part_is_refused_with_the_slash_rule() -> None:
    with pytest.raises(InvalidURLError, match="three slashes"):
        connect("sqlite://results.db")


# -- options -------------------------------------------------------------------


def test_unknown_option_lists_the_accepted_ones(db: Path) -> None:
    with pytest.raises(UnknownOptionError, match="bogus") as info:
        open_backend(db, bogus=1)
    assert "timeout" in str(info.value)
    assert "clock" in str(info.value)
    assert not db.exists()


@pytest.mark.parametrize(("name", "value"), [("timeout", "soon"), ("timeout", -1), ("clock", 3)])
def test_bad_option_values_are_configuration_errors(db: Path, name: str, value: object) -> None:
    options: dict[str, Any] = {name: value}
    with pytest.raises(ConfigurationError, match=name):
        open_backend(db, **options)


# -- paths that cannot be used ---------------------------------------------------


def test_a_directory_is_refused_with_a_file_suggestion(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="directory") as info:
        open_backend(tmp_path)
    assert str(tmp_path / "results.db") in str(info.value)


def test_a_folder_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    target = blocker / "sub" / "results.db"
    with pytest.raises(BackendUnavailableError, match="cannot create the folder") as info:
        open_backend(target)
    assert str(target) in str(info.value)
    assert "writable location" in str(info.value)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_an_unwritable_folder(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(BackendUnavailableError, match="writable") as info:
            open_backend(folder / "results.db")
        assert str(folder / "results.db") in str(info.value)
    finally:
        folder.chmod(0o700)


def test_a_file_that_is_not_a_database(db: Path) -> None:
    db.write_bytes(b"these are somebody's notes, not a database\n" * 200)
    with pytest.raises(BackendUnavailableError, match="not an SQLite database") as info:
        open_backend(db)
    assert str(db) in str(info.value)
    assert "new file" in str(info.value)


def test_a_database_with_foreign_tables_of_the_same_name(db: Path) -> None:
    conn = raw(db)
    conn.execute("CREATE TABLE results (id INTEGER PRIMARY KEY, score REAL)")
    conn.close()
    with pytest.raises(BackendUnavailableError, match="did not create") as info:
        open_backend(db)
    assert "results" in str(info.value)
    assert str(db) in str(info.value)


def test_a_newer_schema_asks_for_an_upgrade(db: Path) -> None:
    conn = raw(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(BackendUnavailableError, match="upgrade resultstore"):
        open_backend(db)


def test_a_lock_held_past_the_timeout_is_unavailable_then_recovers(db: Path) -> None:
    backend = open_backend(db, timeout=0.05)
    backend.store(TaskResult("before", State.SUCCESS, 1))
    holder = raw(db)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(BackendUnavailableError, match="locked") as info:
            backend.store(TaskResult("t", State.STARTED))
        assert "timeout" in str(info.value)
        assert str(db) in str(info.value)
        # WAL: readers are not blocked by a writer.
        assert backend.get("before") is not None
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert backend.store(TaskResult("t", State.STARTED)).stored
    backend.close()


# -- the ready-state rule ------------------------------------------------------------


def test_ready_state_is_final_unless_overwrite(backend: SQLiteBackend) -> None:
    first = backend.store(TaskResult("t", State.STARTED))
    assert (first.stored, first.previous_state) == (True, None)
    done = backend.store(TaskResult("t", State.SUCCESS, "v1"))
    assert (done.stored, done.state, done.previous_state) == (True, "SUCCESS", "STARTED")

    refused = backend.store(TaskResult("t", State.STARTED))
    assert (refused.stored, refused.state, refused.previous_state) == (False, "SUCCESS", "SUCCESS")
    refused = backend.store(TaskResult("t", State.FAILURE))
    assert (refused.stored, refused.state) == (False, "SUCCESS")
    assert backend.get("t") == TaskResult("t", State.SUCCESS, "v1")

    forced = backend.store(TaskResult("t", State.FAILURE), overwrite=True)
    assert (forced.stored, forced.state, forced.previous_state) == (True, "FAILURE", "SUCCESS")
    assert backend.get("t") == TaskResult("t", State.FAILURE)


def test_unready_and_custom_states_follow_each_other(backend: SQLiteBackend) -> None:
    for state, meta in [(State.STARTED, None), ("PROGRESS", {"done": 1}), (State.RETRY, None)]:
        assert backend.store(TaskResult("t", state, meta)).stored
    assert backend.get("t") == TaskResult("t", State.RETRY)


def test_store_many_is_in_order_within_one_batch(backend: SQLiteBackend) -> None:
    backend.store(TaskResult("done", State.REVOKED))
    outcomes = backend.store_many(
        [
            TaskResult("a", State.STARTED),
            TaskResult("a", State.SUCCESS, 1),
            TaskResult("a", State.STARTED),
            TaskResult("done", State.SUCCESS),
            TaskResult("b", "PROGRESS", 0.5),
        ]
    )
    assert [(o.stored, o.state, o.previous_state) for o in outcomes] == [
        (True, "STARTED", None),
        (True, "SUCCESS", "STARTED"),
        (False, "SUCCESS", "SUCCESS"),
        (False, "REVOKED", "REVOKED"),
        (True, "PROGRESS", None),
    ]
    assert backend.store_many([]) == []


def test_ready_state_is_final_across_racing_processes(pool: ProcessPoolExecutor, db: Path) -> None:
    task_ids = [f"task-{i}" for i in range(150)]
    open_backend(db).close()
    runs = list(pool.map(workers.race_states, [str(db)] * 4, range(4), [task_ids] * 4))
    backend = open_backend(db)
    stored = backend.get_many(task_ids)
    # Each worker's outcomes are in task order, two per task.
    for i, task_id in enumerate(task_ids):
        final = stored[task_id]
        assert final is not None
        assert final.state in READY_STATES
        # The stored payload is the winner's own, not a mix of writers.
        assert final.worker in ("w0", "w1")
        assert (final.state == State.SUCCESS) == (final.worker == "w0")
        calls = [run[2 * i + step] for run in runs for step in (0, 1)]
        ready_stored = [o for state, o in calls if state in READY_STATES and o.stored]
        # Exactly one of the two ready writes won, and it is what is stored.
        assert len(ready_stored) == 1
        assert ready_stored[0].state == final.state
        for state, outcome in calls:
            if not outcome.stored:
                assert outcome.state == final.state
                assert outcome.previous_state == final.state
            elif state not in READY_STATES:
                # An unready state only lands while no ready state is there.
                assert outcome.previous_state not in READY_STATES
    backend.close()


# -- reading ---------------------------------------------------------------------------


def test_get_many_over_a_thousand_ids(backend: SQLiteBackend) -> None:
    present = [TaskResult(f"t{i}", State.SUCCESS, i) for i in range(1300)]
    backend.store_many(present)
    wanted = [f"t{i}" for i in range(0, 2600, 2)] + ["t4", "t6"]
    got = backend.get_many(wanted)
    assert list(got) == list(dict.fromkeys(wanted))
    for task_id, result in got.items():
        number = int(task_id[1:])
        if number < 1300:
            assert result == TaskResult(task_id, State.SUCCESS, number)
        else:
            assert result is None
    assert backend.get_many([]) == {}


def test_forget_and_unknown_ids(backend: SQLiteBackend) -> None:
    assert backend.get("nope") is None
    backend.forget("nope")
    backend.store(TaskResult("t", State.SUCCESS, 1))
    backend.forget("t")
    assert backend.get("t") is None
    assert backend.store(TaskResult("t", State.STARTED)).previous_state is None


def test_full_results_round_trip(backend: SQLiteBackend) -> None:
    error = ExceptionInfo("KeyError", "builtins", ("k",), "'k'")
    result = TaskResult(
        "t",
        State.FAILURE,
        exception=error,
        traceback="Traceback ...",
        date_done=utcnow(),
        children=("c1",),
        group_id="g",
        name="tasks.add",
        args=(1, 2),
        kwargs={"x": 1},
        retries=2,
    )
    backend.store(result)
    assert backend.get("t") == result


def test_a_planted_corrupt_payload_raises_a_decode_error(backend: SQLiteBackend) -> None:
    backend.plant_payload("bad", b"\x00\x01 not a resultstore payload")
    with pytest.raises(CorruptPayloadError):
        backend.get("bad")
    with pytest.raises(CorruptPayloadError):
        backend.get_many(["bad"])
    # The planted state still counts for the ready rule.
    assert not backend.store(TaskResult("bad", State.STARTED)).stored


# -- persistence, close, threads, fork ---------------------------------------------------


def test_results_survive_close_and_reopen(db: Path) -> None:
    first = open_backend(db)
    first.store(TaskResult("t", State.SUCCESS, [1, 2, 3]))
    first.save_group(Group("g", ("t",)))
    first.set_chord_size("c", 2)
    first.chord_part_return("c", 1, TaskResult("p1", State.SUCCESS))
    first.close()

    with pytest.raises(BackendUnavailableError, match="closed"):
        first.get("t")

    second = open_backend(db)
    assert second.get("t") == TaskResult("t", State.SUCCESS, [1, 2, 3])
    assert second.get_group("g") == Group("g", ("t",))
    outcome = second.chord_part_return("c", 0, TaskResult("p0", State.SUCCESS))
    assert outcome.complete
    assert [r.task_id for r in outcome.results or ()] == ["p0", "p1"]
    second.close()


def test_threads_each_get_a_connection_and_close_ends_them(db: Path) -> None:
    backend = open_backend(db)
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(40):
                backend.store(TaskResult(f"w{worker}-{i}", State.SUCCESS, i))
        except BaseException as exc:  # a thread's error must reach the test
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    ids = [f"w{w}-{i}" for w in range(4) for i in range(40)]
    assert all(r is not None for r in backend.get_many(ids).values())
    backend.close()
    # With every connection closed, the last one checkpointed and removed the WAL.
    assert not Path(f"{db}-wal").exists()


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork()")
def test_a_forked_child_opens_its_own_connection(backend: SQLiteBackend) -> None:
    backend.store(TaskResult("parent", State.SUCCESS, 1))

    def child() -> None:
        outcome = backend.store(TaskResult("child", State.SUCCESS, os.getpid()))
        os._exit(0 if outcome.stored else 1)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join()
    assert process.exitcode == 0
    result = backend.get("child")
    assert result is not None
    assert result.result == process.pid
    assert backend.get("parent") is not None


def test_concurrent_first_open_of_fresh_files(pool: ProcessPoolExecutor, tmp_path: Path) -> None:
    paths = [str(tmp_path / f"fresh-{i}.db") for i in range(8)]
    start_at = time.time() + 0.3
    list(pool.map(workers.open_fresh, [paths] * 4, range(4), [start_at] * 4))
    for path in paths:
        backend = open_backend(path)
        got = backend.get_many([f"w{w}" for w in range(4)])
        assert got == {f"w{w}": TaskResult(f"w{w}", State.SUCCESS, w) for w in range(4)}
        backend.close()


# -- expiry ------------------------------------------------------------------------------


def test_expiry_and_cleanup_with_a_fake_clock(db: Path) -> None:
    clock = FakeClock()
    backend = open_backend(db, expires=10, clock=clock)
    backend.store(TaskResult("old", State.SUCCESS, 1))
    backend.save_group(Group("g", ("old",)))
    backend.set_chord_size("c", 2)
    backend.chord_part_return("c", 0, TaskResult("p0", State.SUCCESS))
    clock.now += 5
    backend.store(TaskResult("young", State.SUCCESS, 2))

    clock.now += 6  # "old" and the group and chord are 11 s old, "young" 6 s
    assert backend.get("old") is None
    assert backend.get_many(["old", "young"]) == {
        "old": None,
        "young": TaskResult("young", State.SUCCESS, 2),
    }
    assert backend.get_group("g") is None
    assert backend.get_chord("c") is None
    with pytest.raises(ChordError, match="expired"):
        backend.chord_part_return("c", 1, TaskResult("p1", State.SUCCESS))

    assert backend.cleanup() == 1
    conn = raw(db)
    counts = {
        table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for table in ("results", "groups", "chords", "chord_parts")
    }
    conn.close()
    assert counts == {"results": 1, "groups": 0, "chords": 0, "chord_parts": 0}
    assert backend.cleanup() == 0
    backend.close()


def test_an_expired_ready_result_does_not_block_a_new_store(db: Path) -> None:
    clock = FakeClock()
    backend = open_backend(db, expires=10, clock=clock)
    backend.store(TaskResult("t", State.SUCCESS, 1))
    clock.now += 11
    outcome = backend.store(TaskResult("t", State.STARTED))
    assert (outcome.stored, outcome.previous_state) == (True, None)
    clock.now += 5
    assert backend.get("t") == TaskResult("t", State.STARTED)
    backend.close()


def test_an_expired_chord_starts_afresh_when_its_size_is_set_again(db: Path) -> None:
    clock = FakeClock()
    backend = open_backend(db, expires=10, clock=clock)
    backend.set_chord_size("c", 2)
    backend.chord_part_return("c", 0, TaskResult("old", State.SUCCESS))
    clock.now += 11
    backend.set_chord_size("c", 2)
    state = backend.get_chord("c")
    assert state is not None
    assert state.received == frozenset()
    backend.close()


def test_expires_none_keeps_everything(db: Path) -> None:
    clock = FakeClock()
    backend = open_backend(db, expires=None, clock=clock)
    backend.store(TaskResult("t", State.SUCCESS, 1))
    backend.save_group(Group("g", ("t",)))
    clock.now += 10**9
    assert backend.cleanup() == 0
    assert backend.get("t") is not None
    assert backend.get_group("g") is not None
    backend.close()


# -- groups ----------------------------------------------------------------------------


def test_group_round_trip(backend: SQLiteBackend) -> None:
    group = Group("g", tuple(f"t{i}" for i in range(50)), date_done=utcnow())
    backend.save_group(group)
    assert backend.get_group("g") == group
    replacement = Group("g", ("only",))
    backend.save_group(replacement)
    assert backend.get_group("g") == replacement
    backend.delete_group("g")
    assert backend.get_group("g") is None
    backend.delete_group("g")
    assert backend.get_group("unknown") is None


# -- chords ----------------------------------------------------------------------------


def test_chord_errors_and_duplicates(backend: SQLiteBackend) -> None:
    part = TaskResult("p", State.SUCCESS)
    with pytest.raises(ChordError, match=r"set_chord_size\('c', n\)"):
        backend.chord_part_return("c", 0, part)
    with pytest.raises(ChordError, match=">= 0"):
        backend.set_chord_size("c", -1)
    backend.set_chord_size("c", 2)
    with pytest.raises(ChordError, match=r"out of range 0\.\.1"):
        backend.chord_part_return("c", 2, part)
    # The failed calls rolled back cleanly and wrote nothing.
    state = backend.get_chord("c")
    assert state is not None
    assert (state.size, state.received, state.completed) == (2, frozenset(), False)

    first = backend.chord_part_return("c", 1, TaskResult("p1", State.FAILURE))
    assert (first.complete, first.duplicate, first.received, first.size) == (False, False, 1, 2)
    again = backend.chord_part_return("c", 1, TaskResult("p1", State.FAILURE))
    assert (again.complete, again.duplicate, again.received) == (False, True, 1)
    last = backend.chord_part_return("c", 0, TaskResult("p0", State.SUCCESS))
    assert (last.complete, last.duplicate, last.received) == (True, False, 2)
    assert [r.task_id for r in last.failed_parts] == ["p1"]
    after = backend.chord_part_return("c", 0, TaskResult("p0", State.SUCCESS))
    assert (after.complete, after.duplicate, after.results) == (False, True, None)
    state = backend.get_chord("c")
    assert state is not None
    assert (state.received, state.completed) == (frozenset({0, 1}), True)


def test_chord_of_200_parts_from_4_processes_completes_once(
    pool: ProcessPoolExecutor, db: Path
) -> None:
    size = 200
    backend = open_backend(db)
    backend.set_chord_size("chord", size)
    rng = random.Random(7)
    shares: list[list[int]] = [[i for i in range(size) if i % 4 == w] for w in range(4)]
    # 10% duplicates: each worker also resends five parts that another worker owns.
    for w in range(4):
        others = [i for i in range(size) if i % 4 != w]
        shares[w] += rng.sample(others, 5)
        rng.shuffle(shares[w])
    runs = list(pool.map(workers.chord_parts, [str(db)] * 4, ["chord"] * 4, shares))
    outcomes = [o for run in runs for o in run]
    assert len(outcomes) == 220
    complete = [o for o in outcomes if o.complete]
    assert len(complete) == 1
    results = complete[0].results
    assert results is not None
    assert [r.task_id for r in results] == [f"part-{i}" for i in range(size)]
    assert [r.result for r in results] == [i * i for i in range(size)]
    assert sum(o.duplicate for o in outcomes) == 20
    assert sorted(o.index for o in outcomes if not o.duplicate) == list(range(size))
    assert all(o.results is None for o in outcomes if not o.complete)
    state = backend.get_chord("chord")
    assert state is not None
    assert (state.size, len(state.received), state.completed) == (size, size, True)
    backend.close()
