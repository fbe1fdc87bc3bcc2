"""resultstore-amqp's own tests on a real RabbitMQ: routing, reader-side rules, URLs, options."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
import resultstore
from resultstore import (
    Capability,
    ConfigurationError,
    InvalidURLError,
    ResultStore,
    State,
    StoreOutcome,
    SupportsReplyTo,
    TaskResult,
    UnsupportedOperationError,
)
from resultstore_amqp.backend import AmqpBackend
from resultstore_amqp.reader import H_EXPIRES, H_OVERWRITE, H_SENT, H_STATE, BacklogLimitError
from resultstore_amqp.settings import AmqpSettings
from resultstore_contract.servers import Server

from . import _clients

WAIT = 30.0


@pytest.fixture
def connect(amqp_url: str) -> Iterator[Any]:
    opened: list[ResultStore] = []

    def make(url: str | None = None, **options: Any) -> ResultStore:
        store = resultstore.connect(url or amqp_url, **options)
        opened.append(store)
        return store

    yield make
    for store in reversed(opened):
        store.close()


def _backend(store: ResultStore) -> AmqpBackend:
    return cast(AmqpBackend, store.backend)


def _ids(prefix: str, count: int) -> list[str]:
    token = uuid.uuid4().hex[:8]
    return [f"{prefix}-{token}-{n}" for n in range(count)]


def test_capabilities_are_honest(connect: Any) -> None:
    store = connect()
    assert store.capabilities == {
        Capability.BULK_GET,
        Capability.BATCH_STORE,
        Capability.PUSH,
        Capability.AUTO_EXPIRY,
    }
    assert isinstance(store.backend, SupportsReplyTo)


def test_a_routed_result_reaches_only_the_client_that_asked(connect: Any) -> None:
    asker = connect(reply_queue=f"asker-{uuid.uuid4().hex[:8]}")
    bystander = connect(reply_queue=f"other-{uuid.uuid4().hex[:8]}")
    worker = connect()
    (task_id,) = _ids("routed", 1)
    address = _backend(asker).reply_address()
    _backend(bystander).reply_address()  # starts its reader too
    outcome = worker.store(TaskResult(task_id, State.SUCCESS, 7), reply_to=address)
    assert outcome == StoreOutcome(True, State.SUCCESS, None)
    assert asker.result(task_id).get(timeout=WAIT) == 7
    assert bystander.get(task_id) is None
    assert worker.get(task_id) is None, "the worker's own queue got the routed result"


def test_other_backends_ignore_reply_to(tmp_path: Any) -> None:
    with resultstore.connect(f"sqlite:///{tmp_path}/r.db") as store:
        store.store(TaskResult("t", State.SUCCESS, 1), reply_to="somebody")
        assert store.get("t") == TaskResult("t", State.SUCCESS, 1)


def test_reader_keeps_a_ready_state_against_late_and_duplicate_messages(connect: Any) -> None:
    client, worker = connect(), connect(reply_queue=f"w-{uuid.uuid4().hex[:8]}")
    address = _backend(client).reply_address()
    done, marker, second = _ids("final", 3)
    worker.store(TaskResult(done, State.STARTED), reply_to=address)
    worker.store(TaskResult(done, State.SUCCESS, "first"), reply_to=address)
    worker.store(TaskResult(done, State.STARTED, {"late": True}), reply_to=address)
    worker.store(TaskResult(done, State.FAILURE), reply_to=address)
    worker.store(TaskResult(marker, State.SUCCESS), reply_to=address)
    client.result(marker).get(timeout=WAIT)  # messages arrive in order: the others are in
    assert client.get(done) == TaskResult(done, State.SUCCESS, "first")
    # overwrite=True replaces a ready state, as on every backend.
    worker.store(TaskResult(done, State.SUCCESS, "second"), reply_to=address, overwrite=True)
    worker.store(TaskResult(second, State.SUCCESS), reply_to=address)
    client.result(second).get(timeout=WAIT)
    assert client.get(done) == TaskResult(done, State.SUCCESS, "second")


def test_a_redelivered_message_is_applied_once(connect: Any) -> None:
    client = connect()
    backend = _backend(client)
    address = backend.reply_address()
    task_id, marker = _ids("redelivered", 2)
    serializer = client.serializer

    def send(result: TaskResult, message_id: str) -> None:
        headers = {H_STATE: str(result.state), H_OVERWRITE: False, H_SENT: time.time()}
        headers[H_EXPIRES] = None
        backend._send(address, serializer.dumps(result), headers, result.task_id, message_id)

    send(TaskResult(task_id, State.STARTED, {"step": 1}), "m-1")
    send(TaskResult(task_id, "PROGRESS", {"step": 2}), "m-2")
    send(TaskResult(task_id, State.STARTED, {"step": 1}), "m-1")  # the broker resends m-1
    send(TaskResult(marker, State.SUCCESS), "m-3")
    client.result(marker).get(timeout=WAIT)
    assert client.get(task_id) == TaskResult(task_id, "PROGRESS", {"step": 2})


def test_two_thousand_results_to_one_client(connect: Any) -> None:
    client, worker = connect(), connect(reply_queue=f"w-{uuid.uuid4().hex[:8]}")
    address = _backend(client).reply_address()
    ids = _ids("many", 2000)
    group = client.group_result(str(uuid.uuid4()), ids)
    sender = threading.Thread(
        target=lambda: [
            worker.store(TaskResult(t, State.SUCCESS, n), reply_to=address)
            for n, t in enumerate(ids)
        ]
    )
    sender.start()
    values = group.get(timeout=WAIT * 2)
    sender.join()
    assert values == list(range(2000))
    assert client.hub.listener_opens == 1, "the shared consumer was reopened"


def test_twenty_clients_in_parallel_each_receive_only_their_own(
    connect: Any, amqp_url: str
) -> None:
    # fork, not spawn: twenty fresh interpreters importing kombu cost tens of
    # seconds on a busy CI machine, and this process holds no reader thread yet.
    context = multiprocessing.get_context("fork")
    addresses, box, go = context.Queue(), context.Queue(), context.Event()
    children = [
        context.Process(target=_clients.own_results, args=(amqp_url, i, addresses, go, box))
        for i in range(_clients.CLIENTS)
    ]
    for child in children:
        child.start()
    try:
        routes = dict(addresses.get(timeout=120) for _ in children)
        assert None not in routes.values(), "a client could not connect"
        worker = connect()
        go.set()
        for n in range(_clients.PER_CLIENT):
            for index, address in routes.items():
                result = TaskResult(f"client{index}-task{n}", State.SUCCESS, [index, n])
                worker.store(result, reply_to=address)
        answers = sorted(box.get(timeout=120) for _ in children)
    finally:
        go.set()
        for child in children:
            child.join(30)
            if child.is_alive():
                child.kill()
    for index, values, held, foreign in answers:
        assert values == [[index, n] for n in range(_clients.PER_CLIENT)], f"client {index}"
        assert held == _clients.PER_CLIENT, f"client {index} holds {held} results"
        assert foreign == []


def test_backlog_bound_stops_taking_messages_with_a_clear_error(connect: Any) -> None:
    client = connect(max_buffered=50)
    worker = connect(reply_queue=f"w-{uuid.uuid4().hex[:8]}")
    address = _backend(client).reply_address()
    ids = _ids("backlog", 120)
    for n, task_id in enumerate(ids):
        worker.store(TaskResult(task_id, State.SUCCESS, n), reply_to=address)
    reader = _backend(client).reader
    deadline = time.monotonic() + WAIT
    while not reader.full and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reader.full
    assert reader.buffered() == (50, 50)
    with pytest.raises(BacklogLimitError, match="max_buffered=50"):
        client.get(ids[-1])
    with pytest.raises(BacklogLimitError, match="max_buffered=50"):
        client.result(ids[-1]).get(timeout=1.0)
    # Reading results frees room; the ones waiting in RabbitMQ then arrive.
    assert client.group_result("g", ids).get(timeout=WAIT) == list(range(120))


def test_results_already_read_make_room_for_new_ones(connect: Any) -> None:
    client = connect(max_buffered=100)
    worker = connect(reply_queue=f"w-{uuid.uuid4().hex[:8]}")
    address = _backend(client).reply_address()
    batches = [_ids(f"batch{b}", 80) for b in range(5)]
    for batch in batches:
        for n, task_id in enumerate(batch):
            worker.store(TaskResult(task_id, State.SUCCESS, n), reply_to=address)
        assert client.group_result("g", batch).get(timeout=WAIT) == list(range(80))
        held, _ = _backend(client).reader.buffered()
        assert held <= 100
    assert client.get(batches[0][0]) is None, "a read result was kept past the bound"
    assert client.get(batches[-1][-1]) == TaskResult(batches[-1][-1], State.SUCCESS, 79)


def test_a_named_persistent_queue_keeps_results_for_a_later_client(
    connect: Any, amqp_url: str
) -> None:
    name = f"kept-{uuid.uuid4().hex[:8]}"
    first = connect(reply_queue=name, persistent=True)
    address = _backend(first).reply_address()
    first.close()
    (task_id,) = _ids("kept", 1)
    connect(reply_queue=f"w-{uuid.uuid4().hex[:8]}").store(
        TaskResult(task_id, State.SUCCESS, "waited in the queue"), reply_to=address
    )
    later = connect(reply_queue=name, persistent=True)
    assert later.result(task_id).get(timeout=WAIT) == "waited in the queue"


def test_queue_expires_with_the_results(connect: Any) -> None:
    name = f"short-{uuid.uuid4().hex[:8]}"
    client = connect(reply_queue=name, expires=1)
    _backend(client).reply_address()
    client.close()
    probe = _backend(connect())
    time.sleep(2.5)
    import amqp  # type: ignore[import-untyped]  # py-amqp ships no type information

    with pytest.raises(amqp.exceptions.NotFound):
        probe._with_channel(lambda channel: channel.queue_declare(queue=name, passive=True))


def test_direct_reply_to(connect: Any) -> None:
    client = connect(direct_reply_to=True)
    worker = connect(reply_queue=f"w-{uuid.uuid4().hex[:8]}")
    address = _backend(client).reply_address()
    assert address.startswith("amq.rabbitmq.reply-to.")
    (task_id,) = _ids("direct", 1)
    worker.store(TaskResult(task_id, State.SUCCESS, "direct"), reply_to=address)
    assert client.result(task_id).get(timeout=WAIT) == "direct"
    with pytest.raises(UnsupportedOperationError, match="direct_reply_to"):
        _backend(client).reply_address("another")


def test_rpc_and_amqps_urls_and_their_defaults() -> None:
    from resultstore import Options
    from resultstore.concepts.urls import parse_url

    def settings(url: str, **options: Any) -> AmqpSettings:
        return AmqpSettings.take_from(parse_url(url), Options(options, source=url), 60.0)

    rpc = settings("rpc://")
    assert (rpc.host, rpc.port, rpc.username, rpc.virtual_host) == ("localhost", 5672, "guest", "/")
    assert (rpc.persistent, rpc.direct_reply_to, rpc.queue_expires) == (False, False, 60.0)
    tls = settings("amqps://u:p%40ss@broker.example/prod")
    assert (tls.port, tls.password, tls.virtual_host, tls.ssl) == (5671, "p@ss", "prod", True)
    assert settings("amqp://h//").virtual_host == "/"
    assert settings("amqp://h/%2F").virtual_host == "/"
    assert settings("amqp://h", queue_expires="none").queue_expires is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prefetch": "-1"}, "prefetch"),
        ({"reply_queue": "amq.mine"}, "reserves"),
        ({"reply_queue": "has space"}, "not a usable queue name"),
        ({"direct_reply_to": "true", "persistent": "true"}, "cannot be combined"),
        ({"heartbeat": "soon"}, "heartbeat"),
    ],
)
def test_bad_options_name_the_problem(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        resultstore.connect("amqp://guest:secret@127.0.0.1:1//", **options)


def test_unknown_option_and_bad_url_errors_hide_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        resultstore.connect("amqp://guest:s3cret@127.0.0.1:1//?prefetsh=5")
    assert "prefetch" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    with pytest.raises(InvalidURLError, match="one broker") as bad:
        resultstore.connect("amqp://guest:s3cret@h1:1,h2:2//")
    assert "s3cret" not in str(bad.value)


def test_an_unreachable_broker_is_a_clear_error_without_the_password() -> None:
    from resultstore import BackendUnavailableError
    from resultstore_contract.servers import LOOPBACK, free_port

    url = f"amqp://guest:s3cret@{LOOPBACK}:{free_port()}//"
    with resultstore.connect(url, connect_timeout=1, retry_total=0.5) as store:
        with pytest.raises(BackendUnavailableError) as caught:
            store.store(TaskResult("t", State.SUCCESS), reply_to="q")
        assert "s3cret" not in str(caught.value)
        with pytest.raises(BackendUnavailableError):
            store.get("t")


def test_the_server_fixture_speaks_amqp(rabbitmq_server: Server) -> None:
    assert rabbitmq_server.url.startswith("amqp://guest:guest@127.0.0.1:")
