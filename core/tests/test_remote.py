"""Task exceptions: described for storage, rebuilt without importing, hostile input included."""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from typing import Any

import pytest
from conftest import TempModule
from hypothesis import given
from hypothesis import strategies as st
from resultstore import (
    ChordPartFailedError,
    CodecOptions,
    ExceptionInfo,
    Serializer,
    State,
    TaskResult,
)
from resultstore.concepts import remote
from resultstore.concepts.remote import (
    MAX_CAUSE_DEPTH,
    RemoteError,
    TaskRevokedError,
    describe_exception,
    rebuild_exception,
)
from resultstore_contract.strategies import exception_infos


class AppError(Exception):
    """An application's own exception, as a worker would raise it."""


class Outer:
    class NestedError(Exception):
        pass


class NeedsTwoArgs(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(code, detail)


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")


def raised(exc: BaseException, cause: BaseException | None = None) -> BaseException:
    """``exc`` after it was really raised (so it has a traceback and context)."""
    try:
        raise exc from cause
    except BaseException as caught:  # SystemExit too: caught to be described
        return caught


def chain_of(exc: BaseException | None) -> list[BaseException]:
    links = []
    while exc is not None:
        links.append(exc)
        exc = exc.__cause__
    return links


def info_chain(info: ExceptionInfo | None) -> list[ExceptionInfo]:
    links = []
    while info is not None:
        links.append(info)
        info = info.cause
    return links


# -- builtin exceptions round-trip ---------------------------------------------

BUILTIN_TYPES = [
    ValueError,
    KeyError,
    TypeError,
    RuntimeError,
    ZeroDivisionError,
    LookupError,
    ArithmeticError,
    AssertionError,
    NotImplementedError,
    UnicodeError,
    Exception,
]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20))


@given(
    links=st.lists(
        st.tuples(st.sampled_from(BUILTIN_TYPES), st.lists(SCALARS, max_size=3)),
        min_size=1,
        max_size=MAX_CAUSE_DEPTH + 1,
    )
)
def test_builtin_exceptions_with_cause_chains_round_trip(
    links: list[tuple[type[Exception], list[Any]]],
) -> None:
    exc: BaseException | None = None
    for cls, args in reversed(links):
        exc = raised(cls(*args), exc)
    assert exc is not None
    rebuilt = rebuild_exception(describe_exception(exc))
    original_chain, rebuilt_chain = chain_of(exc), chain_of(rebuilt)
    assert len(rebuilt_chain) == len(original_chain)
    for before, after in zip(original_chain, rebuilt_chain, strict=True):
        assert type(after) is type(before)
        assert after.args == before.args
        assert str(after) == str(before)


def test_os_errors_keep_errno_and_strerror_and_the_full_message() -> None:
    # OSError keeps its filename outside args, so only the stored message has it.
    exc = raised(FileNotFoundError(2, "No such file or directory", "/data/in.csv"))
    info = describe_exception(exc)
    assert info.message == "[Errno 2] No such file or directory: '/data/in.csv'"
    rebuilt = rebuild_exception(info)
    assert type(rebuilt) is FileNotFoundError
    assert isinstance(rebuilt, FileNotFoundError)
    assert (rebuilt.errno, rebuilt.strerror) == (2, "No such file or directory")


def test_a_round_trip_through_every_codec_keeps_the_exception() -> None:
    exc = raised(KeyError("missing"), raised(ValueError("bad input", 42)))
    result = TaskResult("t1", State.FAILURE, exception=describe_exception(exc))
    for codec in ("json", "msgpack"):
        ser = Serializer(CodecOptions(codec=codec))
        info = ser.loads(ser.dumps(result), TaskResult).exception
        assert info is not None
        rebuilt = rebuild_exception(info)
        assert type(rebuilt) is KeyError
        assert rebuilt.args == ("missing",)
        assert type(rebuilt.__cause__) is ValueError
        assert rebuilt.__cause__.args == ("bad input", 42)


def test_implicit_context_is_kept_unless_suppressed() -> None:
    try:
        try:
            raise ValueError("first")
        except ValueError:
            raise KeyError("second")  # noqa: B904  # the implicit context is the point
    except KeyError as exc:
        info = describe_exception(exc)
    assert info.cause is not None
    assert info.cause.type_name == "ValueError"
    suppressed = raised(KeyError("second"))
    suppressed.__context__ = ValueError("hidden")
    suppressed.__suppress_context__ = True
    assert describe_exception(suppressed).cause is None


