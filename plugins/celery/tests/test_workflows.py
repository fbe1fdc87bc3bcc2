"""Celery workflows end to end: a real worker, a real Redis broker, the bridge as result backend.

Every test here runs real tasks through ``celery worker``; ``bridge`` runs
it once per store (SQLite, resultstore-redis, MongoDB and PostgreSQL when installed).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bridge_app
import pytest
from billiard.exceptions import RestartFreqExceeded  # type: ignore[import-untyped]  # untyped
from celery import chain, chord, group  # type: ignore[import-untyped]  # untyped
from celery.exceptions import (  # type: ignore[import-untyped]  # untyped
    ChordError,
    ImproperlyConfigured,
    QueueNotFound,
    TaskRevokedError,
)
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import GroupResult  # type: ignore[import-untyped]  # untyped
from conftest import Bridge
from resultstore import RemoteError
from resultstore_contract.support import wait_until

TIMEOUT = 60


# -- single tasks ----------------------------------------------------------------


def test_task_result_and_metadata(bridge: Bridge) -> None:
    result = bridge.task("add").delay(2, 3)
    assert result.get(timeout=TIMEOUT) == 5
    assert result.state == "SUCCESS"
    assert result.successful()
    assert result.exists()
    assert isinstance(result.date_done, dt.datetime)
    assert result.date_done.tzinfo is not None
    # result_extended=True in the app: Celery's extended fields come back.
    assert result.name == "bridge.add"
    assert result.args == [2, 3]
    assert result.kwargs == {}
    assert result.retries == 0
    assert result.queue == "celery"
    assert result.worker is not None
    assert result.worker.startswith(f"{bridge.store}-")


def test_failure_propagates_or_is_returned(bridge: Bridge) -> None:
    result = bridge.task("fail").delay("boom")
    with pytest.raises(ValueError, match="boom"):
        result.get(timeout=TIMEOUT)
    returned = result.get(timeout=TIMEOUT, propagate=False)
    assert type(returned) is ValueError
    assert returned.args == ("boom",)
    assert result.state == "FAILURE"
    assert result.failed()
    assert "ValueError: boom" in result.traceback


def _strict(bridge: Bridge) -> Any:
    """A second client of the same worker and store, in strict mode (an allow-list)."""
    return bridge_app.make_app(bridge.app.conf.broker_url, bridge.backend_url, strict=True)


def test_exceptions_come_back_as_their_class_when_imported(bridge: Bridge) -> None:
    strange = bridge.task("fail").delay("unlisted", kind="strange")
    private = bridge.task("fail").delay("secret", kind="private")
    # Celery's rule, the default: the caller imported bridge_app, so the
    # class comes back as itself (pytest.raises, except, isinstance work) ...
    with pytest.raises(bridge_app.StrangeError, match="unlisted") as raised:
        strange.get(timeout=TIMEOUT)
    assert type(raised.value) is bridge_app.StrangeError
    assert raised.value.args == ("unlisted",)
    # ... while a class whose module the caller never imported is not looked
    # for (nothing is imported) and comes back as a RemoteError named like it,
    # whose str() shows the class as Celery's wrapper does.
    exc = private.get(timeout=TIMEOUT, propagate=False)
    assert "bridge_private" not in sys.modules
    assert isinstance(exc, RemoteError)
    assert type(exc).__name__ == "PrivateError"
    assert exc.remote_module == "bridge_private"
    assert exc.args == ("secret", 3)
    assert str(exc) == "PrivateError('secret', 3)"


def test_strict_mode_rebuilds_only_the_allow_list(bridge: Bridge) -> None:
    strict = _strict(bridge)
    try:
        fail = strict.tasks["bridge.fail"]
        allowed = fail.delay("listed", kind="allowed")
        strange = fail.delay("unlisted", kind="strange")
        with pytest.raises(bridge_app.AllowedError, match="listed"):
            allowed.get(timeout=TIMEOUT)
        exc = strange.get(timeout=TIMEOUT, propagate=False)
        assert isinstance(exc, RemoteError)
        assert not isinstance(exc, bridge_app.StrangeError)
        assert type(exc).__name__ == "StrangeError"
        assert str(exc) == "StrangeError('unlisted')"
    finally:
        strict.backend.close()


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_celery_and_billiard_exceptions_come_back_as_themselves(
    bridge: Bridge, strict: bool
) -> None:
    app = _strict(bridge) if strict else bridge.app
    try:
        fail = app.tasks["bridge.fail"]
        for kind, cls in [
            ("improperly", ImproperlyConfigured),
            ("queue", QueueNotFound),
            ("restarts", RestartFreqExceeded),
        ]:
            with pytest.raises(cls, match=kind) as raised:
                fail.delay(kind, kind=kind).get(timeout=TIMEOUT)
            assert type(raised.value) is cls
    finally:
        if strict:
            app.backend.close()


def test_retries_then_success_and_exhausted_retries(bridge: Bridge) -> None:
    recovered = bridge.task("flaky").delay(2)
    exhausted = bridge.task("flaky").delay(10)
    assert recovered.get(timeout=TIMEOUT) == 2
    assert recovered.retries == 2
    # max_retries=3: the fourth failure is final and raises the task's exception.
    with pytest.raises(ValueError, match="attempt 3"):
        exhausted.get(timeout=TIMEOUT)
    assert exhausted.state == "FAILURE"


def test_revoked_task(bridge: Bridge) -> None:
    task_id = uuid.uuid4().hex
    # reply=True: the worker knows the id is revoked before the task arrives.
    replies = bridge.app.control.revoke(task_id, reply=True, timeout=10, limit=1)
    assert replies
    result = bridge.task("add").apply_async((1, 1), task_id=task_id)
    with pytest.raises(TaskRevokedError):
        result.get(timeout=TIMEOUT)
    assert result.state == "REVOKED"
    assert isinstance(result.get(timeout=TIMEOUT, propagate=False), TaskRevokedError)


def test_custom_progress_state(bridge: Bridge, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    result = bridge.task("progress").delay(5, str(gate))
    wait_until(lambda: result.state == "PROGRESS", "the PROGRESS state", timeout=TIMEOUT)
    assert result.info == {"done": 4, "total": 5}
    assert not result.ready()
    gate.touch()
    assert result.get(timeout=TIMEOUT) == 5
    assert result.state == "SUCCESS"


def test_ignored_result_is_never_stored(bridge: Bridge) -> None:
    log = bridge.log()
    result = bridge.task("ignored").delay(log)
    assert result.get(timeout=TIMEOUT) is None  # Celery does not wait for ignored results
    wait_until(lambda: bridge.lines(log) == ["ran"], "the ignored task to run", timeout=TIMEOUT)
    assert not result.exists()
    assert result.state == "PENDING"


def test_unknown_id_is_pending(bridge: Bridge) -> None:
    result = bridge.app.AsyncResult(uuid.uuid4().hex)
    assert result.state == "PENDING"
    assert not result.exists()
    with pytest.raises(CeleryTimeoutError):
        result.get(timeout=0.2)


def test_forget(bridge: Bridge) -> None:
    result = bridge.task("add").delay(20, 22)
    assert result.get(timeout=TIMEOUT) == 42
    result.forget()
    fresh = bridge.app.AsyncResult(result.id)
    assert fresh.state == "PENDING"
    assert not fresh.exists()


def test_children_of_a_task(bridge: Bridge) -> None:
    parent = bridge.task("spawn").delay(3)
    child_ids = parent.get(timeout=TIMEOUT)
    assert [child.id for child in parent.children] == child_ids
    assert [child.get(timeout=TIMEOUT) for child in parent.children] == [0, 2, 4]


# -- groups ------------------------------------------------------------------------


def test_group_of_500_joined(bridge: Bridge) -> None:
    add = bridge.task("add")
    result = group(add.s(i, i) for i in range(500)).apply_async()
    assert result.supports_native_join
    assert result.get(timeout=TIMEOUT) == [2 * i for i in range(500)]
    assert result.completed_count() == 500


def test_group_join_with_a_failure(bridge: Bridge) -> None:
    add, fail = bridge.task("add"), bridge.task("fail")
    result = group([add.s(1, 1), fail.s("in group"), add.s(2, 2)]).apply_async()
    with pytest.raises(ValueError, match="in group"):
        result.get(timeout=TIMEOUT)
    values = result.join_native(timeout=TIMEOUT, propagate=False)
    assert values[0] == 2
    assert values[2] == 4
    assert isinstance(values[1], ValueError)


def test_group_save_restore_delete(bridge: Bridge) -> None:
    add = bridge.task("add")
    result = group(add.s(i, 1) for i in range(5)).apply_async()
    result.save()
    restored = GroupResult.restore(result.id, app=bridge.app)
    assert restored is not None
    assert [r.id for r in restored.results] == [r.id for r in result.results]
    assert restored.get(timeout=TIMEOUT) == [1, 2, 3, 4, 5]
    restored.delete()
    assert GroupResult.restore(result.id, app=bridge.app) is None


# -- chords and chains -----------------------------------------------------------


def _chord_with_a_sum(bridge: Bridge, size: int) -> None:
    add, tsum_logged = bridge.task("add"), bridge.task("tsum_logged")
    log = bridge.log()
    result = chord([add.s(i, 0) for i in range(size)], tsum_logged.s(log=log)).apply_async()
    assert result.get(timeout=TIMEOUT) == sum(range(size))
    # The body ran once, with every value.
    assert bridge.lines(log) == [f"{size} {sum(range(size))}"]


def test_chord_with_a_sum(bridge: Bridge) -> None:
    _chord_with_a_sum(bridge, 100)


def test_chord_of_1000_with_a_sum(big_chord_bridge: Bridge) -> None:
    _chord_with_a_sum(big_chord_bridge, 1000)


def test_chord_with_a_failing_part(bridge: Bridge) -> None:
    add, fail, tsum = bridge.task("add"), bridge.task("fail"), bridge.task("tsum")
    log = bridge.log()
    errback = bridge.task("record_error").s(log=log)
    header = [add.s(1, 1), fail.s("part failed"), add.s(2, 2)]
    result = chord(header, tsum.s().on_error(errback)).apply_async()
    with pytest.raises(ChordError, match="part failed") as raised:
        result.get(timeout=TIMEOUT, follow_parents=False)
    failed_part = result.parent.results[1].id
    assert failed_part in str(raised.value)
    assert result.state == "FAILURE"
    # The errback ran once, for the body, with Celery's ChordError.
    wait_until(lambda: bool(bridge.lines(log)), "the errback", timeout=TIMEOUT)
    (line,) = bridge.lines(log)
    assert line.startswith(f"{result.id} ChordError Dependency {failed_part}")


def test_nested_chords_and_chains(bridge: Bridge) -> None:
    add, tsum, echo = bridge.task("add"), bridge.task("tsum"), bridge.task("echo")
    workflows = {
        # chain -> chord -> task: the chord's header gets the chain's value.
        "chain through a chord": (
            chain(add.s(1, 1), chord([add.s(i) for i in range(4)], tsum.s()), add.s(100)),
            (2 + 0) + (2 + 1) + (2 + 2) + (2 + 3) + 100,
        ),
        # A chord in a chord's header counts as its body's one value.
        "chord in a header": (
            chord([chord([add.s(1, 1), add.s(2, 2)], tsum.s()), add.s(10, 10)], tsum.s()),
            (2 + 4) + 20,
        ),
        # A nested chord whose body is a group gives the outer chord a list
        # (a group's values stay nested, as with Celery's Redis backend).
        "group body in a header": (
            chord(
                [chord([add.s(1, 1), add.s(2, 2)], group(tsum.s(), tsum.s())), add.s(10, 10)],
                echo.s(),
            ),
            [[6, 6], 20],
        ),
        # So does a chain that ends in a group.
        "chain ending in a group in a header": (
            chord([chain(add.s(1, 1), group(add.s(40), add.s(40)))], echo.s()),
            [[42, 42]],
        ),
        "mixed nesting in a header": (
            chord(
                [
                    add.s(1, 1),
                    chain(add.s(1, 1), group(add.s(40), add.s(41))),
                    add.s(2, 2),
                ],
                echo.s(),
            ),
            [2, [42, 43], 4],
        ),
        "chain in a header": (chord([chain(add.s(1, 1), add.s(1)), add.s(5, 5)], tsum.s()), 13),
        "chain as the body": (
            chord([add.s(1, 1), add.s(2, 2)], chain(tsum.s(), add.s(1000))),
            1006,
        ),
        # A generator header is counted as it is sent (Celery sets the size late).
        "generator header": (chord((add.s(i, i) for i in range(10)), tsum.s()), 90),
        "group of chords": (
            group(chord([add.s(i, i) for i in range(3)], tsum.s()) for _ in range(3)),
            [6, 6, 6],
        ),
    }
    started = {name: canvas.apply_async() for name, (canvas, _) in workflows.items()}
    for name, result in started.items():
        assert result.get(timeout=TIMEOUT) == workflows[name][1], name


def test_chord_get_raises_the_failing_part_exception(bridge: Bridge) -> None:
    add, fail, tsum = bridge.task("add"), bridge.task("fail"), bridge.task("tsum")
    # The part fails just after the caller started waiting, so the body's
    # ChordError arrives while get() waits: Celery checks the parents then.
    result = chord([add.s(1, 1), fail.s("part failed", delay=0.1)], tsum.s()).apply_async()
    with pytest.raises(ValueError, match="part failed"):
        result.get(timeout=TIMEOUT)
    with pytest.raises(ValueError, match="part failed"):
        result.get(timeout=TIMEOUT)  # and again, from the cache
    with pytest.raises(ChordError, match="part failed"):
        result.get(timeout=TIMEOUT, follow_parents=False)


def test_reapplied_frozen_chord_fails_at_the_call(bridge: Bridge) -> None:
    add, tsum = bridge.task("add"), bridge.task("tsum")
    canvas = chord([add.s(1, 1), add.s(2, 2)], tsum.s())
    canvas.freeze()
    assert canvas.apply_async().get(timeout=TIMEOUT) == 6
    # Same group id, same task ids: results are final, so it cannot run again.
    with pytest.raises(ChordError, match="completed already"):
        canvas.apply_async()


def test_add_to_chord_grows_the_chord(bridge: Bridge) -> None:
    add, grow, echo = bridge.task("add"), bridge.task("grow"), bridge.task("echo")
    # Each grow part adds two tasks; their values join the body's, next to
    # the part that added them (Celery's Redis backend keeps that order too).
    result = chord([add.s(1, 1), grow.s(10), add.s(2, 2), grow.s(20)], echo.s()).apply_async()
    assert result.get(timeout=TIMEOUT) == [2, 0, 11, 12, 4, 0, 21, 22]


def test_add_to_chord_in_a_generator_header_fails_at_the_call(bridge: Bridge) -> None:
    add, grow, tsum = bridge.task("add"), bridge.task("grow"), bridge.task("tsum")
    result = chord((sig for sig in [grow.s(1), add.s(1, 1)]), tsum.s()).apply_async()
    with pytest.raises(NotImplementedError, match="generator header"):
        result.get(timeout=TIMEOUT)


def _slow_header(add: Any, pause: float) -> Iterator[Any]:
    yield add.s(1, 1)
    yield add.s(2, 2)
    # Celery sets the size just before sending the last part, so the first
    # parts wait this long for it.
    time.sleep(pause)
    yield add.s(3, 3)


def test_chord_parts_wait_for_a_late_size(bridge: Bridge) -> None:
    add, tsum_logged = bridge.task("add"), bridge.task("tsum_logged")
    log = bridge.log()
    result = chord(_slow_header(add, 3.5), tsum_logged.s(log=log)).apply_async()
    assert result.get(timeout=TIMEOUT) == 12
    assert bridge.lines(log) == ["3 12"]


def test_protocol_1_generator_header(bridge: Bridge) -> None:
    app = bridge_app.make_app(bridge.app.conf.broker_url, bridge.backend_url)
    app.conf.task_protocol = 1
    try:
        add, tsum = app.tasks["bridge.add"], app.tasks["bridge.tsum"]
        started = time.monotonic()
        result = chord((add.s(i, i) for i in range(10)), tsum.s()).apply_async()
        assert result.get(timeout=TIMEOUT) == 90
        assert time.monotonic() - started < 20
    finally:
        app.backend.close()


def test_get_waits_by_push_on_redis(redis_bridge: Bridge) -> None:
    result = redis_bridge.task("slow_add").delay(1, 1, 0.3)
    assert result.get(timeout=TIMEOUT) == 2
    hub = redis_bridge.app.backend.store.hub
    # Woken by the store's announcement: the shared waiter never polled.
    assert hub.mode == "push"
    assert hub.polls == 0
    assert hub.listens >= 1
