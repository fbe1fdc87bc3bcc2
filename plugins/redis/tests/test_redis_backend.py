"""What the contract suite cannot know about Redis: keys, TTLs, URLs, auth, retries."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import resultstore
from resultstore import (
    BackendUnavailableError,
    Capability,
    ConfigurationError,
    InvalidURLError,
    ResultStoreError,
    State,
    TaskResult,
)
from resultstore_contract.servers import Server, start_redis
from resultstore_redis.backend import RedisBackend


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def store(redis_server: Server) -> Iterator[resultstore.ResultStore]:
    with resultstore.connect(redis_server.url, key_prefix=_prefix()) as store:
        yield store


def _raw(store: resultstore.ResultStore) -> redis.Redis:
    backend = store.backend
    assert isinstance(backend, RedisBackend)
    return backend.client  # type: ignore[no-any-return]


def test_store_keeps_state_in_front_of_payload_with_ttl(store: resultstore.ResultStore) -> None:
    store.mark_as_done("a", {"x": 1})
    key = f"{store.url.query.get('key_prefix', '')}"
    backend = store.backend
    assert isinstance(backend, RedisBackend)
    raw = _raw(store).get(backend.task_key("a"))
    assert raw is not None
    state, _, payload = raw.partition(b"\0")
    assert state == b"SUCCESS"
    assert payload.startswith(b"rs1 codec=json\n")
    ttl = _raw(store).pttl(backend.task_key("a"))
    assert 86_000_000 < ttl <= 86_400_000
    assert key == ""  # the prefix is an option, not part of the stored URL


def test_expires_none_keeps_results_without_ttl(redis_server: Server) -> None:
    with resultstore.connect(redis_server.url, key_prefix=_prefix(), expires="none") as store:
        store.mark_as_done("a", 1)
        backend = store.backend
        assert isinstance(backend, RedisBackend)
        assert _raw(store).pttl(backend.task_key("a")) == -1
        assert store.get("a") is not None


def test_short_expiry_really_expires(redis_server: Server) -> None:
    with resultstore.connect(redis_server.url, key_prefix=_prefix(), expires=0.2) as store:
        store.mark_as_done("a", 1)
        assert store.get("a") is not None
        time.sleep(0.4)
        assert store.get("a") is None


def test_ready_state_is_refused_inside_redis(store: resultstore.ResultStore) -> None:
    assert store.mark_as_done("a", 1).stored
    outcome = store.mark_as_started("a")
    assert not outcome.stored
    assert outcome.state == State.SUCCESS
    got = store.get("a")
    assert got is not None
    assert got.result == 1
    assert store.store(TaskResult("a", State.STARTED), overwrite=True).stored


@pytest.mark.parametrize("trust", [False, True])
def test_store_publishes_on_the_task_channel(redis_server: Server, trust: bool) -> None:
    with resultstore.connect(
        redis_server.url, key_prefix=_prefix(), trust_announcements=trust
    ) as store:
        backend = store.backend
        assert isinstance(backend, RedisBackend)
        listener = backend.listener()
        try:
            listener.subscribe(["w"])
            threading.Timer(0.05, lambda: store.mark_as_done("w", 5)).start()
            assert listener.wait(5.0) == ["w"]
            carried = listener.take_carried()
            # Untrusted (the default), an announcement is only a wake-up.
            assert carried == {} if not trust else carried["w"].result == 5
            assert listener.take_carried() == {}
            listener.unsubscribe(["w"])
            assert listener.subscriptions == frozenset()
        finally:
            listener.close()


def test_refused_store_does_not_publish(store: resultstore.ResultStore) -> None:
    backend = store.backend
    assert isinstance(backend, RedisBackend)
    store.mark_as_done("w", 5)
    listener = backend.listener()
    try:
        listener.subscribe(["w"])
        assert not store.mark_as_started("w").stored
        assert listener.wait(0.3) == []
    finally:
        listener.close()


def test_bulk_get_of_many_ids_in_chunks(store: resultstore.ResultStore) -> None:
    ids = [f"id{i}" for i in range(2500)]
    store.store_many([TaskResult(i, State.SUCCESS, n) for n, i in enumerate(ids[:2400])])
    got = store.get_many(ids)
    assert list(got) == ids
    assert [r.result if r else None for r in got.values()] == [*range(2400), *[None] * 100]


def test_chord_keys_share_a_hash_tag(store: resultstore.ResultStore) -> None:
    backend = store.backend
    assert isinstance(backend, RedisBackend)
    slots = {redis.cluster.key_slot(k.encode()) for k in backend._chord_keys("g1")}
    slots.add(redis.cluster.key_slot(backend._group_key("g1").encode()))
    assert len(slots) == 1


def _lose_next_reply(monkeypatch: pytest.MonkeyPatch, store: resultstore.ResultStore) -> None:
    """The server carries out the next command and answers, but the answer is lost
    (the connection drops as it is read), so the backend sends the command again."""
    backend = store.backend
    assert isinstance(backend, RedisBackend)
    direct = backend.direct
    assert direct is not None
    real = direct._reply
    lost: list[object] = []

    def once(connection: Any) -> Any:
        reply = real(connection)
        if not lost:
            lost.append(reply)
            raise redis.exceptions.ConnectionError("connection lost before the reply (test)")
        return reply

    monkeypatch.setattr(direct, "_reply", once)


def test_a_ready_store_whose_reply_was_lost_finds_its_own_value(
    store: resultstore.ResultStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The script stored SUCCESS but its reply was lost: the retry meets a ready
    state, which is its own value, so the store reports stored, not refused."""
    store.mark_as_started("t")
    _lose_next_reply(monkeypatch, store)
    done = store.mark_as_done("t", "ours")
    assert (done.stored, done.state) == (True, "SUCCESS")
    other = store.mark_as_done("t", "late")
    assert (other.stored, other.state) == (False, "SUCCESS")
    got = store.get("t")
    assert got is not None
    assert got.result == "ours"


