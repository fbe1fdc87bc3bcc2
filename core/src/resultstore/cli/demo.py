"""``resultstore demo`` (simulated workers filling a store) and ``resultstore watch``.

The demo runs a group and a chord on worker processes (threads for stores
that are private to one process), waits on everything through the result
API with a progress bar and prints what it saw. ``watch`` follows a saved
group or chord until it completes. The worker side is importable on its own
so that spawned processes do not load the command line.
"""

from __future__ import annotations

import math
import multiprocessing
import queue
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs
import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from resultstore.api.result import AsyncResult, GroupResult, chord_part_done, start_chord
from resultstore.api.store import ResultStore, connect
from resultstore.cli.state import CliState, fail
from resultstore.cli.terminal import safe_markup, safe_text
from resultstore.concepts.errors import ResultTimeoutError
from resultstore.concepts.models import TaskResult, utcnow
from resultstore.concepts.states import READY_STATES, State
from resultstore.concepts.urls import redact
from resultstore.plugin.protocols import Capability

__all__ = [
    "DEFAULT_TASKS",
    "DEFAULT_WORKERS",
    "EXIT_TIMEOUT",
    "PROGRESS",
    "DemoPlan",
    "Job",
    "demo_command",
    "plan_demo",
    "run_job",
    "run_jobs",
    "watch_command",
]

DEFAULT_TASKS = 200
DEFAULT_WORKERS = 2
#: the custom state simulated tasks report progress in.
PROGRESS = "PROGRESS"
#: exit status of ``watch`` (and ``demo``) when the timeout ran out first.
EXIT_TIMEOUT = 3

_FAIL_RATE = 0.1
_RETRY_RATE = 0.1
_PROGRESS_RATE = 0.25
_STATE_STYLES = {
    State.SUCCESS: "green",
    State.FAILURE: "red",
    State.REVOKED: "red",
    State.RETRY: "yellow",
    PROGRESS: "cyan",
}


class SimulatedError(Exception):
    """What a simulated task raises when it is meant to fail."""


class TransientError(Exception):
    """What a simulated task raises before it is retried."""


@attrs.frozen
class Job:
    """One simulated task: what it does is decided up front, so a run is reproducible."""

    task_id: str
    index: int
    group_id: str
    duration: float
    fail: bool = False
    retry: bool = False
    progress_steps: int = 0
    #: set for chord header parts: the callback's task id.
    callback_id: str | None = None


@attrs.frozen
class DemoPlan:
    group_id: str
    chord_id: str
    callback_id: str
    group_jobs: tuple[Job, ...]
    chord_jobs: tuple[Job, ...]

    @property
    def jobs(self) -> list[Job]:
        """Group and chord jobs interleaved, the order workers receive them."""
        return [j for pair in zip(self.group_jobs, self.chord_jobs, strict=True) for j in pair]

    @property
    def all_ids(self) -> list[str]:
        return [*(j.task_id for j in self.jobs), self.callback_id]


def plan_demo(tasks: int, seed: int | None = None) -> DemoPlan:
    """A group of ``tasks`` and a chord of ``tasks`` parts; some fail, retry, report progress.

    Chord parts never fail, so that the callback has something to show.
    """
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    group_id, chord_id = f"demo-{run}-group", f"demo-{run}-chord"
    callback_id = f"{chord_id}-callback"

    def job(kind: str, group: str, index: int, *, can_fail: bool, callback: str | None) -> Job:
        return Job(
            task_id=f"demo-{run}-{kind}-{index}",
            index=index,
            group_id=group,
            duration=rng.uniform(0.002, 0.012),
            fail=can_fail and rng.random() < _FAIL_RATE,
            retry=rng.random() < _RETRY_RATE,
            progress_steps=3 if rng.random() < _PROGRESS_RATE else 0,
            callback_id=callback,
        )

    group_jobs = tuple(job("g", group_id, i, can_fail=True, callback=None) for i in range(tasks))
    chord_jobs = tuple(
        job("c", chord_id, i, can_fail=False, callback=callback_id) for i in range(tasks)
    )
    return DemoPlan(group_id, chord_id, callback_id, group_jobs, chord_jobs)


def sum_of_values(values: list[Any]) -> Any:
    """The demo chord's callback."""
    return sum(values)


