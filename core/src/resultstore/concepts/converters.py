"""cattrs converters that turn the models into plain data, one per wire format.

The models in :mod:`resultstore.concepts.models` carry no serialization code; these
functions hold every encoding choice. Each ``configure_*_converter`` takes a
fresh :class:`cattrs.Converter` and registers the hooks for one format.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from resultstore.concepts.models import ChordState, ExceptionInfo, Group, TaskResult
from resultstore.concepts.states import state_from_str

__all__ = [
    "MODELS",
    "configure_json_converter",
    "configure_msgpack_converter",
    "configure_pickle_converter",
    "new_converter",
]

#: every model that is stored, so that tests can cover them all.
MODELS: tuple[type[Any], ...] = (TaskResult, ExceptionInfo, Group, ChordState)


def _to_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is dt.UTC:
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"datetime {value.isoformat()} has no timezone; resultstore stores UTC")
    return value.astimezone(dt.UTC)


def _structure_datetime_iso(value: Any, _: type[Any]) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return _to_utc(value)
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 datetime string, got {type(value).__name__}")
    return _to_utc(dt.datetime.fromisoformat(value))


def _structure_datetime_native(value: Any, _: type[Any]) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise ValueError(f"expected a datetime, got {type(value).__name__}")
    return _to_utc(value)


def _structure_state(value: Any, _: type[Any]) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"a state is a non-empty string, got {value!r}")
    return state_from_str(value)


def _structure_str_tuple(value: Any, _: type[Any]) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of strings")
    return tuple(value)


def _structure_any_tuple(value: Any, _: type[Any]) -> tuple[Any, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return tuple(value)


def _structure_mapping(value: Any, _: type[Any]) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping, got {type(value).__name__}")
    return value


def _structure_indices(value: Any, _: type[Any]) -> frozenset[int]:
    if not isinstance(value, list | tuple) or not all(type(v) is int for v in value):
        raise ValueError("expected a list of integers")
    return frozenset(value)


def _same(value: Any) -> Any:
    return value


def _configure_common(converter: cattrs.Converter) -> None:
    """Rules shared by every format.

    - Fields left at their default are omitted, to keep payloads small.
    - ``state`` is stored as its plain string; built-in names come back as
      :class:`~resultstore.State` members, custom ones as ``str``.
    - Tuples (``children``, ``args``, ``task_ids``) are stored as lists and
      come back as tuples; ``received`` chord indices as a sorted list.
    - ``result`` and the contents of ``args``/``kwargs`` pass through
      untouched: the codec decides which values it can hold (and walking a
      large result in Python would cost more than encoding it).
    - Unknown keys are ignored on read, so newer writers stay readable.
    """
    strings = override(struct_hook=_structure_str_tuple, unstruct_hook=list)
    values = override(
        struct_hook=_structure_any_tuple, unstruct_hook=lambda v: None if v is None else list(v)
    )
    fields: dict[type[Any], dict[str, Any]] = {
        TaskResult: {
            "state": override(struct_hook=_structure_state, unstruct_hook=str),
            "children": strings,
            "args": values,
            "result": override(unstruct_hook=_same),
            "kwargs": override(struct_hook=_structure_mapping, unstruct_hook=_same),
        },
        ExceptionInfo: {"args": override(struct_hook=_structure_any_tuple, unstruct_hook=list)},
        Group: {"task_ids": strings},
        ChordState: {"received": override(struct_hook=_structure_indices, unstruct_hook=sorted)},
    }
    for model in MODELS:
        converter.register_unstructure_hook(
            model,
            make_dict_unstructure_fn(
                model, converter, _cattrs_omit_if_default=True, **fields[model]
            ),
        )
        converter.register_structure_hook(
            model,
            make_dict_structure_fn(model, converter, **fields[model]),
        )


def configure_json_converter(converter: cattrs.Converter) -> None:
    """JSON (orjson): every choice above, plus

    - datetimes are ISO 8601 strings with an explicit ``+00:00`` offset;
    - bytes are not JSON: a result holding bytes is refused at encode time
      (use the msgpack codec);
    - enums inside results are stored as their values.
    """
    converter.register_unstructure_hook(dt.datetime, lambda d: _to_utc(d).isoformat())
    converter.register_structure_hook(dt.datetime, _structure_datetime_iso)
    _configure_common(converter)


def configure_msgpack_converter(converter: cattrs.Converter) -> None:
    """msgpack: every choice above, plus

    - datetimes are msgpack Timestamp extensions (UTC, microseconds kept);
    - bytes stay bytes (bin type), so results may hold them.
    """
    converter.register_unstructure_hook(dt.datetime, _to_utc)
    converter.register_structure_hook(dt.datetime, _structure_datetime_native)
    _configure_common(converter)


def configure_pickle_converter(converter: cattrs.Converter) -> None:
    """pickle (only when the reader accepts it): every choice above, plus

    - datetimes and results are kept as Python objects, so any picklable
      value round-trips. Reading pickle runs code; it is never a default.
    """
    converter.register_unstructure_hook(dt.datetime, _to_utc)
    converter.register_structure_hook(dt.datetime, _structure_datetime_native)
    _configure_common(converter)


def new_converter(*, detailed_validation: bool = True) -> cattrs.Converter:
    """A bare converter with the library's base settings (not yet configured).

    Reads use one without detailed validation (the common, fast path) and,
    only to explain a payload that failed, one with it.
    """
    return cattrs.Converter(forbid_extra_keys=False, detailed_validation=detailed_validation)
