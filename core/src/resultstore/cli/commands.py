"""The ``resultstore`` command line: look at and tidy a result store from the shell.

Every command hangs off the click group :data:`main`; a command written in
another module is attached with ``main.add_command(command)`` and reaches
the store through :data:`pass_state` (see :class:`CliState`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

import attrs
import click
from rich.console import Console
from rich.pretty import Pretty
from rich.table import Table
from rich.text import Text

from resultstore.api.store import URL_ENV
from resultstore.cli.demo import EXIT_TIMEOUT, demo_command, watch_command
from resultstore.cli.state import EXIT_NOT_FOUND, EXIT_OK, EXIT_STORE_ERROR, CliState, fail
from resultstore.cli.terminal import FULL, PREVIEW, Limits, json_safe, preview, safe_text
from resultstore.concepts.errors import ResultStoreError
from resultstore.concepts.models import ExceptionInfo, TaskResult
from resultstore.concepts.states import State
from resultstore.plugin.discovery import installed_backends
from resultstore.plugin.hooks import build_hooks

__all__ = [
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_STATUSES",
    "EXIT_STORE_ERROR",
    "EXIT_TIMEOUT",
    "CliState",
    "StoreCommandError",
    "console",
    "fail",
    "main",
    "pass_state",
]

#: every exit status of every command, with its meaning: the table in docs/cli.md.
EXIT_STATUSES: dict[int, str] = {
    EXIT_OK: "done (check: no check failed)",
    EXIT_NOT_FOUND: (
        "the task id or group id is unknown, or its result was forgotten or expired "
        "(check: a check failed, or none ran)"
    ),
    EXIT_STORE_ERROR: (
        "the command could not do its work: a resultstore error, a usage error, a store "
        "that does not exist or does not connect, or the contract suite not installed (check)"
    ),
    EXIT_TIMEOUT: "watch or demo: the timeout ran out first",
}

_STATE_STYLES: dict[str, str] = {
    State.SUCCESS: "bold green",
    State.FAILURE: "bold red",
    State.REVOKED: "bold red",
    State.RETRY: "yellow",
}


#: decorator giving a command the :class:`CliState` as its first argument.
pass_state = click.make_pass_decorator(CliState, ensure=True)


class StoreCommandError(click.ClickException):
    """A documented resultstore error, shown as one line without a traceback."""

    exit_code = EXIT_STORE_ERROR

    def __init__(self, error: ResultStoreError, state: CliState) -> None:
        # Messages may quote stored data (an id, a header): never raw to the terminal.
        super().__init__(safe_text(state.scrub(f"{type(error).__name__}: {error}")))


class _Group(click.Group):
    # Catching here covers commands that other modules add with add_command.
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ResultStoreError as exc:
            state = ctx.find_object(CliState) or CliState()
            raise StoreCommandError(exc, state) from None


def console(*, stderr: bool = False) -> Console:
    """A rich console for one command (built per call so redirected output is honoured)."""
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


@click.group(cls=_Group)
@click.option(
    "--url",
    envvar=URL_ENV,
    default=None,
    metavar="URL",
    help=(
        f"Backend URL, e.g. sqlite:///results.db or redis://host:6379/0. "
        f"Default: ${URL_ENV}, else the embedded SQLite file in the user's data folder."
    ),
)
@click.version_option(package_name="resultstore", prog_name="resultstore")
@click.pass_context
def main(ctx: click.Context, url: str | None) -> None:
    """Inspect and tidy a resultstore backend from the shell."""
    given = ctx.obj if isinstance(ctx.obj, CliState) else CliState()
    ctx.obj = attrs.evolve(given, url=url if url is not None else given.url)


# -- backends ---------------------------------------------------------------------


@main.command()
@pass_state
def backends(state: CliState) -> None:
    """List the installed backends: URL scheme, distribution, capabilities."""
    specs = installed_backends(build_hooks(state.plugins))
    table = Table(title="Installed resultstore backends", title_justify="left")
    table.add_column("Scheme", style="bold", no_wrap=True)
    table.add_column("Distribution", no_wrap=True)
    table.add_column("Capabilities")
    table.add_column("Summary")
    for scheme, spec in specs.items():
        table.add_row(
            Text(f"{scheme}://"),
            Text(spec.distribution),
            Text(", ".join(sorted(c.value for c in spec.capabilities)) or "-"),
            Text(spec.summary),
        )
    console().print(table)


# -- get --------------------------------------------------------------------------


def _shown(text: str, limits: Limits, *, one_line: bool = False) -> str:
    """Stored text as it may be shown: escaped, and cut to the preview's string limit."""
    if limits.string is not None and len(text) > limits.string * 4:
        text = f"{text[: limits.string * 4]}... ({len(text):,} chars)"
    return safe_text(text, one_line=one_line)