def run_job(store: ResultStore, job: Job, worker: str) -> TaskResult:
    """Run one simulated task, storing every state it goes through; return the last one."""
    fields: dict[str, Any] = {
        "name": "demo.square",
        "args": (job.index,),
        "worker": worker,
        "group_id": job.group_id,
        "queue": "demo",
    }
    store.mark_as_started(job.task_id, **fields)
    slices = job.progress_steps + 1
    for step in range(1, job.progress_steps + 1):
        time.sleep(job.duration / slices)
        store.update_state(
            job.task_id, PROGRESS, {"current": step, "total": job.progress_steps}, **fields
        )
    retries = 0
    if job.retry:
        try:
            raise TransientError(f"simulated transient error in task #{job.index}")
        except TransientError as exc:
            store.mark_as_retry(job.task_id, exc, retries=retries, **fields)
        retries += 1
        time.sleep(job.duration / 2)
    time.sleep(job.duration / slices)
    if job.fail:
        try:
            raise SimulatedError(f"simulated failure of task #{job.index}")
        except SimulatedError as exc:
            store.mark_as_failure(job.task_id, exc, retries=retries, **fields)
        final = store.get(job.task_id)
        assert final is not None  # just stored, and results outlive the demo
        return final
    result = TaskResult(
        job.task_id,
        State.SUCCESS,
        job.index * job.index,
        date_done=utcnow(),
        retries=retries,
        **fields,
    )
    store.store(result)
    if job.callback_id is not None:
        chord_part_done(
            store,
            job.group_id,
            job.index,
            result,
            callback_id=job.callback_id,
            callback=sum_of_values,
        )
    return result


class _JobQueue(Protocol):
    def get(self) -> Job | None: ...


def run_jobs(store: ResultStore, jobs: _JobQueue, worker: str) -> int:
    """Run jobs from ``jobs`` until it yields None; return how many ran."""
    count = 0
    while (job := jobs.get()) is not None:
        run_job(store, job, worker)
        count += 1
    return count


def _worker_process(url: str, jobs: _JobQueue, worker: str) -> None:
    # A process of its own: connect to the shared store like any worker would.
    with connect(url) as store:
        run_jobs(store, jobs, worker)


class _Workers:
    """Worker processes (shared stores) or threads (stores private to this process)."""

    def __init__(self, store: ResultStore, url: str, count: int) -> None:
        host = socket.gethostname()
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self.threads: list[threading.Thread] = []
        self.queue: Any
        if Capability.SHARED in store.capabilities:
            self.kind = "processes"
            context = multiprocessing.get_context("spawn")
            self.queue = context.Queue()
            for n in range(count):
                name = f"demo-worker-{n + 1}@{host}"
                self.processes.append(
                    context.Process(
                        target=_worker_process, args=(url, self.queue, name), daemon=True
                    )
                )
        else:
            self.kind = "threads"
            self.queue = queue.Queue()
            for n in range(count):
                name = f"demo-thread-{n + 1}@{host}"
                self.threads.append(
                    threading.Thread(
                        target=run_jobs, args=(store, self.queue, name), daemon=True, name=name
                    )
                )

    @property
    def all(self) -> list[multiprocessing.process.BaseProcess | threading.Thread]:
        return [*self.processes, *self.threads]

    def start(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            self.queue.put(job)
        for _ in range(len(self.processes) + len(self.threads)):
            self.queue.put(None)
        for worker in self.all:
            worker.start()

    def alive(self) -> bool:
        return any(w.is_alive() for w in self.all)

    def stop(self, timeout: float = 10.0) -> None:
        for worker in self.all:
            worker.join(timeout)
        for process in self.processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout)
        if self.processes:
            self.queue.close()
            self.queue.join_thread()


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return math.nan
    rank = max(0, math.ceil(fraction * len(sorted_values)) - 1)
    return sorted_values[min(rank, len(sorted_values) - 1)]


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _cli_state(ctx: click.Context, url: str | None) -> CliState:
    state = ctx.find_object(CliState) or CliState()
    return attrs.evolve(state, url=url) if url is not None else state


def _progress(out: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
    )


def _wait_all(
    handles: GroupResult,
    workers: _Workers,
    deadline: float,
    on_ready: Callable[[AsyncResult], None],
) -> None:
    """Wait on every handle, noticing workers that died and the overall deadline."""
    seen: set[str] = set()
    total = len(set(handles.task_ids))
    while len(seen) < total:
        left = deadline - time.monotonic()
        if left <= 0:
            click.echo(
                f"Error: timed out with {total - len(seen)} of {total} tasks unfinished",
                err=True,
            )
            raise click.exceptions.Exit(EXIT_TIMEOUT)
        try:
            for handle in handles.as_completed(timeout=min(left, 2.0)):
                if handle.task_id not in seen:
                    seen.add(handle.task_id)
                    on_ready(handle)
        except ResultTimeoutError:
            if not workers.alive() and not handles.ready():
                raise click.ClickException(
                    f"the workers exited with {total - len(seen)} tasks unfinished; "
                    f"see the workers' errors above"
                ) from None


