"""Checks at the door: ids, group ids, state names, values and expiry, the same on every backend.

Each case is refused with the documented error before the backend sees it,
through the sync store, the asyncio store, bulk calls and result handles.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from resultstore import (
    ConfigurationError,
    EncodeError,
    InvalidIdError,
    InvalidInputError,
    InvalidStateError,
    ResultStore,
    ResultStoreError,
    State,
    TaskResult,
    connect,
    connect_async,
)
from resultstore.concepts.validation import MAX_ID_BYTES, check_state, check_task_id

#: ids every backend must take: Celery's uuid4 and ids people choose.
GOOD_IDS = [
    str(uuid.uuid4()),
    "celery-task-meta-0",
    "report:2026-01-01.user@example.com/part_3",
    "with spaces",
    "ünïcödé-任务-🚀",
    "%_*?[",
    "x" * MAX_ID_BYTES,
    "é" * (MAX_ID_BYTES // 2),
]

#: ids no backend is given, with what the message must name.
BAD_IDS: list[tuple[object, str]] = [
    ({"$gt": ""}, "must be a str, got dict"),
    ({"$ne": None}, "must be a str, got dict"),
    (["a"], "must be a str, got list"),
    (7, "must be a str, got int"),
    (None, "must be a str, got NoneType"),
    (b"bytes-id", "must be a str, got bytes"),
    (uuid.UUID(int=1), "str(uuid)"),
    ("", "is empty"),
    ("nul\x00here", "U+0000 at position 3"),
    ("esc\x1b[2J", "U+001B"),
    ("new\nline", "U+000A"),
    ("del\x7f", "U+007F"),
    ("c1\x9b", "U+009B"),
    ("lone\ud800", "lone surrogate"),
    ("x" * (MAX_ID_BYTES + 1), "513 bytes"),
    ("é" * (MAX_ID_BYTES // 2 + 1), "514 bytes"),
]
BAD_ID_NAMES = [repr(value)[:24] for value, _ in BAD_IDS]

BAD_STATES: list[tuple[object, str]] = [
    ("", "is empty"),
    ("PRO\x00GRESS", "U+0000"),
    ("\x1b]0;title\x07", "U+001B"),
    ("lone\udfff", "lone surrogate"),
    (None, "must be a str"),
    (3, "must be a str"),
    ("S" * (MAX_ID_BYTES + 1), "bytes long"),
]


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return f"memory://validation-{uuid.uuid4().hex}"
    return f"sqlite:///{tmp_path / 'results.db'}"


@pytest.fixture
def store(url: str) -> Iterator[ResultStore]:
    with connect(url) as opened:
        yield opened


# -- ids -----------------------------------------------------------------------------------


@pytest.mark.parametrize("task_id", GOOD_IDS)
def test_generous_ids_round_trip(store: ResultStore, task_id: str) -> None:
    store.mark_as_done(task_id, 1)
    got = store.get(task_id)
    assert got is not None
    assert got.task_id == task_id
    assert store.get_many([task_id])[task_id] == got
    store.save_group(task_id, [task_id])
    group = store.get_group(task_id)
    assert group is not None
    assert group.task_ids == (task_id,)
    store.forget(task_id)
    assert store.get(task_id) is None


@pytest.mark.parametrize(("bad", "named"), BAD_IDS, ids=BAD_ID_NAMES)
def test_bad_task_ids_are_refused_on_every_sync_call(
    store: ResultStore, bad: Any, named: str
) -> None:
    store.mark_as_done("other", "secret")
    calls: dict[str, Callable[[], object]] = {
        "get": lambda: store.get(bad),
        "forget": lambda: store.forget(bad),
        "get_many": lambda: store.get_many(["ok", bad]),
        "store": lambda: store.store(TaskResult(bad, State.SUCCESS, 1)),
        "mark_as_done": lambda: store.mark_as_done(bad, 1),
        "store_many": lambda: store.store_many(
            [TaskResult("fine", State.SUCCESS), TaskResult(bad)]
        ),
        "save_group members": lambda: store.save_group("g", ["ok", bad]),
        "result handle": lambda: store.result(bad),
        "group handle": lambda: store.group_result("g", [bad]),
        "chord handle": lambda: store.chord_result("g", ["a"], bad),
        "children": lambda: store.store(TaskResult("p", State.SUCCESS, children=(bad,))),
    }
    if bad is not None:  # None is how a result says "no parent"
        calls["parent"] = lambda: store.store(TaskResult("p", State.SUCCESS, parent_id=bad))
    for name, call in calls.items():
        with pytest.raises(InvalidIdError, match="task id") as info:
            call()
        assert named in str(info.value), name
        assert "concepts" in str(info.value), f"{name}: the message points at the rule"
        assert isinstance(info.value, ValueError), "also a builtin ValueError"
    # Nothing was stored, nothing was deleted: "fine" came before the bad one in the batch.
    assert store.get("fine") is None
    other = store.get("other")
    assert other is not None
    assert other.result == "secret"


@pytest.mark.parametrize(("bad", "named"), BAD_IDS, ids=BAD_ID_NAMES)
def test_bad_group_ids_are_refused(store: ResultStore, bad: Any, named: str) -> None:
    store.set_chord_size("chord", 1)
    calls: dict[str, Callable[[], object]] = {
        "save_group": lambda: store.save_group(bad, ["a"]),
        "get_group": lambda: store.get_group(bad),
        "delete_group": lambda: store.delete_group(bad),
        "set_chord_size": lambda: store.set_chord_size(bad, 2),
        "chord_part_return": lambda: store.chord_part_return(bad, 0, TaskResult("a")),
        "get_chord": lambda: store.get_chord(bad),
        "restore_group": lambda: store.restore_group(bad),
    }
    if bad is not None:  # None is how a result says "in no group"
        calls["result group_id"] = lambda: store.store(TaskResult("a", State.SUCCESS, group_id=bad))
    for name, call in calls.items():
        with pytest.raises(InvalidIdError, match="group id") as info:
            call()
        assert named in str(info.value), name
    # A part with a bad task id is refused before it counts toward the chord.
    with pytest.raises(InvalidIdError):
        store.chord_part_return("chord", 0, TaskResult("\x00"))
    progress = store.get_chord("chord")
    assert progress is not None
    assert progress.received == frozenset()


def test_a_lone_string_is_not_taken_as_a_list_of_ids(store: ResultStore) -> None:
    with pytest.raises(InvalidIdError, match="wrap it in a list"):
        store.get_many("abc")  # type: ignore[arg-type]  # the mistake under test


def test_store_refuses_what_is_not_a_task_result(store: ResultStore) -> None:
    with pytest.raises(InvalidInputError, match="expected a TaskResult, got dict"):
        store.store({"task_id": "x"})  # type: ignore[arg-type]  # the mistake under test


@pytest.mark.parametrize(("bad", "named"), BAD_IDS, ids=BAD_ID_NAMES)
def test_bad_ids_are_refused_by_the_asyncio_store(url: str, bad: Any, named: str) -> None:
    async def main() -> None:
        async with await connect_async(url) as store:
            for call in (
                lambda: store.get(bad),
                lambda: store.forget(bad),
                lambda: store.get_many([bad]),
                lambda: store.store(TaskResult(bad, State.SUCCESS)),
                lambda: store.store_many([TaskResult(bad)]),
                lambda: store.mark_as_done(bad, 1),
            ):
                with pytest.raises(InvalidIdError) as info:
                    await call()
                assert named in str(info.value)
            with pytest.raises(InvalidIdError):
                store.result(bad)
            with pytest.raises(InvalidIdError):
                await store.get_group(bad)

    asyncio.run(main())


@given(st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), min_size=1, max_size=128))
def test_every_printable_text_is_a_valid_id(text: str) -> None:
    assert check_task_id(text) == text
    assert check_state(text) == text


@given(st.text(min_size=1, max_size=20))
def test_every_refusal_names_what_is_wrong(text: str) -> None:
    has_bad = any(
        ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in text
    )
    if has_bad:
        with pytest.raises(InvalidIdError, match=r"U\+[0-9A-F]{4} at position"):
            check_task_id(text)
    else:
        check_task_id(text)


# -- states ------------------------------------------------------------------------------


@pytest.mark.parametrize(("bad", "named"), BAD_STATES, ids=[repr(s)[:20] for s, _ in BAD_STATES])
def test_bad_states_are_refused_at_the_door(store: ResultStore, bad: Any, named: str) -> None:
    for call in (
        lambda: store.store(TaskResult("t", bad)),
        lambda: store.update_state("t", bad, {"done": 1}),
        lambda: store.store_many([TaskResult("t", bad)]),
    ):
        with pytest.raises(InvalidStateError, match="state") as info:
            call()
        assert named in str(info.value)
    assert store.get("t") is None


@pytest.mark.parametrize("state", ["PROGRESS", "[/x]", "[bold red]x[/]", "état", "a" * 100])
def test_odd_but_valid_custom_states_round_trip(store: ResultStore, state: str) -> None:
    store.update_state("t", state, {"n": 1})
    got = store.get("t")
    assert got is not None
    assert got.state == state


def test_async_store_refuses_bad_states(url: str) -> None:
    async def main() -> None:
        async with await connect_async(url) as store:
            with pytest.raises(InvalidStateError):
                await store.update_state("t", "")
            assert await store.get("t") is None

    asyncio.run(main())


# -- values ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize(
    "wrap",
    [
        lambda v: v,
        lambda v: [1, None, v],
        lambda v: {"a": {"b": [None, {"c": v}]}},
        lambda v: {"null": "null", "deep": [[[[v]]]]},
    ],
    ids=["bare", "list", "nested", "beside-null-text"],
)
def test_json_refuses_nan_and_infinity_instead_of_storing_null(
    store: ResultStore, bad: float, wrap: Callable[[float], Any]
) -> None:
    with pytest.raises(EncodeError, match="NaN or infinity") as info:
        store.mark_as_done("t", wrap(bad))
    assert "codec=msgpack" in str(info.value), "the message names a codec that holds it"
    assert store.get("t") is None
    # Metadata goes through the same codec: a NaN there is refused too.
    with pytest.raises(EncodeError, match="NaN or infinity"):
        store.store(TaskResult("u", State.SUCCESS, 1, kwargs={"x": bad}))


def test_json_keeps_nulls_and_the_text_null(store: ResultStore) -> None:
    value = {"a": None, "b": "null", "c": [None, 1.5, "NaN"], "d": 1e308}
    store.mark_as_done("t", value)
    got = store.get("t")
    assert got is not None
    assert got.result == value


def test_msgpack_keeps_nan_and_infinity(url: str) -> None:
    with connect(url, codec="msgpack") as store:
        store.mark_as_done("t", [math.inf, -math.inf, math.nan])
        got = store.get("t")
    assert got is not None
    assert got.result[:2] == [math.inf, -math.inf]
    assert math.isnan(got.result[2])


# -- expiry --------------------------------------------------------------------------------


@pytest.mark.parametrize("expires", [1e12, 1e300, "1e300", 10**30, 101 * 365 * 86400])
def test_huge_expires_is_refused_at_connect(url: str, expires: object) -> None:
    with pytest.raises(ConfigurationError, match="expires") as info:
        connect(url, expires=expires)
    assert "none" in str(info.value), "the message says how to keep results for ever"


@pytest.mark.parametrize("expires", [1, 86400, 100 * 365 * 86400, "none"])
def test_long_but_sane_expires_is_taken(url: str, expires: object) -> None:
    with connect(url, expires=expires) as store:
        store.mark_as_done("t", 1)
        assert store.get("t") is not None


def test_the_errors_are_in_the_documented_tree() -> None:
    assert issubclass(InvalidIdError, InvalidInputError)
    assert issubclass(InvalidStateError, InvalidInputError)
    assert issubclass(InvalidInputError, ResultStoreError)
    assert issubclass(InvalidInputError, ValueError)


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=30,
)


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


@given(_JSONISH)
def test_json_refuses_exactly_the_values_holding_nan_or_infinity(value: Any) -> None:
    from resultstore.payloads.codecs import CODECS

    dumps = CODECS["json"].dumps
    if _has_non_finite(value):
        with pytest.raises(EncodeError, match="NaN or infinity"):
            dumps({"result": value})
    else:
        dumps({"result": value})


def test_text_that_looks_like_a_packed_nan_is_kept(store: ResultStore) -> None:
    # The bytes of a packed NaN inside a string only make the check look closer.
    value = {"a": None, "b": "\u00cb\x7f\u00f8", "c": 1.5}
    store.mark_as_done("t", value)
    got = store.get("t")
    assert got is not None
    assert got.result == value
