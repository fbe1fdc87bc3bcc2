"""The reference pages written from the code, and the MkDocs hooks that keep them current.

``reference/hooks.md`` comes from :mod:`resultstore.plugin.hookspecs`, the command
reference in ``cli.md`` from :data:`resultstore.cli.commands.main`, and the tree in
``errors.md`` from :mod:`resultstore.concepts.errors` (whose every class needs a section).
They are committed files, so that they read on GitHub too; run this file to
write them again::

    python docs/_hooks/reference.py

and ``mkdocs build --strict`` fails, saying so, when one is stale.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

HOOKS_PAGE = "reference/hooks.md"
CLI_PAGE = "cli.md"
CLI_MARKER = "<!-- generated: cli-reference -->"
ERRORS_PAGE = "errors.md"
ERRORS_MARKER = "<!-- generated: error-tree -->"
#: what regenerates the pages; the stale-page error says it.
REGENERATE = "python docs/_hooks/reference.py"
DOCS = Path(__file__).resolve().parents[1]
HELP_WIDTH = 88

_ROLE = re.compile(r":[a-z]+:`~?([^`<]+?)`")
_TILDE_ROLE = re.compile(r":[a-z]+:`~([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def rst_to_markdown(text: str) -> str:
    """The little reST that docstrings here use: ``literals`` and :role:`targets`."""
    # :class:`~a.b.C` shows only C, as Sphinx would.
    text = _TILDE_ROLE.sub(lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`", text)
    text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    return _LITERAL.sub(lambda m: f"`{m.group(1)}`", text)


# -- hook reference ---------------------------------------------------------------


def _hookspecs() -> tuple[Any, list[tuple[Callable[..., Any], dict[str, Any]]]]:
    from resultstore.plugin import hookspecs

    marker = f"{hookspecs.PROJECT_NAME}_spec"
    specs = [
        (func, getattr(func, marker))
        for name, func in vars(hookspecs).items()
        if name.startswith(f"{hookspecs.PROJECT_NAME}_") and hasattr(func, marker)
    ]
    specs.sort(key=lambda item: item[0].__code__.co_firstlineno)
    return hookspecs, specs


def _signature(func: Callable[..., Any]) -> str:
    # The module uses postponed annotations, so every annotation is its source text.
    sig = inspect.signature(func)
    params = ", ".join(
        name if p.annotation is inspect.Parameter.empty else f"{name}: {p.annotation}"
        for name, p in sig.parameters.items()
    )
    returns = "" if sig.return_annotation is inspect.Signature.empty else sig.return_annotation
    return f"def {func.__name__}({params}) -> {returns}: ..."


def _calling(options: dict[str, Any]) -> str:
    if options.get("firstresult"):
        kind = (
            "**firstresult**: implementations run until one returns a value other than "
            "`None`, and that value is the result. Add a layer with "
            "`@hookimpl(wrapper=True)`."
        )
    else:
        kind = "**All implementations run** (not firstresult)."
    if options.get("historic"):
        kind += " **historic**: plugins registered later are called too."
    return kind


def hooks_page() -> str:
    """The Markdown of the hook reference."""
    hookspecs, specs = _hookspecs()
    if not specs:
        raise PluginError(
            "resultstore.plugin.hookspecs declares no hooks; the reference would be empty"
        )
    lines = [
        "# Plugin hooks",
        "",
        "!!! note",
        f"    Generated from `resultstore/plugin/hookspecs.py` by `{REGENERATE}`;",
        "    the docs build fails when it is stale.",
        "",
        rst_to_markdown(inspect.getdoc(hookspecs) or ""),
        "",
        "A plugin implements a hook by defining a function with the same name and any "
        "subset of its arguments, marked with `resultstore.hookimpl`:",
        "",
        "```python",
        "from resultstore import hookimpl",
        "",
        "",
        "@hookimpl",
        "def resultstore_on_forget(url, task_id):",
        '    print(f"{task_id} forgotten on {url}")',
        "```",
        "",
        "| Hook | Calling |",
        "| --- | --- |",
    ]
    lines += [
        f"| [`{func.__name__}`](#{func.__name__}) | "
        f"{'firstresult' if options.get('firstresult') else 'all run'} |"
        for func, options in specs
    ]
    for func, options in specs:
        doc = inspect.getdoc(func)
        if not doc:
            raise PluginError(f"hookspec {func.__name__} has no docstring; document it")
        lines += [
            "",
            f"## `{func.__name__}` {{#{func.__name__}}}",
            "",
            "```python",
            "@hookimpl",
            _signature(func),
            "```",
            "",
            _calling(options),
            "",
            rst_to_markdown(doc),
        ]
    return "\n".join(lines) + "\n"


# -- command reference --------------------------------------------------------------


def _commands(
    command: click.Command, ctx: click.Context
) -> Iterator[tuple[click.Context, click.Command]]:
    yield ctx, command
    if isinstance(command, click.Group):
        # list_commands/get_command, not .commands, so lazily loaded commands show too.
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield from _commands(sub, click.Context(sub, info_name=name, parent=ctx))


def cli_reference() -> str:
    """Every command's ``--help``, from the installed click group."""
    from resultstore.cli.commands import main

    root = click.Context(
        main, info_name="resultstore", terminal_width=HELP_WIDTH, max_content_width=HELP_WIDTH
    )
    blocks: list[str] = []
    for ctx, command in _commands(main, root):
        title = ctx.command_path
        anchor = "cli-" + "-".join(title.split()[1:]) if ctx.parent else "cli-resultstore"
        blocks += [
            f"### `{title}` {{#{anchor}}}",
            "",
            "```text",
            command.get_help(ctx).rstrip(),
            "```",
            "",
        ]
    return "\n".join(blocks)