def _exception_lines(info: ExceptionInfo, limits: Limits) -> Iterable[Text]:
    link: ExceptionInfo | None = info
    first = True
    shown = 0
    while link is not None:
        if limits.items is not None and shown >= limits.items:
            yield Text("... more causes (--full shows them)", style="dim")
            return
        prefix = "" if first else "caused by "
        line = Text(prefix, style="dim")
        # Builtins read better bare, as Python prints them.
        name = link.type_name if link.module == "builtins" else link.qualified_name
        line.append(_shown(name, limits, one_line=True), style="bold")
        if link.message:
            line.append(f": {_shown(link.message, limits)}")
        yield line
        first = False
        shown += 1
        link = link.cause


def _traceback_text(trace: str, limits: Limits) -> str:
    """The traceback's last lines (where it ends is what matters), escaped."""
    text = trace.rstrip("\n")
    if limits.total is not None and len(text) > limits.total:
        tail = text[-limits.total :]
        text = f"... {len(text) - len(tail):,} earlier characters (--full shows them)\n{tail}"
    return safe_text(text)


def _metadata(result: TaskResult) -> list[tuple[str, Any]]:
    fields: list[tuple[str, Any]] = [
        ("Name", result.name),
        ("Args", result.args),
        ("Kwargs", dict(result.kwargs) if result.kwargs is not None else None),
        ("Worker", result.worker),
        ("Queue", result.queue),
        ("Retries", result.retries),
        ("Group", result.group_id),
        ("Parent", result.parent_id),
        ("Children", result.children or None),
    ]
    return [(label, value) for label, value in fields if value is not None]


def _value(value: Any, limits: Limits) -> tuple[Pretty, bool]:
    """A pretty view of a stored value, bounded by ``limits``, and whether it was cut."""
    if limits is FULL:
        return Pretty(value, overflow="fold"), False
    shown, cut = preview(value, limits)
    return Pretty(shown, overflow="fold"), cut


def _render(result: TaskResult, limits: Limits) -> None:
    out = console()
    cut = False
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("Task", Text(_shown(result.task_id, limits, one_line=True)))
    grid.add_row(
        "State",
        Text(
            _shown(str(result.state), limits, one_line=True),
            style=_STATE_STYLES.get(result.state, ""),
        ),
    )
    if result.date_done is not None:
        grid.add_row("Done", Text(result.date_done.isoformat()))
    if result.result is not None or result.state == State.SUCCESS:
        label = "Result" if result.state == State.SUCCESS else "Meta"
        view, cut = _value(result.result, limits)
        grid.add_row(label, view)
    for label, value in _metadata(result):
        if isinstance(value, str):
            grid.add_row(label, Text(_shown(value, limits)))
        else:
            view, more = _value(value, limits)
            grid.add_row(label, view)
            cut = cut or more
    if result.exception is not None:
        grid.add_row("Exception", Text("\n").join(_exception_lines(result.exception, limits)))
    out.print(grid)
    if result.traceback:
        out.print()
        out.print(Text("Traceback", style="bold"))
        # soft_wrap keeps long traceback lines whole, so they stay copyable.
        out.print(Text(_traceback_text(result.traceback, limits)), soft_wrap=True)
    if cut:
        out.print()
        out.print(
            Text(
                "This is a preview: parts of the value were cut. --full shows all of it, "
                "--json prints all of it for programs.",
                style="dim",
            )
        )


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _as_json(result: TaskResult) -> str:
    data = attrs.asdict(result, value_serializer=lambda _i, _a, v: _json_value(v))
    data["ready"] = result.ready
    # Values JSON cannot hold (bytes from a msgpack store, say) appear as their repr.
    return json_safe(json.dumps(data, indent=2, ensure_ascii=False, default=repr))


