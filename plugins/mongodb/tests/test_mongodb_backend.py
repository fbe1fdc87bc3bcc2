"""What the contract suite cannot know about MongoDB: documents, indexes, URLs, auth, retries."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import threading
import time
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
import resultstore
from resultstore import (
    BackendUnavailableError,
    Capability,
    ConfigurationError,
    CorruptPayloadError,
    EncodeError,
    ExceptionInfo,
    InvalidURLError,
    State,
    TaskResult,
    UnknownCodecError,
    hookimpl,
)
from resultstore.payloads.codecs import DecodeRequest, EncodeRequest, make_envelope, parse_envelope
from resultstore_contract.servers import Server, ServerProcess, free_port
from resultstore_contract.support import ManualClock, wait_until
from resultstore_mongodb import backend as backend_module
from resultstore_mongodb.backend import MongoBackend

from ._restart import ready, secantus_on, url


def _database() -> str:
    return f"t{uuid.uuid4().hex[:16]}"


def _url(server: Server, **options: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"database": _database(), **options}.items())
    return f"{server.url}{'&' if '?' in server.url else '?'}{query}"


@pytest.fixture
def store(mongodb_server: Server) -> Iterator[resultstore.ResultStore]:
    with resultstore.connect(_url(mongodb_server)) as store:
        yield store
        _backend(store).client.drop_database(_backend(store).settings.database)


def _backend(store: resultstore.ResultStore) -> MongoBackend:
    backend = store.backend
    assert isinstance(backend, MongoBackend)
    return backend


def _raw(store: resultstore.ResultStore) -> Any:
    """The results collection through plain pymongo, as a user would open it."""
    backend = _backend(store)
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        backend.settings.uri, tz_aware=True, **backend.settings.client_options
    )
    return client[backend.settings.database][backend.settings.taskmeta_collection]


# -- documents ------------------------------------------------------------------------


def test_results_are_documents_queryable_by_state_and_date(
    store: resultstore.ResultStore,
) -> None:
    early = dt.datetime(2025, 3, 1, 12, 0, 0, 250_123, tzinfo=dt.UTC)
    late = dt.datetime(2025, 3, 2, 8, 30, tzinfo=dt.UTC)
    store.store(TaskResult("a", State.SUCCESS, {"total": 42, "items": [1, 2]}, date_done=early))
    store.store(TaskResult("b", State.SUCCESS, {"total": 7}, date_done=late, name="app.add"))
    store.store(TaskResult("c", State.FAILURE, exception=ExceptionInfo("KeyError", "builtins")))
    store.mark_as_started("d", worker="w1@host", queue="default", group_id="g1")
    raw = _raw(store)
    try:
        done = raw.find({"state": "SUCCESS"}).sort("date_done", 1)
        assert [doc["_id"] for doc in done] == ["a", "b"]
        since = raw.find({"date_done": {"$gte": dt.datetime(2025, 3, 2, tzinfo=dt.UTC)}})
        assert [doc["_id"] for doc in since] == ["b"]
        # The result is a native BSON value, so its fields are queryable too.
        assert [doc["_id"] for doc in raw.find({"result.total": {"$gt": 10}})] == ["a"]
        assert [doc["_id"] for doc in raw.find({"group_id": "g1", "worker": "w1@host"})] == ["d"]
        a = raw.find_one({"_id": "a"})
        assert a["result"] == {"total": 42, "items": [1, 2]}
        assert a["date_done"] == early.replace(microsecond=250_000)
        assert a["date_done_us"] == 123
        assert isinstance(a["expires_at"], dt.datetime)
        assert raw.find_one({"_id": "c"})["exception"]["type_name"] == "KeyError"
    finally:
        raw.database.client.close()
    assert store.get("a") == TaskResult(
        "a", State.SUCCESS, {"total": 42, "items": [1, 2]}, date_done=early
    )


def test_indexes_on_state_date_group_and_a_ttl_on_expires_at(
    store: resultstore.ResultStore,
) -> None:
    backend = _backend(store)
    results = backend.results.index_information()
    for field in ("state", "date_done", "group_id", "expires_at"):
        assert results[f"{field}_1"]["key"] == [(field, 1)]
    assert results["expires_at_1"]["expireAfterSeconds"] == 0
    for collection in (backend.groups, backend.chords):
        assert collection.index_information()["expires_at_1"]["expireAfterSeconds"] == 0


def test_indexes_are_created_once_per_process(mongodb_server: Server) -> None:
    url = _url(mongodb_server)
    with resultstore.connect(url) as first:
        raw = _raw(first)
        try:
            raw.drop_index("state_1")
            # Another client of the same collection in this process does not redo it.
            with resultstore.connect(url):
                assert "state_1" not in raw.index_information()
        finally:
            raw.database.client.drop_database(raw.database.name)
            raw.database.client.close()


def test_migrate_creates_the_indexes_even_with_create_indexes_false(
    mongodb_server: Server,
) -> None:
    with resultstore.connect(_url(mongodb_server, create_indexes="false")) as store:
        backend = _backend(store)
        try:
            assert "state_1" not in backend.results.index_information()
            assert store.migrate().startswith("indexes of resultstore_taskmeta")
            assert backend.results.index_information()["expires_at_1"]["expireAfterSeconds"] == 0
            backend.results.drop_index("state_1")
            store.migrate()  # again in the same process: made again, not skipped
            assert "state_1" in backend.results.index_information()
        finally:
            backend.client.drop_database(backend.settings.database)


def test_other_codecs_store_a_binary_payload_next_to_the_metadata(
    mongodb_server: Server,
) -> None:
    with resultstore.connect(_url(mongodb_server), codec="msgpack") as store:
        when = dt.datetime(2025, 1, 2, 3, 4, 5, 678_901, tzinfo=dt.UTC)
        result = TaskResult(
            "m", State.SUCCESS, b"\x00bytes", date_done=when, name="app.blob", retries=2
        )
        store.store(result)
        raw = _raw(store)
        try:
            doc = raw.find_one({"_id": "m"})
        finally:
            raw.database.client.drop_database(raw.database.name)
            raw.database.client.close()
    assert doc["payload"].startswith(b"rs1 codec=msgpack\n")
    assert "result" not in doc
    assert (doc["state"], doc["name"], doc["retries"]) == ("SUCCESS", "app.blob", 2)
    assert doc["date_done"] == when.replace(microsecond=678_000)


def test_compression_stores_a_payload(mongodb_server: Server) -> None:
    with resultstore.connect(
        _url(mongodb_server), compression="zlib", compress_threshold=0
    ) as store:
        store.mark_as_done("z", {"text": "abc" * 100})
        doc = _backend(store).results.find_one({"_id": "z"})
        assert doc["payload"].startswith(b"rs1 codec=json;comp=zlib\n")
        got = store.get("z")
        assert got is not None
        assert got.result == {"text": "abc" * 100}


class _Wrapper:
    """A payload-wrapping plugin (as encryption is): base64 inside an envelope."""

    @hookimpl(wrapper=True)
    def resultstore_encode(self, request: EncodeRequest) -> Generator[None, bytes, bytes]:
        payload = yield
        return make_envelope({"wrap": "b64"}, base64.b64encode(payload))

    @hookimpl(wrapper=True)
    def resultstore_decode(self, request: DecodeRequest) -> Generator[None, Any, Any]:
        fields, body = parse_envelope(request.payload)
        if fields.get("wrap") == "b64":
            request.payload = base64.b64decode(body)
        return (yield)


def test_a_wrapping_plugin_gets_every_payload_and_metadata_stays_private(
    mongodb_server: Server,
) -> None:
    url = _url(mongodb_server)
    with resultstore.connect(url, plugins=[_Wrapper()]) as store:
        store.store(TaskResult("w", State.SUCCESS, {"secret": 1}, name="app.secret", worker="w1"))
        raw = _backend(store).results.find_one({"_id": "w"})
        assert raw["payload"].startswith(b"rs1 wrap=b64\n")
        # Only what the store needs stays readable: no name, worker or result in clear.
        assert set(raw) == {"_id", "state", "payload", "expires_at"}
        got = store.get("w")
        assert got is not None
        assert got.result == {"secret": 1}
        # A plain client without the plugin cannot read it.
        with resultstore.connect(url) as plain, pytest.raises(UnknownCodecError):
            plain.get("w")
        _backend(store).client.drop_database(_backend(store).settings.database)


def test_a_native_document_goes_through_a_wrapping_plugin_when_read(
    mongodb_server: Server,
) -> None:
    """A reader with a plugin around payloads reads a plain document as the
    ``codec=json`` payload it stands for, through that plugin."""
    seen: list[bytes] = []

    class Spy:
        @hookimpl(wrapper=True)
        def resultstore_decode(self, request: DecodeRequest) -> Generator[None, Any, Any]:
            seen.append(request.payload)
            return (yield)

    url = _url(mongodb_server)
    with resultstore.connect(url) as writer:
        writer.mark_as_done("n", {"v": 1})
        with resultstore.connect(url, plugins=[Spy()]) as reader:
            got = reader.get("n")
        _backend(writer).client.drop_database(_backend(writer).settings.database)
    assert got is not None
    assert got.result == {"v": 1}
    assert len(seen) == 1
    assert seen[0].startswith(b"rs1 codec=json\n")


@pytest.mark.parametrize(
    ("value", "read_back"),
    [
        ({"$where": 1}, {"$where": 1}),
        ({"a.b": 1}, {"a.b": 1}),
        ({"": 1}, {"": 1}),
        ((1, 2), [1, 2]),
        (2**64 - 1, 2**64 - 1),
    ],
    ids=["dollar-key", "dotted-key", "empty-key", "tuple", "uint64"],
)
def test_values_bson_holds_differently_go_through_the_payload(
    store: resultstore.ResultStore, value: object, read_back: object
) -> None:
    """They read back as the json codec gives them, whatever BSON would have done."""
    store.mark_as_done("v", value)
    doc = _backend(store).results.find_one({"_id": "v"})
    assert doc["payload"].startswith(b"rs1 codec=json\n")
    got = store.get("v")
    assert got is not None
    assert got.result == read_back
    assert type(got.result) is type(read_back)


def test_nan_is_refused_under_json_instead_of_stored_as_null(
    store: resultstore.ResultStore,
) -> None:
    with pytest.raises(EncodeError, match="NaN"):
        store.mark_as_done("nan", [float("nan")])
    assert store.get("nan") is None


def test_large_integers_read_back_as_int(store: resultstore.ResultStore) -> None:
    store.mark_as_done("i", {"big": 2**62, "small": -(2**40)})
    got = store.get("i")
    assert got is not None
    assert got.result == {"big": 2**62, "small": -(2**40)}
    assert {type(v) for v in got.result.values()} == {int}


def test_a_document_over_mongodbs_limit_is_refused_before_sending(
    mongodb_server: Server,
) -> None:
    with resultstore.connect(_url(mongodb_server), max_result_size="none") as store:
        with pytest.raises(EncodeError, match="16 MiB"):
            store.mark_as_done("huge", "x" * (17 * 1024 * 1024))
        assert store.get("huge") is None
        _backend(store).client.drop_database(_backend(store).settings.database)


def test_a_foreign_document_is_a_clear_error(store: resultstore.ResultStore) -> None:
    # What Celery's MongoBackend writes: no state field of ours.
    _backend(store).results.insert_one({"_id": "celery", "status": "SUCCESS", "result": "1"})
    with pytest.raises(CorruptPayloadError, match="not written by resultstore"):
        store.get("celery")
    _backend(store).results.insert_one({"_id": "edited", "state": "SUCCESS", "date_done": "x"})
    with pytest.raises(CorruptPayloadError, match="date_done"):
        store.get("edited")


def test_a_reader_that_does_not_accept_json_refuses_documents(
    store: resultstore.ResultStore, mongodb_server: Server
) -> None:
    store.mark_as_done("j", 1)
    database = _backend(store).settings.database
    with (
        resultstore.connect(
            mongodb_server.url, database=database, codec="msgpack", accept="msgpack"
        ) as reader,
        pytest.raises(UnknownCodecError, match="accept"),
    ):
        reader.get("j")


# -- the atomic store -------------------------------------------------------------------------


def test_a_refused_store_leaves_the_document_as_it_was(store: resultstore.ResultStore) -> None:
    store.mark_as_done("r", {"v": 1})
    before = _backend(store).results.find_one({"_id": "r"})
    outcome = store.mark_as_started("r")
    assert (outcome.stored, outcome.state, outcome.previous_state) == (False, "SUCCESS", "SUCCESS")
    assert _backend(store).results.find_one({"_id": "r"}) == before


def test_an_expired_ready_state_is_replaced_before_the_ttl_monitor_runs(
    mongodb_server: Server,
) -> None:
    clock = ManualClock()
    with resultstore.connect(_url(mongodb_server), expires=60, clock=clock) as store:
        store.mark_as_done("e", "old")
        clock.advance(61)
        assert store.get("e") is None
        outcome = store.mark_as_started("e")
        assert (outcome.stored, outcome.previous_state) == (True, None)
        got = store.get("e")
        assert got is not None
        assert got.state == State.STARTED
        _backend(store).client.drop_database(_backend(store).settings.database)


def test_stores_learn_which_states_usually_meet_no_document(
    store: resultstore.ResultStore,
) -> None:
    backend = _backend(store)
    for n in range(20):
        store.mark_as_started(f"l{n}")
        store.mark_as_done(f"l{n}", n)
    # STARTED opens each task (insert first); SUCCESS follows it (conditional first).
    assert backend.freshness.expect_new("STARTED")
    assert not backend.freshness.expect_new("SUCCESS")
    for n in range(20):
        assert store.mark_as_done(f"fresh{n}", n).previous_state is None
    assert backend.freshness.expect_new("SUCCESS")
    results = store.get_many([f"l{n}" for n in range(20)])
    assert [r.result if r else None for r in results.values()] == list(range(20))


def test_store_many_redoes_a_store_that_met_a_concurrent_change(
    store: resultstore.ResultStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the batch's read and its bulk write another writer stores a
    ready state: the compare-and-set misses, and that store is judged alone."""
    backend = _backend(store)
    store.mark_as_started("c1")
    store.mark_as_started("c2")
    real = backend._bulk

    def racing(ops: list[Any]) -> tuple[set[int], set[int]]:
        with resultstore.connect(store.url.raw, database=backend.settings.database) as other:
            other.mark_as_done("c1", "theirs")
        return real(ops)

    monkeypatch.setattr(backend, "_bulk", racing)
    outcomes = store.store_many(
        [TaskResult("c1", State.SUCCESS, "ours"), TaskResult("c2", State.SUCCESS, "ours")]
    )
    assert [(o.stored, o.state) for o in outcomes] == [(False, "SUCCESS"), (True, "SUCCESS")]
    got = store.get_many(["c1", "c2"])
    assert [r.result if r else None for r in got.values()] == ["theirs", "ours"]


