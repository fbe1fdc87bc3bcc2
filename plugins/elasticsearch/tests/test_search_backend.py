"""What the contract suite does not see: documents people search, the mapping, URLs and
options, bulk request counts, cleanup, TLS with basic auth and API keys."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import urllib.error
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import resultstore
from resultstore import (
    ConfigurationError,
    InvalidURLError,
    ResultStore,
    TaskResult,
    UnknownOptionError,
)
from resultstore_contract.servers import Server
from resultstore_contract.servers._search import http_json
from resultstore_elasticsearch.backend import SearchBackend
from resultstore_elasticsearch.transport import Call

from tests._isolation import base_url, isolated


@pytest.fixture(params=["elasticsearch", "opensearch"])
def server(request: pytest.FixtureRequest) -> Server:
    found: Server = request.getfixturevalue(f"{request.param}_server")
    return found


@pytest.fixture
def url(server: Server) -> Iterator[str]:
    yield from isolated(server)


@pytest.fixture
def store(url: str) -> Iterator[ResultStore]:
    with resultstore.connect(url) as client:
        yield client


def backend_of(store: ResultStore) -> SearchBackend:
    backend = store.backend
    assert isinstance(backend, SearchBackend)
    return backend


def search(server: Server, index: str, body: dict[str, Any]) -> Any:
    http_json(f"{server.url}/{index}/_refresh", "POST")
    return http_json(f"{server.url}/{index}/_search", "POST", body)


# -- documents ---------------------------------------------------------------------------


def test_results_are_native_documents_with_mapped_fields(
    server: Server, store: ResultStore
) -> None:
    done = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    store.store(
        TaskResult(
            "t1",
            "SUCCESS",
            {"rows": [1, 2]},
            date_done=done,
            name="app.add",
            worker="w1",
            args=(1, 2),
            kwargs={"x": "y"},
            queue="q",
            retries=2,
            group_id="g",
            parent_id="p",
        )
    )
    index = backend_of(store).settings.results_index
    doc = http_json(f"{server.url}/{index}/_doc/t1")
    assert isinstance(doc, dict)
    source = doc["_source"]
    assert source["state"] == "SUCCESS"
    assert source["result"] == {"rows": [1, 2]}
    assert source["name"] == "app.add"
    assert source["args"] == [1, 2]
    assert source["date_done"].startswith("2026-01-02T03:04:05.678901")
    assert "expires_at" in source
    assert "payload" not in source
    mapping = http_json(f"{server.url}/{index}/_mapping")
    assert isinstance(mapping, dict)
    fields = mapping[index]["mappings"]["properties"]
    assert fields["state"]["type"] == "keyword"
    assert fields["date_done"]["type"] == "date"
    assert fields["expires_at"]["type"] == "date"
    assert fields["result"] == {"type": "object", "enabled": False}
    got = store.get("t1")
    assert got is not None
    assert got.date_done == done
    assert got.args == (1, 2)


def test_failures_per_task_name_can_be_counted_as_in_kibana(
    server: Server, store: ResultStore
) -> None:
    for n in range(5):
        store.mark_as_failure(f"f{n}", ValueError("boom"), name="app.flaky" if n < 3 else "app.x")
    store.mark_as_done("ok", 1, name="app.flaky")
    index = backend_of(store).settings.results_index
    answer = search(
        server,
        index,
        {
            "size": 0,
            "query": {"term": {"state": "FAILURE"}},
            "aggs": {"per_name": {"terms": {"field": "name"}}},
        },
    )
    buckets = {b["key"]: b["doc_count"] for b in answer["aggregations"]["per_name"]["buckets"]}
    assert buckets == {"app.flaky": 3, "app.x": 2}


def test_values_that_would_clash_in_a_mapping_do_not(store: ResultStore) -> None:
    store.mark_as_done("a", {"x": 1})
    store.mark_as_done("b", {"x": "text"})
    store.mark_as_done("c", [{"x": [1, {"y": None}]}])
    store.mark_as_done("d", "a plain string")
    assert [r.result if r else None for r in store.get_many(["a", "b", "c", "d"]).values()] == [
        {"x": 1},
        {"x": "text"},
        [{"x": [1, {"y": None}]}],
        "a plain string",
    ]


def test_other_codecs_store_a_payload_next_to_searchable_metadata(server: Server) -> None:
    for url in isolated(server):
        with resultstore.connect(url, codec="msgpack") as store:
            store.store(TaskResult("m", "SUCCESS", b"\x00bytes", name="app.bin", worker="w"))
            index = backend_of(store).settings.results_index
            doc = http_json(f"{server.url}/{index}/_doc/m")
            assert isinstance(doc, dict)
            source = doc["_source"]
            assert base64.b64decode(source["payload"]).startswith(b"rs1 codec=msgpack")
            assert source["state"] == "SUCCESS"
            assert source["name"] == "app.bin"
            got = store.get("m")
            assert got is not None
            assert got.result == b"\x00bytes"
        # A reader with the default codec reads the payload document too.
        with resultstore.connect(url, accept="json,msgpack") as reader:
            got = reader.get("m")
            assert got is not None
            assert got.result == b"\x00bytes"


def test_longest_ids_ids_with_slashes_and_long_chord_part_ids(store: ResultStore) -> None:
    longest = "é" * 256  # 512 bytes of UTF-8: the longest id there is, the servers' _id limit
    store.mark_as_done(longest, 1)
    store.mark_as_done("a/b?c#d", 2)
    got = store.get_many([longest, "a/b?c#d"])
    assert [r.result if r else None for r in got.values()] == [1, 2]
    # A chord part's _id (group#generation#index) outgrows the limit: it is a digest.
    backend = backend_of(store)
    backend.set_chord_size(longest, 2)
    backend.chord_part_return(longest, 0, TaskResult("p0", "SUCCESS", 0))
    outcome = backend.chord_part_return(longest, 1, TaskResult("p1", "SUCCESS", 1))
    assert outcome.complete
    assert [r.result for r in outcome.results or ()] == [0, 1]


# -- request counts ------------------------------------------------------------------------


class Counting:
    """Counts the requests a backend sends (the real adapter still sends them)."""

    def __init__(self, backend: SearchBackend) -> None:
        self.inner = backend.adapter
        self.calls: list[Call] = []
        backend.adapter = self

    def perform(self, call: Call) -> tuple[int, Any]:
        self.calls.append(call)
        return self.inner.perform(call)

    def close(self) -> None:
        self.inner.close()


def test_bulk_get_is_one_mget_per_chunk_and_batch_store_one_bulk(server: Server) -> None:
    for url in isolated(server, chunk="100"):
        with resultstore.connect(url) as store:
            counting = Counting(backend_of(store))
            outcomes = store.store_many([TaskResult(f"b{i}", "SUCCESS", i) for i in range(250)])
            assert all(o.stored for o in outcomes)
            kinds = [(c.method, c.path.rsplit("/", 1)[-1]) for c in counting.calls]
            # Per chunk of 100: one mget of what is there, one _bulk.
            assert kinds == [("POST", "_mget"), ("POST", "_bulk")] * 3
            counting.calls.clear()
            got = store.get_many([f"b{i}" for i in range(250)])
            assert [r.result if r else None for r in got.values()] == list(range(250))
            assert [c.path.rsplit("/", 1)[-1] for c in counting.calls] == ["_mget"] * 3


def test_a_first_store_is_one_request_and_a_second_state_two(store: ResultStore) -> None:
    counting = Counting(backend_of(store))
    store.store(TaskResult("s", "STARTED"))
    assert [c.path.split("/")[2] for c in counting.calls] == ["_create"]
    counting.calls.clear()
    for n in range(12):  # the backend learns that SUCCESS usually replaces a document
        store.store(TaskResult(f"s{n}", "STARTED"))
        store.store(TaskResult(f"s{n}", "SUCCESS", n))
    counting.calls.clear()
    store.store(TaskResult("s", "SUCCESS", 1))
    assert [(c.method, c.params is not None) for c in counting.calls] == [
        ("GET", False),
        ("PUT", True),  # if_seq_no / if_primary_term
    ]


class Interleaving(Counting):
    """Runs ``before[(path end, n)]`` just before the n-th such request is sent:
    another writer's store, landing between two requests of a batch."""

    def __init__(self, backend: SearchBackend, before: dict[tuple[str, int], Any]) -> None:
        super().__init__(backend)
        self.before = before

    def perform(self, call: Call) -> tuple[int, Any]:
        kind = call.path.rsplit("/", 1)[-1]
        n = sum(1 for c in self.calls if c.path.rsplit("/", 1)[-1] == kind) + 1
        step = self.before.pop((kind, n), None)
        if step is not None:
            step()
        return super().perform(call)


