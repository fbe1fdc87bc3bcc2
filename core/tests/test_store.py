"""connect() and ResultStore: options, observer hooks, codec wrapper plugins and conveniences."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeClock
from resultstore import (
    BackendSpec,
    ChordOutcome,
    ConfigurationError,
    ResultTooLargeError,
    State,
    StoreOutcome,
    TaskResult,
    UnknownCodecError,
    UnknownOptionError,
    UnsupportedOperationError,
    connect,
    default_url,
    hookimpl,
)
from resultstore.api.store import URL_ENV, ResultStore
from resultstore.backends.memory import MemoryBackend
from resultstore.concepts.remote import RemoteError, TaskRevokedError, rebuild_exception
from resultstore.payloads.codecs import DecodeRequest, EncodeRequest, make_envelope, parse_envelope


def shared_url(query: str = "") -> str:
    """A named memory store of its own, which a second connect() can see."""
    return f"memory://store-test-{uuid.uuid4().hex}{query}"


def raw_payload(store: ResultStore, task_id: str) -> bytes:
    backend = store.backend
    assert isinstance(backend, MemoryBackend)
    return backend.data.results[task_id].payload


class Recorder:
    """Records every observer hook call."""

    def __init__(self) -> None:
        self.stores: list[tuple[str, TaskResult, StoreOutcome]] = []
        self.changes: list[tuple[str, str | None, str]] = []
        self.forgets: list[str] = []
        self.parts: list[tuple[int, ChordOutcome]] = []

    @hookimpl
    def resultstore_on_store(self, url: str, result: TaskResult, outcome: StoreOutcome) -> None:
        self.stores.append((url, result, outcome))

    @hookimpl
    def resultstore_on_state_change(
        self, url: str, task_id: str, previous_state: str | None, state: str, result: TaskResult
    ) -> None:
        self.changes.append((task_id, previous_state, state))

    @hookimpl
    def resultstore_on_forget(self, url: str, task_id: str) -> None:
        self.forgets.append(task_id)

    @hookimpl
    def resultstore_on_chord_part_return(
        self, url: str, group_id: str, index: int, result: TaskResult, outcome: ChordOutcome
    ) -> None:
        self.parts.append((index, outcome))


XOR = 0x5A


class XorEnvelope:
    """A toy layer plugin, built the way the encryption plugin is: two wrapper hooks."""

    def __init__(self) -> None:
        self.encoded = 0
        self.decoded = 0

    @hookimpl(wrapper=True)
    def resultstore_encode(self, request: EncodeRequest) -> Generator[None, bytes, bytes]:
        inner = yield
        self.encoded += 1
        return make_envelope({"xor": "v1"}, bytes(b ^ XOR for b in inner))

    @hookimpl(wrapper=True)
    def resultstore_decode(self, request: DecodeRequest) -> Generator[None, Any, Any]:
        if request.payload.startswith(b"rs1 xor="):
            _, body = parse_envelope(request.payload)
            request.payload = bytes(b ^ XOR for b in body)
            self.decoded += 1
        return (yield)


# -- observer hooks ------------------------------------------------------------


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def observed(recorder: Recorder) -> Generator[ResultStore, None, None]:
    with connect("memory://", plugins=[recorder]) as store:
        yield store


def test_on_store_sees_every_store_including_refusals(
    observed: ResultStore, recorder: Recorder
) -> None:
    observed.store(TaskResult("t1", State.STARTED))
    observed.store(TaskResult("t1", State.SUCCESS, 1))
    refused = observed.store(TaskResult("t1", State.FAILURE))
    assert not refused.stored
    outcomes = [outcome for _, _, outcome in recorder.stores]
    assert outcomes == [
        StoreOutcome(True, State.STARTED, None),
        StoreOutcome(True, State.SUCCESS, State.STARTED),
        StoreOutcome(False, State.SUCCESS, State.SUCCESS),
    ]
    assert recorder.stores[2][1].state == State.FAILURE  # what was offered


def test_on_state_change_fires_only_on_changes(observed: ResultStore, recorder: Recorder) -> None:
    observed.store(TaskResult("t1", State.STARTED))
    observed.store(TaskResult("t1", State.STARTED, {"again": True}))
    observed.update_state("t1", "PROGRESS", {"done": 1})
    observed.update_state("t1", "PROGRESS", {"done": 2})
    observed.mark_as_done("t1", 3)
    observed.mark_as_failure("t1", ValueError("late"))
    observed.store(TaskResult("t1", State.FAILURE), overwrite=True)
    assert recorder.changes == [
        ("t1", None, State.STARTED),
        ("t1", State.STARTED, "PROGRESS"),
        ("t1", "PROGRESS", State.SUCCESS),
        ("t1", State.SUCCESS, State.FAILURE),
    ]


def test_store_many_reports_each_result(observed: ResultStore, recorder: Recorder) -> None:
    observed.store(TaskResult("a", State.SUCCESS))
    outcomes = observed.store_many([TaskResult("a", State.FAILURE), TaskResult("b", State.STARTED)])
    assert [o.stored for o in outcomes] == [False, True]
    assert [(r.task_id, o.stored) for _, r, o in recorder.stores[1:]] == [
        ("a", False),
        ("b", True),
    ]
    assert recorder.changes == [("a", None, State.SUCCESS), ("b", None, State.STARTED)]


def test_on_forget(observed: ResultStore, recorder: Recorder) -> None:
    observed.store(TaskResult("t1", State.SUCCESS))
    observed.forget("t1")
    observed.forget("never-stored")
    assert recorder.forgets == ["t1", "never-stored"]


def test_on_chord_part_return_sees_duplicates_and_one_completion(
    observed: ResultStore, recorder: Recorder
) -> None:
    observed.set_chord_size("g", 3)
    for index in (2, 0, 2, 1, 0, 1):
        observed.chord_part_return("g", index, TaskResult(f"p{index}", State.SUCCESS, index))
    assert [index for index, _ in recorder.parts] == [2, 0, 2, 1, 0, 1]
    assert [o.duplicate for _, o in recorder.parts] == [False, False, True, False, True, True]
    complete = [o for _, o in recorder.parts if o.complete]
    assert len(complete) == 1
    assert complete[0].index == 1
    assert complete[0].results is not None
    assert [r.result for r in complete[0].results] == [0, 1, 2]


def test_hooks_get_the_url_without_its_password(recorder: Recorder) -> None:
    with connect("memory://alice:hunter2@store-test-redacted", plugins=[recorder]) as store:
        store.store(TaskResult("t1", State.STARTED))
        store.forget("t1")
    url = recorder.stores[0][0]
    assert "hunter2" not in url
    assert "***" in url


def test_an_observer_error_reaches_the_caller_after_the_store() -> None:
    class Failing:
        @hookimpl
        def resultstore_on_store(self, url: str, result: TaskResult, outcome: StoreOutcome) -> None:
            raise RuntimeError("observer broke")

    with connect("memory://", plugins=[Failing()]) as store:
        with pytest.raises(RuntimeError, match="observer broke"):
            store.store(TaskResult("t1", State.SUCCESS, 1))
        stored = store.get("t1")
        assert stored is not None
        assert stored.result == 1


# -- codec wrapper plugins ------------------------------------------------------


def test_a_wrapper_plugin_transforms_every_payload() -> None:
    xor = XorEnvelope()
    url = shared_url()
    with connect(url, plugins=[xor]) as store:
        assert not store.hooks.codec_is_default()
        store.store(TaskResult("t1", State.SUCCESS, {"secret": "plans"}))
        payload = raw_payload(store, "t1")
        assert payload.startswith(b"rs1 xor=v1\n")
        assert b"plans" not in payload
        result = store.get("t1")
        assert result is not None
        assert result.result == {"secret": "plans"}
        assert (xor.encoded, xor.decoded) == (1, 1)
        store.save_group("g", ["t1"])
        assert store.get_group("g") is not None
        assert (xor.encoded, xor.decoded) == (2, 2)
    # A reader without the plugin sees an envelope it cannot open, and says why.
    with connect(url) as plain, pytest.raises(UnknownCodecError, match="plugin"):
        plain.get("t1")


def test_a_wrapper_plugin_still_reads_payloads_written_without_it() -> None:
    url = shared_url()
    with connect(url) as plain:
        plain.store(TaskResult("old", State.SUCCESS, 1))
    with connect(url, plugins=[XorEnvelope()]) as wrapped:
        old = wrapped.get("old")
        assert old is not None
        assert old.result == 1


def test_the_size_limit_applies_to_the_wrapped_payload() -> None:
    with connect("memory://", plugins=[XorEnvelope()], max_result_size=200) as store:
        with pytest.raises(ResultTooLargeError):
            store.store(TaskResult("t1", State.SUCCESS, "x" * 300))
        assert store.get("t1") is None


# -- options -------------------------------------------------------------------


def test_unknown_options_list_the_accepted_ones() -> None:
    with pytest.raises(UnknownOptionError) as info:
        connect("memory://?colour=blue", shape="round")
    message = str(info.value)
    assert "colour, shape" in message
    for accepted in ("accept", "clock", "codec", "compression", "expires", "max_result_size"):
        assert accepted in message


def test_codec_options_come_from_the_url_query() -> None:
    url = "memory://?codec=msgpack&compression=zstd&compress_threshold=0&max_result_size=64k"
    with connect(url) as store:
        options = store.serializer.options
        assert (options.codec, options.compression) == ("msgpack", "zstd")
        assert options.max_result_size == 64 * 1024
        store.store(TaskResult("t1", State.SUCCESS, b"bytes need msgpack"))
        assert raw_payload(store, "t1").startswith(b"rs1 codec=msgpack;comp=zstd\n")


def test_keywords_win_over_the_url_query() -> None:
    with connect("memory://?codec=msgpack&max_result_size=1k", codec="json") as store:
        assert store.serializer.options.codec == "json"
        assert store.serializer.options.max_result_size == 1024
        with pytest.raises(ResultTooLargeError, match="1,024 bytes"):
            store.store(TaskResult("t1", State.SUCCESS, "x" * 2000))


def test_pickle_needs_accept_through_connect_too() -> None:
    with pytest.raises(ConfigurationError, match="accept=json,msgpack,pickle"):
        connect("memory://?codec=pickle")
    with connect("memory://?codec=pickle&accept=json,msgpack,pickle") as store:
        store.store(TaskResult("t1", State.SUCCESS, (1, {2})))
        result = store.get("t1")
        assert result is not None
        assert result.result == (1, {2})


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("expires=soon", "expires"),
        ("max_result_size=huge", "max_result_size"),
        ("codec=yaml", "codec"),
        ("compression=lz4", "compression"),
        ("compress_level=high", "compress_level"),
    ],
)
def test_bad_option_values_name_the_option(query: str, name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        connect(f"memory://?{query}")


def test_expires_none_keeps_results(clock: FakeClock) -> None:
    with connect("memory://?expires=none", clock=clock) as store:
        store.store(TaskResult("t1", State.SUCCESS))
        clock.advance(10**9)
        assert store.get("t1") is not None


def test_connect_without_a_url_uses_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"store-test-env-{uuid.uuid4().hex}"
    monkeypatch.setenv(URL_ENV, f"memory://{name}")
    assert default_url() == f"memory://{name}"
    with connect() as store:
        assert store.url.host == name


def test_the_default_url_is_a_sqlite_file_in_the_data_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(URL_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_url() == f"sqlite:///{tmp_path / 'resultstore' / 'results.db'}"


# -- conveniences and capabilities ---------------------------------------------


def test_mark_as_failure_stores_the_exception_chain_and_traceback() -> None:
    with connect("memory://") as store:
        try:
            try:
                raise KeyError("missing")
            except KeyError as inner:
                raise ValueError("bad input") from inner
        except ValueError as exc:
            store.mark_as_failure("t1", exc)
        result = store.get("t1")
        assert result is not None
        assert result.state == State.FAILURE
        assert result.date_done is not None
        assert result.traceback is not None
        assert "ValueError: bad input" in result.traceback
        assert result.exception is not None
        rebuilt = rebuild_exception(result.exception)
        assert type(rebuilt) is ValueError
        assert type(rebuilt.__cause__) is KeyError


def test_retry_is_not_ready_and_revoked_is() -> None:
    with connect("memory://") as store:
        store.mark_as_retry("t1", ConnectionError("flaky"))
        retry = store.get("t1")
        assert retry is not None
        assert retry.state == State.RETRY
        assert retry.date_done is None
        assert store.mark_as_revoked("t1", "terminated").stored
        revoked = store.get("t1")
        assert revoked is not None
        assert revoked.ready
        assert revoked.exception is not None
        assert type(rebuild_exception(revoked.exception)) is TaskRevokedError
        assert not store.mark_as_done("t1", 1).stored


def test_an_application_exception_comes_back_as_a_remote_error() -> None:
    class PaymentDeclined(Exception):
        pass

    with connect("memory://") as store:
        store.mark_as_failure("t1", PaymentDeclined("card expired"))
        result = store.get("t1")
        assert result is not None
        assert result.exception is not None
        with pytest.raises(RemoteError, match="card expired"):
            raise rebuild_exception(result.exception)


class Minimal:
    """A backend with no capability at all: only the required protocol."""

    capabilities: frozenset[Any] = frozenset()

    def __init__(self, config: Any) -> None:
        config.options.finish()
        self.serializer = config.serializer
        self.data: dict[str, bytes] = {}
        self.gets = 0

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        self.data[result.task_id] = self.serializer.dumps(result)
        return StoreOutcome(True, result.state)

    def get(self, task_id: str) -> TaskResult | None:
        self.gets += 1
        payload = self.data.get(task_id)
        return None if payload is None else self.serializer.loads(payload, TaskResult)

    def forget(self, task_id: str) -> None:
        self.data.pop(task_id, None)

    def close(self) -> None:
        pass


class MinimalPlugin:
    @hookimpl
    def resultstore_register_backends(self) -> Iterable[BackendSpec]:
        return [BackendSpec("minimal", f"{__name__}:Minimal")]


def minimal_store() -> ResultStore:
    return connect("minimal://", plugins=[MinimalPlugin()])


def test_bulk_calls_fall_back_to_one_by_one() -> None:
    with minimal_store() as store:
        outcomes = store.store_many([TaskResult("a", State.SUCCESS), TaskResult("b")])
        assert [o.stored for o in outcomes] == [True, True]
        found = store.get_many(["a", "b", "zzz"])
        assert set(found) == {"a", "b", "zzz"}
        assert found["zzz"] is None
        backend = store.backend
        assert isinstance(backend, Minimal)
        assert backend.gets == 3


OperationCall = Callable[[ResultStore], object]


@pytest.mark.parametrize(
    ("operation", "capability"),
    [
        (lambda s: s.save_group("g", ["a"]), "groups"),
        (lambda s: s.get_group("g"), "groups"),
        (lambda s: s.delete_group("g"), "groups"),
        (lambda s: s.set_chord_size("g", 2), "chords"),
        (lambda s: s.chord_part_return("g", 0, TaskResult("a")), "chords"),
        (lambda s: s.get_chord("g"), "chords"),
        (lambda s: s.cleanup(), "cleanup"),
    ],
)
def test_missing_capabilities_are_named(operation: OperationCall, capability: str) -> None:
    with minimal_store() as store:
        assert not store.capabilities
        with pytest.raises(UnsupportedOperationError, match=f"'{capability}' capability"):
            operation(store)


def test_supports_reads_the_declaration() -> None:
    with connect("memory://") as store:
        assert all(store.supports(c) for c in MemoryBackend.capabilities)
    with minimal_store() as store:
        assert not any(store.supports(c) for c in MemoryBackend.capabilities)
