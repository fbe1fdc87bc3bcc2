"""The ``resultstore`` command against real memory:// and sqlite:// stores."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from resultstore import BackendUnavailableError, Capability, State, build_hooks, connect, hookimpl
from resultstore.backends.memory import MemoryBackend
from resultstore.cli.commands import CliState, main, pass_state
from resultstore.plugin.discovery import BackendSpec, installed_backends

# Wide enough that rich never wraps a table cell, so rows can be matched whole.
WIDE = {"COLUMNS": "400", "RESULTSTORE_URL": None}


@pytest.fixture(params=["memory", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        # A named memory store is shared by every backend of this process.
        return f"memory://cli-{uuid.uuid4().hex}"
    made = f"sqlite:///{tmp_path / 'results.db'}"
    # Reading commands never create a store, so the file is made here.
    connect(made).close()
    return made


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env=WIDE)


def run(runner: CliRunner, *args: str, obj: CliState | None = None) -> Result:
    return runner.invoke(main, list(args), obj=obj)


def failing_task(message: str) -> BaseException:
    lookup: dict[str, int] = {}
    try:
        try:
            lookup["missing"]
        except KeyError as exc:
            raise ValueError(message) from exc
    except ValueError as exc:
        return exc
    raise AssertionError("unreachable")


# -- backends ---------------------------------------------------------------------


def test_backends_lists_every_installed_scheme_with_its_capabilities(runner: CliRunner) -> None:
    result = run(runner, "backends")
    assert result.exit_code == 0, result.output
    specs = installed_backends(build_hooks())
    assert {"memory", "sqlite"} <= specs.keys()
    rows = result.stdout.splitlines()
    for scheme, spec in specs.items():
        (row,) = [line for line in rows if f" {scheme}:// " in line]
        assert spec.distribution in row
        assert spec.summary in row
        assert ", ".join(sorted(c.value for c in spec.capabilities)) in row


# -- get --------------------------------------------------------------------------


def test_get_shows_a_success_with_its_metadata(runner: CliRunner, url: str) -> None:
    with connect(url) as store:
        store.mark_as_done(
            "t-ok", {"total": 42}, name="tasks.add", args=(40, 2), worker="w1", queue="q9"
        )
    result = run(runner, "--url", url, "get", "t-ok")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in ("t-ok", "SUCCESS", "{'total': 42}", "tasks.add", "(40, 2)", "w1", "q9"):
        assert expected in out


def test_get_prints_stored_text_literally_not_as_markup(runner: CliRunner, url: str) -> None:
    with connect(url) as store:
        store.mark_as_done("t-markup", "[bold]shout[/bold]", name="[red]n")
    result = run(runner, "--url", url, "get", "t-markup")
    assert result.exit_code == 0, result.output
    assert "[bold]shout[/bold]" in result.stdout
    assert "[red]n" in result.stdout


def test_get_shows_the_exception_chain_and_traceback(runner: CliRunner, url: str) -> None:
    with connect(url) as store:
        store.mark_as_failure("t-bad", failing_task("boom went the task"))
    result = run(runner, "--url", url, "get", "t-bad")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "FAILURE" in out
    assert "ValueError: boom went the task" in out
    assert "caused by KeyError: 'missing'" in out
    assert "Traceback (most recent call last)" in out
    assert "in failing_task" in out


def test_get_labels_custom_state_data_as_meta(runner: CliRunner, url: str) -> None:
    with connect(url) as store:
        store.update_state("t-prog", "PROGRESS", {"done": 3, "of": 7})
    result = run(runner, "--url", url, "get", "t-prog")
    assert result.exit_code == 0, result.output
    (meta,) = [line for line in result.stdout.splitlines() if line.startswith("Meta")]
    assert "{'done': 3, 'of': 7}" in meta
    assert "PROGRESS" in result.stdout


def test_get_json_matches_what_the_api_reads(runner: CliRunner, url: str) -> None:
    with connect(url) as store:
        store.mark_as_failure("t-json", failing_task("json me"), retries=2, kwargs={"k": [1]})
        stored = store.get("t-json")
    assert stored is not None
    assert stored.date_done is not None
    result = run(runner, "--url", url, "get", "t-json", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["task_id"] == "t-json"
    assert data["state"] == State.FAILURE
    assert data["ready"] is True
    assert data["retries"] == 2
    assert data["kwargs"] == {"k": [1]}
    assert data["traceback"] == stored.traceback
    assert data["date_done"] == stored.date_done.isoformat()
    assert data["exception"]["type_name"] == "ValueError"
    assert data["exception"]["message"] == "json me"
    assert data["exception"]["cause"]["type_name"] == "KeyError"


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_get_unknown_id_exits_1_with_a_message(
    runner: CliRunner, url: str, extra: list[str]
) -> None:
    result = run(runner, "--url", url, "get", "never-stored", *extra)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "never-stored" in result.stderr
    assert "unknown" in result.stderr


def test_url_comes_from_the_environment_and_the_option_wins(url: str) -> None:
    with connect(url) as store:
        store.mark_as_done("t-env", "from env")
    env_runner = CliRunner(env={**WIDE, "RESULTSTORE_URL": url})
    assert run(env_runner, "get", "t-env").exit_code == 0
    other = f"memory://cli-other-{uuid.uuid4().hex}"
    assert run(env_runner, "--url", other, "get", "t-env").exit_code == 1


# -- forget and cleanup -----------------------------------------------------------


def test_forget_deletes_the_result(runner: CliRunner, url: str) -> None:
    with connect(url) as store:
        store.mark_as_done("t-gone", 1)
        store.mark_as_done("t-kept", 2)
    result = run(runner, "--url", url, "forget", "t-gone")
    assert result.exit_code == 0, result.output
    assert "t-gone" in result.stdout
    with connect(url) as store:
        assert store.get("t-gone") is None
        kept = store.get("t-kept")
        assert kept is not None
        assert kept.result == 2


def test_forget_unknown_id_is_not_an_error(runner: CliRunner, url: str) -> None:
    assert run(runner, "--url", url, "forget", "never-stored").exit_code == 0


def test_cleanup_reports_how_many_expired_results_went(runner: CliRunner, url: str) -> None:
    # Written at time 0 with a 10 s lifetime: long expired by the real clock the CLI uses.
    with connect(url, clock=lambda: 0.0, expires=10) as old:
        old.mark_as_done("old-1", 1)
        old.mark_as_done("old-2", 2)
    with connect(url, expires=None) as store:
        store.mark_as_done("fresh", 3)
    result = run(runner, "--url", url, "cleanup")
    assert result.exit_code == 0, result.output
    assert "Deleted 2 expired results" in result.stdout
    with connect(url) as store:
        fresh = store.get("fresh")
        assert fresh is not None
        assert fresh.result == 3
    again = run(runner, "--url", url, "cleanup")
    assert "Deleted 0 expired results" in again.stdout


class NoCleanupBackend(MemoryBackend):
    """A real memory backend that does not declare the cleanup capability."""

    capabilities = MemoryBackend.capabilities - {Capability.CLEANUP}


class NoCleanupPlugin:
    @hookimpl
    def resultstore_register_backends(self) -> Iterable[BackendSpec]:
        return [BackendSpec("nocleanup", f"{__name__}:NoCleanupBackend", summary="test")]


def test_cleanup_without_the_capability_is_a_clean_error(runner: CliRunner) -> None:
    state = CliState(plugins=(NoCleanupPlugin(),))
    result = run(runner, "--url", "nocleanup://", "cleanup", obj=state)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: UnsupportedOperationError: ")
    assert "'cleanup' capability" in result.stderr
    assert result.stderr.count("\n") == 1


def test_migrate_creates_a_new_sqlite_store_and_can_run_again(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "new" / "results.db"
    path.parent.mkdir()
    url = f"sqlite:///{path}"
    for _ in range(2):
        result = run(runner, "--url", url, "migrate")
        assert result.exit_code == 0, result.output
        assert f"Ready: schema version 1 in {path}" in result.stdout
    with connect(url) as store:
        store.mark_as_done("t", 1)
        got = store.get("t")
        assert got is not None


def test_migrate_without_the_capability_is_a_clean_error(runner: CliRunner) -> None:
    result = run(runner, "--url", f"memory://cli-{uuid.uuid4().hex}", "migrate")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: UnsupportedOperationError: ")
    assert "'migrate' capability" in result.stderr


# -- the embedded default --------------------------------------------------------


def test_without_url_the_cli_uses_the_sqlite_file_in_the_data_folder(tmp_path: Path) -> None:
    env_runner = CliRunner(env={**WIDE, "XDG_DATA_HOME": str(tmp_path)})
    database = tmp_path / "resultstore" / "results.db"
    with connect(f"sqlite:///{database}") as store:
        store.mark_as_done("t-default", "embedded")
    result = run(env_runner, "get", "t-default", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["result"] == "embedded"


def test_unusable_sqlite_path_is_a_clean_error(runner: CliRunner, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run(runner, "--url", f"sqlite:///{blocker / 'results.db'}", "get", "x")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: no store at sqlite:///")
    assert str(blocker / "results.db") in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "args",
    [["get", "x"], ["get", "x", "--json"], ["watch", "g"], ["forget", "x"], ["cleanup"]],
)
def test_reading_commands_never_create_a_store(
    runner: CliRunner, tmp_path: Path, args: list[str]
) -> None:
    mistyped = tmp_path / "reslts.db"
    result = run(runner, "--url", f"sqlite:///{mistyped}", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"Error: no store at sqlite:///{mistyped}: the SQLite database file {mistyped} "
        f"does not exist. Reading commands never create a store: check the URL "
        f"(--url or $RESULTSTORE_URL)\n"
    )
    assert not mistyped.exists()
    assert list(tmp_path.iterdir()) == []


def test_reading_commands_read_a_store_that_exists(runner: CliRunner, tmp_path: Path) -> None:
    made = f"sqlite:///{tmp_path / 'results.db'}"
    with connect(made) as store:
        store.mark_as_done("x", 41)
    result = run(runner, "--url", made, "get", "x", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["result"] == 41


# -- errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--url", "not-a-url", "get", "x"], "InvalidURLError"),
        (["--url", "nosuchscheme://host/0", "get", "x"], "UnknownSchemeError"),
        (["--url", "memory://?colour=blue", "forget", "x"], "UnknownOptionError"),
        (["--url", "memory://?codec=yaml", "cleanup"], "ConfigurationError"),
    ],
)
def test_store_errors_are_one_line_on_stderr_with_exit_2(
    runner: CliRunner, args: list[str], error: str
) -> None:
    result = run(runner, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: {error}: ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_errors_never_show_the_password(runner: CliRunner) -> None:
    # clock=1 is refused, and that error quotes the URL it came from.
    url = "memory://admin:hunter2secret@shared?clock=1"
    result = run(runner, "--url", url, "get", "x")
    assert result.exit_code == 2
    assert "clock" in result.stderr
    assert "admin:***@shared" in result.stderr
    assert "hunter2secret" not in result.output


def test_scrub_hides_the_password_wherever_a_message_repeats_it() -> None:
    state = CliState(url="redis://user:p%40ss-word@db:6379/0")
    scrubbed = state.scrub(
        "login failed for redis://user:p%40ss-word@db:6379/0\n(password p@ss-word; token=abc)"
    )
    assert "p@ss-word" not in scrubbed
    assert "p%40ss-word" not in scrubbed
    assert "\n" not in scrubbed
    assert "redis://user:***@db:6379/0" in scrubbed


def test_a_corrupt_payload_is_reported_and_forget_clears_it(runner: CliRunner) -> None:
    url = f"memory://cli-{uuid.uuid4().hex}"
    with connect(url) as store:
        backend = store.backend
        assert isinstance(backend, MemoryBackend)
        backend.plant_payload("t-corrupt", b"written by someone else")
    result = run(runner, "--url", url, "get", "t-corrupt")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: CorruptPayloadError: ")
    assert result.stderr.count("\n") == 1
    assert run(runner, "--url", url, "forget", "t-corrupt").exit_code == 0
    assert run(runner, "--url", url, "get", "t-corrupt").exit_code == 1


@pytest.fixture
def extra_command() -> Iterator[str]:
    @click.command("explode")
    @pass_state
    def explode(state: CliState) -> None:
        raise BackendUnavailableError(f"cannot reach {state.resolved_url}")

    main.add_command(explode)
    try:
        yield "explode"
    finally:
        main.commands.pop("explode")


def test_commands_added_later_get_the_same_error_handling(
    runner: CliRunner, extra_command: str
) -> None:
    result = run(runner, "--url", "memory://u:topsecretpw@h", extra_command)
    assert result.exit_code == 2
    assert result.stderr == "Error: BackendUnavailableError: cannot reach memory://u:***@h\n"


# -- one table of exit statuses, one error format ------------------------------------------


def test_the_exit_status_table_in_the_docs_is_the_one_in_the_code() -> None:
    from resultstore.cli.commands import EXIT_STATUSES

    docs = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
    rows = {}
    for line in docs.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0].isdigit():
            rows[int(cells[0])] = cells[1]
    assert rows == EXIT_STATUSES


def test_every_failing_command_exits_with_its_status_and_one_error_line(
    runner: CliRunner, tmp_path: Path
) -> None:
    from resultstore.cli.commands import EXIT_NOT_FOUND, EXIT_STORE_ERROR, EXIT_TIMEOUT

    made = f"sqlite:///{tmp_path / 'results.db'}"
    with connect(made) as store:
        store.save_group("g", ["never-done"])
    cases = [
        (["--url", made, "get", "nope"], EXIT_NOT_FOUND),
        (["--url", made, "watch", "nope"], EXIT_NOT_FOUND),
        (["--url", made, "watch", "g", "--timeout", "0.1", "--interval", "0.05"], EXIT_TIMEOUT),
        (["--url", f"sqlite:///{tmp_path / 'missing.db'}", "get", "x"], EXIT_STORE_ERROR),
        (["--url", "not-a-url", "get", "x"], EXIT_STORE_ERROR),
        (["--url", "nosuchscheme://h/0", "cleanup"], EXIT_STORE_ERROR),
    ]
    for args, status in cases:
        result = run(runner, *args)
        assert result.exit_code == status, (args, result.output)
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(errors) == 1, (args, result.stderr)
        assert errors[0].startswith("Error: "), (args, result.stderr)