def test_a_batch_never_overwrites_a_ready_state_stored_while_it_settled_a_conflict(
    url: str, store: ResultStore
) -> None:
    """A batch item that met a conflict is stored alone and the id read again; a
    ready state another writer stored in between holds against the batch's next round."""
    store.store(TaskResult("t", "STARTED"))
    with resultstore.connect(url) as other:
        Interleaving(
            backend_of(store),
            {
                # the batch's write meets a RETRY stored after its read ...
                ("_bulk", 1): lambda: other.store(TaskResult("t", "RETRY")),
                # ... and a REVOKED lands after its lone store, before its fresh read.
                ("_mget", 2): lambda: other.store(TaskResult("t", "REVOKED")),
            },
        )
        outcomes = store.store_many([TaskResult("t", "RETRY"), TaskResult("t", "SUCCESS", 1)])
    assert [o.stored for o in outcomes] == [True, False]
    assert outcomes[1].state == "REVOKED"
    final = store.get("t")
    assert final is not None
    assert final.state == "REVOKED"


# -- expiry and cleanup --------------------------------------------------------------------


def test_expired_documents_read_as_missing_and_cleanup_deletes_them(server: Server) -> None:
    now = [1_000_000.0]
    for url in isolated(server, chunk="7"):
        with resultstore.connect(url, expires=60, clock=lambda: now[0]) as store:
            for n in range(20):
                store.mark_as_done(f"e{n}", n)
            store.save_group("g", ["e1", "e2"])
            now[0] += 30
            store.mark_as_done("fresh", 1)
            now[0] += 31
            assert store.get("e1") is None
            assert store.get("fresh") is not None
            assert store.get_group("g") is None
            assert store.cleanup() == 20
            index = backend_of(store).settings.results_index
            answer = search(server, index, {"query": {"match_all": {}}})
            assert [h["_id"] for h in answer["hits"]["hits"]] == ["fresh"]