@click.command("demo")
@click.option(
    "--url",
    default=None,
    metavar="URL",
    help="Backend URL (overrides the global --url). Default: the embedded SQLite file.",
)
@click.option(
    "--tasks",
    "-n",
    type=click.IntRange(1, 100_000),
    default=DEFAULT_TASKS,
    show_default=True,
    help="Size of the group, and of the chord's header.",
)
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(1, 64),
    default=DEFAULT_WORKERS,
    show_default=True,
    help="Worker processes (threads for stores private to one process, like memory://).",
)
@click.option("--seed", type=int, default=None, help="Seed for which tasks fail, retry, etc.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=300.0,
    show_default=True,
    help="Give up after this many seconds.",
)
@click.pass_context
def demo_command(
    ctx: click.Context,
    *,
    url: str | None,
    tasks: int,
    workers: int,
    seed: int | None,
    timeout: float,
) -> None:
    """Run a simulated group and chord on worker processes and wait on them.

    Some tasks fail, some retry, some report progress in a custom PROGRESS
    state. Every result is stored through the store API and waited on
    through the result API; the results stay in the store afterwards, so
    'resultstore get ID' and 'resultstore watch GROUP_ID' can show them.
    """
    state = _cli_state(ctx, url)
    resolved = state.resolved_url
    out = _console()
    plan = plan_demo(tasks, seed)
    with state.connect() as store:
        for needed in (Capability.GROUPS, Capability.CHORDS):
            if needed not in store.capabilities:
                raise click.ClickException(
                    f"the demo runs a group and a chord, but {redact(resolved)} does not "
                    f"declare the {needed.value!r} capability; pick another backend "
                    f"(run 'resultstore backends' to see each one's capabilities)"
                )
        store.save_group(plan.group_id, [j.task_id for j in plan.group_jobs])
        chord = start_chord(
            store, plan.chord_id, [j.task_id for j in plan.chord_jobs], plan.callback_id
        )
        pool = _Workers(store, resolved, workers)
        everything = store.group_result(f"{plan.group_id}+chord", plan.all_ids)
        latencies: list[float] = []
        out.print(
            f"Running {len(plan.all_ids)} tasks (a group of {tasks}, a chord of {tasks} "
            f"and its callback) on {workers} worker {pool.kind}, "
            f"store {redact(resolved)} ({store.hub.mode} waiting)"
        )
        out.print(
            "Some tasks fail, retry or report progress on purpose, to show how each is "
            "stored: a FAILURE below is part of the demo, not a fault.",
            style="dim",
        )
        started = time.monotonic()
        with _progress(out) as bar:
            progress = bar.add_task("waiting on results", total=len(plan.all_ids))

            def on_ready(handle: AsyncResult) -> None:
                meta = handle.meta
                if meta is not None and meta.date_done is not None:
                    latencies.append(max(0.0, time.time() - meta.date_done.timestamp()))
                bar.advance(progress)

            pool.start(plan.jobs)
            try:
                _wait_all(everything, pool, started + timeout, on_ready)
            finally:
                pool.stop()
        elapsed = time.monotonic() - started
        group = GroupResult.restore(plan.group_id, store)
        assert group is not None  # saved above, and results last a day by default
        group_values = group.join(propagate=False)
        callback_value = chord.get(propagate=False)
        metas = everything.metas()
        _summary(
            out,
            plan=plan,
            metas=metas,
            group_values=group_values,
            callback_value=callback_value,
            elapsed=elapsed,
            latencies=latencies,
            store=store,
        )
        _pointers(out, state, plan, metas, kept=Capability.SHARED in store.capabilities)


