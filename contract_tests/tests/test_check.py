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
    code = check.run_check("memory://", pytest_args=["-k", "basic"], console=out)
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
        "memory://{unique}", pytest_args=["-k", "basic_unknown or chord"], console=out
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
    code = check.run_check("nosuchscheme://user:hunter22@localhost/0", console=out)
    text = buffer.getvalue()
    assert code == check.EXIT_UNREACHABLE
    assert "Cannot check nosuchscheme://user:***@localhost/0" in text
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
    from resultstore.cli import main

    result = CliRunner().invoke(
        main, ["check", "memory://", "--profile", "ci", "--", "-k", "basic_unknown"]
    )
    assert result.exit_code == 0, result.output
    assert "resultstore contract checks of memory://" in result.output
    assert "1 passed, 0 failed, 0 skipped" in result.output


def test_cli_check_without_the_suite_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from resultstore.cli import main

    # None in sys.modules makes the import fail as if the package were absent.
    monkeypatch.setitem(sys.modules, "resultstore_contract.check", None)
    result = CliRunner().invoke(main, ["check", "memory://"])
    assert result.exit_code != 0
    assert "pip install resultstore-contract" in result.output


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