# -- URLs and options ------------------------------------------------------------------------


def test_url_options_are_checked() -> None:
    with pytest.raises(UnknownOptionError, match="prefix"):
        resultstore.connect("elasticsearch://localhost:9200/?nope=1")
    with pytest.raises(InvalidURLError, match="index name"):
        resultstore.connect("elasticsearch://localhost:9200/Upper")
    with pytest.raises(InvalidURLError, match="one name"):
        resultstore.connect("opensearch://localhost:9200/a/b")
    with pytest.raises(ConfigurationError, match="not both"):
        resultstore.connect("elasticsearch://u:p@localhost:9200/?api_key=id:key")
    with pytest.raises(ConfigurationError, match="for HTTPS"):
        resultstore.connect("opensearch://localhost:9200/?ca_certs=/etc/hostname")
    with pytest.raises(ConfigurationError, match="request_timeout"):
        resultstore.connect("elasticsearch://localhost:9200/?request_timeout=-1")


def test_several_hosts_and_an_index_prefix(server: Server) -> None:
    """A dead host first in the list: the client moves on to the live one."""
    live = f"{server.host}:{server.port}"
    scheme = base_url(server).split("://")[0]
    url = f"{scheme}://127.0.0.1:1,{live}/multi?results_index=multi-res&retry_total=30"
    with resultstore.connect(url) as store:
        settings = backend_of(store).settings
        assert settings.hosts == (("127.0.0.1", 1), (server.host, server.port))
        assert settings.groups_index == "multi-groups"
        for n in range(4):
            store.mark_as_done(f"h{n}", n)
            assert store.get(f"h{n}") is not None
        backend_of(store).drop()