def test_a_batch_whose_replies_were_lost_finds_its_own_ready_states(
    store: resultstore.ResultStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipelined scripts all ran but the replies were lost: the retried batch
    meets its own ready states and reports them stored."""
    store.mark_as_started("b")
    _lose_next_reply(monkeypatch, store)
    outcomes = store.store_many(
        [TaskResult("a", State.SUCCESS, "ours"), TaskResult("b", State.FAILURE, "ours")]
    )
    assert [(o.stored, o.state) for o in outcomes] == [(True, "SUCCESS"), (True, "FAILURE")]
    refused = store.store(TaskResult("b", State.SUCCESS, "late"))
    assert (refused.stored, refused.state) == (False, "FAILURE")
    # A first try never takes an equal ready value for its own.
    same = store.store(TaskResult("a", State.SUCCESS, "ours"))
    assert (same.stored, same.state) == (False, "SUCCESS")


def test_the_asyncio_twin_finds_its_own_value_after_a_lost_reply(redis_server: Server) -> None:
    asyncio.run(_twin_after_a_lost_reply(redis_server.url))


async def _twin_after_a_lost_reply(url: str) -> None:
    async with await resultstore.connect_async(url, key_prefix=_prefix()) as store:
        assert (await store.mark_as_started("t")).stored
        backend: Any = store.backend
        real = backend._store_script
        lost: list[object] = []

        async def once(**kwargs: Any) -> Any:
            reply = await real(**kwargs)
            if not lost:
                lost.append(reply)
                raise redis.exceptions.ConnectionError("connection lost before the reply (test)")
            return reply

        backend._store_script = once
        done = await store.mark_as_done("t", "ours")
        assert (done.stored, done.state) == (True, "SUCCESS")


def test_chord_completion_survives_a_retried_completing_call(
    store: resultstore.ResultStore,
) -> None:
    """A completing call whose reply was lost is retried with the same token."""
    backend = store.backend
    assert isinstance(backend, RedisBackend)
    store.set_chord_size("g", 1)
    keys = backend._chord_keys("g")
    payload = store.serializer.dumps(TaskResult("p", State.SUCCESS, 1))
    first = backend._chord_script(keys=keys, args=["0", payload, "60000", "tok"])
    again = backend._chord_script(keys=keys, args=["0", payload, "60000", "tok"])
    other = backend._chord_script(keys=keys, args=["0", payload, "60000", "other"])
    assert (first[0], again[0], other[0]) == (1, 1, 0)


def test_wrong_password_is_a_clear_error_without_the_password(
    redis_auth_server: Server,
) -> None:
    url = f"redis://:not-the-password@{redis_auth_server.host}:{redis_auth_server.port}/0"
    with pytest.raises(ConfigurationError) as info:
        resultstore.connect(url, retry_total=1).get("x")
    assert "not-the-password" not in str(info.value)
    assert "password" in str(info.value)


def test_password_from_url_works(redis_auth_server: Server) -> None:
    with resultstore.connect(redis_auth_server.url, key_prefix=_prefix()) as store:
        store.mark_as_done("a", 1)
        assert store.get("a") is not None
        assert redis_auth_server.password not in repr(store)


def test_tls_with_a_self_made_ca(redis_tls_server: Server) -> None:
    assert redis_tls_server.ca_file is not None
    with resultstore.connect(
        redis_tls_server.url, key_prefix=_prefix(), ssl_ca_certs=str(redis_tls_server.ca_file)
    ) as store:
        store.mark_as_done("a", 1)
        got = store.get("a")
        assert got is not None
        assert got.result == 1


def test_tls_without_the_ca_is_refused(redis_tls_server: Server) -> None:
    with pytest.raises(ResultStoreError):
        resultstore.connect(redis_tls_server.url, key_prefix=_prefix(), retry_total=0.5).get("a")


def test_dead_server_error_names_the_server_not_the_password() -> None:
    with pytest.raises(BackendUnavailableError) as info:
        resultstore.connect("redis://:hunter2@127.0.0.1:1/0", retry_total=0.3).get("x")
    assert "127.0.0.1:1" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_writes_resume_after_a_restart_on_the_same_port(tmp_path: Path) -> None:
    with start_redis(tmp_path / "a") as server:
        store = resultstore.connect(server.url, retry_total=15)
        store.mark_as_done("before", 1)
        port = server.port
    # The server is gone; bring a new one up on the same port while the call retries.
    restarted: list[subprocess.Popen[bytes]] = []

    def restart() -> None:
        time.sleep(0.5)
        restarted.append(
            subprocess.Popen(
                [
                    "redis-server",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=subprocess.DEVNULL,
            )
        )

    thread = threading.Thread(target=restart)
    thread.start()
    try:
        assert store.mark_as_done("after", 2).stored
        backend = store.backend
        assert isinstance(backend, RedisBackend)
        assert backend.retry.retries > 0
        got = store.get("after")
        assert got is not None
        assert got.result == 2
    finally:
        thread.join()
        for process in restarted:
            process.terminate()
            process.wait(10)
        store.close()


def test_cluster_store_get_many_and_chords(redis_cluster_server: Server) -> None:
    with resultstore.connect(redis_cluster_server.url, key_prefix=_prefix()) as store:
        ids = [f"c{i}" for i in range(300)]
        store.store_many([TaskResult(i, State.SUCCESS, i) for i in ids])
        got = store.get_many(ids)
        assert all(got[i] is not None and got[i].result == i for i in ids)  # type: ignore[union-attr]
        store.set_chord_size("g", 3)
        outcomes = [
            store.chord_part_return("g", i, TaskResult(f"p{i}", State.SUCCESS, i))
            for i in (2, 0, 0, 1)
        ]
        assert [o.complete for o in outcomes] == [False, False, False, True]
        assert outcomes[2].duplicate
        results = outcomes[-1].results
        assert results is not None
        assert [r.result for r in results] == [0, 1, 2]


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("redis://h1:1,h2:2/0", InvalidURLError),
        ("redis://localhost/notanumber", InvalidURLError),
        ("redis+sentinel://127.0.0.1:26379/0", ConfigurationError),
        ("redis+unix://", InvalidURLError),
    ],
)
def test_bad_urls(url: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        resultstore.connect(url)


def test_unknown_option_lists_the_accepted_ones(redis_server: Server) -> None:
    with pytest.raises(resultstore.UnknownOptionError, match="key_prefix"):
        resultstore.connect(redis_server.url, keyprefix="x")


def test_declares_its_capabilities(store: resultstore.ResultStore) -> None:
    assert Capability.PUSH in store.capabilities
    assert Capability.CLEANUP not in store.capabilities


def test_native_asyncio_twin(redis_server: Server) -> None:
    asyncio.run(_native_asyncio_twin(redis_server))


async def _native_asyncio_twin(redis_server: Server) -> None:
    from resultstore import connect_async

    async with await connect_async(redis_server.url, key_prefix=_prefix()) as store:
        assert store.native
        assert (await store.mark_as_done("a", {"v": 1})).stored
        assert not (await store.mark_as_started("a")).stored
        got = await store.get("a")
        assert got is not None
        assert got.result == {"v": 1}
        many = await store.get_many(["a", "missing"])
        assert list(many) == ["a", "missing"]
        assert many["missing"] is None
        assert await store.result("a").aget(timeout=5) == {"v": 1}
        await store.forget("a")
        assert await store.get("a") is None


@pytest.mark.parametrize("trust", [False, True])
def test_announcement_carries_the_result_so_the_hub_reads_nothing_more(
    redis_server: Server, trust: bool
) -> None:
    """With trust_announcements the carried value is delivered as is; by
    default the hub reads the announced id once (one GET per wake)."""
    with resultstore.connect(
        redis_server.url, key_prefix=_prefix(), trust_announcements=trust
    ) as store:
        _wake_and_count(store, extra_reads=0 if trust else 1)


def _wake_and_count(store: resultstore.ResultStore, extra_reads: int) -> None:
    backend = store.backend
    assert isinstance(backend, RedisBackend)
    hub = store.hub
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(store.result("c").get(timeout=10)))
    waiter.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (
        hub.round_trips >= 1 and _raw(store).pubsub_numsub(backend.channel("c"))[0][1] == 1
    ):
        time.sleep(0.01)
    before = hub.round_trips
    assert before >= 1  # the read right after subscribing
    store.mark_as_done("c", 7)
    waiter.join(10)
    assert got == [7]
    assert hub.round_trips == before + extra_reads


def test_a_new_waiter_is_subscribed_without_waiting_out_the_listen(
    store: resultstore.ResultStore,
) -> None:
    """A PING wakes the listener: with a listen slice longer than the waiter's
    timeout, only the wake can get the second id subscribed in time."""
    backend = store.backend
    assert isinstance(backend, RedisBackend)
    hub = store.hub
    hub.push_slice = 60.0
    first: list[object] = []
    threading.Thread(target=lambda: first.append(store.result("a").get(timeout=20))).start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _raw(store).pubsub_numsub(backend.channel("a"))[0][1] < 1:
        time.sleep(0.01)
    time.sleep(0.05)  # let the hub block in its 60 s listen
    threading.Timer(0.2, lambda: store.mark_as_done("b", 2)).start()
    assert store.result("b").get(timeout=5) == 2
    store.mark_as_done("a", 1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not first:
        time.sleep(0.01)
    assert first == [1]