def test_cause_chains_are_cut_at_the_documented_depth() -> None:
    exc: BaseException | None = None
    for i in range(MAX_CAUSE_DEPTH * 4):
        exc = raised(ValueError(i), exc)
    assert exc is not None
    info = describe_exception(exc)
    assert len(info_chain(info)) == MAX_CAUSE_DEPTH + 1
    assert len(chain_of(rebuild_exception(info))) == MAX_CAUSE_DEPTH + 1


def test_a_huge_stored_cause_chain_is_rebuilt_to_the_bound() -> None:
    info: ExceptionInfo | None = None
    for i in range(20_000):
        info = ExceptionInfo("ValueError", "builtins", (i,), str(i), info)
    assert info is not None
    rebuilt = rebuild_exception(info)
    assert len(chain_of(rebuilt)) == MAX_CAUSE_DEPTH + 1
    assert rebuilt.args == (19_999,)


def test_unstorable_args_are_kept_as_their_repr() -> None:
    marker = object()
    info = describe_exception(ValueError(marker, {"k": (1, 2)}, {1: "int key"}))
    assert info.args == (repr(marker), {"k": [1, 2]}, repr({1: "int key"}))
    for codec in ("json", "msgpack"):
        ser = Serializer(CodecOptions(codec=codec))
        ser.dumps(TaskResult("t1", State.FAILURE, exception=info))


def test_an_exception_whose_str_raises_is_still_described() -> None:
    info = describe_exception(BadStr("x"))
    assert info.type_name == "BadStr"
    assert info.message == "<unprintable BadStr>"
    assert info.args == ("x",)


def test_revoked_is_always_rebuilt_as_itself() -> None:
    rebuilt = rebuild_exception(describe_exception(TaskRevokedError("terminated")))
    assert type(rebuilt) is TaskRevokedError
    assert rebuilt.args == ("terminated",)


# -- application exceptions ----------------------------------------------------


def test_own_exceptions_are_stored_under_their_public_names() -> None:
    assert describe_exception(TaskRevokedError()).qualified_name == "resultstore.TaskRevokedError"
    part = ChordPartFailedError("g", 0, "t", "FAILURE", "boom")
    assert describe_exception(part).qualified_name == "resultstore.ChordPartFailedError"


@pytest.mark.parametrize(
    ("module", "cls", "args"),
    [
        ("resultstore.remote", TaskRevokedError, ()),
        ("resultstore.errors", ChordPartFailedError, ("g", 0, "t", "FAILURE", "x")),
    ],
)
def test_names_stored_before_the_layer_folders_are_still_read(
    module: str, cls: type[BaseException], args: tuple[Any, ...]
) -> None:
    info = ExceptionInfo(type_name=cls.__qualname__, module=module, args=args)
    assert type(rebuild_exception(info, (ChordPartFailedError,))) is cls


def test_an_allow_listed_class_is_rebuilt_as_itself() -> None:
    info = describe_exception(AppError("quota exceeded", 3))
    for allowed in ([AppError], {f"{__name__}.AppError": AppError}):
        rebuilt = rebuild_exception(info, allowed)
        assert type(rebuilt) is AppError
        assert rebuilt.args == ("quota exceeded", 3)


def test_an_unknown_class_becomes_a_remote_error_that_keeps_everything() -> None:
    info = describe_exception(AppError("quota exceeded", 3))
    rebuilt = rebuild_exception(info)
    assert isinstance(rebuilt, RemoteError)
    assert not isinstance(rebuilt, AppError)
    assert type(rebuilt).__name__ == "AppError"
    assert rebuilt.remote_type == "AppError"
    assert rebuilt.remote_module == __name__
    assert rebuilt.args == ("quota exceeded", 3)
    assert str(rebuilt) == str(AppError("quota exceeded", 3))
    with pytest.raises(RemoteError, match="quota exceeded"):
        raise rebuilt


def test_a_nested_class_keeps_its_qualified_name() -> None:
    rebuilt = rebuild_exception(describe_exception(Outer.NestedError("deep")))
    assert isinstance(rebuilt, RemoteError)
    assert rebuilt.remote_type == "Outer.NestedError"
    assert type(rebuilt).__name__ == "NestedError"


def test_the_same_remote_class_is_reused_so_except_clauses_match() -> None:
    info = ExceptionInfo("GatewayError", "payments.errors", ("down",), "down")
    first, second = rebuild_exception(info), rebuild_exception(info)
    assert type(first) is type(second)
    with pytest.raises(type(first)):
        raise second


