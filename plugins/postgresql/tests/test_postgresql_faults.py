"""Faults on a real PostgreSQL: a restart under waiters, processes racing chords, fork."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
import uuid

import resultstore
from resultstore_contract.servers import Server, start_postgresql_node
from resultstore_contract.support import wait_until

from tests._chord_worker import send_parts


def _isolated(url: str) -> str:
    return f"{url}?table_prefix=f{uuid.uuid4().hex[:10]}_"


def test_server_restart_under_200_waiters() -> None:
    """200 waiters and a writer survive a stop and restart of the server.

    PostgreSQL keeps what it committed, so every result is delivered: the
    writer's calls retry through the outage, and the one shared listener
    reconnects and re-reads the subscribed ids (announcements made while it
    was away are lost, the rows are not).
    """
    ids = [f"w{i}" for i in range(200)]
    with start_postgresql_node() as node:
        store = resultstore.connect(_isolated(node.url), retry_total=30)
        results: dict[str, object] = {}
        errors: dict[str, BaseException] = {}

        async def wait_all() -> None:
            async def one(task_id: str) -> None:
                try:
                    results[task_id] = await store.result(task_id).aget(timeout=60)
                except Exception as exc:  # every failure is checked below
                    errors[task_id] = exc

            await asyncio.gather(*(one(t) for t in ids))

        try:
            store.mark_as_done("warm-up", 0)  # tables exist before the waiters read them
            waiters = threading.Thread(target=lambda: asyncio.run(wait_all()))
            waiters.start()
            wait_until(lambda: store.hub.watched == len(ids), "every waiter to be watched")

            for n, task_id in enumerate(ids[:80]):
                store.mark_as_done(task_id, n)
            node.stop()

            def writer() -> None:
                for n, task_id in enumerate(ids[80:], start=80):
                    store.mark_as_done(task_id, n)

            write = threading.Thread(target=writer)
            write.start()
            time.sleep(1.0)
            # From this thread: the server dies with the thread that started it
            # (the fixture's parent-death signal), so not from a short-lived one.
            node.start()
            write.join(90)
            waiters.join(90)
            assert not write.is_alive()
            assert not waiters.is_alive()
            assert errors == {}
            assert results == {t: n for n, t in enumerate(ids)}
            # One listener for 200 waiters (it reconnects by itself), never one per waiter.
            assert 1 <= store.hub.listener_opens <= 20
        finally:
            store.close()


def test_eight_processes_race_one_chord_with_duplicates(postgresql_server: Server) -> None:
    """Eight spawned processes each send every part twice: one completion, in header order."""
    url = _isolated(postgresql_server.url)
    size = 60
    with resultstore.connect(url) as store:
        store.set_chord_size("race", size)
    context = multiprocessing.get_context("spawn")
    with context.Pool(8) as pool:
        seen = pool.starmap(send_parts, [(url, "race", size, seed) for seed in range(8)])
    completions = [header for per_process in seen for header in per_process]
    assert completions == [list(range(size))]
    with resultstore.connect(url) as store:
        chord = store.get_chord("race")
        assert chord is not None
        assert chord.received == frozenset(range(size))
        assert chord.completed


def test_the_pool_survives_fork(postgresql_server: Server) -> None:
    """A forked child opens its own pool; the parent's connections stay usable."""
    with resultstore.connect(_isolated(postgresql_server.url)) as store:
        store.mark_as_done("before", 1)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                before = store.get("before")
                ok = before is not None and before.result == 1
                store.mark_as_done("child", 2)
                code = 0 if ok else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The parent's pool still works, and sees what the child wrote.
        child = store.get("child")
        assert child is not None
        assert child.result == 2
        store.mark_as_done("after", 3)
        assert store.result("after").get(timeout=5) == 3
