"""A store's life and death: every call after ``close()``, and every call to a dead server.

After ``close()``, every call of the closed client raises the documented
:class:`~resultstore.BackendUnavailableError` (waiting raises a
:class:`~resultstore.ResultStoreError`), promptly; closing twice is no
error, and other clients of the same store are untouched.

With the server stopped, every call fails within the caller's bound with
the documented error: a call with a timeout of its own (``get(timeout=)``
on a handle, ``join``, ``aget``) within that timeout, raising
:class:`~resultstore.ResultTimeoutError` or
:class:`~resultstore.BackendUnavailableError`; any other call within the
bound the backend's options set (:class:`~resultstore_contract.support.DeadServer`'s
``within``), raising :class:`~resultstore.BackendUnavailableError`. These
checks need the ``dead_server`` knob (or the ``dead_url`` attribute): a
backend whose tests can stop a server of their own provides it; without
it they are skipped, and the skip says what to provide.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import pytest
from resultstore import (
    AsyncResultStore,
    BackendUnavailableError,
    Capability,
    ResultStore,
    ResultStoreError,
    ResultTimeoutError,
    State,
)
from resultstore.concepts.models import Group, TaskResult, utcnow

from resultstore_contract.support import (
    ContractBase,
    DeadServer,
    IdFactory,
    StoreFactory,
    bounded,
)

__all__ = ["LifecycleContract"]

#: the timeout the dead-server checks give calls that take one.
CALLER_TIMEOUT = 0.5
#: seconds a call may overrun its bound (thread start, scheduling on a busy machine).
SLACK = 1.5
#: how long any call of a closed client may take: it has nothing to wait for.
CLOSED_WITHIN = 5.0

_NO_DEAD_SERVER = (
    "no dead server to test against: give the test class a dead_url (this backend's URL "
    "at a stopped server or a closed port, with options that bound a call, such as a "
    "retry_total), or override the dead_server fixture to return a "
    "resultstore_contract.DeadServer(url, stop=..., options=..., within=...)"
)

Call = Callable[[], Any]


def _calls(store: ResultStore, new_id: IdFactory) -> dict[str, Call]:
    """Every call of the sync API that reaches the backend, by name (those it declares)."""
    task_id, group_id = new_id(), new_id("group")
    result = TaskResult(task_id, State.SUCCESS, 1)
    calls: dict[str, Call] = {
        "get": functools.partial(store.get, task_id),
        "get_many": functools.partial(store.get_many, [task_id, new_id()]),
        "store": functools.partial(store.store, result),
        "store_many": functools.partial(store.store_many, [result]),
        "forget": functools.partial(store.forget, task_id),
    }
    if store.supports(Capability.GROUPS):
        calls["save_group"] = functools.partial(store.save_group, group_id, [task_id])
        calls["get_group"] = functools.partial(store.get_group, group_id)
        calls["delete_group"] = functools.partial(store.delete_group, group_id)
    if store.supports(Capability.CHORDS):
        calls["set_chord_size"] = functools.partial(store.set_chord_size, group_id, 2)
        calls["chord_part_return"] = functools.partial(store.chord_part_return, group_id, 0, result)
        calls["get_chord"] = functools.partial(store.get_chord, group_id)
    if store.supports(Capability.CLEANUP):
        calls["cleanup"] = store.cleanup
    return calls


def _backend_calls(backend: Any, new_id: IdFactory) -> dict[str, Call]:
    """Every call of the backend object itself (kept from before the close), by name."""
    task_id, group_id = new_id(), new_id("group")
    result = TaskResult(task_id, State.SUCCESS, 1)
    declared = backend.capabilities
    calls: dict[str, Call] = {
        "backend.get": functools.partial(backend.get, task_id),
        "backend.store": functools.partial(backend.store, result),
        "backend.forget": functools.partial(backend.forget, task_id),
    }
    if Capability.BULK_GET in declared:
        calls["backend.get_many"] = functools.partial(backend.get_many, [task_id])
    if Capability.BATCH_STORE in declared:
        calls["backend.store_many"] = functools.partial(backend.store_many, [result])
    if Capability.GROUPS in declared:
        group = Group(group_id, (task_id,), utcnow())
        calls["backend.save_group"] = functools.partial(backend.save_group, group)
        calls["backend.get_group"] = functools.partial(backend.get_group, group_id)
        calls["backend.delete_group"] = functools.partial(backend.delete_group, group_id)
    if Capability.CHORDS in declared:
        calls["backend.set_chord_size"] = functools.partial(backend.set_chord_size, group_id, 2)
        calls["backend.chord_part_return"] = functools.partial(
            backend.chord_part_return, group_id, 0, result
        )
        calls["backend.get_chord"] = functools.partial(backend.get_chord, group_id)
    if Capability.CLEANUP in declared:
        calls["backend.cleanup"] = backend.cleanup
    if Capability.PUSH in declared:
        calls["backend.listener"] = backend.listener
    return calls


def _wait_calls(store: ResultStore, new_id: IdFactory, timeout: float) -> dict[str, Call]:
    """Every call that waits with a timeout of the caller's, by name."""
    task_id, other = new_id("never-stored"), new_id("never-stored")

    async def aget() -> Any:
        astore = AsyncResultStore(store)
        try:
            return await astore.result(task_id).aget(timeout=timeout)
        finally:
            # The twin only: the client under test is closed by the check itself.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(astore.backend.close(), timeout + SLACK)

    return {
        "result().get(timeout)": functools.partial(store.result(task_id).get, timeout=timeout),
        "group_result().join(timeout)": functools.partial(
            store.group_result(new_id("group"), [task_id, other]).join, timeout=timeout
        ),
        "result().aget(timeout)": lambda: asyncio.run(aget()),
    }


