"""What runs behind ``resultstore check URL``: the whole contract suite against a live
backend, reported as a table of passed, failed and skipped groups of checks."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = [
    "CHECK_EXPIRES",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "PROFILES",
    "CheckReport",
    "GroupResult",
    "render",
    "run_check",
    "suite_classes",
]

#: hypothesis profiles ``--profile`` accepts (registered by the contract plugin).
PROFILES = ("ci", "default", "nightly")
#: every check that ran passed (or was skipped for a capability the backend lacks).
EXIT_OK = 0
#: a check failed, or none ran.
EXIT_FAILED = 1
#: the URL did not even connect; nothing was run.
EXIT_UNREACHABLE = 2
#: seconds every result, group and chord written by the checks is kept (unless
#: a check asks for a shorter expiry): the store drops them within the hour
#: (a backend without ``auto_expiry`` at its next ``cleanup``), even when the
#: run fails or is interrupted, instead of a day as by default.
CHECK_EXPIRES = 3600

_ENV_PROFILE = "HYPOTHESIS_PROFILE"
_CAPABILITY = re.compile(r"Capability\.([A-Z_]+)")
#: skip reasons longer than this are cut to their first clause in the table.
_SHORT_REASON = 60


@attrs.define
class GroupResult:
    """One group of checks: the suite class that defines them and what they need."""

    #: the contract class the checks come from, without "Contract" ("Basic", "Machine").
    name: str
    #: capabilities the checks need (values of ``resultstore.Capability``), sorted.
    needs: tuple[str, ...]
    passed: int = 0
    failed: list[tuple[str, str]] = attrs.Factory(list)
    skipped: int = 0
    #: why checks were skipped, each reason once, in the order first seen.
    skip_reasons: list[str] = attrs.Factory(list)

    @property
    def label(self) -> str:
        return f"{self.name} [{', '.join(self.needs)}]" if self.needs else self.name

    @property
    def status(self) -> str:
        if self.failed:
            return "failed"
        if self.passed:
            return "passed"
        return "skipped" if self.skipped else "empty"


@attrs.define
class CheckReport:
    """What a run found, group by group, in the suite's order."""

    url: str
    profile: str
    groups: dict[tuple[str, tuple[str, ...]], GroupResult] = attrs.Factory(dict)
    #: failures outside any test (collection errors, a broken suite).
    errors: list[str] = attrs.Factory(list)
    pytest_exit: int = 0

    @property
    def passed(self) -> int:
        return sum(group.passed for group in self.groups.values())

    @property
    def failed(self) -> int:
        return sum(len(group.failed) for group in self.groups.values()) + len(self.errors)

    @property
    def skipped(self) -> int:
        return sum(group.skipped for group in self.groups.values())

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.failed == 0 and self.passed > 0 else EXIT_FAILED


def suite_classes() -> list[type]:
    """The classes that make up the whole suite.

    :class:`BackendContract` when the package has it (every group in one);
    otherwise every exported subclass of :class:`ContractBase`.
    """
    import resultstore_contract
    from resultstore_contract.support import ContractBase

    whole = getattr(resultstore_contract, "BackendContract", None)
    if isinstance(whole, type):
        return [whole]
    exported = (getattr(resultstore_contract, name) for name in resultstore_contract.__all__)
    return [
        obj
        for obj in exported
        if isinstance(obj, type) and issubclass(obj, ContractBase) and obj is not ContractBase
    ]


def _suite_imports() -> list[tuple[str, str]]:
    """(module, class name) of each class of :func:`suite_classes`, found without
    importing the suite: pytest must import it, to rewrite its asserts."""
    import resultstore_contract

    where: dict[str, str] = getattr(resultstore_contract, "_WHERE", {})
    if "BackendContract" in where:
        return [(where["BackendContract"], "BackendContract")]
    return [(cls.__module__, cls.__name__) for cls in suite_classes()]


def _test_module(classes: Sequence[tuple[str, str]]) -> str:
    lines = [
        '"""Written by resultstore check: the whole suite; the URL comes from the command."""',
        "",
        *(f"from {module} import {name}" for module, name in classes),
        "",
    ]
    for _, name in classes:
        lines += [
            "",
            f"class Test{name}({name}):",
            f'    store_options = {{"expires": {CHECK_EXPIRES}}}',
            "",
        ]
    return "\n".join(lines)


