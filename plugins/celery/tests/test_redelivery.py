"""Workers killed in the middle of a chord, with acks_late: the chord still completes once."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import bridge_app
import pytest
import resultstore
from celery import chord  # type: ignore[import-untyped]  # untyped
from conftest import STORES, backend_url, start_worker, store_servers
from resultstore_contract.servers import Server, ServerProcess

PARTS = 40


def test_worker_killed_mid_chord_completes_it_once(redis_server: Server, tmp_path: Path) -> None:
    prefix = f"kill{uuid.uuid4().hex[:8]}:"
    backend = f"resultstore+{redis_server.url}?key_prefix={prefix}"
    broker = f"redis://{redis_server.host}:{redis_server.port}/4"
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    app = bridge_app.make_app(broker, backend, acks_late=True)
    store = resultstore.connect(redis_server.url, key_prefix=prefix)
    runs, bodies = "runs.log", "bodies.log"

    def lines(name: str) -> list[str]:
        path = log_dir / name
        return path.read_text().splitlines() if path.exists() else []

    def start(name: str) -> ServerProcess:
        return start_worker(
            tmp_path / name,
            name,
            broker=broker,
            backend=backend,
            log_dir=log_dir,
            acks_late=True,
        )

    first = start("first")
    second = None
    try:
        slow_add, body = app.tasks["bridge.slow_add"], app.tasks["bridge.tsum_logged"]
        header = [slow_add.s(i, 0, 0.2, log=runs) for i in range(PARTS)]
        result = chord(header, body.s(log=bodies)).apply_async()
        group_id = result.parent.id

        deadline = time.monotonic() + 60
        while (progress := store.get_chord(group_id)) is None or len(progress.received) < 8:
            assert time.monotonic() < deadline, "the first worker recorded too few parts"
            time.sleep(0.02)
        # SIGKILL: no warm shutdown, the running and prefetched tasks stay unacknowledged.
        os.killpg(first.pid, signal.SIGKILL)
        first.stop()
        killed_at = store.get_chord(group_id)
        assert killed_at is not None
        assert len(killed_at.received) < PARTS, "the chord finished before the kill"

        second = start("second")
        assert result.get(timeout=90) == sum(range(PARTS))
        # Tasks running at the kill were redelivered and ran again ...
        assert sorted(set(lines(runs))) == sorted(r.id for r in result.parent.results)
        assert len(lines(runs)) > PARTS
        # ... yet the body ran exactly once, with every part's value.
        assert lines(bodies) == [f"{PARTS} {sum(range(PARTS))}"]
        final = store.get_chord(group_id)
        assert final is not None
        assert final.completed
        assert final.received == frozenset(range(PARTS))
    finally:
        if second is not None:
            second.stop()
        first.stop()
        app.backend.close()
        store.close()


@pytest.mark.parametrize("store", STORES)
def test_body_lost_with_its_worker_is_sent_by_the_redelivered_part(
    store: str, request: pytest.FixtureRequest, redis_server: Server, tmp_path: Path
) -> None:
    servers = {"redis": redis_server, **store_servers(request, [store])}
    backend = backend_url(store, tmp_path, servers)
    broker = f"redis://{redis_server.host}:{redis_server.port}/{5 + STORES.index(store)}"
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    died = tmp_path / "died"
    app = bridge_app.make_app(broker, backend, acks_late=True)
    bodies = "bodies.log"

    def start(name: str, **env: str) -> ServerProcess:
        return start_worker(
            tmp_path / name,
            name,
            broker=broker,
            backend=backend,
            log_dir=log_dir,
            acks_late=True,
            extra_env={"BRIDGE_CHORD_BODY_LEASE": "2", **env},
        )

    # The first worker records the chord's last part, then dies (SIGKILL)
    # just before sending the body: the part's message stays unacknowledged.
    first = start("first", BRIDGE_DIE_BEFORE_BODY=str(died))
    second = None
    try:
        add, body = app.tasks["bridge.add"], app.tasks["bridge.tsum_logged"]
        result = chord([add.s(i, 0) for i in range(PARTS)], body.s(log=bodies)).apply_async()
        deadline = time.monotonic() + 60
        while not (died.exists() and not first.running()):
            assert time.monotonic() < deadline, "the first worker never reached the body"
            time.sleep(0.05)
        first.stop()
        assert not (log_dir / bodies).exists()
        # The redelivered last part finds the chord complete with its body
        # unsent, and sends it once the completing worker's lease is over.
        second = start("second")
        assert result.get(timeout=60) == sum(range(PARTS))
        assert (log_dir / bodies).read_text().splitlines() == [f"{PARTS} {sum(range(PARTS))}"]
    finally:
        if second is not None:
            second.stop()
        first.stop()
        app.backend.close()
