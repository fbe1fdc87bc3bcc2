"""Celery 5.7 as the contender every backend's bench measures against.

:class:`CeleryCases` builds an app whose result backend is the peer users
would pick instead of ours, and times the same cases on it as
:class:`_cases.OurCases` does on resultstore: a store, a ready get, a batch
stored one by one (Celery has no batch store), a join, and the chord paths
Celery's backends take (a counter, ``incr`` on a key/value store, or
``chord_unlock``'s polling where the backend has no native chords).
"""

from __future__ import annotations

import uuid
from typing import Any

from _cases import PAYLOAD, ids, per_second, timed
from celery import Celery
from celery.app.task import Context
from celery.result import AsyncResult, GroupResult

__all__ = ["CeleryCases"]


class CeleryCases:
    """One Celery app on ``backend`` (broker ``memory://``: nothing is sent), ``ops`` per rate.

    ``conf`` goes to ``app.conf.update``; ``bench.callback`` sums a chord's parts.
    """

    def __init__(self, backend: str, ops: int, **conf: Any) -> None:
        self.ops = ops
        self.app = Celery("bench", broker="memory://", backend=backend)
        self.app.conf.update(conf)

        @self.app.task(name="bench.callback")  # type: ignore[untyped-decorator]  # celery is untyped
        def callback(results: list[int]) -> int:
            return sum(results)

        self.callback = callback
        # The backend's own methods (set_chord_size, _apply_chord_incr, ...) are
        # not on Celery's base class; Any lets each bench call its backend's.
        self.backend: Any = self.app.backend

    def result(self, task_id: str) -> AsyncResult:
        return AsyncResult(task_id, app=self.app)

    def group(self, task_ids: list[str]) -> GroupResult:
        return GroupResult(uuid.uuid4().hex, [self.result(t) for t in task_ids], app=self.app)

    def put(self, task_ids: list[str], value: Any = PAYLOAD, state: str = "SUCCESS") -> None:
        """Store ``value`` under every id with ``store_result``, one by one."""
        for task_id in task_ids:
            self.backend.store_result(task_id, value, state)

    def store_result(self, n: int | None = None, *, tag: str = "cel") -> float:
        """Results stored per second with ``store_result`` (``n`` of them, default ``ops``)."""
        n = self.ops if n is None else n
        task_ids = ids(n, tag)
        return per_second(n, lambda: self.put(task_ids))

    def get(self) -> float:
        """Ready results read per second with ``AsyncResult.get()``."""
        task_ids = ids(self.ops, "gcel")
        self.put(task_ids)
        return per_second(self.ops, lambda: [self.result(t).get() for t in task_ids])

    def join(self, n: int, *, native: bool, timeout: float | None = None) -> float:
        """Seconds to join a group of ``n`` ready results: ``join_native`` (one
        bulk read on key/value backends) or ``join`` (a read per result)."""
        task_ids = ids(n, "jcel")
        self.put(task_ids)
        group = self.group(task_ids)

        def run() -> None:
            values = group.join_native(timeout=timeout) if native else group.join(timeout=timeout)
            assert len(values) == n

        return timed(run)

    def chord_counter(self, size: int) -> float:
        """Seconds for ``size`` parts to return through a chord counter set beforehand
        (``set_chord_size``; the Redis backend's path)."""
        group_id = uuid.uuid4().hex
        self.backend.set_chord_size(group_id, size)
        requests = self._parts(group_id, [uuid.uuid4().hex for _ in range(size)], self.callback.s())
        return timed(lambda: self._return_parts(requests))

    def chord_incr(self, size: int) -> float:
        """Celery's key/value chord path: each part restores the group, ``incr``s the
        counter and touches its keys; the last joins the header and sends the body.
        The header's results are stored first, outside the timing, as its tasks would."""
        group_id = uuid.uuid4().hex
        task_ids = [uuid.uuid4().hex for _ in range(size)]
        for index, task_id in enumerate(task_ids):
            self.backend.store_result(task_id, index, "SUCCESS")
        body = self.callback.s()
        self.backend._apply_chord_incr((group_id, [self.result(t) for t in task_ids]), body)
        requests = self._parts(group_id, task_ids, body)
        return timed(lambda: self._return_parts(requests))

    def chord_unlock(self, size: int, *, check_ready: bool, timeout: float = 300) -> float:
        """Seconds for a chord on a backend without native chords: the header's
        stores, then what ``chord_unlock`` does once they are all in (``ready()``
        when ``check_ready``, then ``join()``)."""
        task_ids = ids(size, "chcel")
        group = self.group(task_ids)

        def run() -> None:
            self.put(task_ids)
            if check_ready:
                assert group.ready()
            assert len(group.join(timeout=timeout)) == size

        return timed(run)

    @staticmethod
    def _parts(group_id: str, task_ids: list[str], body: Any) -> list[Context]:
        return [
            Context(id=task_id, group=group_id, group_index=index, chord=body)
            for index, task_id in enumerate(task_ids)
        ]

    def _return_parts(self, requests: list[Context]) -> None:
        for index, request in enumerate(requests):
            self.backend.on_chord_part_return(request, "SUCCESS", index)
