"""Documents without a server: native only where BSON gives back what JSON would."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import bson
import orjson
import pytest
from bson.raw_bson import RawBSONDocument
from hypothesis import given, settings
from hypothesis import strategies as st
from resultstore import CodecOptions, Group, Serializer, TaskResult
from resultstore_contract.strategies import aware_datetimes, groups, json_values, task_results
from resultstore_mongodb.documents import CODEC_OPTIONS, Documents, bson_safe, split_datetime

_ANY_KEYS = st.text(max_size=6)
_WILD = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(),
        st.binary(max_size=4),
        st.tuples(st.integers()),
        st.datetimes(timezones=st.just(dt.UTC)),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_ANY_KEYS, inner, max_size=4)
    ),
    max_leaves=10,
)


def _through_json(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


def _through_bson(value: Any) -> Any:
    return bson.decode(bson.encode({"v": value}), codec_options=CODEC_OPTIONS)["v"]


def _same(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (1 is not 1.0, a list not a tuple)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@settings(max_examples=300)
@given(_WILD)
def test_a_value_passed_as_bson_safe_reads_back_as_json_gives_it(value: Any) -> None:
    if bson_safe(value):
        assert _same(_through_bson(value), _through_json(value))


@given(json_values())
def test_json_data_with_plain_keys_is_bson_safe(value: Any) -> None:
    def plain_keys(v: Any) -> bool:
        if isinstance(v, dict):
            return all(
                k and k[0] != "$" and "." not in k and "\0" not in k and plain_keys(x)
                for k, x in v.items()
            )
        return all(plain_keys(x) for x in v) if isinstance(v, list) else True

    assert bson_safe(value) == plain_keys(value)


@pytest.mark.parametrize(
    "value",
    [{"$gt": 1}, {"a.b": 1}, {"": 1}, {"a\0": 1}, {1: 2}, (1,), float("nan"), 2**63, "\ud800"],
)
def test_what_bson_would_store_differently_is_not_safe(value: Any) -> None:
    assert not bson_safe(value)


def test_deep_nesting_is_not_stored_natively() -> None:
    deep: Any = 1
    for _ in range(120):
        deep = [deep]
    assert not bson_safe(deep)


@given(aware_datetimes())
def test_split_datetime_keeps_every_microsecond(moment: dt.datetime) -> None:
    try:
        millis, micros = split_datetime(moment)
    except OverflowError:  # in UTC it falls outside year 1..9999: the codecs refuse it too
        return
    assert millis.microsecond % 1000 == 0
    assert 0 <= micros < 1000
    assert millis + dt.timedelta(microseconds=micros) == moment
    assert millis.tzinfo is dt.UTC


def _documents(**options: Any) -> Documents:
    return Documents(Serializer(CodecOptions(**options)))


def _stored(doc: Any) -> dict[str, Any]:
    """A document as it comes back from the server."""
    raw = doc.raw if isinstance(doc, RawBSONDocument) else bson.encode(doc)
    stored: dict[str, Any] = bson.decode(raw, codec_options=CODEC_OPTIONS)
    return stored


@settings(max_examples=100)
@given(task_results(json_values()))
def test_any_result_reads_back_as_the_json_codec_gives_it(result: TaskResult) -> None:
    documents = _documents()
    serializer = Serializer()
    expected = serializer.loads(serializer.dumps(result), TaskResult)
    assert documents.load_result(_stored(documents.result(result))) == expected


@given(groups())
def test_any_group_reads_back_as_the_json_codec_gives_it(group: Group) -> None:
    documents = _documents()
    serializer = Serializer()
    expected = serializer.loads(serializer.dumps(group), Group)
    assert documents.load_group(_stored(documents.group(group, None))) == expected


@pytest.mark.parametrize(
    ("options", "native"),
    [
        ({}, True),
        ({"codec": "msgpack"}, False),
        ({"compression": "zlib"}, False),
        ({"codec": "pickle", "accept": frozenset({"json", "pickle"})}, False),
    ],
)
def test_only_plain_json_writes_native_documents(options: dict[str, Any], native: bool) -> None:
    documents = _documents(**options)
    doc = _stored(documents.result(TaskResult("t", "SUCCESS", {"v": 1})))
    assert ("payload" not in doc) is native
    assert doc["state"] == "SUCCESS"
    assert documents.load_result(doc).result == {"v": 1}