async def _async_after_close(
    connect: Callable[[], Awaitable[AsyncResultStore]], new_id: IdFactory
) -> list[str]:
    """What went wrong with the asyncio API (and its twin backend) after ``close()``."""
    astore = await connect()
    twin = astore.backend
    result = TaskResult(new_id(), State.SUCCESS, 1)
    await astore.store(result)
    await astore.close()
    await astore.close()
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "aio get": functools.partial(astore.get, result.task_id),
        "aio store": functools.partial(astore.store, result),
        "aio get_many": functools.partial(astore.get_many, [result.task_id]),
        "aio forget": functools.partial(astore.forget, result.task_id),
        "asyncio twin get": functools.partial(twin.get, result.task_id),
        "asyncio twin store": functools.partial(twin.store, result),
    }
    wrong = []
    for name, call in calls.items():
        try:
            value = await asyncio.wait_for(call(), CLOSED_WITHIN)
        except TimeoutError:
            wrong.append(f"{name}: still running after {CLOSED_WITHIN:g} s")
        except BackendUnavailableError:
            continue
        except Exception as exc:
            wrong.append(
                f"{name}: raised {type(exc).__name__}: {exc} (documented: BackendUnavailableError)"
            )
        else:
            wrong.append(f"{name}: returned {value!r} (documented: BackendUnavailableError)")
    return wrong


