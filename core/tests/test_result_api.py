"""AsyncResult, GroupResult and ChordResult on real memory:// and sqlite:// stores."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _result_workers
import pytest
from resultstore import (
    AsyncResult,
    ChordError,
    ChordPartFailedError,
    ChordResult,
    CorruptPayloadError,
    GroupResult,
    RemoteError,
    ResultStore,
    ResultTimeoutError,
    State,
    TaskRevokedError,
    chord_part_done,
    connect,
    start_chord,
)
from resultstore.concepts.models import TaskResult, utcnow
from resultstore_contract.support import wait_until


class AppError(Exception):
    """A task exception class that readers rebuild only when allow-listed."""


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'results.db'}"


@pytest.fixture
def store(url: str) -> Iterator[ResultStore]:
    with connect(url) as opened:
        yield opened


def raised(exc: BaseException) -> BaseException:
    """``exc`` with a real traceback and cause, as a task would leave it."""
    lookup: dict[str, int] = {}
    try:
        try:
            lookup["missing"]
        except KeyError as cause:
            raise exc from cause
    except BaseException as caught:
        return caught
    raise AssertionError("unreachable")


def when_watched(
    store: ResultStore, task_ids: list[str], action: Callable[[], Any]
) -> threading.Thread:
    """Run ``action`` in a thread once every id is waited on (so it lands after the wait began)."""

    def run() -> None:
        wait_until(lambda: set(task_ids) <= store.hub.watched_ids(), f"waiters on {task_ids!r}")
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# -- AsyncResult: reading --------------------------------------------------------------


def test_unknown_id_is_pending_and_does_not_exist(store: ResultStore) -> None:
    handle = store.result("nobody-knows")
    assert handle.state == State.PENDING
    assert not handle.exists()
    assert not handle.ready()
    assert handle.result is None
    assert handle.date_done is None


def test_exists_tells_a_stored_pending_result_from_an_unknown_id(store: ResultStore) -> None:
    store.store(TaskResult("queued", State.PENDING))
    known, unknown = store.result("queued"), store.result("never-sent")
    assert known.state == unknown.state == State.PENDING
    assert known.exists()
    assert not unknown.exists()


def test_states_and_custom_progress_meta_are_read_fresh(store: ResultStore) -> None:
    handle = store.result("t")
    store.mark_as_started("t")
    assert handle.state == State.STARTED
    store.update_state("t", "PROGRESS", {"current": 3, "total": 10})
    assert handle.state == "PROGRESS"
    assert handle.info == {"current": 3, "total": 10}
    assert not handle.ready()
    store.mark_as_done("t", "finished")
    assert handle.ready()
    assert handle.successful()
    assert handle.result == "finished"


def test_extended_metadata(store: ResultStore) -> None:
    store.store(
        TaskResult(
            "t",
            State.SUCCESS,
            5,
            date_done=utcnow(),
            name="app.add",
            args=(2, 3),
            kwargs={"fast": True},
            worker="w1@host",
            retries=2,
            queue="math",
            children=("c1", "c2"),
            parent_id="p",
            group_id="g",
        )
    )
    handle = store.result("t")
    assert (handle.name, handle.args, handle.kwargs) == ("app.add", (2, 3), {"fast": True})
    assert (handle.worker, handle.retries, handle.queue) == ("w1@host", 2, "math")
    assert [c.task_id for c in handle.children] == ["c1", "c2"]
    assert handle.parent_id == "p"
    assert handle.parent == AsyncResult("p", store)
    assert handle.group_id == "g"
    assert handle.date_done is not None
    assert handle.status == State.SUCCESS


def test_ready_result_is_cached_in_the_handle(store: ResultStore) -> None:
    store.mark_as_done("t", 1)
    handle = store.result("t")
    assert handle.get() == 1
    store.forget("t")  # behind the handle's back
    assert handle.state == State.SUCCESS
    assert handle.get() == 1
    assert store.result("t").state == State.PENDING
    handle.forget()
    assert handle.state == State.PENDING


def test_unready_state_is_not_cached(store: ResultStore) -> None:
    store.mark_as_started("t")
    handle = store.result("t")
    assert handle.state == State.STARTED
    store.forget("t")
    assert handle.state == State.PENDING


# -- AsyncResult: waiting ----------------------------------------------------------------


def test_get_returns_a_result_stored_before_the_wait(store: ResultStore) -> None:
    store.mark_as_done("t", {"answer": 42})
    assert store.result("t").get(timeout=5) == {"answer": 42}


def test_get_wakes_for_a_result_stored_after_the_wait_began(store: ResultStore) -> None:
    store.mark_as_started("t")
    writer = when_watched(store, ["t"], lambda: store.mark_as_done("t", "late"))
    assert store.result("t").get(timeout=10) == "late"
    writer.join()
    assert store.hub.watched == 0


def test_unready_states_do_not_end_the_wait(store: ResultStore) -> None:
    def progress_then_done() -> None:
        store.update_state("t", "PROGRESS", {"current": 1})
        store.mark_as_retry("t", raised(ConnectionError("flaky")))
        store.mark_as_done("t", "eventually")

    when_watched(store, ["t"], progress_then_done)
    assert store.result("t").get(timeout=10) == "eventually"


def test_timeout_names_the_task_and_the_time_waited(store: ResultStore) -> None:
    store.mark_as_started("slow-task")
    with pytest.raises(ResultTimeoutError) as caught:
        store.result("slow-task").get(timeout=0.2)
    message = str(caught.value)
    assert "'slow-task'" in message
    assert "timeout=0.2s" in message
    assert "waiting 0.2" in message
    assert "STARTED" in message
    assert isinstance(caught.value, TimeoutError)
    assert store.hub.watched == 0


def test_negative_timeout_is_refused(store: ResultStore) -> None:
    with pytest.raises(ValueError, match="timeout"):
        store.result("t").get(timeout=-1)


def test_propagate_reraises_the_stored_exception(store: ResultStore) -> None:
    store.mark_as_failure("t", raised(ValueError("bad input")))
    handle = store.result("t")
    with pytest.raises(ValueError, match="bad input") as caught:
        handle.get(timeout=5)
    assert isinstance(caught.value.__cause__, KeyError)
    assert any("Remote traceback of task 't'" in note for note in caught.value.__notes__)
    assert handle.failed()
    assert not handle.successful()
    assert "ValueError: bad input" in (handle.traceback or "")


def test_propagate_off_returns_the_exception(store: ResultStore) -> None:
    store.mark_as_failure("t", raised(ValueError("bad input")))
    value = store.result("t").get(timeout=5, propagate=False)
    assert isinstance(value, ValueError)
    assert str(value) == "bad input"
    assert isinstance(store.result("t").result, ValueError)


def test_revoked_raises_task_revoked_error(store: ResultStore) -> None:
    store.mark_as_revoked("t", "terminated by admin")
    with pytest.raises(TaskRevokedError, match="terminated by admin"):
        store.result("t").get()
    assert store.result("t").failed()


def test_retry_state_result_is_the_exception(store: ResultStore) -> None:
    store.mark_as_retry("t", raised(ConnectionError("try again")))
    handle = store.result("t")
    assert handle.state == State.RETRY
    assert isinstance(handle.result, ConnectionError)
    assert not handle.ready()


def test_unlisted_exception_class_comes_back_as_remote_error(store: ResultStore) -> None:
    store.mark_as_failure("t", raised(AppError("nope")))
    with pytest.raises(RemoteError, match="nope") as caught:
        store.result("t").get()
    assert not isinstance(caught.value, AppError)
    assert type(caught.value).__name__ == "AppError"


def test_allowed_exceptions_on_the_call_the_handle_or_the_store(url: str) -> None:
    with connect(url) as plain:
        plain.mark_as_failure("t", raised(AppError("nope")))
        with pytest.raises(AppError):
            plain.result("t").get(allowed=[AppError])
        with pytest.raises(AppError):
            AsyncResult("t", plain, allowed=[AppError]).get()
        if url.startswith("memory"):
            return  # a private memory store is not visible to a second connect()
    with (
        connect(url, allowed_exceptions=[AppError]) as allowing,
        pytest.raises(AppError, match="nope"),
    ):
        allowing.result("t").get()


def test_corrupt_payload_raises_a_decode_error(store: ResultStore) -> None:
    store.backend.plant_payload("t", b"not a payload")  # type: ignore[attr-defined]  # both built-ins have it
    with pytest.raises(CorruptPayloadError):
        store.result("t").get(timeout=5)


# -- groups --------------------------------------------------------------------------------


def test_group_save_restore_delete(store: ResultStore) -> None:
    group = store.group_result("g1", ["a", "b", "c"])
    group.save()
    restored = GroupResult.restore("g1", store)
    assert restored is not None
    assert restored.task_ids == ("a", "b", "c")
    assert store.restore_group("g1") is not None
    store.mark_as_done("a", 1)
    restored.delete()
    assert store.restore_group("g1") is None
    assert store.result("a").get() == 1  # members' results stay


def test_restore_of_an_unknown_group_is_none(store: ResultStore) -> None:
    assert GroupResult.restore("no-such-group", store) is None


def test_group_counts_and_predicates(store: ResultStore) -> None:
    group = store.group_result("g", ["a", "b", "c", "d"])
    assert (group.completed_count(), group.ready_count()) == (0, 0)
    assert not group.ready()
    assert group.waiting()
    assert not group.failed()
    store.mark_as_done("a", 1)
    store.mark_as_failure("b", raised(ValueError("x")))
    store.mark_as_started("c")
    assert group.completed_count() == 1
    assert group.ready_count() == 2
    assert group.failed()
    assert not group.successful()
    assert group.state_counts() == {
        State.SUCCESS: 1,
        State.FAILURE: 1,
        State.STARTED: 1,
        State.PENDING: 1,
    }
    store.mark_as_done("c", 3)
    store.mark_as_done("d", 4)
    assert group.ready()
    assert not group.waiting()


def test_join_returns_values_in_group_order_whatever_order_they_finish(
    store: ResultStore,
) -> None:
    ids = [f"t{i}" for i in range(8)]
    store.mark_as_done("t3", 3)  # one is ready before the join starts

    def finish_backwards() -> None:
        for i in reversed(range(8)):
            if i != 3:
                store.mark_as_done(f"t{i}", i)

    when_watched(store, [i for i in ids if i != "t3"], finish_backwards)
    assert store.group_result("g", ids).join(timeout=10) == list(range(8))
    assert store.hub.watched == 0


def test_join_propagates_a_failure_without_waiting_for_the_rest(store: ResultStore) -> None:
    store.mark_as_done("a", 1)
    store.mark_as_failure("b", raised(ValueError("b failed")))
    store.mark_as_failure("d", raised(KeyError("d failed")))
    group = store.group_result("g", ["a", "b", "c", "d"])  # "c" never finishes
    # A ValueError, not a ResultTimeoutError: the failure ended the wait.
    with pytest.raises(ValueError, match="b failed"):
        group.join(timeout=30)


def test_join_propagates_a_failure_that_arrives_while_waiting(store: ResultStore) -> None:
    when_watched(store, ["b"], lambda: store.mark_as_failure("b", raised(ValueError("late"))))
    with pytest.raises(ValueError, match="late"):
        store.group_result("g", ["a", "b"]).join(timeout=30)
    assert store.hub.watched == 0


def test_join_without_propagate_puts_exceptions_in_place(store: ResultStore) -> None:
    store.mark_as_done("a", 1)
    store.mark_as_failure("b", raised(ValueError("b failed")))
    store.mark_as_revoked("c")
    values = store.group_result("g", ["a", "b", "c"]).join(propagate=False)
    assert values[0] == 1
    assert isinstance(values[1], ValueError)
    assert isinstance(values[2], TaskRevokedError)


def test_join_timeout_is_wall_clock_and_names_what_is_missing(store: ResultStore) -> None:
    store.mark_as_done("a", 1)
    with pytest.raises(ResultTimeoutError) as caught:
        store.group_result("grp", ["a", "b", "c"]).join(timeout=0.3)
    message = str(caught.value)
    assert "group 'grp'" in message
    assert "'b'" in message
    assert "'c'" in message
    assert "1 of 3" in message
    assert "timeout=0.3s" in message
    assert store.hub.watched == 0


def test_as_completed_yields_in_finishing_order(store: ResultStore) -> None:
    ids = ["a", "b", "c", "d"]
    store.mark_as_done("c", "c")
    store.mark_as_done("a", "a")
    iterator = store.group_result("g", ids).as_completed(timeout=10)
    # Already finished members come first, in group order.
    assert [next(iterator).task_id, next(iterator).task_id] == ["a", "c"]
    store.mark_as_done("d", "d")
    handle = next(iterator)
    assert handle.task_id == "d"
    assert handle.get() == "d"
    store.mark_as_failure("b", raised(ValueError("b")))
    last = next(iterator)
    assert last.task_id == "b"
    assert last.failed()
    with pytest.raises(StopIteration):
        next(iterator)
    assert store.hub.watched == 0


def test_as_completed_stops_waiting_when_closed_early(store: ResultStore) -> None:
    store.mark_as_done("a", 1)
    iterator = store.group_result("g", ["a", "b"]).as_completed()
    next(iterator)
    when_watched(store, ["b"], lambda: store.mark_as_done("b", 2))
    assert next(iterator).task_id == "b"
    iterator = store.group_result("g", ["x", "y"]).as_completed()
    when_watched(store, ["x", "y"], lambda: store.mark_as_done("x", 1))
    assert next(iterator).task_id == "x"
    assert store.hub.watched_ids() == {"y"}
    iterator.close()
    assert store.hub.watched == 0


def test_as_completed_timeout(store: ResultStore) -> None:
    with pytest.raises(ResultTimeoutError, match="'never'"):
        list(store.group_result("g", ["never"]).as_completed(timeout=0.2))


def test_group_join_on_a_polling_store_reads_every_pending_id_in_one_round_trip(
    tmp_path: Path,
) -> None:
    with connect(f"sqlite:///{tmp_path / 'r.db'}") as store:
        ids = [f"t{i}" for i in range(300)]
        when_watched(
            store,
            ids,
            lambda: store.store_many(
                [TaskResult(i, State.SUCCESS, i, date_done=utcnow()) for i in ids]
            ),
        )
        assert store.group_result("g", ids).join(timeout=10) == ids
        hub = store.hub
        assert hub.mode == "poll"
        assert hub.polls >= 1
        assert hub.round_trips == hub.polls  # one get_many per poll for all 300 ids


def test_member_handles_hold_what_the_group_read_whenever_they_are_first_asked_for(
    store: ResultStore,
) -> None:
    ids = ["a", "b", "a", "c"]  # a repeated member too
    store.store_many([TaskResult(t, State.SUCCESS, t.upper()) for t in ("a", "b")])
    group = store.group_result("g", ids)
    assert group.metas()[:3] == [store.get("a"), store.get("b"), store.get("a")]
    store.store(TaskResult("c", State.SUCCESS, "C"))
    assert group.join(timeout=5) == ["A", "B", "A", "C"]
    store.forget("a")
    store.forget("b")
    store.forget("c")
    # Built after the reads, the handles still answer from them: no store read.
    assert [h.get(timeout=0) for h in group.results] == ["A", "B", "A", "C"]
    assert [h.task_id for h in group] == ids
    assert len(group) == 4


# -- chords ----------------------------------------------------------------------------------


def test_chord_runs_its_callback_once_with_header_results_in_order(store: ResultStore) -> None:
    header = [f"h{i}" for i in range(6)]
    chord = start_chord(store, "ch", header, "cb")
    assert isinstance(chord, ChordResult)
    calls: list[list[Any]] = []

    def callback(values: list[Any]) -> int:
        calls.append(values)
        return sum(values)

    order = [3, 1, 3, 0, 5, 2, 1, 4, 4, 0]
    for index in order:
        result = TaskResult(header[index], State.SUCCESS, index * 10, date_done=utcnow())
        store.store(result)
        chord_part_done(store, "ch", index, result, callback_id="cb", callback=callback)
    assert calls == [[0, 10, 20, 30, 40, 50]]
    assert chord.get(timeout=5) == 150
    progress = chord.progress()
    assert progress is not None
    assert progress.completed
    assert chord.header.join() == [0, 10, 20, 30, 40, 50]
    assert store.restore_group("ch") is not None  # the header is saved, so watch finds it


def test_a_failed_part_fails_the_callback_and_names_the_part(store: ResultStore) -> None:
    start_chord(store, "ch", ["h0", "h1", "h2"], "cb")
    ran: list[Any] = []
    good = TaskResult("h0", State.SUCCESS, 1, date_done=utcnow())
    store.mark_as_failure("h1", raised(ValueError("part broke")))
    bad = store.get("h1")
    assert bad is not None
    also_good = TaskResult("h2", State.SUCCESS, 2, date_done=utcnow())
    for index, part in ((0, good), (1, bad), (2, also_good)):
        chord_part_done(store, "ch", index, part, callback_id="cb", callback=ran.append)
    assert ran == []
    with pytest.raises(ChordPartFailedError) as caught:
        store.chord_result("ch", ["h0", "h1", "h2"], "cb").get(timeout=5)
    error = caught.value
    assert (error.group_id, error.index, error.task_id, error.state) == ("ch", 1, "h1", "FAILURE")
    assert "part broke" in str(error)
    assert isinstance(error.__cause__, ValueError)


def test_a_revoked_part_fails_the_callback(store: ResultStore) -> None:
    start_chord(store, "ch", ["h0"], "cb")
    store.mark_as_revoked("h0")
    part = store.get("h0")
    assert part is not None
    chord_part_done(store, "ch", 0, part, callback_id="cb", callback=sum)
    with pytest.raises(ChordPartFailedError, match="REVOKED"):
        store.result("cb").get(timeout=5)


def test_a_callback_that_raises_stores_its_failure(store: ResultStore) -> None:
    start_chord(store, "ch", ["h0"], "cb")
    result = TaskResult("h0", State.SUCCESS, 0, date_done=utcnow())

    def divide(values: list[int]) -> float:
        return 1 / values[0]

    chord_part_done(store, "ch", 0, result, callback_id="cb", callback=divide)
    with pytest.raises(ZeroDivisionError):
        store.result("cb").get(timeout=5)


def test_empty_chord_is_refused(store: ResultStore) -> None:
    with pytest.raises(ChordError, match="empty header"):
        start_chord(store, "ch", [], "cb")


def test_threads_racing_on_one_chord_fire_the_callback_once(store: ResultStore) -> None:
    size, threads = 20, 4
    start_chord(store, "race", [f"p{i}" for i in range(size)], "cb")
    fired: list[list[Any]] = []
    barrier = threading.Barrier(threads)

    def deliver(seed: int) -> int:
        order = list(range(size)) * 2
        random.Random(seed).shuffle(order)
        barrier.wait()
        complete = 0
        for index in order:
            part = TaskResult(f"p{index}", State.SUCCESS, index, date_done=utcnow())
            outcome = chord_part_done(
                store, "race", index, part, callback_id="cb", callback=fired.append
            )
            complete += outcome.complete
        return complete

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        completions = list(pool.map(deliver, range(threads)))
    assert sum(completions) == 1
    assert fired == [list(range(size))]


def test_processes_racing_on_one_chord_fire_the_callback_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'chord.db'}"
    size, workers = 30, 3
    with connect(url) as store:
        header = [_result_workers.part_id("race", i) for i in range(size)]
        chord = start_chord(store, "race", header, "race-callback")
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [
                pool.submit(
                    _result_workers.race_chord_parts,
                    url,
                    "race",
                    "race-callback",
                    size=size,
                    worker=n,
                    workers=workers,
                )
                for n in range(workers)
            ]
            completions = [f.result(timeout=120) for f in futures]
        assert sum(completions) == 1
        assert chord.get(timeout=10) == [i * 10 for i in range(size)]
        progress = chord.progress()
        assert progress is not None
        assert progress.completed
        assert progress.received == frozenset(range(size))
