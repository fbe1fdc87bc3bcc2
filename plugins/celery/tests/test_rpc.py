"""``result_backend = "resultstore+rpc://"``: results as messages to the caller, on RabbitMQ.

A real worker on a RabbitMQ broker stores each result with the request's
``reply_to``; the client's bridge declared and consumes that queue before
sending (``on_task_call``). Tasks, groups joined by the caller and failures
come back; chords are refused, as the backend declares no CHORDS.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bridge_app
import pytest
from celery import chord, group  # type: ignore[import-untyped]  # untyped
from conftest import TESTS, start_worker
from resultstore import ConfigurationError
from resultstore_celery.settings import settings_from
from resultstore_contract.servers import Server

TIMEOUT = 60
BACKEND = "resultstore+rpc://"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("resultstore_amqp") is None,
    reason="resultstore+rpc:// needs resultstore-amqp (nox installs it: test-with)",
)


@pytest.fixture(scope="module")
def rpc_app(rabbitmq_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = Path(tmp_path_factory.mktemp("bridge-rpc"))
    log_dir = tmp / "logs"
    log_dir.mkdir()
    broker = rabbitmq_server.url
    worker = start_worker(tmp, "rpc", broker=broker, backend=BACKEND, log_dir=log_dir)
    app = bridge_app.make_app(broker, BACKEND)
    try:
        yield app
    finally:
        app.backend.close()
        worker.stop()


def test_rpc_means_the_rabbitmq_broker() -> None:
    conf = {"broker_url": "amqp://u:pw@rabbit.example:5672/jobs"}
    made = settings_from("rpc://?persistent=true", conf, expires=None, serializer="json", accept=[])
    assert made.url == "rpc://u:pw@rabbit.example:5672/jobs?persistent=true"
    with pytest.raises(ConfigurationError, match="not RabbitMQ") as caught:
        settings_from(
            "rpc://",
            {"broker_url": "redis://:pw@h:6379/0"},
            expires=None,
            serializer="json",
            accept=[],
        )
    assert "pw" not in str(caught.value)


def test_rpc_task_result_and_failure(rpc_app: Any) -> None:
    result = rpc_app.tasks["bridge.add"].delay(2, 3)
    assert result.get(timeout=TIMEOUT) == 5
    assert result.state == "SUCCESS"
    assert result.name == "bridge.add"
    failed = rpc_app.tasks["bridge.fail"].delay("boom")
    with pytest.raises(ValueError, match="boom"):
        failed.get(timeout=TIMEOUT)
    assert failed.state == "FAILURE"
    assert "ValueError: boom" in failed.traceback


def test_rpc_group_joined_by_the_caller(rpc_app: Any) -> None:
    add, fail = rpc_app.tasks["bridge.add"], rpc_app.tasks["bridge.fail"]
    joined = group(add.s(i, i) for i in range(200)).apply_async()
    assert joined.get(timeout=TIMEOUT) == [2 * i for i in range(200)]
    mixed = group([add.s(1, 1), fail.s("in group"), add.s(2, 2)]).apply_async()
    values = mixed.join_native(timeout=TIMEOUT, propagate=False)
    assert values[0] == 2
    assert values[2] == 4
    assert isinstance(values[1], ValueError)


def test_rpc_results_reach_only_the_caller(rpc_app: Any, rabbitmq_server: Server) -> None:
    result = rpc_app.tasks["bridge.add"].delay(20, 22)
    assert result.get(timeout=TIMEOUT) == 42
    # Another process, with the same settings, never sees the caller's result.
    probe = (
        "import sys, bridge_app; "
        "app = bridge_app.make_app(sys.argv[1], sys.argv[2]); "
        "print(app.AsyncResult(sys.argv[3]).state); app.backend.close()"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    argv = [sys.executable, "-c", probe, rabbitmq_server.url, BACKEND, result.id]
    seen = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=True)
    assert seen.stdout.strip() == "PENDING"


def test_rpc_chords_are_refused(rpc_app: Any) -> None:
    add, tsum = rpc_app.tasks["bridge.add"], rpc_app.tasks["bridge.tsum"]
    with pytest.raises(NotImplementedError, match="cannot run chords"):
        chord([add.s(1, 1), add.s(2, 2)])(tsum.s())