def _group_of(item: pytest.Item) -> tuple[str, tuple[str, ...]]:
    function = getattr(item, "function", None)
    qualname = getattr(function, "__qualname__", item.name)
    # The class that defines the test, not the generated subclass that runs it.
    owner = qualname.split(".")[-2] if "." in qualname else "Checks"
    name = owner.removesuffix("Contract") or owner
    needs = sorted({str(cap) for marker in item.iter_markers("requires") for cap in marker.args})
    return name, tuple(needs)


def _message(report: pytest.TestReport | pytest.CollectReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) or report.longreprtext or report.outcome
    lines = [line for line in str(text).splitlines() if line.strip()]
    first = lines[0] if lines else str(report.outcome)
    return first if len(first) <= 300 else first[:297] + "..."


class _Progress:
    """What the run is doing, while it runs: on a terminal one live line, else one
    line per finished group (so that a CI log shows it too)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.total = 0
        self.counts = {"passed": 0, "failed": 0, "skipped": 0}
        self._group: GroupResult | None = None
        self._group_counts = dict(self.counts)
        self._status: Any = None

    def start(self, total: int) -> None:
        self.total = total
        self.console.print(Text(f"Running {total} contract checks...", style="dim"), soft_wrap=True)
        if self.console.is_terminal:
            self._status = self.console.status(self._line())
            self._status.start()

    def _line(self) -> str:
        ran = sum(self.counts.values())
        name = self._group.name if self._group is not None else "-"
        return (
            f"{name}: {ran}/{self.total} checks, {self.counts['passed']} passed, "
            f"{self.counts['failed']} failed, {self.counts['skipped']} skipped"
        )

    def done(self, group: GroupResult, outcome: str) -> None:
        """One check finished (``outcome``: passed, failed or skipped)."""
        # Groups are shown by name: one class's checks with different needs interleave.
        if self._group is None or group.name != self._group.name:
            self._group_finished()
            self._group = group
        self.counts[outcome] += 1
        self._group_counts[outcome] += 1
        if self._status is not None:
            self._status.update(self._line())

    def _group_finished(self) -> None:
        if self._group is None or self._status is not None:
            return
        counts = self._group_counts
        ran = sum(self.counts.values())
        self.console.print(
            Text(
                f"  {self._group.name}: {counts['passed']} passed, {counts['failed']} "
                f"failed, {counts['skipped']} skipped ({ran}/{self.total} checks done)",
                style="dim",
            ),
            soft_wrap=True,
        )
        self._group_counts = dict.fromkeys(counts, 0)

    def stop(self) -> None:
        self._group_finished()
        self._group = None
        if self._status is not None:
            self._status.stop()
            self._status = None


class _Collector:
    """A pytest plugin object that files each test's outcome under its group."""

    def __init__(self, report: CheckReport, progress: _Progress | None = None) -> None:
        self.report = report
        self.progress = progress
        self._group: dict[str, GroupResult] = {}
        self._outcome: dict[str, str] = {}

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # After deselection (-k), so that the table lists only what runs.
        for item in session.items:
            key = _group_of(item)
            group = self.report.groups.get(key)
            if group is None:
                group = self.report.groups[key] = GroupResult(*key)
            self._group[item.nodeid] = group
        if self.progress is not None:
            self.progress.start(len(session.items))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.report.errors.append(f"{report.nodeid or 'collection'}: {_message(report)}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._file(report)
        group = self._group.get(report.nodeid)
        if self.progress is not None and group is not None and report.when == "teardown":
            self.progress.done(group, self._outcome.get(report.nodeid, "passed"))

    def _file(self, report: pytest.TestReport) -> None:
        group = self._group.get(report.nodeid)
        if group is None or self._outcome.get(report.nodeid) == "failed":
            return
        test = report.nodeid.rpartition("::")[2]
        if report.failed:
            self._outcome[report.nodeid] = "failed"
            when = "" if report.when == "call" else f" (in {report.when})"
            group.failed.append((test, _message(report) + when))
        elif report.skipped and report.nodeid not in self._outcome:
            self._outcome[report.nodeid] = "skipped"
            reason = _skip_reason(report)
            group.skipped += 1
            if reason not in group.skip_reasons:
                group.skip_reasons.append(reason)
        elif report.when == "call" and report.passed:
            self._outcome[report.nodeid] = "passed"

    def finish(self) -> None:
        """Count as passed the tests whose teardown also went through."""
        for nodeid, outcome in self._outcome.items():
            if outcome == "passed":
                self._group[nodeid].passed += 1


def _short_reason(reason: str) -> str:
    """A capability skip as "not declared: chords"; any other reason up to its
    first colon or sentence end, when that is long (--verbose shows it whole)."""
    missing = _CAPABILITY.findall(reason)
    if missing and "not declare" in reason:
        return "not declared: " + ", ".join(name.lower() for name in missing)
    if len(reason) <= _SHORT_REASON:
        return reason
    head = re.split(r": |; |\. ", reason, maxsplit=1)[0]
    if len(head) > _SHORT_REASON:
        head = head[: _SHORT_REASON - 3].rstrip() + "..."
    return f"{head} (-v for more)"


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return _message(report)


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _scrubber(url: str) -> tuple[str, str | None]:
    from resultstore.concepts.urls import parse_url, redact

    try:
        password = parse_url(url).password
    except Exception:
        password = None
    return redact(url), password or None


def _probe_url(template: str, tmp: Path) -> str:
    """``template`` with its placeholders filled the way the suite fills them."""
    return template.replace("{tmp_path}", str(tmp)).replace(
        "{unique}", f"check{uuid.uuid4().hex[:12]}"
    )


def _shares(url: str) -> bool:
    """Whether a second connection to ``url`` reads what a first one wrote.

    Raises what connecting raises; the round trip also proves that a client
    which connects lazily really reached its server.
    """
    import resultstore
    from resultstore import State, TaskResult

    task_id = f"resultstore-check-{uuid.uuid4().hex}"
    with resultstore.connect(url) as writer, resultstore.connect(url) as reader:
        writer.store(TaskResult(task_id, State.STARTED))
        try:
            return reader.get(task_id) is not None
        finally:
            writer.forget(task_id)


def _suite_url(url: str) -> tuple[str | None, str]:
    """The URL template the suite runs with, and a note (or why it cannot run).

    The suite opens several connections per check and needs them to reach
    one store. A URL that names no store (nothing after ``scheme://``) and
    whose connections each get their own is given a fresh name per check
    through the suite's ``{unique}`` placeholder.
    """
    from resultstore.concepts.urls import parse_url

    with tempfile.TemporaryDirectory(prefix="resultstore-check-") as tmp:
        try:
            if _shares(_probe_url(url, Path(tmp))):
                return url, ""
            parsed = parse_url(url)
            if parsed.host or parsed.path.strip("/") or "{" in url:
                return None, (
                    "two connections to it do not reach the same store, and the contract "
                    "needs them to: give a URL that names one store ({unique} in it stands "
                    "for a fresh name per check)"
                )
            query = url.partition("?")[2]
            named = f"{parsed.scheme}://{{unique}}" + (f"?{query}" if query else "")
            if _shares(_probe_url(named, Path(tmp))):
                return named, (
                    f"its connections do not share a store, so each check runs on "
                    f"{named}, a store named for that check"
                )
        except Exception as exc:
            return None, f"{type(exc).__name__}: {exc}"
    return None, "two connections to it do not reach the same store, even under one name"


def run_check(
    url: str,
    *,
    profile: str = "ci",
    verbose: bool = False,
    pytest_args: Sequence[str] = (),
    console: Console | None = None,
    errors: Console | None = None,
) -> int:
    """Run the whole suite against ``url``, print the table, return the exit status.

    ``profile`` picks the hypothesis profile (``ci``: bounded and
    reproducible); ``pytest_args`` go to pytest as they are (``-k chord``,
    ``-x``); ``verbose`` shows pytest's own output too. The table goes to
    ``console``; progress, notes and ``Error:`` lines go to ``errors``
    (default: stderr).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    out = console or Console(highlight=False)
    err = errors or Console(stderr=True, highlight=False)
    shown, password = _scrubber(url)

    def scrub(text: str) -> str:
        return text.replace(password, "***") if password else text

    suite_url, note = _suite_url(url)
    if suite_url is None:
        err.print(Text(f"Error: cannot check {shown}: {scrub(note)}"), soft_wrap=True)
        return EXIT_UNREACHABLE
    if note:
        err.print(Text(f"Note: {shown}: {scrub(note)}", style="yellow"), soft_wrap=True)

    report = CheckReport(url=shown, profile=profile)
    # pytest -v reports each check itself.
    progress = None if verbose else _Progress(err)
    collector = _Collector(report, progress)
    with tempfile.TemporaryDirectory(prefix="resultstore-check-") as tmp:
        folder = Path(tmp)
        (folder / "test_resultstore_check.py").write_text(_test_module(_suite_imports()))
        # An ini of our own keeps the caller's project settings out of the run.
        (folder / "pytest.ini").write_text("[pytest]\n")
        args = [
            str(folder),
            "-c",
            str(folder / "pytest.ini"),
            "--rootdir",
            str(folder),
            "--import-mode=importlib",
            "-p",
            "no:cacheprovider",
            "--resultstore-url",
            suite_url,
        ]
        if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
            args += ["-p", "resultstore_contract.plugin"]
        # -rs: pytest's summary gives each skip reason whole.
        args += ["-v", "-rs"] if verbose else ["-q", "--no-header", "--tb=short"]
        args += list(pytest_args)
        captured = io.StringIO()
        with _environment(_ENV_PROFILE, profile):
            if verbose:
                code = pytest.main(args, plugins=[collector])
            else:
                try:
                    with contextlib.redirect_stdout(captured):
                        code = pytest.main(args, plugins=[collector])
                finally:
                    if progress is not None:
                        progress.stop()
    collector.finish()
    report.pytest_exit = int(code)
    ran = (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED)
    if code not in ran and not report.errors:
        tail = "" if verbose else scrub(captured.getvalue().strip()[-2000:])
        report.errors.append(f"pytest stopped with {pytest.ExitCode(code).name}\n{tail}".strip())
    render(report, out, scrub=scrub)
    return report.exit_code


def render(
    report: CheckReport,
    console: Console,
    *,
    scrub: Callable[[str], str] = str,
) -> None:
    """Print the table of groups, then every failure on one line (through ``scrub``)."""
    table = Table(
        title=f"resultstore contract checks of {report.url} (profile {report.profile})",
        title_justify="left",
    )
    table.add_column("Checks", style="bold", no_wrap=True)
    table.add_column("Needs", min_width=8)
    table.add_column("Pass", justify="right")
    table.add_column("Fail", justify="right")
    table.add_column("Skip", justify="right")
    table.add_column("Result", no_wrap=True)
    # Folded, never cut: a reason is read whole (capability skips are short).
    table.add_column("Why skipped", overflow="fold", ratio=1)
    styles = {"passed": "green", "failed": "bold red", "skipped": "yellow", "empty": "dim"}
    for group in report.groups.values():
        table.add_row(
            Text(group.name),
            Text(", ".join(group.needs) or "-", style="" if group.needs else "dim"),
            str(group.passed),
            Text(str(len(group.failed)), style="bold red" if group.failed else ""),
            str(group.skipped),
            Text(group.status, style=styles[group.status]),
            Text("; ".join(_short_reason(reason) for reason in group.skip_reasons)),
        )
    console.print(table)
    for group in report.groups.values():
        for test, message in group.failed:
            line = Text("FAILED ", style="bold red")
            line.append(f"{group.name}: {test}: ", style="bold")
            line.append(scrub(message))
            console.print(line, soft_wrap=True)
    for error in report.errors:
        line = Text("ERROR ", style="bold red")
        line.append(scrub(error))
        console.print(line, soft_wrap=True)
    summary = f"{report.passed} passed, {report.failed} failed, {report.skipped} skipped"
    if report.passed == 0 and report.failed == 0:
        summary += " (no check ran: nothing was verified)"
    style = "bold green" if report.exit_code == EXIT_OK else "bold red"
    console.print(Text(summary, style=style))
    if report.failed:
        console.print(
            Text("Run again with --verbose for pytest's full report.", style="dim"),
        )
    sys.stdout.flush()