def test_asyncio_twin_uses_the_async_client(url: str) -> None:
    async def main() -> list[Any]:
        async with await resultstore.connect_async(url) as store:
            backend = store.backend
            await backend.store(TaskResult("a1", "SUCCESS", 1))
            got = await backend.get_many(["a1", "nope"])
            return [type(backend.adapter).__name__, got["a1"], got["nope"]]  # type: ignore[attr-defined]

    name, found, missing = asyncio.run(main())
    assert name.endswith("Async")
    assert found is not None
    assert found.result == 1
    assert missing is None


# -- security (Elasticsearch's x-pack security module) -----------------------------------------


@pytest.fixture(scope="module")
def secure(elasticsearch_secure_server: Server) -> Server:
    return elasticsearch_secure_server


def test_https_with_basic_auth_and_a_ca(secure: Server) -> None:
    assert secure.ca_file is not None
    assert secure.password is not None
    url = (
        f"elasticsearch+https://{secure.username}:{secure.password}@{secure.host}:{secure.port}"
        f"/sec?ca_certs={secure.ca_file}"
    )
    with resultstore.connect(url) as store:
        store.mark_as_done("tls", 1)
        got = store.get("tls")
        assert got is not None
        assert got.result == 1
        backend_of(store).drop()


def test_wrong_password_and_unverified_ca_are_clear_errors(secure: Server) -> None:
    where = f"{secure.host}:{secure.port}"
    bad = (
        f"elasticsearch+https://{secure.username}:wrong-pw-9@{where}/sec?ca_certs={secure.ca_file}"
    )
    with pytest.raises(ConfigurationError) as caught:
        resultstore.connect(bad)
    assert "401" in str(caught.value)
    assert "wrong-pw-9" not in str(caught.value)
    assert where in str(caught.value)
    untrusted = (
        f"elasticsearch+https://{secure.username}:{secure.password}@{where}/sec?retry_total=1"
    )
    with pytest.raises(resultstore.BackendUnavailableError) as caught_tls:
        resultstore.connect(untrusted)
    assert secure.password is not None
    assert secure.password not in str(caught_tls.value)


def test_an_api_key_is_sent_and_a_wrong_one_is_a_clear_error(secure: Server) -> None:
    """The test node cannot mint API keys (the .security index needs the analysis-common
    module, which the integration-test zip lacks), so only a key it refuses is tested:
    the key reaches the server, which answers 401, without the key in the message."""
    where = f"{secure.host}:{secure.port}"
    with pytest.raises(ConfigurationError) as caught:
        resultstore.connect(
            f"elasticsearch+https://{where}/keyed?api_key=someid:not-the-key-77"
            f"&ca_certs={secure.ca_file}"
        )
    message = str(caught.value)
    assert "401" in message
    assert where in message
    assert "not-the-key-77" not in message


def test_the_template_is_installed(server: Server, store: ResultStore) -> None:
    settings = backend_of(store).settings
    answer = http_json(f"{server.url}/_index_template/{settings.results_index}-template")
    assert isinstance(answer, dict)
    (entry,) = answer["index_templates"]
    assert sorted(entry["index_template"]["index_patterns"]) == sorted(settings.indices)
    assert json.dumps(entry["index_template"]["template"]["mappings"]["properties"]["state"]) == (
        '{"type": "keyword"}'
    )


def test_migrate_puts_the_template_and_creates_the_indices_even_without_create_template(
    server: Server,
) -> None:
    prefix = f"m{uuid.uuid4().hex[:12]}"
    url = f"{base_url(server)}/{prefix}?create_template=false"
    with resultstore.connect(url) as store:
        settings = backend_of(store).settings
        template = f"{server.url}/_index_template/{settings.results_index}-template"
        with pytest.raises(urllib.error.HTTPError):  # nothing written yet: no index
            http_json(f"{server.url}/{settings.results_index}")
        try:
            assert store.migrate() == f"template and indices {', '.join(settings.indices)}"
            for index in settings.indices:
                mapping: Any = http_json(f"{server.url}/{index}/_mapping")
                assert mapping[index]["mappings"]["properties"]["state"] == {"type": "keyword"}
            installed: Any = http_json(template)
            assert installed["index_templates"]
            store.migrate()  # again: everything is there already
        finally:
            backend_of(store).drop()