def _summary(
    out: Console,
    *,
    plan: DemoPlan,
    metas: Sequence[TaskResult | None],
    group_values: Sequence[Any],
    callback_value: Any,
    elapsed: float,
    latencies: list[float],
    store: ResultStore,
) -> None:
    counts: dict[str, int] = {}
    for meta in metas:
        key = State.PENDING if meta is None else str(meta.state)
        counts[key] = counts.get(key, 0) + 1
    table = Table(title="resultstore demo", title_justify="left", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for name in sorted(counts):
        table.add_row(safe_markup(name), Text(str(counts[name]), style=_STATE_STYLES.get(name, "")))
    retried = sum(1 for m in metas if m is not None and m.retries)
    progressed = sum(1 for j in plan.jobs if j.progress_steps)
    table.add_row("retried", str(retried))
    table.add_row("reported PROGRESS", str(progressed))
    failures = sum(1 for v in group_values if isinstance(v, BaseException))
    table.add_row("group", f"{plan.group_id}: {len(group_values) - failures} ok, {failures} failed")
    table.add_row("chord callback", f"{plan.callback_id} = {callback_value!r}")
    table.add_row("elapsed", f"{elapsed:.2f} s")
    table.add_row("throughput", f"{len(metas) / elapsed:.1f} tasks/s" if elapsed else "-")
    ordered = sorted(latencies)
    for label, fraction in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        table.add_row(f"wait latency {label}", f"{_percentile(ordered, fraction) * 1000:.1f} ms")
    hub = store.hub
    table.add_row("waiting", f"{hub.mode}: {hub.round_trips} round trips by the shared waiter")
    out.print(table)


def _pointers(
    out: Console,
    state: CliState,
    plan: DemoPlan,
    metas: Sequence[TaskResult | None],
    *,
    kept: bool,
) -> None:
    """Follow-up commands, only where they can work: ``kept`` is whether another
    process (the next command) can read the store at all."""
    if not kept:
        out.print(
            f"The results lived in {state.redacted_url}, a store private to this process, "
            f"and went with it, so 'resultstore get' and 'resultstore watch' cannot show "
            f"them. To look at them afterwards, run the demo on a store that outlives it:",
            soft_wrap=True,
        )
        out.print("  resultstore demo --url sqlite:///demo.db", soft_wrap=True)
        return
    done = [m for m in metas if m is not None]
    examples = [
        next((m.task_id for m in done if m.state == State.SUCCESS), None),
        next((m.task_id for m in done if m.state == State.FAILURE), None),
        next((m.task_id for m in done if m.retries), None),
        plan.callback_id,
    ]
    url = f" --url {state.redacted_url}" if state.url is not None else ""
    out.print("The results stay in the store. Look at a few:")
    for task_id in dict.fromkeys(t for t in examples if t is not None):
        out.print(f"  resultstore{url} get {task_id}", soft_wrap=True)
    out.print(f"  resultstore{url} watch {plan.group_id}", soft_wrap=True)
    out.print(f"  resultstore{url} watch {plan.chord_id}", soft_wrap=True)


# -- watch ------------------------------------------------------------------------------


def _counts_text(counts: dict[str, int]) -> str:
    """The counts as rich markup: state names come from the store, so they are escaped."""
    return "  ".join(f"{safe_markup(name)} {counts[name]}" for name in sorted(counts))


@click.command("watch")
@click.argument("group_id")
@click.option(
    "--url", default=None, metavar="URL", help="Backend URL (overrides the global --url)."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds (exit status 3) instead of waiting for the end.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=0.5,
    show_default=True,
    help="Seconds between refreshes of the state counts.",
)
@click.pass_context
def watch_command(
    ctx: click.Context,
    group_id: str,
    *,
    url: str | None,
    timeout: float | None,
    interval: float,
) -> None:
    """Follow the saved group (or chord header) GROUP_ID until every member is ready.

    Shows a live progress bar and the count of members in each state.
    Exits 0 once the group is complete, 1 if no group GROUP_ID is saved,
    3 when --timeout runs out first.
    """
    state = _cli_state(ctx, url)
    out = _console()
    with state.connect_existing() as store:
        group = store.restore_group(group_id)
        if group is None:
            fail(
                f"no group {group_id!r} is saved in {state.redacted_url}: the id is unknown, "
                f"or the group was deleted or has expired"
            )
        chords = Capability.CHORDS in store.capabilities
        deadline = None if timeout is None else time.monotonic() + timeout
        total = len(group)
        with _progress(out) as bar:
            progress = bar.add_task(safe_markup(group_id), total=total)
            while True:
                metas = group.metas()
                counts: dict[str, int] = {}
                for meta in metas:
                    key = State.PENDING if meta is None else str(meta.state)
                    counts[key] = counts.get(key, 0) + 1
                ready = sum(n for name, n in counts.items() if name in READY_STATES)
                chord = store.get_chord(group_id) if chords else None
                note = f"  chord {len(chord.received)}/{chord.size}" if chord is not None else ""
                bar.update(progress, completed=ready, description=f"{_counts_text(counts)}{note}")
                if ready == total:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    bar.stop()
                    click.echo(
                        f"Error: timed out after {timeout}s: {total - ready} of {total} "
                        f"members of {safe_text(repr(group_id))} are not ready",
                        err=True,
                    )
                    raise click.exceptions.Exit(EXIT_TIMEOUT)
                pause = interval
                if deadline is not None:
                    pause = max(0.0, min(interval, deadline - time.monotonic()))
                time.sleep(pause)
    table = Table(title=f"group {safe_markup(group_id)}", title_justify="left")
    table.add_column("State", style="bold")
    table.add_column("Tasks", justify="right")
    for name in sorted(counts):
        table.add_row(
            Text(safe_text(name, one_line=True), style=_STATE_STYLES.get(name, "")),
            str(counts[name]),
        )
    out.print(table)
    if chord is not None:
        status = "complete" if chord.completed else "not complete"
        out.print(f"chord: {len(chord.received)} of {chord.size} parts recorded, {status}")
