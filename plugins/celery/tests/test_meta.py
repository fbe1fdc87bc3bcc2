"""Celery's values and meta dicts to and from resultstore's TaskResult (no store involved)."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest
from celery.exceptions import (  # type: ignore[import-untyped]  # untyped
    ChordError,
    Reject,
    Retry,
    WorkerShutdown,
)
from resultstore import ExceptionInfo, RemoteError, State, TaskResult
from resultstore_celery.meta import (
    MISSING_FAILURE,
    children_ids,
    exception_info,
    imported_exception_class,
    pending_meta,
    rebuild,
    to_meta,
    to_task_result,
)


def _request(**fields: object) -> types.SimpleNamespace:
    base: dict[str, object] = {
        "group": None,
        "parent_id": None,
        "task": "proj.task",
        "args": (1, "a"),
        "kwargs": {"k": 2},
        "hostname": "w@h",
        "retries": 0,
        "delivery_info": {"routing_key": "q"},
    }
    return types.SimpleNamespace(**{**base, **fields})


class _Result:
    def __init__(self, task_id: str) -> None:
        self.id = task_id


class _Group:
    def __init__(self, group_id: str, results: list[object]) -> None:
        self.id = group_id
        self.results = results


def test_children_from_results_and_their_tuple_forms() -> None:
    children = [
        _Result("a"),
        _Group("g", [_Result("b"), _Group("inner", [_Result("c")])]),
        (("d", None), None),  # AsyncResult.as_tuple()
        [["e", None], None],  # the same after a JSON round trip
        (("g2", None), [(("f", None), None)]),  # GroupResult.as_tuple()
    ]
    assert children_ids(children) == ("a", "b", "c", "d", "e", "f")
    assert children_ids(None) == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            {"exc_type": "KeyError", "exc_module": "builtins", "exc_message": ["k"]},
            ExceptionInfo("KeyError", "builtins", ("k",), "k"),
        ),
        (
            {"exc_type": "Oops", "exc_message": "text"},
            ExceptionInfo("Oops", "", ("text",), "text"),
        ),
        (
            {"exc_type": "Two", "exc_module": "m", "exc_message": [1, 2]},
            ExceptionInfo("Two", "m", (1, 2), "(1, 2)"),
        ),
        (None, MISSING_FAILURE),
        (
            "a plain message",
            ExceptionInfo("Exception", "builtins", ("a plain message",), "a plain message"),
        ),
    ],
)
def test_exception_info_reads_celery_forms(value: object, expected: ExceptionInfo) -> None:
    assert exception_info(value) == expected


def test_exception_info_of_an_exception_keeps_the_cause() -> None:
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise ValueError("outer") from inner
    except ValueError as exc:
        info = exception_info(exc)
    assert (info.type_name, info.module, info.message) == ("ValueError", "builtins", "outer")
    assert info.cause is not None
    assert info.cause.type_name == "KeyError"


def test_success_with_extended_fields() -> None:
    result = to_task_result("t", {"v": 1}, "SUCCESS", request=_request(group="g"), extended=True)
    assert result.state is State.SUCCESS
    assert result.result == {"v": 1}
    assert result.exception is None
    assert result.date_done is not None
    assert result.group_id == "g"
    assert (result.name, result.args, result.kwargs) == ("proj.task", (1, "a"), {"k": 2})
    assert (result.worker, result.retries, result.queue) == ("w@h", 0, "q")


def test_extended_fields_are_skipped_unless_asked_and_odd_values_dropped() -> None:
    plain = to_task_result("t", 1, "SUCCESS", request=_request())
    assert (plain.name, plain.args, plain.worker) == (None, None, None)
    odd = to_task_result(
        "t",
        1,
        "SUCCESS",
        request=_request(args="not a list", retries="x", delivery_info=None),
        extended=True,
    )
    assert (odd.args, odd.retries, odd.queue) == (None, None, None)


def test_unready_and_custom_states_keep_their_value() -> None:
    progress = to_task_result("t", {"done": 2}, "PROGRESS")
    assert progress.state == "PROGRESS"
    assert progress.result == {"done": 2}
    assert progress.date_done is None
    # RETRY with a progress-like dict (update_state(state=RETRY, meta=...)) stays a value.
    retry_meta = to_task_result("t", {"attempt": 2}, "RETRY")
    assert retry_meta.exception is None
    assert retry_meta.result == {"attempt": 2}


def test_exception_states_store_a_description() -> None:
    retry = to_task_result("t", Retry("again"), "RETRY", traceback="tb")
    assert retry.result is None
    assert retry.exception is not None
    assert (retry.exception.module, retry.exception.type_name) == ("celery.exceptions", "Retry")
    assert retry.traceback == "tb"
    failure = to_task_result("t", "a message", "FAILURE")
    assert failure.exception == ExceptionInfo("Exception", "builtins", ("a message",), "a message")
    assert failure.date_done is not None


def test_meta_rebuilds_celery_and_builtin_exceptions() -> None:
    chord_failure = to_task_result("t", ChordError("Dependency x raised"), "FAILURE")
    meta = to_meta(chord_failure)
    assert type(meta["result"]) is ChordError
    assert meta["status"] == "FAILURE"
    revoked_without_info = TaskResult("r", State.REVOKED)
    assert isinstance(to_meta(revoked_without_info)["result"], Exception)


def test_meta_of_an_unlisted_exception_is_a_remote_error() -> None:
    class Mine(Exception):
        pass

    # A class made inside a function cannot be found by its name.
    meta = to_meta(to_task_result("t", Mine("no"), "FAILURE"))
    assert isinstance(meta["result"], RemoteError)
    assert type(meta["result"]).__name__ == "Mine"
    assert str(meta["result"]) == "Mine('no')"
    assert to_meta(to_task_result("t", Mine("no"), "FAILURE"), allowed=[Mine])["result"].args == (
        "no",
    )


class Outer:
    class NestedError(Exception):
        pass


class TopError(Exception):
    pass


@pytest.fixture
def lazy_module() -> Iterator[types.ModuleType]:
    """A module in sys.modules whose __getattr__ would record being called."""
    module = types.ModuleType("rs_lazy_module")
    calls: list[str] = []
    module.__getattr__ = calls.append  # type: ignore[method-assign]  # PEP 562 hook
    module.not_a_class = print
    module.calls = calls  # type: ignore[attr-defined]  # test bookkeeping
    sys.modules[module.__name__] = module
    try:
        yield module
    finally:
        del sys.modules[module.__name__]


def test_imported_classes_are_found_without_importing(lazy_module: types.ModuleType) -> None:
    assert imported_exception_class(__name__, "TopError") is TopError
    assert imported_exception_class(__name__, "Outer.NestedError") is Outer.NestedError
    assert imported_exception_class("never_imported_mod", "Boom") is None
    assert "never_imported_mod" not in sys.modules
    # Not an exception class (Celery's CVE case), a process-stopping one, a
    # name through __getattr__: all refused, nothing called.
    assert imported_exception_class("os", "system") is None
    assert imported_exception_class(lazy_module.__name__, "not_a_class") is None
    assert imported_exception_class(lazy_module.__name__, "Missing") is None
    assert lazy_module.calls == []  # type: ignore[attr-defined]  # test bookkeeping
    assert imported_exception_class("celery.exceptions", "WorkerShutdown") is None
    assert imported_exception_class("builtins", "KeyboardInterrupt") is None
    assert imported_exception_class(__name__, "TopError.__class__") is None


def test_rebuild_default_and_strict_modes() -> None:
    info = exception_info(TopError("a", 1))
    default = rebuild(info)
    assert type(default) is TopError
    assert default.args == ("a", 1)
    strict = rebuild(info, imported=False)
    assert isinstance(strict, RemoteError)
    assert str(strict) == "TopError('a', 1)"
    assert type(rebuild(info, [TopError], imported=False)) is TopError
    # Celery's own exceptions come back as themselves in both modes; a
    # process-stopping one never does.
    assert type(rebuild(exception_info(Reject("no")), imported=False)) is Reject
    shutdown = rebuild(exception_info(WorkerShutdown(1)))
    assert isinstance(shutdown, RemoteError)
    assert str(shutdown) == "WorkerShutdown(1)"


def test_rebuild_names_remote_causes() -> None:
    try:
        try:
            raise Outer.NestedError("inner")
        except Outer.NestedError as inner:
            raise ValueError("outer") from inner
    except ValueError as exc:
        info = exception_info(exc)
    rebuilt = rebuild(info, imported=False)
    assert type(rebuilt) is ValueError
    assert isinstance(rebuilt.__cause__, RemoteError)
    assert str(rebuilt.__cause__) == "NestedError('inner')"
    assert type(rebuild(info).__cause__) is Outer.NestedError


def test_meta_shape_without_optional_fields() -> None:
    meta = to_meta(TaskResult("t", State.STARTED, {"pid": 1}, children=("c",)))
    assert meta == {
        "task_id": "t",
        "status": "STARTED",
        "result": {"pid": 1},
        "traceback": None,
        "children": [(("c", None), None)],
        "date_done": None,
    }
    assert pending_meta("x")["status"] == "PENDING"
