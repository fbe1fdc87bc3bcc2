"""Bad input: damaged or hostile payloads in the store, and results that cannot be stored.

Each gives the documented error from :mod:`resultstore.concepts.errors`, leaves the
store usable, and never runs code or imports a module named by the payload.
"""

from __future__ import annotations

import functools
import pathlib
import pickle
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from resultstore import (
    Capability,
    ChordState,
    CorruptPayloadError,
    DecodeError,
    EncodeError,
    ExceptionInfo,
    ResultStore,
    ResultTooLargeError,
    State,
    TaskResult,
    UnknownCodecError,
    UnsafeCodecError,
)
from resultstore.concepts.remote import RemoteError, rebuild_exception

from resultstore_contract.support import (
    ContractBase,
    IdFactory,
    StoreFactory,
    requires,
    wait_until,
)

__all__ = ["BadInputContract", "Tripwire"]

Plant = Callable[[str, bytes], None]

#: payloads that are not a resultstore payload at all, or are damaged inside.
CORRUPT_PAYLOADS: dict[str, bytes] = {
    "empty": b"",
    "foreign": b'{"status": "SUCCESS", "result": 1}',
    "binary-noise": bytes(range(256)),
    "unterminated-header": b"rs1 codec=json",
    "malformed-header": b"rs1 codec json\n{}",
    "body-not-json": b"rs1 codec=json\n{not json",
    "body-not-msgpack": b"rs1 codec=msgpack\n\xc1\xc1\xc1",
    "wrong-shape": b"rs1 codec=json\n[1, 2, 3]",
    "missing-task-id": b'rs1 codec=json\n{"state": "SUCCESS"}',
    "bad-state": b'rs1 codec=json\n{"task_id": "x", "state": 7}',
    "naive-date": b'rs1 codec=json\n{"task_id": "x", "date_done": "2024-01-01T00:00:00"}',
    "not-zlib": b"rs1 codec=json;comp=zlib\nthis is not deflate data",
}

#: payloads naming a codec, compression or envelope this reader does not have.
UNKNOWN_CODEC_PAYLOADS: dict[str, bytes] = {
    "unknown-codec": b"rs1 codec=yaml\ntask_id: x",
    "unknown-compression": b"rs1 codec=json;comp=brotli\n\x00\x01",
    "unknown-envelope": b"rs1 wrap=nosuchplugin;kid=1\nopaque",
}


class Tripwire:
    """A module file that, if anything ever imports it, leaves a mark on disk.

    Stored exceptions name modules; reading must never import them.
    """

    def __init__(self, folder: pathlib.Path) -> None:
        self.name = f"resultstore_contract_tripwire_{uuid.uuid4().hex[:12]}"
        self.mark = folder / f"{self.name}.imported"
        (folder / f"{self.name}.py").write_text(
            f"import pathlib\npathlib.Path({str(self.mark)!r}).touch()\n"
            "class Boom(Exception):\n    pass\n",
            encoding="utf-8",
        )

    @property
    def tripped(self) -> bool:
        return self.mark.exists() or self.name in sys.modules


class _RunsCodeWhenUnpickled:
    """Unpickling this touches a file: proof that a payload's code ran."""

    def __init__(self, mark: pathlib.Path) -> None:
        self.mark = mark

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.mark,))


def _hostile_infos(tripwire: Tripwire) -> dict[str, ExceptionInfo]:
    return {
        "not-an-exception": ExceptionInfo("str", "builtins", ("just a string",), "x"),
        "system-exit": ExceptionInfo("SystemExit", "builtins", (3,), "3"),
        "keyboard-interrupt": ExceptionInfo("KeyboardInterrupt", "builtins", (), ""),
        "a-function": ExceptionInfo("system", "os", ("echo pwned",), "pwned"),
        "importable-module": ExceptionInfo("Boom", tripwire.name, ("boom",), "boom"),
        "dotted-name": ExceptionInfo(f"{tripwire.name}.Boom", "", (), ""),
        "code-as-name": ExceptionInfo("__import__('os').system('x')", "builtins", (), ""),
        "caused-by-hostile": ExceptionInfo(
            "ValueError", "builtins", ("outer",), "outer",
            cause=ExceptionInfo("Boom", tripwire.name, (), "inner"),
        ),
    }  # fmt: skip


def _check_rebuilt_safely(info: ExceptionInfo, rebuilt: BaseException) -> None:
    if info.module == "builtins" and info.type_name == "ValueError":
        assert type(rebuilt) is ValueError
    else:
        assert isinstance(rebuilt, RemoteError), (
            f"{info.qualified_name} was rebuilt as {type(rebuilt).__name__}, not a RemoteError"
        )
    assert isinstance(rebuilt, Exception), "a stored BaseException must not stop the reader"


