"""What every backend's bench measures on resultstore's side, and the helpers its cases share.

Each ``<backend>_vs_celery.py`` script compares the same few things (a store,
a ready get, a batch store, a join of ready results) before what is its own:
the raw client's cases, chords, wake latency. :class:`OurCases` is the
resultstore side of the shared cases, so that every script times them alike.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from resultstore import ResultStore, State, TaskResult

__all__ = ["PAYLOAD", "OurCases", "ids", "per_second", "timed", "wake_latency"]

#: The ~200-byte JSON result (10 fields) every contender stores.
PAYLOAD = {f"field{i}": f"value-{i}-" + "x" * 6 for i in range(10)}


def ids(n: int, tag: str) -> list[str]:
    """``n`` fresh task ids; the tag says which case wrote them."""
    return [f"{tag}-{uuid.uuid4().hex}" for _ in range(n)]


def per_second(n: int, run: Callable[[], object]) -> float:
    """``n`` divided by how long ``run`` took: a rate."""
    start = time.perf_counter()
    run()
    return n / (time.perf_counter() - start)


def timed(run: Callable[[], object]) -> float:
    """How many seconds ``run`` took."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def wake_latency(
    trials: int,
    *,
    wait: Callable[[str], object],
    ready: Callable[[str], object],
    store: Callable[[str], object],
    timeout: float = 10,
) -> list[float]:
    """Seconds from the start of ``store(id)`` to the return of ``wait(id)``, per trial.

    Each trial waits on a fresh id in a thread of its own; ``ready(id)`` returns
    once that waiter is listening (subscribed), and the result goes out 2 ms
    later, so the figure is the wake-up, not the subscription.
    """
    samples = []
    for _ in range(trials):
        task_id = uuid.uuid4().hex
        stamp: list[float] = []

        def waiter(task_id: str = task_id, stamp: list[float] = stamp) -> None:
            wait(task_id)
            stamp.append(time.perf_counter())

        thread = threading.Thread(target=waiter)
        thread.start()
        ready(task_id)
        time.sleep(0.002)  # let the waiter settle into its blocking read
        start = time.perf_counter()
        store(task_id)
        thread.join(timeout + 5)
        assert stamp, f"the waiter on {task_id} never woke"
        samples.append(stamp[0] - start)
    return samples


class OurCases:
    """resultstore's side of the shared cases, on one store; ``ops`` operations per rate."""

    def __init__(self, store: ResultStore, ops: int) -> None:
        self.store = store
        self.ops = ops

    def _ready(self, n: int, tag: str) -> list[str]:
        """``n`` ids whose SUCCESS results are stored (outside any timing)."""
        task_ids = ids(n, tag)
        self.store.store_many([TaskResult(t, State.SUCCESS, PAYLOAD) for t in task_ids])
        return task_ids

    def mark_as_done(self) -> float:
        """Results stored per second, one ``mark_as_done`` each."""
        task_ids = ids(self.ops, "our")
        return per_second(self.ops, lambda: [self.store.mark_as_done(t, PAYLOAD) for t in task_ids])

    def store_many(self, n: int) -> float:
        """Results stored per second by one ``store_many`` of ``n``."""
        results = [TaskResult(t, State.SUCCESS, PAYLOAD) for t in ids(n, "bat")]
        return per_second(n, lambda: self.store.store_many(results))

    def get(self) -> float:
        """Ready results read per second with ``store.get(id)``."""
        task_ids = self._ready(self.ops, "gour")
        return per_second(self.ops, lambda: [self.store.get(t) for t in task_ids])

    def result_get(self) -> float:
        """Ready results read per second through the handle, ``store.result(id).get()``."""
        task_ids = self._ready(self.ops, "hour")
        return per_second(self.ops, lambda: [self.store.result(t).get() for t in task_ids])

    def join(self, n: int, *, timeout: float = 60) -> float:
        """Seconds to join a group of ``n`` ready results."""
        task_ids = self._ready(n, "jour")

        def run() -> None:
            values = self.store.group_result(uuid.uuid4().hex, task_ids).join(timeout=timeout)
            assert len(values) == n

        return timed(run)

    def chord_with_callback(self, size: int) -> float:
        """Seconds for ``size`` parts of a counted chord to return, plus storing the
        callback's result once the last part has (the size is set outside the timing)."""
        group_id = uuid.uuid4().hex
        self.store.set_chord_size(group_id, size)
        parts = [TaskResult(uuid.uuid4().hex, State.SUCCESS, i) for i in range(size)]

        def run() -> None:
            completed = 0
            for index, part in enumerate(parts):
                outcome = self.store.chord_part_return(group_id, index, part)
                if outcome.complete:
                    assert outcome.results is not None
                    completed += 1
                    total = sum(r.result for r in outcome.results)
                    self.store.mark_as_done(f"{group_id}-callback", total)
            assert completed == 1

        return timed(run)
