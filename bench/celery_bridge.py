"""The Celery bridge over resultstore-redis against Celery's own RedisBackend, end to end.

One throwaway redis-server holds both brokers and both result stores; two
real workers (``--pool threads -c 4``, the same app code) serve them, one
per result backend. Each round runs, for each backend in turn: 2,000 tasks
sent one by one, each followed by ``.get()``; a group of 2,000 joined; a
chord of 1,000 with a sum callback. The table shows medians of the rounds.
Run with ``nox -s bench`` (installs Celery 5.7); this file is also the
workers' app module (``celery -A celery_bridge worker``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Celery, chord, group  # type: ignore[import-untyped]  # celery ships no type information

BROKER_ENV, BACKEND_ENV = "BENCH_CELERY_BROKER", "BENCH_CELERY_BACKEND"


def make_app(broker: str, backend: str) -> Any:
    """The benchmark app: Celery's defaults, two tiny tasks."""
    app = Celery("celery_bridge", broker=broker, backend=backend, set_as_current=False)
    app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)

    @app.task(shared=False, name="bench.echo")
    def echo(value: int) -> int:
        return value

    @app.task(shared=False, name="bench.total")
    def total(values: list[int]) -> int:
        return sum(values)

    return app


# What `celery -A celery_bridge worker` loads, configured by the bench process.
app = make_app(os.environ.get(BROKER_ENV, "memory://"), os.environ.get(BACKEND_ENV, "disabled://"))


class Contender:
    """One result backend: its worker subprocess and the client app sending to it."""

    def __init__(self, name: str, broker: str, backend: str, workdir: Path) -> None:
        from resultstore_contract.servers import ServerProcess

        self.name = name
        self.app = make_app(broker, backend)
        node = f"bench-{name}-{uuid.uuid4().hex[:6]}@localhost"
        env = {
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
            ),
            BROKER_ENV: broker,
            BACKEND_ENV: backend,
        }
        argv = [
            sys.executable, "-m", "celery", "-A", "celery_bridge", "worker",
            "--pool", "threads", "--concurrency", "4", "--hostname", node,
            "--loglevel", "WARNING", "--without-mingle", "--without-gossip", "--without-heartbeat",
        ]  # fmt: skip
        self.worker = ServerProcess(f"worker-{name}", argv, workdir=workdir, env=env).start()
        try:
            self.worker.wait_ready(lambda: bool(self.app.control.ping([node], timeout=0.5)), 60)
        except BaseException:
            self.worker.stop()
            raise
        self.echo, self.total = self.app.tasks["bench.echo"], self.app.tasks["bench.total"]

    def close(self) -> None:
        close = getattr(self.app.backend, "close", None)
        if close is not None:
            close()
        self.worker.stop()

    def sequential(self, n: int) -> float:
        """Tasks per second, each sent and then waited for with .get()."""
        start = time.perf_counter()
        for i in range(n):
            assert self.echo.delay(i).get(timeout=60) == i
        return n / (time.perf_counter() - start)

    def group_join(self, n: int) -> float:
        """Seconds from sending a group of ``n`` to having joined every value."""
        start = time.perf_counter()
        values = group(self.echo.s(i) for i in range(n)).apply_async().get(timeout=300)
        elapsed = time.perf_counter() - start
        assert values == list(range(n))
        return elapsed

    def chord_sum(self, n: int) -> float:
        """Seconds from sending a chord of ``n`` parts to its sum callback's value."""
        start = time.perf_counter()
        value = (
            chord([self.echo.s(i) for i in range(n)], self.total.s()).apply_async().get(timeout=300)
        )
        elapsed = time.perf_counter() - start
        assert value == n * (n - 1) // 2
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=2000, help="sequential send+get tasks")
    parser.add_argument("--group", type=int, default=2000, help="group size")
    parser.add_argument("--chord", type=int, default=1000, help="chord header size")
    # nox -s bench passes its arguments to every bench script; skip the others'.
    args, _ = parser.parse_known_args()

    from _table import RatioTable, Samples
    from resultstore_contract.servers import start_redis

    runs: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, start_redis(Path(tmp) / "redis") as server:
        base = f"redis://{server.host}:{server.port}"
        contenders = [
            Contender(
                "bridge",
                f"{base}/1",
                f"resultstore+{base}/0?key_prefix=bench-bridge:",
                Path(tmp) / "bridge",
            ),
            Contender("celery", f"{base}/2", f"{base}/3", Path(tmp) / "celery"),
        ]
        try:
            cases: dict[str, Callable[[Contender], float]] = {
                "sequential": lambda c: c.sequential(args.tasks),
                "group": lambda c: c.group_join(args.group),
                "chord": lambda c: c.chord_sum(args.chord),
            }
            for contender in contenders:  # warm both workers and connections up
                contender.sequential(50)
            for round_ in range(args.rounds):
                # Alternate who goes first, so neither always meets a warmer machine.
                order = contenders if round_ % 2 == 0 else contenders[::-1]
                for case, run in cases.items():
                    for contender in order:
                        runs.setdefault((case, contender.name), []).append(run(contender))
        finally:
            for contender in contenders:
                contender.close()

    table = RatioTable(
        f"resultstore-celery over resultstore-redis vs Celery's RedisBackend "
        f"(medians of {args.rounds} interleaved rounds, real workers)"
    )
    table.ratio(
        f"{args.tasks:,} x send + .get() (tasks/s)",
        Samples(runs[("sequential", "bridge")]),
        Samples(runs[("sequential", "celery")]),
        target=1.0,
    )
    for case, label in (
        ("group", f"group of {args.group:,}, joined: speed-up"),
        ("chord", f"chord of {args.chord:,} + sum: speed-up"),
    ):
        table.ratio(
            label,
            Samples(runs[(case, "bridge")], unit="s"),
            Samples(runs[(case, "celery")], unit="s"),
            target=1.5,
            invert=True,
        )
    table.print()


if __name__ == "__main__":
    main()