def _run_all(calls: dict[str, Call], within: float) -> dict[str, tuple[Any, float]]:
    """Run every call at once, each in a thread of its own, each timed on its own.

    Returns what each call returned or raised and how long it took; a call
    still running past ``within`` (and the slack) is missing from the answer.
    """
    box: dict[str, tuple[Any, float]] = {}

    def runner(name: str) -> Callable[[], None]:
        def run() -> None:
            start = time.monotonic()
            try:
                value: Any = calls[name]()
            except BaseException as exc:
                value = exc
            box[name] = (value, time.monotonic() - start)

        return run

    threads = [
        threading.Thread(target=runner(name), daemon=True, name=f"contract-{name}")
        for name in calls
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + within + SLACK + 1.0
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return dict(box)


def _verdicts(
    answers: dict[str, tuple[Any, float]],
    names: list[str],
    within: float,
    allowed: tuple[type[BaseException], ...],
) -> list[str]:
    wrong = []
    for name in names:
        if name not in answers:
            wrong.append(f"{name}: still running after {within + SLACK:g} s")
            continue
        value, took = answers[name]
        if not isinstance(value, allowed):
            what = (
                f"raised {type(value).__name__}: {value}"
                if isinstance(value, BaseException)
                else f"returned {value!r}"
            )
            wrong.append(f"{name}: {what} (documented: {' or '.join(a.__name__ for a in allowed)})")
        elif took > within + SLACK:
            wrong.append(f"{name}: took {took:.2f} s, over its bound of {within:g} s")
    return wrong


class LifecycleContract(ContractBase):
    """Closed clients and dead servers fail every call promptly, with the documented error."""

    def test_lifecycle_every_call_after_close_raises_the_documented_error(
        self,
        connect_store: StoreFactory,
        connect_async_store: Callable[[], Awaitable[AsyncResultStore]],
        new_id: IdFactory,
    ) -> None:
        other = connect_store()
        closing = connect_store()
        kept = TaskResult(new_id(), State.SUCCESS, "kept")
        closing.store(kept)
        backend = closing.backend
        closing.close()
        closing.close()  # closing twice is no error
        backend.close()  # nor is closing the backend again
        # The backend itself, as code that holds it (a task queue's adapter) uses it.
        calls = {**_calls(closing, new_id), **_backend_calls(backend, new_id)}
        answers = _run_all(calls, CLOSED_WITHIN)
        wrong = _verdicts(answers, list(calls), CLOSED_WITHIN, (BackendUnavailableError,))
        waits = _wait_calls(closing, new_id, 10.0)
        waited = _run_all(waits, CLOSED_WITHIN)
        wrong += _verdicts(waited, list(waits), CLOSED_WITHIN, (ResultStoreError,))
        wrong += [
            f"{name}: a wait on a closed client timed out instead of saying it is closed"
            for name, (value, _) in waited.items()
            if isinstance(value, ResultTimeoutError)
        ]
        wrong += asyncio.run(_async_after_close(connect_async_store, new_id))
        assert not wrong, "after close():\n  " + "\n  ".join(wrong)
        assert other.get(kept.task_id) == kept, "closing one client broke another"

    def test_lifecycle_dead_server_fails_every_call_within_its_bound(
        self,
        dead_server: DeadServer | None,
        store_options: Mapping[str, Any],
        store_plugins: Sequence[object],
        new_id: IdFactory,
    ) -> None:
        if dead_server is None:
            pytest.skip(_NO_DEAD_SERVER)
        import resultstore

        opened: list[ResultStore] = []

        def connect(**extra: Any) -> ResultStore:
            client = resultstore.connect(
                dead_server.url, plugins=store_plugins, **{**store_options, **extra}
            )
            opened.append(client)
            return client

        # Plain calls go through clients with the bounding options; waits also through
        # one with the backend's defaults (a long retry_total): the caller's timeout
        # bounds a wait, whatever the backend's own retrying would allow.
        plain: dict[str, ResultStore] = {}
        waiting: dict[str, ResultStore] = {}
        try:
            if dead_server.stop is not None:
                plain["connected before the stop"] = connect(**dead_server.options)
                waiting["connected before the stop, default options"] = connect()
                for client in (*plain.values(), *waiting.values()):
                    written = TaskResult(new_id(), State.SUCCESS, "before")
                    client.store(written)
                    assert client.get(written.task_id) == written
                dead_server.stop()
            wrong: list[str] = []
            connected, took = bounded(
                functools.partial(connect, **dead_server.options),
                dead_server.within + SLACK,
                "connect()",
            )
            if not isinstance(connected, BaseException):
                plain["connected after the stop"] = connected
                waiting["connected after the stop"] = connected
            elif not isinstance(connected, BackendUnavailableError):
                wrong.append(f"connect(): raised {type(connected).__name__}: {connected}")
            elif took > dead_server.within + SLACK:
                wrong.append(f"connect(): took {took:.2f} s")
            for label, client in plain.items():
                wrong += [f"{label}: {line}" for line in _dead_calls(client, new_id, dead_server)]
            for label, client in waiting.items():
                wrong += [f"{label}: {line}" for line in _dead_waits(client, new_id)]
            wrong += _close_all(opened, dead_server.within)
            assert not wrong, (
                f"with the server stopped ({dead_server.url}, bound {dead_server.within:g} s, "
                f"caller timeout {CALLER_TIMEOUT:g} s):\n  " + "\n  ".join(wrong)
            )
        finally:
            _close_all(opened, dead_server.within)


def _dead_calls(client: ResultStore, new_id: IdFactory, dead: DeadServer) -> list[str]:
    """What went wrong with every plain call of ``client`` against the dead server."""
    calls = _calls(client, new_id)
    return _verdicts(
        _run_all(calls, dead.within), list(calls), dead.within, (BackendUnavailableError,)
    )


def _dead_waits(client: ResultStore, new_id: IdFactory) -> list[str]:
    """What went wrong with every wait of ``client`` (with a timeout) against the dead server."""
    waits = _wait_calls(client, new_id, CALLER_TIMEOUT)
    return _verdicts(
        _run_all(waits, CALLER_TIMEOUT),
        list(waits),
        CALLER_TIMEOUT,
        (ResultTimeoutError, BackendUnavailableError),
    )


def _close_all(opened: list[ResultStore], within: float) -> list[str]:
    """Close every client (each bounded); what went wrong."""
    wrong = []
    while opened:
        try:
            closed, took = bounded(opened.pop().close, within + SLACK, "close()")
        except AssertionError as exc:  # still running: left behind in its thread
            wrong.append(str(exc))
            continue
        if isinstance(closed, BaseException) and not isinstance(closed, ResultStoreError):
            wrong.append(f"close(): raised {type(closed).__name__}: {closed}")
        if took > within + SLACK:
            wrong.append(f"close(): took {took:.2f} s, over its bound of {within:g} s")
    return wrong
