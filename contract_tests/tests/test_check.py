"""``resultstore check``: the suite really runs against the URL and the table tells the truth."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from resultstore_contract import check
from rich.console import Console


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=160, highlight=False, color_system=None), buffer


def test_memory_passes_and_names_the_capability_behind_each_skip() -> None:
    out, buffer = _console()
    # The basic group only: the state machine is exercised by the suite's own tests.
    code = check.run_check("memory://", pytest_args=["-k", "basic"], console=out, errors=out)
    text = buffer.getvalue()
    assert code == check.EXIT_OK, text
    assert "resultstore contract checks of memory:// (profile ci)" in text
    # memory:// is private to each connection; the suite needs two to share a store.
    assert "each check runs on memory://{unique}" in text
    rows = {
        line.split("│")[1].strip() + "/" + line.split("│")[2].strip(): line
        for line in text.splitlines()
        if line.startswith("│") and line.split("│")[1].strip()
    }
    assert "passed" in rows["Basic/chords"]
    # memory:// declares neither, so those checks are skipped and the table says why.
    assert "not declared: persistent" in rows["Basic/persistent"]
    assert "skipped" in rows["Basic/shared"]
    assert "0 failed" in text


def test_a_url_template_that_shares_runs_as_given() -> None:
    out, buffer = _console()
    code = check.run_check(
        "memory://{unique}", pytest_args=["-k", "basic_unknown or chord"], console=out, errors=out
    )
    text = buffer.getvalue()
    assert code == check.EXIT_OK, text
    assert "Note:" not in text


def test_sqlite_file_passes(tmp_path: Path) -> None:
    out, buffer = _console()
    url = f"sqlite:///{tmp_path / 'check.db'}"
    code = check.run_check(url, pytest_args=["-k", "basic and (ready or chord)"], console=out)
    assert code == check.EXIT_OK, buffer.getvalue()
    assert (tmp_path / "check.db").exists()


def test_a_failing_check_fails_the_run_and_is_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pytest plugin that breaks one check the way a broken backend would.
    (tmp_path / "break_one_check.py").write_text(
        "def pytest_runtest_call(item):\n"
        "    if 'ready_state_is_final' in item.name:\n"
        "        raise AssertionError('stored SUCCESS was replaced by STARTED')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out, buffer = _console()
    code = check.run_check(
        "memory://",
        pytest_args=["-p", "break_one_check", "-k", "ready_state_is_final or unknown_id"],
        console=out,
    )
    text = buffer.getvalue()
    assert code == check.EXIT_FAILED
    failed = [line for line in text.splitlines() if line.startswith("FAILED")]
    assert failed
    for line in failed:
        assert line.startswith("FAILED Basic: test_basic_ready_state_is_final")
        assert line.endswith("AssertionError: stored SUCCESS was replaced by STARTED")
    assert f"1 passed, {len(failed)} failed" in text


def test_no_check_selected_is_not_a_pass() -> None:
    out, buffer = _console()
    code = check.run_check("memory://", pytest_args=["-k", "no_such_check"], console=out)
    assert code == check.EXIT_FAILED
    assert "no check ran" in buffer.getvalue()


def test_an_unusable_url_stops_before_the_suite_without_its_password() -> None:
    out, buffer = _console()
    err, errors = _console()
    code = check.run_check("nosuchscheme://user:hunter22@localhost/0", console=out, errors=err)
    assert buffer.getvalue() == ""
    text = errors.getvalue()
    assert code == check.EXIT_UNREACHABLE
    assert text.startswith("Error: cannot check nosuchscheme://user:***@localhost/0: ")
    assert "UnknownSchemeError" in text
    assert "hunter22" not in text


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="choose one of ci, default, nightly"):
        check.run_check("memory://", profile="fast")


def test_the_whole_suite_is_what_runs() -> None:
    classes = check.suite_classes()
    assert classes
    from resultstore_contract.support import ContractBase

    assert all(issubclass(cls, ContractBase) for cls in classes)


def test_cli_check_prints_the_table_and_exits_zero() -> None:
    from resultstore.cli.commands import main

    result = CliRunner().invoke(
        main, ["check", "memory://", "--profile", "ci", "--", "-k", "basic_unknown"]
    )
    assert result.exit_code == 0, result.output
    assert "resultstore contract checks of memory://" in result.output
    assert "1 passed, 0 failed, 0 skipped" in result.output


def test_cli_check_without_the_suite_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from resultstore.cli.commands import main

    # None in sys.modules makes the import fail as if the package were absent.
    monkeypatch.setitem(sys.modules, "resultstore_contract.check", None)
    result = CliRunner().invoke(main, ["check", "memory://"])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: resultstore check runs the contract suite")
    assert "pip install resultstore-contract" in result.stderr
    assert "pip install ./contract_tests" in result.stderr


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_check_drives_the_clock_the_backend_declares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    # check has no test class of the backend's own: the clock option must come
    # from the backend's BackendSpec, so that no expiry rule is skipped.
    (tmp_path / "record_clock.py").write_text(
        "import pytest\n"
        "SEEN = []\n\n\n"
        "@pytest.fixture(autouse=True)\n"
        "def _record_clock(request):\n"
        "    SEEN.append(request.getfixturevalue('clock_option'))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out, buffer = _console()
    url = "memory://" if scheme == "memory" else f"sqlite:///{tmp_path / 'check.db'}"
    code = check.run_check(
        url, pytest_args=["-p", "record_clock", "-k", "expiry or expire"], console=out
    )
    text = buffer.getvalue()
    assert code == check.EXIT_OK, text
    import record_clock

    assert record_clock.SEEN
    assert set(record_clock.SEEN) == {"clock"}
    assert ", 0 skipped" in text, text
    sys.modules.pop("record_clock", None)


def test_progress_goes_to_stderr_group_by_group_while_the_checks_run() -> None:
    out, buffer = _console()
    err, errors = _console()
    code = check.run_check(
        "memory://{unique}", pytest_args=["-k", "basic_unknown or bulk"], console=out, errors=err
    )
    assert code == check.EXIT_OK, buffer.getvalue() + errors.getvalue()
    progress = errors.getvalue().splitlines()
    total = int(progress[0].split()[1])
    assert progress[0] == f"Running {total} contract checks..."
    assert progress[1].startswith("  Basic: 1 passed, 0 failed, 0 skipped (1/")
    assert progress[-1].endswith(f"({total}/{total} checks done)")
    assert "Running" not in buffer.getvalue(), "the table's stream stays clean"


def test_verbose_leaves_progress_to_pytest() -> None:
    err, errors = _console()
    out, _ = _console()
    code = check.run_check(
        "memory://{unique}",
        pytest_args=["-k", "basic_unknown"],
        verbose=True,
        console=out,
        errors=err,
    )
    assert code == check.EXIT_OK
    assert "Running" not in errors.getvalue()


def test_long_skip_reasons_are_shortened_and_wrapped_never_cut() -> None:
    long_reason = (
        "no dead server to test against: give the test class a dead_url (this backend's "
        "URL at a stopped server or a closed port), or override the dead_server fixture"
    )
    assert check._short_reason(long_reason) == "no dead server to test against (-v for more)"
    assert check._short_reason("Capability.CHORDS is not declared") == "not declared: chords"
    assert check._short_reason("short and clear") == "short and clear"
    report = check.CheckReport(url="memory://", profile="ci")
    group = check.GroupResult("Lifecycle", ("chords", "groups", "native_async", "shared"))
    group.skipped = 2
    group.skip_reasons = [long_reason, "Capability.NATIVE_ASYNC: the backend does not declare it"]
    report.groups[("Lifecycle", group.needs)] = group
    buffer = io.StringIO()
    check.render(report, Console(file=buffer, width=80, color_system=None))
    text = " ".join(
        cell.strip()
        for line in buffer.getvalue().splitlines()
        for cell in line.split("│")[7:8]
        if line.startswith("│")
    )
    assert "…" not in buffer.getvalue()
    assert "no dead server to test against (-v for more); not declared: native_async" in " ".join(
        text.split()
    )


def test_what_the_checks_write_expires_soon(tmp_path: Path) -> None:
    import sqlite3
    import time

    url = f"sqlite:///{tmp_path / 'check.db'}"
    out, buffer = _console()
    started = time.time()
    code = check.run_check(
        url, pytest_args=["-k", "basic or codec or corrupt or expir"], console=out, errors=out
    )
    assert code == check.EXIT_OK, buffer.getvalue()
    with sqlite3.connect(tmp_path / "check.db") as db:
        rows = [
            (table, expires)
            for table in ("results", "groups", "chords")
            for (expires,) in db.execute(f"SELECT expires_at FROM {table}")
        ]
    assert len(rows) > 20, rows
    deadline = time.time() + check.CHECK_EXPIRES
    late = [(t, e) for t, e in rows if e is None or e > deadline or e < started]
    assert late == [], "everything the checks leave behind expires within CHECK_EXPIRES"


def test_check_runs_the_suite_with_pytests_assertions_and_no_warnings() -> None:
    import subprocess

    # A fresh process, as from the shell: the CLI imports the check module
    # (and so the package) before pytest starts.
    script = "import sys; from resultstore.cli.commands import main; sys.exit(main())"
    args = ["check", "memory://{unique}", "-v", "--", "-k", "basic_unknown or codec", "-W", "error"]
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Warning" not in output
    assert "warnings summary" not in output
    probe = (
        "import sys, resultstore.cli.commands, resultstore_contract.check; "
        "print(sorted(m for m in sys.modules "
        "if m.startswith(('hypothesis', 'resultstore_contract.'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert loaded.strip() == "['resultstore_contract.check']", "the suite is left to pytest"
