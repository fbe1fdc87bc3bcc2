"""resultstore-cassandra's own tests on a real node: the rows users query, TTLs, how many
lightweight transactions a store takes, URLs and options, and the errors people meet."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import resultstore
from cassandra.cluster import Cluster  # type: ignore[import-untyped]  # untyped driver
from resultstore import (
    BackendUnavailableError,
    ConfigurationError,
    InvalidURLError,
    State,
    TaskResult,
    UnknownOptionError,
)
from resultstore.payloads.codecs import MAGIC
from resultstore_cassandra.backend import CassandraBackend
from resultstore_cassandra.client import parse_replication
from resultstore_contract.servers import Server, free_port


@pytest.fixture(scope="module")
def session(cassandra_server: Server) -> Iterator[Any]:
    """A plain driver session on the node, to look at what the backend wrote."""
    cluster = Cluster([cassandra_server.host], port=cassandra_server.port, protocol_version=5)
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()


def _backend(store: resultstore.ResultStore) -> CassandraBackend:
    backend = store.backend
    assert isinstance(backend, CassandraBackend)
    return backend


def test_one_queryable_row_per_task_with_the_codec_header(cassandra_url: str, session: Any) -> None:
    store = resultstore.connect(cassandra_url, expires=600)
    task_id = f"q-{uuid.uuid4().hex}"
    done = dt.datetime(2024, 5, 17, 12, 30, 45, 123000, tzinfo=dt.UTC)
    try:
        store.store(TaskResult(task_id, State.STARTED, worker="w1@host", name="app.add"))
        store.store(
            TaskResult(
                task_id,
                State.SUCCESS,
                {"total": 42},
                date_done=done,
                name="app.add",
                worker="w1@host",
                queue="celery",
                retries=2,
                parent_id="parent-1",
                group_id="group-1",
            )
        )
        keyspace = _backend(store).settings.keyspace
        row = session.execute(
            f"SELECT state, date_done, name, worker, queue, retries, parent_id, group_id, "
            f"payload, TTL(payload) AS ttl FROM {keyspace}.resultstore_taskmeta "
            f"WHERE task_id = %s",
            (task_id,),
        ).one()
        assert (row.state, row.name, row.worker, row.queue, row.retries) == (
            "SUCCESS",
            "app.add",
            "w1@host",
            "celery",
            2,
        )
        assert (row.parent_id, row.group_id) == ("parent-1", "group-1")
        assert row.date_done.replace(tzinfo=dt.UTC) == done
        assert row.payload.startswith(MAGIC), "the payload keeps the core's codec header"
        assert 590 <= row.ttl <= 600, f"USING TTL from expires=600, got {row.ttl}"
        # Rows are found by state with plain CQL (a secondary index or a scan, as users choose).
        found = session.execute(
            f"SELECT task_id FROM {keyspace}.resultstore_taskmeta WHERE state = 'SUCCESS' "
            f"AND task_id = %s ALLOW FILTERING",
            (task_id,),
        ).one()
        assert found.task_id == task_id
    finally:
        store.close()


def test_groups_and_chords_expire_by_ttl_too(cassandra_url: str, session: Any) -> None:
    store = resultstore.connect(cassandra_url, expires=300)
    group_id, chord_id = f"g-{uuid.uuid4().hex}", f"c-{uuid.uuid4().hex}"
    try:
        store.save_group(group_id, ["a", "b"])
        store.set_chord_size(chord_id, 2)
        store.chord_part_return(chord_id, 0, TaskResult("p0", State.SUCCESS, 0))
        keyspace = _backend(store).settings.keyspace
        group = session.execute(
            f"SELECT TTL(payload) AS ttl FROM {keyspace}.resultstore_groupmeta WHERE group_id = %s",
            (group_id,),
        ).one()
        assert 290 <= group.ttl <= 300
        parts = list(
            session.execute(
                f"SELECT part, TTL(payload) AS ttl, TTL(size) AS head FROM "
                f"{keyspace}.resultstore_chordmeta WHERE group_id = %s",
                (chord_id,),
            )
        )
        assert [p.part for p in parts] == [0]
        assert 290 <= parts[0].ttl <= 300
        assert 290 <= parts[0].head <= 300
    finally:
        store.close()


def _count_requests(backend: CassandraBackend) -> list[str]:
    seen: list[str] = []

    def heard(future: Any) -> None:
        prepared = getattr(future.query, "prepared_statement", None)
        seen.append(str(getattr(prepared, "query_string", "")))

    backend.session.add_request_init_listener(heard)
    return seen


def test_a_workers_started_then_success_is_one_lightweight_transaction_each(
    cassandra_url: str,
) -> None:
    store = resultstore.connect(cassandra_url)
    try:
        seen = _count_requests(_backend(store))
        task_id = f"n-{uuid.uuid4().hex}"
        assert store.store(TaskResult(task_id, State.STARTED)).stored
        assert store.store(TaskResult(task_id, State.SUCCESS, 1)).previous_state == State.STARTED
        assert len(seen) == 2, seen
        assert all(" IF " in q for q in seen)
        # A refused store is one plain read of the row, no Paxos round.
        refused = store.store(TaskResult(task_id, State.FAILURE))
        assert (refused.stored, refused.state) == (False, State.SUCCESS)
        assert len(seen) == 3
        assert seen[2].startswith("SELECT")
    finally:
        store.close()


def test_another_process_s_store_finds_the_row_and_reports_it_truthfully(
    cassandra_url: str,
) -> None:
    one, two = resultstore.connect(cassandra_url), resultstore.connect(cassandra_url)
    try:
        task_id = f"o-{uuid.uuid4().hex}"
        one.store(TaskResult(task_id, "PROGRESS"))
        outcome = two.store(TaskResult(task_id, State.SUCCESS, 5))
        assert (outcome.stored, outcome.previous_state) == (True, "PROGRESS")
        again = one.store(TaskResult(task_id, State.STARTED))
        assert (again.stored, again.state, again.previous_state) == (False, "SUCCESS", "SUCCESS")
        one.forget(task_id)
        assert two.get(task_id) is None
        fresh = two.store(TaskResult(task_id, State.FAILURE))
        assert (fresh.stored, fresh.previous_state) == (True, None)
    finally:
        one.close()
        two.close()


def test_wrong_password_is_a_clear_error_without_the_password(
    cassandra_auth_server: Server,
) -> None:
    secret = f"Wr0ng-{uuid.uuid4().hex}"
    server = cassandra_auth_server
    url = f"cassandra://{server.username}:{secret}@{server.host}:{server.port}/resultstore"
    with pytest.raises(ConfigurationError) as refused:
        resultstore.connect(url, retry_total=5)
    text = str(refused.value)
    assert secret not in text
    assert "refused the credentials" in text
    assert repr(server.username) in text
    assert f"{server.host}:{server.port}" in text


def test_the_right_password_works_and_the_repr_hides_it(cassandra_auth_url: str) -> None:
    store = resultstore.connect(cassandra_auth_url)
    try:
        assert store.store(TaskResult(f"a-{uuid.uuid4().hex}", State.SUCCESS)).stored
        server_password = cassandra_auth_url.split("@", maxsplit=1)[0].rsplit(":", 1)[1]
        assert server_password not in repr(store)
        assert server_password not in repr(store.backend)
    finally:
        store.close()


def test_unreachable_contact_points_name_every_host_and_never_the_password() -> None:
    ports = free_port(), free_port()
    url = (
        f"cassandra://app:S3cret-pw@127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}/ks"
        "?retry_total=1&connect_timeout=0.5"
    )
    with pytest.raises(BackendUnavailableError) as down:
        resultstore.connect(url)
    text = str(down.value)
    assert f"127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}" in text
    assert "S3cret-pw" not in text


def test_a_missing_keyspace_says_how_to_create_it(cassandra_server: Server) -> None:
    url = f"{cassandra_server.url}/nosuch{uuid.uuid4().hex[:8]}"
    with pytest.raises(ConfigurationError) as missing:
        resultstore.connect(url, retry_total=5)
    assert "create_keyspace=true" in str(missing.value)


def test_create_keyspace_needs_an_explicit_replication(cassandra_server: Server) -> None:
    with pytest.raises(ConfigurationError, match="replication=DATACENTER:FACTOR"):
        resultstore.connect(f"{cassandra_server.url}/ks?create_keyspace=true")


def test_protocol_version_and_consistency_options_reach_the_driver(cassandra_url: str) -> None:
    store = resultstore.connect(
        cassandra_url,
        protocol_version=4,
        read_consistency="ONE",
        write_consistency="quorum",
        serial_consistency="SERIAL",
        request_timeout=5,
    )
    try:
        backend = _backend(store)
        assert backend.cluster.protocol_version == 4
        assert backend.statements.get.consistency_level == 1  # ONE
        assert backend.statements.store.consistency_level == 4  # QUORUM
        assert backend.statements.store.serial_consistency_level == 8  # SERIAL
        task_id = f"p-{uuid.uuid4().hex}"
        store.store(TaskResult(task_id, State.SUCCESS, 3))
        result = store.get(task_id)
        assert result is not None
        assert result.result == 3
    finally:
        store.close()


@pytest.mark.parametrize(
    ("url", "error", "says"),
    [
        ("cassandra:///ks", InvalidURLError, "names no host"),
        ("cassandra://h/ks/more", InvalidURLError, "one keyspace"),
        ("cassandra://h/bad-name", InvalidURLError, "not a usable Cassandra name"),
        ("cassandra://h/ks?read_consistency=MOST", ConfigurationError, "not a consistency"),
        ("cassandra://h/ks?write_consistency=SERIAL", ConfigurationError, "cannot be SERIAL"),
        ("cassandra://h/ks?serial_consistency=QUORUM", ConfigurationError, "LOCAL_SERIAL"),
        ("cassandra://h/ks?protocol_version=9", ConfigurationError, "protocol version"),
        ("cassandra://h/ks?tls_ca_file=/no/such.pem", ConfigurationError, "no such file"),
        ("cassandra://h/ks?tls_cert_file=/etc/hostname", ConfigurationError, "tls_key_file"),
        ("cassandra://h/ks?secure_connect_bundle=/no/b.zip", ConfigurationError, "no such file"),
        ("cassandra://h/ks?replication=dc1", ConfigurationError, "DATACENTER:FACTOR"),
        ("cassandra://h/ks?consistency=ONE", UnknownOptionError, "read_consistency"),
    ],
)
def test_bad_urls_and_options_say_what_to_write(
    url: str, error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=says):
        resultstore.connect(url)


def test_a_secure_connect_bundle_takes_no_hosts(tmp_path: Path) -> None:
    bundle = tmp_path / "secure-connect-db.zip"
    bundle.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    with pytest.raises(InvalidURLError, match="bundle names the servers"):
        resultstore.connect(
            f"cassandra://token:AstraCS-x@somehost/ks?secure_connect_bundle={bundle}"
        )


def test_replication_is_parsed_never_guessed() -> None:
    assert parse_replication("dc1:3,dc2:2") == {
        "class": "NetworkTopologyStrategy",
        "dc1": 3,
        "dc2": 2,
    }
    assert parse_replication("SimpleStrategy:1") == {
        "class": "SimpleStrategy",
        "replication_factor": 1,
    }
    with pytest.raises(ValueError, match="DATACENTER:FACTOR"):
        parse_replication("3")


def test_expires_longer_than_cassandra_s_ttl_is_refused(cassandra_url: str) -> None:
    with pytest.raises(ConfigurationError, match="20 years"):
        resultstore.connect(cassandra_url, expires=21 * 365 * 86400)


@pytest.mark.parametrize("read_batch", [1, 3, 10])
def test_bulk_reads_find_every_id_whatever_the_read_batch(
    cassandra_url: str, read_batch: int
) -> None:
    store = resultstore.connect(cassandra_url, read_batch=read_batch, expires=600)
    try:
        token = uuid.uuid4().hex[:8]
        stored = [f"b-{token}-{i}" for i in range(25)]
        store.store_many([TaskResult(t, State.SUCCESS, t) for t in stored])
        missing = [f"m-{token}-{i}" for i in range(7)]
        wanted = [*missing[:3], *stored, stored[0], *missing[3:]]
        found = store.get_many(wanted)
        assert set(found) == set(wanted)
        assert all(found[t] is None for t in missing)
        assert all(getattr(found[t], "result", None) == t for t in stored)
    finally:
        store.close()