# -- error tree ---------------------------------------------------------------------


def _error_classes() -> list[type[BaseException]]:
    from resultstore.concepts import errors

    # Definition order (vars keeps it), not the alphabetical order of __all__.
    return [cls for name, cls in vars(errors).items() if name in errors.__all__]


def error_tree() -> str:
    """The hierarchy of :mod:`resultstore.concepts.errors` as an indented text tree."""
    from resultstore import ResultStoreError

    ours = _error_classes()

    def children(parent: type[BaseException]) -> list[type[BaseException]]:
        # Definition order, as the module lists them.
        return [c for c in ours if parent in c.__bases__]

    def describe(cls: type[BaseException]) -> str:
        foreign = [b.__name__ for b in cls.__bases__ if b not in ours]
        also = (
            f" (also a builtin {', '.join(foreign)})"
            if cls is not ResultStoreError and foreign
            else ""
        )
        return cls.__name__ + also

    def walk(cls: type[BaseException], prefix: str) -> Iterator[str]:
        kids = children(cls)
        for i, kid in enumerate(kids):
            last = i == len(kids) - 1
            yield f"{prefix}{'└── ' if last else '├── '}{describe(kid)}"
            yield from walk(kid, prefix + ("    " if last else "│   "))

    lines = [ResultStoreError.__name__, *walk(ResultStoreError, "")]
    return "```text\n" + "\n".join(lines) + "\n```"


def _check_errors_documented(markdown: str) -> None:
    headings = "\n".join(line for line in markdown.splitlines() if line.startswith("#"))
    missing = [c.__name__ for c in _error_classes() if f"`{c.__name__}`" not in headings]
    if missing:
        raise PluginError(
            f"{ERRORS_PAGE} has no section for {', '.join(missing)}: add a heading "
            f"with the class name in backticks, saying when it is raised and the fix"
        )


# -- generated blocks ---------------------------------------------------------------


def _end(marker: str) -> str:
    return marker.replace("<!-- generated:", "<!-- end generated:")


def _block(markdown: str, page: str, marker: str) -> tuple[int, int]:
    """Where the generated block of ``page`` starts and ends (between its markers)."""
    start, end = markdown.find(marker), markdown.find(_end(marker))
    if start < 0 or end < start:
        raise PluginError(
            f"{page} lost the {marker} ... {_end(marker)} lines that generated content "
            f"goes between; put them back and run {REGENERATE}"
        )
    return start + len(marker), end


def _fill(markdown: str, page: str, marker: str, content: str) -> str:
    start, end = _block(markdown, page, marker)
    return f"{markdown[:start]}\n\n{content.strip()}\n\n{markdown[end:]}"


def _stale(page: str) -> PluginError:
    return PluginError(
        f"{page} is stale: the code it is generated from changed. Run {REGENERATE} "
        f"and commit the result"
    )


def regenerate(docs: Path = DOCS) -> list[str]:
    """Write every generated page and block again; the pages that changed."""
    changed = []
    pages: list[tuple[str, Callable[[str], str]]] = [
        (HOOKS_PAGE, lambda _old: hooks_page()),
        (CLI_PAGE, lambda old: _fill(old, CLI_PAGE, CLI_MARKER, cli_reference())),
        (ERRORS_PAGE, lambda old: _fill(old, ERRORS_PAGE, ERRORS_MARKER, error_tree())),
    ]
    for page, make in pages:
        path = docs / page
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        new = make(old)
        if new != old:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new, encoding="utf-8")
            changed.append(page)
    return changed


# -- MkDocs events ------------------------------------------------------------------


def on_page_markdown(markdown: str, *, page: Page, config: MkDocsConfig, files: Files) -> str:
    uri = page.file.src_uri
    if uri == HOOKS_PAGE and markdown.strip() != hooks_page().strip():
        raise _stale(HOOKS_PAGE)
    if uri == CLI_PAGE and markdown != _fill(markdown, CLI_PAGE, CLI_MARKER, cli_reference()):
        raise _stale(CLI_PAGE)
    if uri == ERRORS_PAGE:
        _check_errors_documented(markdown)
        if markdown != _fill(markdown, ERRORS_PAGE, ERRORS_MARKER, error_tree()):
            raise _stale(ERRORS_PAGE)
    return markdown


if __name__ == "__main__":
    written = regenerate()
    print(f"rewrote {', '.join(written)}" if written else "every generated page is current")
    sys.exit(0)