def _raised_by(call: Callable[[], object]) -> BaseException:
    # Caught wide on purpose: a stored SystemExit must surface here, not stop the run.
    try:
        call()
    except BaseException as exc:
        return exc
    raise AssertionError("waiting on a FAILURE result returned instead of raising")


class BadInputContract(ContractBase):
    """Damaged, foreign and hostile payloads; unencodable and oversized results."""

    # -- payloads planted through the back door -------------------------------------

    @pytest.mark.parametrize("kind", sorted(CORRUPT_PAYLOADS))
    def test_bad_corrupt_payload_raises_corrupt_payload_error(
        self, store: ResultStore, plant_payload: Plant, new_id: IdFactory, kind: str
    ) -> None:
        task_id, neighbour = new_id(), new_id()
        store.store(TaskResult(neighbour, State.SUCCESS, "fine"))
        plant_payload(task_id, CORRUPT_PAYLOADS[kind])
        with pytest.raises(CorruptPayloadError):
            store.get(task_id)
        with pytest.raises(DecodeError):
            store.get_many([neighbour, task_id])
        # The store stays usable, and forgetting is the documented way out.
        stored = store.get(neighbour)
        assert stored is not None
        assert stored.result == "fine"
        store.forget(task_id)
        assert store.get(task_id) is None

    @pytest.mark.parametrize("kind", sorted(UNKNOWN_CODEC_PAYLOADS))
    def test_bad_unknown_codec_raises_unknown_codec_error(
        self, store: ResultStore, plant_payload: Plant, new_id: IdFactory, kind: str
    ) -> None:
        task_id = new_id()
        plant_payload(task_id, UNKNOWN_CODEC_PAYLOADS[kind])
        with pytest.raises(UnknownCodecError):
            store.get(task_id)

    def test_bad_planted_pickle_never_runs(
        self,
        store: ResultStore,
        plant_payload: Plant,
        new_id: IdFactory,
        tmp_path: pathlib.Path,
    ) -> None:
        mark = tmp_path / "pickle-ran"
        task_id = new_id()
        plant_payload(task_id, b"rs1 codec=pickle\n" + pickle.dumps(_RunsCodeWhenUnpickled(mark)))
        with pytest.raises(UnsafeCodecError):
            store.get(task_id)
        with pytest.raises(UnsafeCodecError):
            store.get_many([task_id])
        assert not mark.exists(), "reading a result ran code from a pickle payload"

    # -- codecs the reader does not accept ----------------------------------------------

    def test_bad_pickle_result_refused_by_a_reader_without_pickle(
        self, store: ResultStore, connect_store: StoreFactory, new_id: IdFactory
    ) -> None:
        writer = connect_store(codec="pickle", accept="json,msgpack,pickle")
        task_id = new_id()
        result = TaskResult(task_id, State.SUCCESS, {"a": (1, 2)})
        writer.store(result)
        with pytest.raises(UnsafeCodecError):
            store.get(task_id)
        assert writer.get(task_id) == result, "a reader that accepts pickle reads it"

    # -- results that cannot be stored ------------------------------------------------------

    @pytest.mark.parametrize(
        "value",
        [b"bytes", {1, 2}, object(), 2**70],
        ids=["bytes", "set", "object", "int-over-64-bits"],
    )
    def test_bad_value_json_cannot_hold_raises_encode_error(
        self, connect_store: StoreFactory, new_id: IdFactory, value: object
    ) -> None:
        store = connect_store(codec="json")
        task_id = new_id()
        store.store(TaskResult(task_id, State.STARTED, "before"))
        with pytest.raises(EncodeError):
            store.store(TaskResult(task_id, State.SUCCESS, value))
        got = store.get(task_id)
        assert got is not None
        assert got.result == "before", "a result that failed to encode must not change the store"

    def test_bad_oversized_result_raises_and_stores_nothing(
        self, connect_store: StoreFactory, new_id: IdFactory
    ) -> None:
        store = connect_store(max_result_size="4k")
        task_id = new_id()
        store.store(TaskResult(task_id, State.STARTED, "small"))
        with pytest.raises(ResultTooLargeError) as caught:
            store.store(TaskResult(task_id, State.SUCCESS, "x" * 10_000))
        assert "max_result_size" in str(caught.value)
        got = store.get(task_id)
        assert got is not None
        assert (got.state, got.result) == (State.STARTED, "small")
        with pytest.raises(ResultTooLargeError):
            store.store_many([TaskResult(new_id(), State.SUCCESS, "y" * 10_000)])

    @requires(Capability.GROUPS)
    def test_bad_oversized_group_raises_and_saves_nothing(
        self, connect_store: StoreFactory, new_id: IdFactory
    ) -> None:
        store = connect_store(max_result_size="4k")
        group_id = new_id("group")
        with pytest.raises(ResultTooLargeError):
            store.save_group(group_id, [new_id() for _ in range(500)])
        assert store.get_group(group_id) is None

    @requires(Capability.CHORDS)
    def test_bad_oversized_chord_part_raises_and_records_nothing(
        self, connect_store: StoreFactory, new_id: IdFactory
    ) -> None:
        store = connect_store(max_result_size="4k")
        group_id = new_id("chord")
        store.set_chord_size(group_id, 1)
        with pytest.raises(ResultTooLargeError):
            store.chord_part_return(group_id, 0, TaskResult(new_id(), State.SUCCESS, "z" * 10_000))
        assert store.get_chord(group_id) == ChordState(group_id, 1, frozenset(), False)

    # -- hostile exception descriptions -------------------------------------------------

    def test_bad_hostile_exception_is_data_and_never_imported(
        self,
        store: ResultStore,
        new_id: IdFactory,
        tmp_path: pathlib.Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        tripwire = Tripwire(tmp_path)
        monkeypatch.syspath_prepend(str(tmp_path))
        for kind, info in _hostile_infos(tripwire).items():
            task_id = new_id(kind)
            result = TaskResult(task_id, State.FAILURE, exception=info, traceback="...")
            store.store(result)
            got = store.get(task_id)
            assert got == result, f"the {kind} exception description did not round-trip"
            assert got.exception is not None
            _check_rebuilt_safely(info, rebuild_exception(got.exception))
        assert not tripwire.tripped, "reading a stored exception imported the module it names"

    # -- errors reach waiters, and the waiting machinery survives them ---------------------

    def test_bad_payload_reaches_the_waiter_and_the_hub_survives(
        self, store: ResultStore, connect_store: StoreFactory, new_id: IdFactory
    ) -> None:
        bad, good = new_id("bad"), new_id("good")
        writer = connect_store(codec="pickle", accept="json,msgpack,pickle")
        hub = store.hub
        failed: list[BaseException] = []

        def wait_for_bad() -> None:
            try:
                store.result(bad).get(timeout=30)
            except BaseException as exc:
                failed.append(exc)

        waiter = threading.Thread(target=wait_for_bad)
        waiter.start()
        wait_until(lambda: bad in hub.watched_ids(), "the waiter to register")
        hub.flush(timeout=30)
        opens, failures = hub.listener_opens, hub.failures
        writer.store(TaskResult(bad, State.SUCCESS, "pickled"))  # this reader refuses pickle
        waiter.join(timeout=60)
        assert not waiter.is_alive(), "the waiter hung on a payload it cannot decode"
        assert len(failed) == 1
        assert isinstance(failed[0], UnsafeCodecError), f"the waiter got {failed[0]!r}"
        # The same hub (and its listener, on push backends) still serves other waiters.
        store.store(TaskResult(good, State.SUCCESS, "fine"))
        assert store.result(good).get(timeout=30) == "fine"
        assert (hub.listener_opens, hub.failures) == (opens, failures), (
            "a bad payload made the waiting machinery fail or reopen its listener"
        )

    def test_bad_corrupt_payload_reaches_waiters_and_group_joins(
        self, store: ResultStore, plant_payload: Plant, new_id: IdFactory
    ) -> None:
        bad, good = new_id("bad"), new_id("good")
        plant_payload(bad, CORRUPT_PAYLOADS["body-not-json"])
        store.store(TaskResult(good, State.SUCCESS, "fine"))
        with pytest.raises(CorruptPayloadError):
            store.result(bad).get(timeout=30)
        with pytest.raises(CorruptPayloadError):
            store.group_result(new_id("group"), [good, bad]).join(timeout=30)
        assert store.result(good).get(timeout=30) == "fine", "one bad payload hid another result"

    def test_bad_hostile_exception_reaches_the_waiter_as_remote_error(
        self,
        store: ResultStore,
        new_id: IdFactory,
        tmp_path: pathlib.Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        tripwire = Tripwire(tmp_path)
        monkeypatch.syspath_prepend(str(tmp_path))
        for kind, info in _hostile_infos(tripwire).items():
            task_id = new_id(kind)
            store.store(TaskResult(task_id, State.FAILURE, exception=info))
            handle = store.result(task_id)
            _check_rebuilt_safely(info, _raised_by(functools.partial(handle.get, timeout=30)))
            returned = store.result(task_id).get(timeout=30, propagate=False)
            _check_rebuilt_safely(info, returned)
        assert not tripwire.tripped, "waiting on a result imported the module its exception names"