@main.command()
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as one JSON object.")
@click.option(
    "--full",
    is_flag=True,
    help="Show the whole value, however large or deeply nested (can be slow).",
)
@pass_state
def get(state: CliState, task_id: str, as_json: bool, full: bool) -> None:
    """Show the stored result of TASK_ID: state, value, exception, traceback, metadata.

    Values are shown as a preview, cut in depth, length and size; --full
    shows everything. Text from the store is shown escaped, never as
    terminal control. Exits with status 1 when the store has no result for
    TASK_ID.
    """
    with state.connect_existing() as store:
        result = store.get(task_id)
    if result is None:
        fail(
            f"no result for task {task_id!r} in {state.redacted_url}: "
            f"the id is unknown, or its result was forgotten or has expired"
        )
    if as_json:
        try:
            text = _as_json(result)
        except RecursionError:
            fail(
                f"the result of task {task_id!r} is nested too deeply to print as JSON; "
                f"look at it without --json (a preview), or read it with the Python API",
                code=EXIT_STORE_ERROR,
            )
        click.echo(text)
    else:
        _render(result, FULL if full else PREVIEW)


# -- forget and cleanup -----------------------------------------------------------


@main.command()
@click.argument("task_id")
@pass_state
def forget(state: CliState, task_id: str) -> None:
    """Delete the stored result of TASK_ID (an unknown id is not an error)."""
    # No read first: forgetting is the cure for a payload that no longer decodes.
    with state.connect_existing() as store:
        store.forget(task_id)
    click.echo(f"Forgot task {task_id!r} in {state.redacted_url}.")


@main.command()
@pass_state
def cleanup(state: CliState) -> None:
    """Delete expired results now and print how many went."""
    with state.connect_existing() as store:
        deleted = store.cleanup()
    noun = "result" if deleted == 1 else "results"
    click.echo(f"Deleted {deleted} expired {noun} from {state.redacted_url}.")


@main.command()
@pass_state
def migrate(state: CliState) -> None:
    """Create the store's tables, indexes or templates now.

    Backends create them on first use; run this once ahead when you deploy
    with a migration step, or when the application's role may not create them.
    """
    with state.connect() as store:
        done = store.migrate()
    click.echo(f"Ready: {done} ({state.redacted_url}).")


# -- demo and watch (written in resultstore.cli.demo, which workers import without the CLI) ---

main.add_command(demo_command)
main.add_command(watch_command)


# -- check (the contract suite lives in resultstore-contract, imported only here) -----


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("url")
@click.option(
    "--profile",
    type=click.Choice(["ci", "default", "nightly"]),
    default="ci",
    show_default=True,
    help="Hypothesis profile: ci is bounded and reproducible, nightly runs long.",
)
@click.option("--verbose", "-v", is_flag=True, help="Show pytest's own report as well.")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def check(url: str, profile: str, verbose: bool, pytest_args: tuple[str, ...]) -> None:
    """Run the contract suite against the live backend at URL; print a table of the checks.

    Checks the backend skips are listed with the capability it does not
    declare. Progress goes to stderr while the checks run. Every result,
    group and chord the checks write is stored with a short expiry (see
    docs/cli.md). Exits 0 when no check failed, 1 when one did (or none ran),
    2 when the checks could not run (URL does not connect, suite not
    installed). Arguments after -- go to pytest (resultstore check URL -- -k chord).
    """
    try:
        from resultstore_contract.check import run_check
    except ImportError:
        fail(
            "resultstore check runs the contract suite, which is not installed: "
            "pip install resultstore-contract (from a checkout of resultstore: "
            "pip install ./contract_tests)",
            code=EXIT_STORE_ERROR,
        )
    status = run_check(
        url,
        profile=profile,
        verbose=verbose,
        pytest_args=pytest_args,
        console=console(),
        errors=console(stderr=True),
    )
    raise click.exceptions.Exit(status)