def test_an_allow_listed_class_whose_constructor_refuses_the_args_falls_back() -> None:
    info = ExceptionInfo("NeedsTwoArgs", __name__, ("only one",), "only one")
    rebuilt = rebuild_exception(info, [NeedsTwoArgs])
    assert isinstance(rebuilt, RemoteError)
    assert rebuilt.remote_type == "NeedsTwoArgs"
    assert rebuilt.args == ("only one",)


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_a_remote_error_pickles(protocol: int) -> None:
    info = ExceptionInfo("GatewayError", "payments.errors", ("down", 503), "gateway down")
    rebuilt = rebuild_exception(info)
    again = pickle.loads(pickle.dumps(rebuilt, protocol=protocol))
    assert type(again) is type(rebuilt)
    assert again.args == ("down", 503)
    assert str(again) == "gateway down"
    assert "payments.errors" not in sys.modules


@given(exception_infos())
def test_any_description_rebuilds_into_an_exception_without_raising(info: ExceptionInfo) -> None:
    rebuilt = rebuild_exception(info)
    assert isinstance(rebuilt, Exception)
    for before, after in zip(info_chain(info), chain_of(rebuilt), strict=True):
        if isinstance(after, RemoteError):
            assert after.remote_type == before.type_name
            assert after.remote_module == before.module
            assert str(after) == before.message
        else:
            assert before.module == "builtins"
            assert type(after).__name__ == before.type_name
        assert after.args == tuple(before.args)


# -- hostile descriptions ------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "type_name"),
    [
        ("os", "system"),
        ("subprocess", "call"),
        ("builtins", "print"),
        ("builtins", "eval"),
        ("builtins", "__import__"),
        ("builtins", "object"),
        ("builtins", "type"),
        ("builtins", "__class__"),
        ("builtins", "SystemExit"),
        ("builtins", "KeyboardInterrupt"),
        ("builtins", "GeneratorExit"),
        ("builtins", "BaseException"),
        ("builtins", "BaseExceptionGroup"),
    ],
)
def test_names_that_are_not_safe_exceptions_become_remote_errors(
    module: str, type_name: str
) -> None:
    rebuilt = rebuild_exception(ExceptionInfo(type_name, module, ("echo owned",), "owned"))
    assert isinstance(rebuilt, RemoteError)
    # Re-raising it must never stop the caller the way SystemExit would.
    assert isinstance(rebuilt, Exception)
    assert rebuilt.remote_type == type_name
    assert rebuilt.remote_module == module


def test_a_stored_system_exit_is_caught_by_except_exception() -> None:
    rebuilt = rebuild_exception(describe_exception(raised(SystemExit(3))))
    caught = False
    try:
        raise rebuilt
    except Exception:  # exactly what a caller's broad handler does
        caught = True
    assert caught


@pytest.mark.parametrize(
    "type_name",
    ["Foo; import os", "../../etc/passwd", "", "1Error", "a b", "Err\nor", "ValueError()"],
)
def test_non_identifier_type_names_are_kept_but_not_used_as_class_names(type_name: str) -> None:
    rebuilt = rebuild_exception(ExceptionInfo(type_name, "builtins", (), "m"))
    assert isinstance(rebuilt, RemoteError)
    assert type(rebuilt).__name__ == "RemoteError"
    assert rebuilt.remote_type == type_name


def test_args_that_are_not_a_sequence_are_wrapped() -> None:
    rebuilt = rebuild_exception(ExceptionInfo("ValueError", "builtins", "abc", "abc"))  # type: ignore[arg-type]  # what a hostile payload could hold
    assert rebuilt.args == ("abc",)


def test_endless_invented_names_do_not_grow_the_class_cache_without_bound() -> None:
    for i in range(5000):
        rebuild_exception(ExceptionInfo(f"Invented{i}", "hostile.module", (), ""))
    assert len(remote._generated) <= 4096


def test_rebuilding_never_imports_the_stored_module(
    temp_module: Callable[[str], TempModule],
) -> None:
    module = temp_module("class Boom(Exception):\n    pass\n")
    info = ExceptionInfo("Boom", module.name, ("kaboom",), "kaboom")
    result = TaskResult("t1", State.FAILURE, exception=info)
    for codec in ("json", "msgpack"):
        ser = Serializer(CodecOptions(codec=codec))
        stored = ser.loads(ser.dumps(result), TaskResult).exception
        assert stored is not None
        rebuilt = rebuild_exception(stored)
        assert isinstance(rebuilt, RemoteError)
        assert type(rebuilt).__name__ == "Boom"
        pickle.loads(pickle.dumps(rebuilt))
        rebuild_exception(stored, {"other.Boom": AppError})
    assert not module.imported
