"""Redis behind Sentinel: one master, one replica, three sentinels, a forced failover."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import resultstore
from resultstore_contract.servers import (
    LOOPBACK,
    ServerProcess,
    free_port,
    redis_command,
    start_redis,
)

MASTER = "resultstore"


def _master_of(sentinel_port: int) -> tuple[str, int]:
    reply = redis_command((LOOPBACK, sentinel_port), "SENTINEL", "get-master-addr-by-name", MASTER)
    assert isinstance(reply, list)
    return reply[0].decode(), int(reply[1])


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[tuple[str, list[int], int]]:
    """(URL, sentinel ports, first master port) of a fresh master/replica/3-sentinel setup."""
    with contextlib.ExitStack() as stack:
        master = stack.enter_context(start_redis(tmp_path / "master"))
        replica = stack.enter_context(
            start_redis(tmp_path / "replica", args=["--replicaof", LOOPBACK, str(master.port)])
        )
        ports = [free_port() for _ in range(3)]
        processes = []
        for index, port in enumerate(ports):
            folder = tmp_path / f"sentinel{index}"
            folder.mkdir()
            config = folder / "sentinel.conf"
            config.write_text(
                f"bind {LOOPBACK}\nport {port}\nprotected-mode no\ndir {folder}\n"
                f"sentinel monitor {MASTER} {LOOPBACK} {master.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 5000\n"
            )
            processes.append(
                stack.enter_context(
                    ServerProcess(
                        f"sentinel{index}", ["redis-sentinel", str(config)], workdir=folder
                    )
                )
            )
        for process, port in zip(processes, ports, strict=True):
            process.wait_ready(lambda port=port: _master_of(port)[1] == master.port, 20)

        def replica_known() -> bool:
            reply = redis_command((LOOPBACK, ports[0]), "SENTINEL", "replicas", MASTER)
            return isinstance(reply, list) and len(reply) == 1

        processes[0].wait_ready(replica_known, 30)
        hosts = ",".join(f"{LOOPBACK}:{p}" for p in ports)
        assert replica.port != master.port
        yield f"redis+sentinel://{hosts}/{MASTER}/0", ports, master.port


def test_writes_and_reads_go_on_through_a_forced_failover(
    sentinels: tuple[str, list[int], int],
) -> None:
    url, ports, first_master = sentinels
    prefix = f"s{uuid.uuid4().hex[:8]}:"
    ids = [f"f{i}" for i in range(400)]
    outcomes: dict[str, bool] = {}
    failed_over = threading.Event()
    with resultstore.connect(url, key_prefix=prefix, retry_total=30) as store:

        def writer() -> None:
            for n, task_id in enumerate(ids):
                if n == 100:
                    reply = redis_command((LOOPBACK, ports[0]), "SENTINEL", "failover", MASTER)
                    assert reply == b"+OK"
                    failed_over.set()
                outcomes[task_id] = store.mark_as_done(task_id, n).stored
                time.sleep(0.005)

        thread = threading.Thread(target=writer)
        thread.start()
        thread.join(120)
        assert not thread.is_alive()
        assert failed_over.is_set()
        assert all(outcomes[t] for t in ids)
        new_master = _master_of(ports[0])
        assert new_master[1] != first_master
        # Written after the failover, on the promoted replica: all there.
        got = store.get_many(ids[150:])
        assert all(got[t] is not None for t in ids[150:])
        assert [got[t].result for t in ids[150:]] == list(range(150, 400))  # type: ignore[union-attr]
        # The ready-state rule holds on the new master too.
        assert not store.mark_as_started(ids[-1]).stored