def test_store_many_never_replaces_a_ready_state_stored_over_an_expired_one(
    mongodb_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch reads an expired SUCCESS; before its write another writer replaces
    that document with a live SUCCESS. The batch's compare-and-set must miss the
    new document (same state, other expiry) and refuse, not overwrite it."""
    clock = ManualClock()
    url = _url(mongodb_server)
    with (
        resultstore.connect(url, expires=60, clock=clock) as store,
        resultstore.connect(url, expires=60, clock=clock) as other,
    ):
        backend = _backend(store)
        store.mark_as_done("t", "old")
        clock.advance(61)
        real = backend._bulk
        steps = [lambda: other.mark_as_done("t", "theirs")]

        def racing(ops: list[Any]) -> tuple[set[int], set[int]]:
            while steps:
                steps.pop()()
            return real(ops)

        monkeypatch.setattr(backend, "_bulk", racing)
        outcomes = store.store_many([TaskResult("t", State.SUCCESS, "ours")])
        assert [(o.stored, o.state) for o in outcomes] == [(False, "SUCCESS")]
        got = store.get("t")
        assert got is not None
        assert got.result == "theirs"
        backend.client.drop_database(backend.settings.database)


def _lose_next_reply(monkeypatch: pytest.MonkeyPatch, collection: Any, name: str) -> None:
    """The next ``collection.<name>(...)`` is carried out by the server, then its
    reply is lost (the connection drops), so the backend sends it again."""
    real = getattr(collection, name)
    lost: list[object] = []

    def once(*args: Any, **kwargs: Any) -> Any:
        reply = real(*args, **kwargs)
        if not lost:
            lost.append(reply)
            raise pymongo.errors.AutoReconnect("connection lost before the reply (test)")
        return reply

    monkeypatch.setattr(collection, name, once)


def test_a_ready_store_whose_reply_was_lost_finds_its_own_document(
    store: resultstore.ResultStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replace that stored SUCCESS was applied but its reply lost: the retry
    meets a ready state, which is its own, so the store reports stored."""
    store.mark_as_started("t")
    _lose_next_reply(monkeypatch, _backend(store).results, "find_one_and_replace")
    done = store.mark_as_done("t", "ours")
    assert (done.stored, done.state) == (True, "SUCCESS")
    other = store.mark_as_done("t", "late")
    assert (other.stored, other.state) == (False, "SUCCESS")
    got = store.get("t")
    assert got is not None
    assert got.result == "ours"


def test_a_batch_whose_reply_was_lost_finds_its_own_ready_states(
    store: resultstore.ResultStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bulk write was applied but its reply lost: the retried bulk meets the
    batch's own documents, and each store reports stored, not refused."""
    store.mark_as_started("b")
    _lose_next_reply(monkeypatch, _backend(store).results, "bulk_write")
    outcomes = store.store_many(
        [TaskResult("a", State.SUCCESS, "ours"), TaskResult("b", State.FAILURE, "ours")]
    )
    assert [(o.stored, o.state) for o in outcomes] == [(True, "SUCCESS"), (True, "FAILURE")]
    got = store.get_many(["a", "b"])
    assert [r.result if r else None for r in got.values()] == ["ours", "ours"]


def test_the_asyncio_twin_finds_its_own_document_after_a_lost_reply(
    mongodb_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_twin_after_a_lost_reply(_url(mongodb_server), monkeypatch))


async def _twin_after_a_lost_reply(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from resultstore import connect_async

    async with await connect_async(url) as store:
        assert (await store.mark_as_started("t")).stored
        collection = store.backend.results  # type: ignore[attr-defined]
        real = collection.find_one_and_replace
        lost: list[object] = []

        async def once(*args: Any, **kwargs: Any) -> Any:
            reply = await real(*args, **kwargs)
            if not lost:
                lost.append(reply)
                raise pymongo.errors.AutoReconnect("connection lost before the reply (test)")
            return reply

        monkeypatch.setattr(collection, "find_one_and_replace", once)
        done = await store.mark_as_done("t", "ours")
        assert (done.stored, done.state) == (True, "SUCCESS")
        backend = _backend(store.sync)
        await asyncio.to_thread(backend.client.drop_database, backend.settings.database)


def test_bulk_get_of_many_ids_in_batches(store: resultstore.ResultStore) -> None:
    ids = [f"id{i}" for i in range(2500)]
    store.store_many([TaskResult(i, State.SUCCESS, n) for n, i in enumerate(ids[:2400])])
    got = store.get_many(ids)
    assert list(got) == ids
    assert [r.result if r else None for r in got.values()] == [*range(2400), *[None] * 100]


# -- chords --------------------------------------------------------------------------------


def test_a_chord_part_retried_after_a_lost_reply_still_completes(
    store: resultstore.ResultStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call whose part was recorded but whose reply was lost runs again with
    the same token: it finds its own part, not a duplicate, and completes."""
    store.set_chord_size("g", 2)
    store.chord_part_return("g", 0, TaskResult("p0", State.SUCCESS, 0))
    monkeypatch.setattr(backend_module, "_token", lambda: "the-same-token")
    first = store.chord_part_return("g", 1, TaskResult("p1", State.SUCCESS, 1))
    again = store.chord_part_return("g", 1, TaskResult("p1", State.SUCCESS, 1))
    assert (first.complete, first.duplicate) == (True, False)
    assert (again.complete, again.duplicate) == (True, False)
    assert again.results is not None
    assert [r.result for r in again.results] == [0, 1]
    monkeypatch.setattr(backend_module, "_token", lambda: "another-token")
    late = store.chord_part_return("g", 1, TaskResult("p1", State.SUCCESS, 1))
    assert (late.complete, late.duplicate) == (False, True)


def test_chord_document_layout(store: resultstore.ResultStore) -> None:
    store.set_chord_size("g", 2)
    store.chord_part_return("g", 1, TaskResult("p1", State.SUCCESS, {"v": 1}))
    doc = _backend(store).chords.find_one({"_id": "g"})
    assert (doc["size"], doc["received"], doc["count"]) == (2, [1], 1)
    assert doc["parts"]["1"]["d"]["result"] == {"v": 1}


# -- expiry --------------------------------------------------------------------------------


def test_cleanup_deletes_what_expired_in_every_collection(mongodb_server: Server) -> None:
    clock = ManualClock()
    with resultstore.connect(_url(mongodb_server), expires=60, clock=clock) as store:
        backend = _backend(store)
        store.mark_as_done("old", 1)
        store.save_group("g-old", ["old"])
        store.set_chord_size("c-old", 1)
        clock.advance(30)
        store.mark_as_done("new", 2)
        clock.advance(31)
        assert store.cleanup() == 1
        assert [d["_id"] for d in backend.results.find()] == ["new"]
        assert backend.groups.count_documents({}) == 0
        assert backend.chords.count_documents({}) == 0
        backend.client.drop_database(backend.settings.database)


def test_mongodb_deletes_expired_results_itself() -> None:
    """The TTL index at work, on a server whose TTL monitor runs every second
    (in this process: the daemon's command line cannot set the interval)."""
    secantus = pytest.importorskip("secantus")
    with (
        secantus.SecantusDBServer(storage_path=":memory:", ttl_sweep_seconds=1) as server,
        resultstore.connect(server.uri, expires=1) as store,
    ):
        store.mark_as_done("soon", 1)
        store.save_group("group", ["soon"])
        store.set_chord_size("chord", 2)
        backend = _backend(store)
        assert backend.results.count_documents({}) == 1
        collections = (backend.results, backend.groups, backend.chords)
        wait_until(
            lambda: all(c.count_documents({}) == 0 for c in collections),
            "the TTL monitor to delete expired results, groups and chords",
        )


# -- URLs, options, auth, errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("mongodb://", InvalidURLError),
        ("mongodb://localhost:notaport/", InvalidURLError),
        ("mongodb://user:pa:ss@localhost/", InvalidURLError),
        ("mongodb+srv://cluster0.example.net:27017/", InvalidURLError),
        ("mongodb+srv://a.example.net,b.example.net/", InvalidURLError),
        ("mongodb://localhost/bad$database", InvalidURLError),
    ],
)
def test_bad_urls_fail_up_front(url: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        resultstore.connect(url)


def test_a_bad_url_never_shows_the_password() -> None:
    with pytest.raises(InvalidURLError) as info:
        resultstore.connect("mongodb://user:hunter2@host:99999/")
    assert "hunter2" not in str(info.value)


def test_unknown_option_lists_the_accepted_ones(mongodb_server: Server) -> None:
    with pytest.raises(resultstore.UnknownOptionError, match="taskmeta_collection"):
        resultstore.connect(mongodb_server.url, taskmeta_colection="x")


@pytest.mark.parametrize(
    "options",
    [{"maxPoolSize": "-1"}, {"tz_aware": "false"}, {"database": "bad/name"}],
    ids=["bad-value", "reserved", "bad-database"],
)
def test_bad_options_are_configuration_errors(
    mongodb_server: Server, options: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError):
        resultstore.connect(mongodb_server.url, **options)


def test_pymongo_options_reach_the_client(mongodb_server: Server) -> None:
    url = f"{mongodb_server.url}&maxPoolSize=7&appname=tests"
    with resultstore.connect(url, serverSelectionTimeoutMS=1500) as store:
        options = _backend(store).client.options
        assert options.pool_options.max_pool_size == 7
        assert options.server_selection_timeout == 1.5
        assert options.pool_options.metadata["application"]["name"] == "tests"


def test_database_and_collections_come_from_the_url_and_options(mongodb_server: Server) -> None:
    base = mongodb_server.url.replace("/?", "/fromurl?")
    with resultstore.connect(base) as store:
        assert _backend(store).settings.database == "fromurl"
    with resultstore.connect(
        base, database="fromoption", taskmeta_collection="tm", groupmeta_collection="gm"
    ) as store:
        backend = _backend(store)
        store.mark_as_done("x", 1)
        assert backend.settings.database == "fromoption"
        assert backend.results.full_name == "fromoption.tm"
        assert backend.groups.full_name == "fromoption.gm"
        assert backend.chords.full_name == "fromoption.resultstore_chordmeta"
        assert backend.client.fromoption.tm.find_one({"_id": "x"})["result"] == 1
        backend.client.drop_database("fromoption")
        backend.client.drop_database("fromurl")


def test_wrong_password_is_a_clear_error_without_the_password(
    mongodb_auth_server: Server,
) -> None:
    server = mongodb_auth_server
    url = f"mongodb://{server.username}:not-the-password@{server.host}:{server.port}/?authSource=admin"
    with pytest.raises(ConfigurationError) as info:
        resultstore.connect(url, retry_total=2)
    assert "not-the-password" not in str(info.value)
    assert "password" in str(info.value)


def test_password_from_url_works(mongodb_auth_server: Server) -> None:
    assert mongodb_auth_server.password is not None
    with resultstore.connect(mongodb_auth_server.url, database=_database()) as store:
        store.mark_as_done("a", 1)
        got = store.get("a")
        assert got is not None
        assert got.result == 1
        assert mongodb_auth_server.password not in repr(store)
        assert mongodb_auth_server.password not in repr(store.backend)
        _backend(store).client.drop_database(_backend(store).settings.database)


def test_dead_server_error_names_the_server_not_the_password() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as info:
        resultstore.connect(f"mongodb://u:hunter2@127.0.0.1:{port}/", retry_total=0.5)
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "hunter2" not in str(info.value)
    assert time.monotonic() - started < 30  # bounded by retry_total, not pymongo's 30 s


def test_writes_resume_after_a_restart_on_the_same_port(tmp_path: Path) -> None:
    port = free_port()
    first = secantus_on(port, tmp_path / "a", standalone=True).start()
    try:
        first.wait_ready(lambda: ready(port, standalone=True), 30)
        store = resultstore.connect(url(port, standalone=True), retry_total=30)
        store.mark_as_done("before", 1)
    finally:
        first.stop()
    restarted: list[ServerProcess] = []

    def restart() -> None:
        time.sleep(0.5)
        restarted.append(secantus_on(port, tmp_path / "b", standalone=True).start())

    thread = threading.Thread(target=restart)
    thread.start()
    try:
        # The first try waits for a server (up to retry_total) until the restart answers.
        assert store.mark_as_done("after", 2).stored
        got = store.get("after")
        assert got is not None
        assert got.result == 2
    finally:
        thread.join()
        store.close()
        for process in restarted:
            process.stop()


# -- capabilities, asyncio, push -----------------------------------------------------------------


def test_capabilities_follow_the_deployment(
    mongodb_server: Server, mongodb_standalone_server: Server
) -> None:
    with resultstore.connect(mongodb_server.url) as replica_set:
        assert Capability.PUSH in replica_set.capabilities
        assert Capability.AUTO_EXPIRY in replica_set.capabilities
    with resultstore.connect(mongodb_server.url, change_streams="false") as polling:
        assert Capability.PUSH not in polling.capabilities
    with resultstore.connect(mongodb_standalone_server.url) as standalone:
        assert Capability.PUSH not in standalone.capabilities
        assert Capability.CLEANUP in standalone.capabilities
    with pytest.raises(ConfigurationError, match="standalone"):
        resultstore.connect(mongodb_standalone_server.url, change_streams="true")


def test_the_listener_carries_the_stored_result(store: resultstore.ResultStore) -> None:
    listener = _backend(store).listener()
    try:
        listener.subscribe(["w"])
        threading.Timer(0.05, lambda: store.mark_as_done("w", 5)).start()
        heard: list[str] = []

        def hear() -> bool:
            heard.extend(listener.wait(0.1))
            return bool(heard)

        wait_until(hear, "an announcement")
        assert heard == ["w"]
        carried = listener.take_carried()
        assert carried["w"].result == 5
        assert listener.take_carried() == {}
    finally:
        listener.close()


def test_announcements_carry_the_result_so_the_hub_reads_nothing_more(
    store: resultstore.ResultStore,
) -> None:
    hub = store.hub
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(store.result("c").get(timeout=20)))
    waiter.start()
    wait_until(lambda: "c" in hub.watched_ids(), "the waiter to register")
    assert hub.flush(timeout=20)
    before = hub.round_trips
    store.mark_as_done("c", 7)
    waiter.join(30)
    assert got == [7]
    assert hub.round_trips == before


def test_native_asyncio_twin(mongodb_server: Server) -> None:
    asyncio.run(_native_asyncio_twin(_url(mongodb_server)))


async def _native_asyncio_twin(url: str) -> None:
    from resultstore import connect_async

    async with await connect_async(url) as store:
        assert store.native
        assert (await store.mark_as_started("a")).stored
        assert (await store.mark_as_done("a", {"v": 1})).stored
        refused = await store.mark_as_started("a")
        assert (refused.stored, refused.state) == (False, "SUCCESS")
        got = await store.get("a")
        assert got is not None
        assert got.result == {"v": 1}
        many = await store.get_many(["a", "missing"])
        assert list(many) == ["a", "missing"]
        assert many["missing"] is None
        assert await store.result("a").aget(timeout=10) == {"v": 1}
        await store.forget("a")
        assert await store.get("a") is None
        backend = _backend(store.sync)
        await asyncio.to_thread(backend.client.drop_database, backend.settings.database)
