"""The Celery app of the workflow tests: the worker subprocess runs it, the tests send from it.

``make_app()`` builds an app with every test task; the module-level ``app``
(what ``celery -A bridge_app worker`` loads) is configured from the
environment: ``BRIDGE_BROKER`` (a Redis URL), ``BRIDGE_BACKEND``
(``resultstore+...``) and ``BRIDGE_ACKS_LATE`` (``1`` for redelivery tests).
Tasks that record having run append a line to a file under ``BRIDGE_LOG_DIR``.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from billiard.exceptions import RestartFreqExceeded  # type: ignore[import-untyped]  # untyped
from celery import Celery, Signature  # type: ignore[import-untyped]  # celery ships no type information
from celery.exceptions import (  # type: ignore[import-untyped]  # untyped
    ImproperlyConfigured,
    QueueNotFound,
)


class AllowedError(Exception):
    """Allow-listed in the strict app's configuration: comes back as itself in both modes."""


class StrangeError(Exception):
    """Not allow-listed: itself by default (its module is imported), a RemoteError when strict."""


def _private(message: str) -> Exception:
    # A class from a module the tests never import: only the worker has it.
    import bridge_private  # imported in the worker only, on purpose

    return bridge_private.PrivateError(message, 3)


_ERRORS: dict[str, Any] = {
    "value": ValueError,
    "allowed": AllowedError,
    "strange": StrangeError,
    "private": _private,
    "improperly": ImproperlyConfigured,
    "queue": QueueNotFound,
    "restarts": RestartFreqExceeded,
}


def log_line(name: str, line: str) -> None:
    """Append ``line`` to the file ``name`` in ``$BRIDGE_LOG_DIR``."""
    folder = os.environ["BRIDGE_LOG_DIR"]
    with (Path(folder) / name).open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def make_app(broker: str, backend: str, *, acks_late: bool = False, strict: bool = False) -> Any:
    """A Celery app with the test tasks, its results stored through ``backend``.

    ``strict`` sets ``resultstore_allowed_exceptions`` (to AllowedError):
    only listed, built-in and Celery's exception classes are rebuilt.
    """
    app = Celery("bridge_app")
    app.conf.update(
        broker_url=broker,
        result_backend=backend,
        result_extended=True,
        task_acks_late=acks_late,
        worker_prefetch_multiplier=1 if acks_late else 4,
        broker_transport_options={
            # Unacknowledged messages of a killed worker come back this soon,
            # even if it died holding the restore mutex (300 s by default).
            "visibility_timeout": 2,
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
            "unacked_mutex_expire": 3,
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    if strict:
        app.conf.resultstore_allowed_exceptions = ["bridge_app.AllowedError"]

    @app.task(shared=False, name="bridge.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(shared=False, name="bridge.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task(shared=False, name="bridge.echo")
    def echo(values: Any) -> Any:
        """A chord body that returns what it got, to show the values' nesting."""
        return values

    @app.task(shared=False, name="bridge.tsum_logged")
    def tsum_logged(values: list[int], log: str) -> int:
        """A chord body that records each run, so tests can count them."""
        log_line(log, f"{len(values)} {sum(values)}")
        return sum(values)

    @app.task(shared=False, name="bridge.slow_add", bind=True)
    def slow_add(self: Any, x: int, y: int, seconds: float, log: str | None = None) -> int:
        """Sleeps ``seconds``; with ``log``, records its id first (each run, reruns too)."""
        if log is not None:
            log_line(log, str(self.request.id))
        time.sleep(seconds)
        return x + y

    @app.task(shared=False, name="bridge.fail")
    def fail(message: str, kind: str = "value", delay: float = 0.0) -> None:
        time.sleep(delay)
        raise _ERRORS[kind](message)

    @app.task(shared=False, name="bridge.grow", bind=True)
    def grow(self: Any, base: int) -> int:
        """A chord header part that adds two tasks to its own chord (``base + 1``, ``base + 2``)."""
        self.add_to_chord(add.s(base, 1))
        self.add_to_chord(slow_add.s(base, 2, 0.2))
        return 0

    @app.task(shared=False, name="bridge.record_error")
    def record_error(request: Any, exc: BaseException, traceback: str, log: str) -> None:
        """A new-style errback: Celery calls it with the failed request."""
        log_line(log, f"{request.id} {type(exc).__name__} {exc}")

    @app.task(shared=False, name="bridge.flaky", bind=True, max_retries=3, default_retry_delay=0)
    def flaky(self: Any, succeed_on: int) -> int:
        if self.request.retries < succeed_on:
            raise self.retry(exc=ValueError(f"attempt {self.request.retries}"), countdown=0)
        return int(self.request.retries)

    @app.task(shared=False, name="bridge.progress", bind=True, track_started=True)
    def progress(self: Any, total: int, gate: str) -> int:
        """Reports PROGRESS, then waits (at most 30 s) for the file ``gate`` to exist."""
        self.update_state(state="PROGRESS", meta={"done": total - 1, "total": total})
        deadline = time.monotonic() + 30
        while not Path(gate).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return total

    @app.task(shared=False, name="bridge.ignored", ignore_result=True)
    def ignored(log: str) -> int:
        log_line(log, "ran")
        return 42

    @app.task(shared=False, name="bridge.spawn")
    def spawn(n: int) -> list[str]:
        """Starts ``n`` children, which Celery stores as the task's children."""
        return [add.delay(i, i).id for i in range(n)]

    return app


def die_before_sending_bodies(marker: Path) -> None:
    """Fault injection: the first chord body this process sends kills it (SIGKILL) instead.

    Only when ``marker`` does not exist yet (it is created first), so the
    process dies exactly once: after the store recorded the chord's last
    part, before the body reaches the broker.
    """
    original = Signature.delay

    def delay(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.task in ("bridge.tsum_logged",) and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args, **kwargs)

    Signature.delay = delay


app = make_app(
    os.environ.get("BRIDGE_BROKER", "memory://"),
    os.environ.get("BRIDGE_BACKEND", "resultstore+memory://"),
    acks_late=os.environ.get("BRIDGE_ACKS_LATE") == "1",
)
if os.environ.get("BRIDGE_CHORD_BODY_LEASE"):
    app.conf.resultstore_chord_body_lease = float(os.environ["BRIDGE_CHORD_BODY_LEASE"])
if os.environ.get("BRIDGE_DIE_BEFORE_BODY"):
    die_before_sending_bodies(Path(os.environ["BRIDGE_DIE_BEFORE_BODY"]))
