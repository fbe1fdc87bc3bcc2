"""Round trips of every codec and compression through the real store.

What a writer stores, any reader reads back equal: values, exceptions (type,
args, cause chain), timezone-aware datetimes (as the same instant, in UTC),
groups. Readers follow each payload's header, not their own settings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from resultstore import Capability, Group, State, SupportsGroups, TaskResult
from resultstore.concepts.remote import RemoteError, rebuild_exception

from resultstore_contract.strategies import (
    aware_datetimes,
    json_values,
    msgpack_values,
    task_ids,
    task_results,
)
from resultstore_contract.support import (
    ContractBase,
    IdFactory,
    StoreFactory,
    contract_settings,
    requires,
)

__all__ = ["CODEC_CONFIGS", "CodecContract", "ContractError"]

#: (codec, compression) pairs every backend round-trips.
CODEC_CONFIGS: list[tuple[str, str | None]] = [
    ("json", None),
    ("json", "zlib"),
    ("json", "zstd"),
    ("msgpack", None),
    ("msgpack", "zlib"),
    ("pickle", None),
]

_VALUES: dict[str, Callable[[], st.SearchStrategy[Any]]] = {
    "json": json_values,
    "msgpack": msgpack_values,
    "pickle": msgpack_values,
}


class ContractError(Exception):
    """A task's own exception class: rebuilt as itself only when allow-listed."""


def _options(codec: str, compression: str | None) -> dict[str, Any]:
    if compression == "zstd":
        pytest.importorskip("zstandard", reason="zstd needs: pip install 'resultstore[zstd]'")
    options: dict[str, Any] = {"codec": codec, "compression": compression or "none"}
    if compression is not None:
        options["compress_threshold"] = 0  # compress even the smallest payloads
    if codec == "pickle":
        options["accept"] = "json,msgpack,pickle"
    return options


def _raise_chain() -> BaseException:
    try:
        try:
            raise KeyError("missing")
        except KeyError as inner:
            raise ValueError("bad value", 3) from inner
    except ValueError as outer:
        return outer
    raise AssertionError("unreachable")


def _config_id(config: tuple[str, str | None]) -> str:
    return f"{config[0]}-{config[1] or 'plain'}"


class CodecContract(ContractBase):
    """Each codec and compression, written and read through the store under test."""

    @pytest.mark.parametrize("config", CODEC_CONFIGS, ids=_config_id)
    def test_codec_exception_chain_round_trips(
        self, connect_store: StoreFactory, new_id: IdFactory, config: tuple[str, str | None]
    ) -> None:
        store = connect_store(**_options(*config))
        task_id = new_id()
        store.mark_as_failure(task_id, _raise_chain())
        got = store.get(task_id)
        assert got is not None
        assert got.state == State.FAILURE
        assert got.traceback is not None
        assert "ValueError" in got.traceback
        info = got.exception
        assert info is not None
        assert (info.module, info.type_name, info.args) == (
            "builtins",
            "ValueError",
            ("bad value", 3),
        )
        assert info.cause is not None
        assert (info.cause.type_name, info.cause.args) == ("KeyError", ("missing",))
        rebuilt = rebuild_exception(info)
        assert type(rebuilt) is ValueError
        assert rebuilt.args == ("bad value", 3)
        assert type(rebuilt.__cause__) is KeyError
        assert rebuilt.__cause__.args == ("missing",)

    @pytest.mark.parametrize("config", CODEC_CONFIGS, ids=_config_id)
    def test_codec_own_exception_class_round_trips(
        self, connect_store: StoreFactory, new_id: IdFactory, config: tuple[str, str | None]
    ) -> None:
        store = connect_store(**_options(*config))
        task_id = new_id()
        store.mark_as_failure(task_id, ContractError("mine", {"detail": [1, 2]}))
        got = store.get(task_id)
        assert got is not None
        assert got.exception is not None
        remote = rebuild_exception(got.exception)
        assert isinstance(remote, RemoteError)
        assert type(remote).__name__ == "ContractError"
        assert remote.args == ("mine", {"detail": [1, 2]})
        allowed = rebuild_exception(got.exception, allowed=[ContractError])
        assert type(allowed) is ContractError
        assert allowed.args == ("mine", {"detail": [1, 2]})

    @pytest.mark.parametrize("config", CODEC_CONFIGS, ids=_config_id)
    def test_codec_aware_datetimes_come_back_as_the_same_instant_in_utc(
        self, connect_store: StoreFactory, new_id: IdFactory, config: tuple[str, str | None]
    ) -> None:
        store = connect_store(**_options(*config))
        india = dt.timezone(dt.timedelta(hours=5, minutes=30))
        moments = [
            dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=india),
            dt.datetime(1, 1, 1, tzinfo=dt.UTC),
            dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
            dt.datetime(2021, 3, 28, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=-9))),
        ]
        for moment in moments:
            task_id = new_id()
            store.store(TaskResult(task_id, State.SUCCESS, 1, date_done=moment))
            got = store.get(task_id)
            assert got is not None
            assert got.date_done == moment, f"{moment.isoformat()} came back as another instant"
            assert got.date_done.utcoffset() == dt.timedelta(0), "datetimes are read back in UTC"

    @pytest.mark.parametrize("config", CODEC_CONFIGS, ids=_config_id)
    def test_codec_any_result_round_trips(
        self, connect_store: StoreFactory, config: tuple[str, str | None]
    ) -> None:
        store = connect_store(**_options(*config))
        prefix = f"rt-{config[0]}-"

        @contract_settings()
        @given(task_results(_VALUES[config[0]](), ids=task_ids().map(prefix.__add__)))
        def round_trip(result: TaskResult) -> None:
            try:
                store.store(result, overwrite=True)
                assert store.get(result.task_id) == result
                assert store.get_many([result.task_id]) == {result.task_id: result}
            finally:
                store.forget(result.task_id)

        round_trip()

    @pytest.mark.parametrize("config", CODEC_CONFIGS, ids=_config_id)
    def test_codec_readers_follow_the_payload_header(
        self,
        connect_store: StoreFactory,
        new_id: IdFactory,
        config: tuple[str, str | None],
    ) -> None:
        writer = connect_store(**_options(*config))
        # A reader configured differently (another codec, no compression).
        other = "json" if config[0] != "json" else "msgpack"
        accept = "json,msgpack,pickle" if config[0] == "pickle" else "json,msgpack"
        reader = connect_store(codec=other, compression="none", accept=accept)
        value = {"text": "ünïcode ✓", "nested": [1, [2.5, None]], "flag": False}
        result = TaskResult(new_id(), State.SUCCESS, value, date_done=dt.datetime.now(dt.UTC))
        writer.store(result)
        assert reader.get(result.task_id) == result
        assert reader.get_many([result.task_id]) == {result.task_id: result}

    @requires(Capability.GROUPS)
    @pytest.mark.parametrize("config", CODEC_CONFIGS, ids=_config_id)
    def test_codec_groups_round_trip(
        self, connect_store: StoreFactory, new_id: IdFactory, config: tuple[str, str | None]
    ) -> None:
        store = connect_store(**_options(*config))

        @contract_settings(max_examples=10)
        @given(st.lists(task_ids(), max_size=20), aware_datetimes())
        def round_trip(members: list[str], when: dt.datetime) -> None:
            group = Group(new_id("group"), tuple(members), when)
            # The backend itself, to store any date_done (the facade stamps "now").
            cast(SupportsGroups, store.backend).save_group(group)
            try:
                assert store.get_group(group.group_id) == group
            finally:
                store.delete_group(group.group_id)

        round_trip()
