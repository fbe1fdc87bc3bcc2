"""Each cattrs converter round-trips every stored model and makes the choices it documents."""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable
from typing import Any

import attrs
import cattrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from resultstore import ChordState, ExceptionInfo, Group, State, TaskResult
from resultstore.concepts import models as model_module
from resultstore.concepts.converters import (
    MODELS,
    configure_json_converter,
    configure_msgpack_converter,
    configure_pickle_converter,
    new_converter,
)
from resultstore_contract.strategies import (
    MODEL_STRATEGIES,
    json_values,
    models,
    msgpack_values,
    task_results,
)

Configure = Callable[[cattrs.Converter], None]

CONFIGURES: dict[str, Configure] = {
    "json": configure_json_converter,
    "msgpack": configure_msgpack_converter,
    "pickle": configure_pickle_converter,
}

#: models that are return values of backend calls, never written to a store.
NOT_STORED = {model_module.StoreOutcome, model_module.ChordOutcome}


def converter_for(name: str) -> cattrs.Converter:
    converter = new_converter()
    CONFIGURES[name](converter)
    return converter


def test_models_lists_exactly_the_stored_classes() -> None:
    assert set(MODELS) == {TaskResult, ExceptionInfo, Group, ChordState}


def test_every_attrs_class_in_models_is_either_stored_or_an_outcome() -> None:
    # A new model must be classified here, so it cannot miss the round-trip tests.
    defined = {
        cls
        for _, cls in inspect.getmembers(model_module, inspect.isclass)
        if attrs.has(cls) and cls.__module__ == model_module.__name__
    }
    assert defined == set(MODELS) | NOT_STORED


def test_every_stored_model_has_a_strategy() -> None:
    assert set(MODEL_STRATEGIES) == set(MODELS)


# Built once: hypothesis strategies are cheap to draw from but not to build.
ANY_MODEL = {
    "json": st.one_of(models(), task_results(json_values())),
    "msgpack": st.one_of(models(), task_results(msgpack_values())),
}
ANY_MODEL["pickle"] = ANY_MODEL["msgpack"]


@pytest.mark.parametrize("name", sorted(CONFIGURES))
@given(data=st.data())
def test_unstructure_then_structure_gives_the_model_back(name: str, data: st.DataObject) -> None:
    model = data.draw(ANY_MODEL[name])
    converter = converter_for(name)
    assert converter.structure(converter.unstructure(model), type(model)) == model


@pytest.mark.parametrize("name", sorted(CONFIGURES))
def test_fields_left_at_their_default_are_omitted(name: str) -> None:
    converter = converter_for(name)
    assert converter.unstructure(TaskResult("t1")) == {"task_id": "t1"}
    assert converter.unstructure(ChordState("g", 3)) == {"group_id": "g", "size": 3}


@pytest.mark.parametrize("name", sorted(CONFIGURES))
def test_states_are_stored_as_plain_strings_and_read_back_as_members(name: str) -> None:
    converter = converter_for(name)
    raw = converter.unstructure(TaskResult("t1", State.SUCCESS, 1))
    assert type(raw["state"]) is str
    assert raw["state"] == "SUCCESS"
    assert converter.structure(raw, TaskResult).state is State.SUCCESS
    custom = converter.structure({"task_id": "t1", "state": "PROGRESS"}, TaskResult)
    assert custom.state == "PROGRESS"
    assert not isinstance(custom.state, State)


@pytest.mark.parametrize("name", sorted(CONFIGURES))
def test_tuples_are_stored_as_lists_and_come_back_as_tuples(name: str) -> None:
    converter = converter_for(name)
    result = TaskResult("t1", children=("a", "b"), args=(1, "x"))
    raw = converter.unstructure(result)
    assert raw["children"] == ["a", "b"]
    assert raw["args"] == [1, "x"]
    back = converter.structure(raw, TaskResult)
    assert back.children == ("a", "b")
    assert back.args == (1, "x")
    group_raw = converter.unstructure(Group("g", ("a", "b")))
    assert group_raw["task_ids"] == ["a", "b"]


@pytest.mark.parametrize("name", sorted(CONFIGURES))
def test_chord_indices_are_stored_sorted(name: str) -> None:
    raw = converter_for(name).unstructure(ChordState("g", 5, frozenset({4, 0, 2})))
    assert raw["received"] == [0, 2, 4]


def test_json_stores_datetimes_as_iso_strings_in_utc() -> None:
    converter = converter_for("json")
    paris = dt.timezone(dt.timedelta(hours=2))
    when = dt.datetime(2024, 5, 1, 14, 30, 0, 123456, tzinfo=paris)
    raw = converter.unstructure(TaskResult("t1", date_done=when))
    assert raw["date_done"] == "2024-05-01T12:30:00.123456+00:00"
    back = converter.structure(raw, TaskResult).date_done
    assert back == when
    assert back is not None
    assert back.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("name", ["msgpack", "pickle"])
def test_binary_formats_keep_datetimes_native_in_utc(name: str) -> None:
    converter = converter_for(name)
    when = dt.datetime(2024, 5, 1, 14, 30, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    raw = converter.unstructure(Group("g", (), date_done=when))
    assert raw["date_done"] == when
    assert raw["date_done"].utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("name", sorted(CONFIGURES))
def test_unknown_keys_are_ignored_so_newer_writers_stay_readable(name: str) -> None:
    converter = converter_for(name)
    raw: dict[str, Any] = {"task_id": "t1", "state": "SUCCESS", "added_in_v9": {"x": 1}}
    assert converter.structure(raw, TaskResult) == TaskResult("t1", State.SUCCESS)


@pytest.mark.parametrize("name", sorted(CONFIGURES))
@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"task_id": "t1", "state": 7}, "state"),
        ({"task_id": "t1", "state": ""}, "state"),
        ({"task_id": "t1", "children": "ab"}, "children"),
        ({"task_id": "t1", "children": [1, 2]}, "children"),
        ({"task_id": "t1", "args": "ab"}, "args"),
        ({"task_id": "t1", "kwargs": [1]}, "kwargs"),
        ({"task_id": "t1", "date_done": 12}, "date_done"),
        ({"task_id": "t1", "exception": "boom"}, "exception"),
        ({"state": "SUCCESS"}, "task_id"),
    ],
)
def test_structurally_wrong_task_results_are_refused(
    name: str, raw: dict[str, Any], where: str
) -> None:
    with pytest.raises(cattrs.BaseValidationError) as info:
        converter_for(name).structure(raw, TaskResult)
    assert any(where in line for line in cattrs.transform_error(info.value))


@pytest.mark.parametrize("name", sorted(CONFIGURES))
def test_chord_indices_must_be_integers(name: str) -> None:
    with pytest.raises(cattrs.BaseValidationError):
        converter_for(name).structure({"group_id": "g", "size": 2, "received": [True]}, ChordState)


def test_json_refuses_a_datetime_without_timezone() -> None:
    with pytest.raises(cattrs.BaseValidationError) as info:
        converter_for("json").structure(
            {"task_id": "t1", "date_done": "2024-05-01T12:00:00"}, TaskResult
        )
    assert "timezone" in repr(info.value.exceptions)
