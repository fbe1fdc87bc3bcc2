"""``resultstore demo`` and ``resultstore watch`` end to end, and the simulated worker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from resultstore import (
    BackendSpec,
    Capability,
    ResultStore,
    State,
    StoreOutcome,
    TaskResult,
    connect,
    hookimpl,
    start_chord,
)
from resultstore.backends.memory import MemoryBackend
from resultstore.cli.commands import CliState, main
from resultstore.cli.demo import EXIT_TIMEOUT, PROGRESS, Job, plan_demo, run_job

# Wide enough that rich never wraps a line, so ids can be matched whole.
ENV = {"COLUMNS": "400", "RESULTSTORE_URL": None}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env=ENV)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'results.db'}"


def run(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(main, list(args))


# -- demo ---------------------------------------------------------------------------------


def test_demo_runs_end_to_end_on_the_default_sqlite_store(
    tmp_path: Path, runner: CliRunner
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RESULTSTORE_URL"}
    env.update(XDG_DATA_HOME=str(tmp_path), COLUMNS="400")
    command = "from resultstore.cli.commands import main; main()"
    completed = subprocess.run(
        [sys.executable, "-c", command, "demo", "--tasks", "8", "--workers", "2", "--seed", "3"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr + completed.stdout
    out = completed.stdout
    assert "worker processes" in out
    for label in ("SUCCESS", "throughput", "wait latency p50", "p90", "p99", "chord callback"):
        assert label in out
    # Every chord part squares its index; the callback sums them.
    assert f"= {sum(i * i for i in range(8))}" in out
    database = tmp_path / "resultstore" / "results.db"
    assert database.exists()
    stored = f"sqlite:///{database}"

    # The results stay: the printed ids can be read and watched afterwards.
    task_ids = re.findall(r"resultstore get (\S+)", out)
    group_ids = re.findall(r"resultstore watch (\S+)", out)
    assert task_ids
    assert len(group_ids) == 2
    shown = run(runner, "--url", stored, "get", task_ids[0])
    assert shown.exit_code == 0, shown.output
    assert task_ids[0] in shown.output
    watched = run(runner, "--url", stored, "watch", group_ids[0])
    assert watched.exit_code == 0, watched.output
    assert "SUCCESS" in watched.output
    with connect(stored) as store:
        group = store.restore_group(group_ids[0])
        assert group is not None
        assert len(group) == 8
        assert group.ready()


def test_demo_on_a_private_store_uses_threads(runner: CliRunner) -> None:
    result = run(runner, "--url", "memory://", "demo", "--tasks", "6", "--workers", "3")
    assert result.exit_code == 0, result.output
    assert "worker threads" in result.output
    assert "push" in result.output
    assert f"= {sum(i * i for i in range(6))}" in result.output
    assert "on purpose" in result.output


def test_demo_on_a_private_store_suggests_only_what_works(runner: CliRunner) -> None:
    result = run(runner, "--url", "memory://", "demo", "--tasks", "4", "--seed", "1")
    assert result.exit_code == 0, result.output
    # get and watch would open a new, empty memory:// store: they are not offered.
    commands = re.findall(r"^\s+(resultstore .*)$", result.output, re.MULTILINE)
    assert commands == ["resultstore demo --url sqlite:///demo.db"]
    assert "went with it" in result.output


def test_demo_url_option_overrides_the_global_one(runner: CliRunner, url: str) -> None:
    result = run(runner, "--url", url, "demo", "--url", "memory://", "--tasks", "2")
    assert result.exit_code == 0, result.output
    assert "memory://" in result.output
    assert not Path(url.removeprefix("sqlite:///")).exists()


def test_plan_is_reproducible_and_chord_parts_never_fail() -> None:
    def shape(jobs: tuple[Job, ...]) -> list[tuple[float, bool, bool, int]]:
        return [(j.duration, j.fail, j.retry, j.progress_steps) for j in jobs]

    first, second = plan_demo(200, seed=7), plan_demo(200, seed=7)
    assert shape(first.group_jobs) == shape(second.group_jobs)
    assert any(j.fail for j in first.group_jobs)
    assert not any(j.fail for j in first.chord_jobs)
    assert all(j.callback_id == first.callback_id for j in first.chord_jobs)
    assert len(set(first.all_ids)) == 401


def test_a_simulated_task_goes_through_progress_retry_and_failure() -> None:
    states: list[str] = []

    class Recorder:
        @hookimpl
        def resultstore_on_store(self, url: str, result: TaskResult, outcome: StoreOutcome) -> None:
            states.append(result.state)

    with connect("memory://", plugins=[Recorder()]) as store:
        job = Job("t", 4, "g", duration=0.001, fail=True, retry=True, progress_steps=2)
        final = run_job(store, job, "w1")
        assert states == [State.STARTED, PROGRESS, PROGRESS, State.RETRY, State.FAILURE]
        assert final.state == State.FAILURE
        assert final.retries == 1
        assert final.worker == "w1"
        with pytest.raises(Exception, match="simulated failure of task #4"):
            store.result("t").get()


def test_a_simulated_chord_part_completes_its_chord() -> None:
    with connect("memory://") as store:
        chord = start_chord(store, "ch", ["p0", "p1"], "cb")
        for index in (1, 0):
            run_job(store, Job(f"p{index}", index, "ch", 0.001, callback_id="cb"), "w")
        assert chord.get(timeout=5) == 1


# -- watch --------------------------------------------------------------------------------


def finished_group(store: ResultStore) -> None:
    store.save_group("g", ["a", "b", "c"])
    store.mark_as_done("a", 1)
    store.mark_as_done("b", 2)
    store.mark_as_revoked("c")


def test_watch_on_a_finished_group_exits_zero(runner: CliRunner, url: str) -> None:
    with connect(url) as store:
        finished_group(store)
    result = run(runner, "--url", url, "watch", "g")
    assert result.exit_code == 0, result.output
    assert re.search(r"SUCCESS\s*│\s*2", result.output)
    assert re.search(r"REVOKED\s*│\s*1", result.output)


def test_watch_follows_a_group_until_it_completes(runner: CliRunner, url: str) -> None:
    with connect(url) as store:
        store.save_group("g", ["a", "b"])
        store.mark_as_done("a", 1)

        def finish_later() -> None:
            time.sleep(0.3)
            store.mark_as_done("b", 2)

        finisher = threading.Thread(target=finish_later)
        finisher.start()
        result = run(runner, "--url", url, "watch", "g", "--interval", "0.05", "--timeout", "60")
        finisher.join()
    assert result.exit_code == 0, result.output
    assert re.search(r"SUCCESS\s*│\s*2", result.output)


def test_watch_shows_a_chords_progress(runner: CliRunner, url: str) -> None:
    with connect(url) as store:
        start_chord(store, "ch", ["p0"], "cb")
        run_job(store, Job("p0", 0, "ch", 0.001, callback_id="cb"), "w")
    result = run(runner, "--url", url, "watch", "ch")
    assert result.exit_code == 0, result.output
    assert "chord: 1 of 1 parts recorded, complete" in result.output


def test_watch_times_out_with_its_own_exit_status(runner: CliRunner, url: str) -> None:
    with connect(url) as store:
        store.save_group("g", ["a", "b"])
        store.mark_as_done("a", 1)
    result = run(runner, "--url", url, "watch", "g", "--timeout", "0.2", "--interval", "0.05")
    assert result.exit_code == EXIT_TIMEOUT, result.output
    assert "1 of 2 members of 'g' are not ready" in result.output


def test_watch_of_an_unknown_group_exits_one(runner: CliRunner, url: str) -> None:
    connect(url).close()
    result = run(runner, "--url", url, "watch", "nope")
    assert result.exit_code == 1
    assert "no group 'nope' is saved" in result.output


class NoGroups(MemoryBackend):
    """memory:// without groups, served under the nogroups:// scheme."""

    capabilities = MemoryBackend.capabilities - {Capability.GROUPS}


class NoGroupsPlugin:
    @hookimpl
    def resultstore_register_backends(self) -> list[BackendSpec]:
        return [BackendSpec("nogroups", f"{NoGroups.__module__}:NoGroups")]


def test_watch_on_a_store_without_groups_names_the_capability(runner: CliRunner) -> None:
    result = runner.invoke(
        main, ["--url", "nogroups://", "watch", "g"], obj=CliState(plugins=(NoGroupsPlugin(),))
    )
    assert result.exit_code == 2
    assert "'groups' capability" in result.output
