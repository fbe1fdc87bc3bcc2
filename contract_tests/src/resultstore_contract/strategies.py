"""Hypothesis strategies for every stored model and for the values results hold.

Shared by the contract suite and the core's own tests, so that a backend is
exercised with exactly the data the codecs are proven to round-trip.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar, cast

from hypothesis import strategies as st
from resultstore import ChordState, ExceptionInfo, Group, State, TaskResult
from resultstore.concepts.converters import MODELS

__all__ = [
    "MODEL_STRATEGIES",
    "aware_datetimes",
    "chord_states",
    "custom_states",
    "exception_infos",
    "groups",
    "json_values",
    "models",
    "msgpack_values",
    "states",
    "task_ids",
    "task_results",
    "texts",
]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

# Lone surrogates (Cs) cannot be encoded as UTF-8, so neither orjson nor
# msgpack accepts them; every other code point, NUL and emoji included, is fair.
_UNICODE = st.characters(codec="utf-8")
# Ids and states also leave out control characters (Cc): SQL text columns
# and several key-value stores refuse NUL in keys, and no task queue emits it.
_PRINTABLE = st.characters(codec="utf-8", exclude_categories=["Cc"])

_BUILTIN_STATE_VALUES = frozenset(s.value for s in State)

P = ParamSpec("P")
T = TypeVar("T")


def _built_once(fn: Callable[P, T]) -> Callable[P, T]:
    # Strategies are immutable and drawing is cheap, but building one (with
    # its nested recursive parts) costs more than a test example: build each
    # once per set of arguments. Bounded, as callers may pass fresh strategies.
    return cast(Callable[P, T], functools.lru_cache(maxsize=64)(fn))


@_built_once
def texts(*, min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    """Unicode strings of any code point except lone surrogates (NUL and emoji included)."""
    return st.text(_UNICODE, min_size=min_size, max_size=max_size)


@_built_once
def aware_datetimes() -> st.SearchStrategy[dt.datetime]:
    """Timezone-aware UTC datetimes over years 1..9999, microseconds included."""
    return st.datetimes(
        min_value=dt.datetime(1, 1, 1),
        max_value=dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        timezones=st.just(dt.UTC),
    )


def _json_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=_INT64_MIN, max_value=_INT64_MAX),
        st.floats(allow_nan=False, allow_infinity=False),
        texts(),
    )


def _nested(scalars: st.SearchStrategy[Any], max_leaves: int) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5),
            st.dictionaries(texts(max_size=12), inner, max_size=5),
        ),
        max_leaves=max_leaves,
    )


@_built_once
def json_values(*, max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """JSON data both orjson and msgpack round-trip: int64, finite floats, text, lists, dicts."""
    return _nested(_json_scalars(), max_leaves)


@_built_once
def msgpack_values(*, max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """:func:`json_values` plus ``bytes`` anywhere a scalar may be (msgpack and pickle only)."""
    return _nested(st.one_of(_json_scalars(), st.binary(max_size=64)), max_leaves)


@_built_once
def task_ids() -> st.SearchStrategy[str]:
    """Non-empty ids: UUID strings and printable unicode (non-ASCII, spaces, ``:`` and ``/``)."""
    return st.one_of(
        st.uuids().map(str),
        st.text(_PRINTABLE, min_size=1, max_size=48),
    )


@_built_once
def custom_states() -> st.SearchStrategy[str]:
    """Non-empty state names that are not built-in, such as ``PROGRESS``."""
    return st.one_of(
        st.sampled_from(["PROGRESS", "UPLOADING", "progress", "success"]),
        st.text(_PRINTABLE, min_size=1, max_size=20),
    ).filter(lambda s: s not in _BUILTIN_STATE_VALUES)


@_built_once
def states() -> st.SearchStrategy[str]:
    """Any state: the built-in :class:`State` members and custom names."""
    return st.one_of(st.sampled_from(list(State)), custom_states())


_IDENT_START = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
_IDENTIFIERS = st.builds(
    "{}{}".format,
    st.sampled_from(_IDENT_START),
    st.text(_IDENT_START + "0123456789", max_size=15),
)
_MODULES = st.one_of(
    st.sampled_from(["builtins", "", "myapp.tasks", "requests.exceptions"]),
    st.lists(_IDENTIFIERS, min_size=1, max_size=3).map(".".join),
)
_TYPE_NAMES = st.one_of(_IDENTIFIERS, _IDENTIFIERS.map("Outer.{}".format))
_EXCEPTION_ARGS = st.lists(json_values(max_leaves=4), max_size=3).map(tuple)


@st.composite
def _exception_chain(draw: st.DrawFn, max_depth: int) -> ExceptionInfo:
    depth = draw(st.integers(min_value=0, max_value=max_depth))
    info: ExceptionInfo | None = None
    # Built innermost first, so each new link's cause is the previous one.
    for _ in range(depth + 1):
        info = ExceptionInfo(
            type_name=draw(_TYPE_NAMES),
            module=draw(_MODULES),
            args=draw(_EXCEPTION_ARGS),
            message=draw(texts()),
            cause=info,
        )
    assert info is not None
    return info


@_built_once
def exception_infos(*, max_depth: int = 3) -> st.SearchStrategy[ExceptionInfo]:
    """Exception descriptions with JSON args and ``__cause__`` chains up to ``max_depth`` deep."""
    return _exception_chain(max_depth)


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


@_built_once
def task_results(
    values: st.SearchStrategy[Any] | None = None,
    *,
    ids: st.SearchStrategy[str] | None = None,
    state: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[TaskResult]:
    """Task results with every field drawn (``result``, ``args``, ``kwargs`` from ``values``).

    ``values`` defaults to :func:`json_values`, which every codec stores;
    containers inside values are lists, never tuples, because JSON and
    msgpack read tuples back as lists.
    """
    values = json_values() if values is None else values
    ids = task_ids() if ids is None else ids
    return st.builds(
        TaskResult,
        task_id=ids,
        state=states() if state is None else state,
        result=values,
        exception=_optional(exception_infos()),
        traceback=_optional(texts(max_size=200)),
        date_done=_optional(aware_datetimes()),
        children=st.lists(task_ids(), max_size=3).map(tuple),
        group_id=_optional(task_ids()),
        parent_id=_optional(task_ids()),
        name=_optional(texts()),
        args=_optional(st.lists(values, max_size=3).map(tuple)),
        kwargs=_optional(st.dictionaries(texts(max_size=12), values, max_size=3)),
        worker=_optional(texts()),
        retries=_optional(st.integers(min_value=0, max_value=2**31 - 1)),
        queue=_optional(texts()),
    )


@_built_once
def groups() -> st.SearchStrategy[Group]:
    """Groups of up to 8 member ids (duplicates possible), with or without ``date_done``."""
    return st.builds(
        Group,
        group_id=task_ids(),
        task_ids=st.lists(task_ids(), max_size=8).map(tuple),
        date_done=_optional(aware_datetimes()),
    )


@st.composite
def _chord_state(draw: st.DrawFn) -> ChordState:
    size = draw(st.integers(min_value=0, max_value=64))
    received: frozenset[int] = frozenset()
    if size:
        received = draw(st.frozensets(st.integers(min_value=0, max_value=size - 1)))
    return ChordState(
        group_id=draw(task_ids()),
        size=size,
        received=received,
        # A chord is completed by the call that records its last part, never before.
        completed=size > 0 and len(received) == size,
    )


@_built_once
def chord_states() -> st.SearchStrategy[ChordState]:
    """Consistent chord progress: indices within ``size``, completed exactly when all arrived."""
    return _chord_state()


#: the strategy of each stored model, keyed by class (see :func:`models`).
MODEL_STRATEGIES: Mapping[type[Any], Callable[[], st.SearchStrategy[Any]]] = {
    TaskResult: task_results,
    ExceptionInfo: exception_infos,
    Group: groups,
    ChordState: chord_states,
}


@_built_once
def models() -> st.SearchStrategy[Any]:
    """An instance of any class in :data:`resultstore.concepts.converters.MODELS`."""
    missing = [cls.__name__ for cls in MODELS if cls not in MODEL_STRATEGIES]
    if missing:
        raise LookupError(
            f"no strategy for stored model(s) {', '.join(missing)}; add them to "
            f"resultstore_contract.strategies.MODEL_STRATEGIES"
        )
    return st.one_of([MODEL_STRATEGIES[cls]() for cls in MODELS])
