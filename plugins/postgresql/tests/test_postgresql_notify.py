"""What announcements carry: ids always, small ready results only with ``notify_results``."""

from __future__ import annotations

import base64
import threading
import uuid
from typing import Any

import psycopg
import pytest
import resultstore
from resultstore import ResultStore, ResultTimeoutError, State, TaskResult
from resultstore_contract.servers import Server
from resultstore_contract.support import wait_until


def _connect(server: Server, **options: Any) -> ResultStore:
    return resultstore.connect(server.url, table_prefix=f"n{uuid.uuid4().hex[:10]}_", **options)


def _heard(store: ResultStore, task_id: str, send: Any) -> list[object]:
    """Wait on ``task_id`` in a thread, call ``send()`` once it is watched, return what came."""
    got: list[object] = []

    def waiter() -> None:
        try:
            got.append(store.result(task_id).get(timeout=3))
        except ResultTimeoutError as exc:
            got.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    wait_until(lambda: task_id in store.hub.watched_ids(), "the waiter to be watched")
    assert store.hub.flush(10)
    send()
    thread.join(10)
    return got


def _forge(server: Server, store: ResultStore, task_id: str, value: object) -> None:
    """A NOTIFY that no store sent, carrying a well-formed result for ``task_id``."""
    backend: Any = store.backend
    payload = base64.b64encode(backend.encode(TaskResult(task_id, State.SUCCESS, value)))
    with psycopg.connect(server.url, autocommit=True) as conn:
        text = f"{task_id}\n{payload.decode()}"
        conn.execute("SELECT pg_notify(%s, %s)", (backend.tables.channel, text))


def test_a_forged_announcement_only_wakes_by_default(postgresql_server: Server) -> None:
    with _connect(postgresql_server) as store:
        got = _heard(store, "t", lambda: _forge(postgresql_server, store, "t", "forged"))
    # Woken, it read the store, found nothing, and kept waiting until its timeout.
    assert len(got) == 1
    assert isinstance(got[0], ResultTimeoutError)


def test_with_notify_results_the_announced_result_is_taken_as_it_came(
    postgresql_server: Server,
) -> None:
    with _connect(postgresql_server, notify_results=True) as store:
        got = _heard(store, "t", lambda: _forge(postgresql_server, store, "t", "forged"))
        # Carried results are taken only for the id they name themselves.
        other = _heard(store, "u", lambda: _forge(postgresql_server, store, "x", "other"))
    assert got == ["forged"]
    assert len(other) == 1
    assert isinstance(other[0], ResultTimeoutError)


@pytest.mark.parametrize("size", [10, 20_000])
def test_stores_announce_small_results_with_their_payload(
    postgresql_server: Server, size: int
) -> None:
    with (
        _connect(postgresql_server, notify_results=True) as store,
        psycopg.connect(postgresql_server.url, autocommit=True) as listener,
    ):
        backend: Any = store.backend
        listener.execute(f'LISTEN "{backend.tables.channel}"')
        value = "x" * size
        got = _heard(store, "t", lambda: store.mark_as_done("t", value))
        store.mark_as_started("s")
        notes = [n.payload for n in listener.notifies(timeout=1.0, stop_after=2)]
    assert got == [value]
    by_id = dict(note.partition("\n")[::2] for note in notes)
    assert by_id["s"] == "", "an unready state is announced by its id alone"
    if size > 5000:
        assert by_id["t"] == "", "a result too large for NOTIFY is announced by its id alone"
    else:
        carried = backend.decode(base64.b64decode(by_id["t"]))
        assert carried == TaskResult("t", State.SUCCESS, value, date_done=carried.date_done)
