"""Refused stores are invisible: a store that ready-is-final refused changes nothing anyone sees.

Not the result a reader gets (every field, through ``get``, ``get_many``, a
second client, a result handle), not what a waiter wakes with, not what a
push listener announces: a backend that publishes "stored" before (or
regardless of) the atomic check, or carries the offered result in its
announcement, lets waiters see a value the store refused. The waiter checks
run on every backend; the listener check on those that declare PUSH.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Mapping, Sequence
from typing import Any, cast

from resultstore import (
    Capability,
    ExceptionInfo,
    ResultStore,
    State,
    StoreOutcome,
    SupportsCarriedResults,
    SupportsPush,
    TaskResult,
    connect_async,
)

from resultstore_contract.support import (
    ContractBase,
    IdFactory,
    StoreFactory,
    requires,
    wait_until,
)

__all__ = ["RefusalContract"]

#: generous bound on any wait that should end promptly.
WAIT = 30.0


def _kept(task_id: str) -> TaskResult:
    return TaskResult(
        task_id,
        State.SUCCESS,
        {"kept": True},
        date_done=dt.datetime(2024, 6, 1, 8, 0, 0, 250000, tzinfo=dt.UTC),
        children=("kept-child",),
        name="app.kept",
        args=(1,),
        kwargs={"k": "kept"},
        worker="kept@host",
        retries=1,
    )


def _refused(task_id: str) -> list[TaskResult]:
    """Later stores that ready-is-final refuses, every one different in every field."""
    error = ExceptionInfo("RuntimeError", "builtins", ("refused",), "refused")
    return [
        TaskResult(task_id, State.SUCCESS, {"refused": "success"}, name="app.refused"),
        TaskResult(task_id, State.FAILURE, exception=error, traceback="refused", retries=9),
        TaskResult(task_id, State.STARTED, {"refused": "started"}, worker="refused@host"),
        TaskResult(task_id, "PROGRESS", {"refused": "progress"}, children=("refused",)),
        TaskResult(task_id, State.REVOKED, exception=error),
    ]


def _refuse_all(store: ResultStore, offers: Sequence[TaskResult]) -> None:
    """Offer each refused store: one by one, then as one batch; each must be refused."""
    outcomes = [store.store(offer) for offer in offers[:3]]
    outcomes += store.store_many(list(offers[3:]))
    for offer, outcome in zip(offers, outcomes, strict=True):
        assert outcome == StoreOutcome(False, State.SUCCESS, State.SUCCESS), (
            f"storing {offer.state} over SUCCESS gave {outcome}; it must be refused"
        )


def _wait_in_thread(store: ResultStore, task_id: str) -> tuple[threading.Thread, list[Any]]:
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(store.result(task_id).get(timeout=WAIT))
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


class RefusalContract(ContractBase):
    """A refused store leaves readers, waiters and announcements exactly as they were."""

    def test_refused_stores_change_nothing_readers_see(
        self,
        *,
        store: ResultStore,
        connect_store: StoreFactory,
        resultstore_url: str,
        store_options: Mapping[str, Any],
        store_plugins: Sequence[object],
        new_id: IdFactory,
    ) -> None:
        task_id = new_id()
        kept = _kept(task_id)
        store.store(kept)
        handle = store.result(task_id)
        assert handle.get(timeout=WAIT) == {"kept": True}
        _refuse_all(connect_store(), _refused(task_id))

        async def refuse_async() -> StoreOutcome:
            astore = await connect_async(resultstore_url, plugins=store_plugins, **store_options)
            async with astore:
                return await astore.store(TaskResult(task_id, State.FAILURE))

        assert not asyncio.run(refuse_async()).stored
        reader = connect_store()
        assert store.get(task_id) == kept
        assert reader.get(task_id) == kept, "a refused store changed what another client reads"
        assert reader.get_many([task_id]) == {task_id: kept}
        fresh = reader.result(task_id)
        assert (fresh.state, fresh.get(timeout=WAIT)) == (State.SUCCESS, {"kept": True})
        assert (handle.state, handle.get(timeout=WAIT)) == (State.SUCCESS, {"kept": True})

    def test_refused_stores_are_invisible_to_waiters(
        self, store: ResultStore, connect_store: StoreFactory, new_id: IdFactory
    ) -> None:
        writer = connect_store()
        task_ids = [new_id() for _ in range(4)]
        for task_id in task_ids:
            writer.store(TaskResult(task_id, State.STARTED))
        waiters = [_wait_in_thread(store, task_id) for task_id in task_ids]
        hub = store.hub
        wait_until(lambda: set(task_ids) <= hub.watched_ids(), "the waiters to register")
        assert hub.flush(timeout=WAIT), "the waiting hub did not apply the new waiters"
        for task_id in task_ids:
            # The refused stores follow the one that won at once, before a waiter could read.
            writer.store(_kept(task_id))
            _refuse_all(writer, _refused(task_id))
        for (thread, box), task_id in zip(waiters, task_ids, strict=True):
            thread.join(WAIT * 2)
            assert box == [{"kept": True}], (
                f"a waiter on {task_id!r} woke with {box!r}: it saw a store that was refused"
            )
        late = [_wait_in_thread(connect_store(), task_id) for task_id in task_ids]
        for thread, box in late:
            thread.join(WAIT * 2)
            assert box == [{"kept": True}]

    @requires(Capability.PUSH)
    def test_refused_stores_are_not_announced_with_their_value(
        self, store: ResultStore, connect_store: StoreFactory, new_id: IdFactory
    ) -> None:
        writer = connect_store()
        task_id, marker = new_id(), new_id("marker")
        listener = cast(SupportsPush, store.backend).listener()
        carried: list[TaskResult] = []
        heard: list[str] = []

        def listen() -> bool:
            heard.extend(listener.wait(0.05))
            if isinstance(listener, SupportsCarriedResults):
                carried.extend(listener.take_carried().values())
            return marker in heard

        try:
            listener.subscribe([task_id, marker])
            writer.store(TaskResult(task_id, State.STARTED))
            writer.store(_kept(task_id))
            _refuse_all(writer, _refused(task_id))
            writer.store(TaskResult(marker, State.SUCCESS))
            wait_until(listen, f"the listener to announce {marker!r}")
        finally:
            listener.close()
        assert task_id in heard, "the listener never announced the store that won"
        seen = [r for r in carried if r.task_id == task_id and r.state != State.STARTED]
        wrong = [r for r in seen if r != _kept(task_id)]
        assert not wrong, f"an announcement carried {wrong[0]!r}, a store that was refused"
