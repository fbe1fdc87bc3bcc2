"""The core's floors, and the test that every import inside it points one way: down.

``resultstore`` is built in floors. A module imports only from its own floor
or the floors below it, and no two modules import each other, directly or
round a circle. When two modules need each other, the piece both need moves
down a floor (a ``Protocol`` the lower one declares, a small shared module);
an import inside a function that hides a circle is still a circle, so this
walk counts every import: module level, under ``if TYPE_CHECKING:``, and inside
functions. The only imports allowed inside functions are the few in
:data:`LAZY_IMPORTS`, each with its reason.

``from resultstore import X`` counts as an import of the submodule ``X`` when
there is one, else of the package root (which is the top floor: a module
below it that takes a public name from there is going up).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import attrs
import resultstore

#: The floors, lowest first. A module may import its own floor and those below.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    # What is stored, and checking it: no knowledge of encoding or plugins.
    (
        "stored",
        frozenset(
            {
                "resultstore.states",
                "resultstore.errors",
                "resultstore.models",
                "resultstore.remote",
                "resultstore.converters",
                "resultstore.validation",
                "resultstore.urls",
                "resultstore.options",
            }
        ),
    ),
    # How a model becomes bytes: codecs, compression, the header, the size limit.
    ("payloads", frozenset({"resultstore.codecs"})),
    # The backend contract and the plugin machinery: protocols, what a factory
    # receives, the retry helper backends share, what a plugin declares per
    # scheme, hook specs, the core's own plugin, the typed pluggy facade, and
    # discovery of backends by scheme (which calls the facade: it is the one
    # module here that imports hooks).
    (
        "plugins",
        frozenset(
            {
                "resultstore.protocols",
                "resultstore.config",
                "resultstore.retrying",
                "resultstore.backendspec",
                "resultstore.hookspecs",
                "resultstore.builtin",
                "resultstore.hooks",
                "resultstore.discovery",
            }
        ),
    ),
    # The built-in backends (third-party ones live in their own distributions).
    (
        "backends",
        frozenset(
            {
                "resultstore.backends",
                "resultstore.backends.keyvalue",
                "resultstore.backends.memory",
                "resultstore.backends.sqlite",
                "resultstore.backends.threaded",
            }
        ),
    ),
    # What callers use: the waiting hub, result handles, the store, asyncio.
    (
        "api",
        frozenset(
            {
                "resultstore.waiting",
                "resultstore.result",
                "resultstore.store",
                "resultstore.aio",
            }
        ),
    ),
    # The command line (what its commands share, then demo and watch, then the
    # commands), and the package root that re-exports the public names.
    (
        "cli",
        frozenset(
            {
                "resultstore",
                "resultstore.terminal",
                "resultstore.clistate",
                "resultstore.demo",
                "resultstore.cli",
            }
        ),
    ),
)

#: (importer, imported) -> why the import waits until a function runs.
LAZY_IMPORTS: Mapping[tuple[str, str], str] = {
    ("resultstore.codecs", "zstandard"): (
        "an optional client library (the zstd extra): imported when comp=zstd is first used"
    ),
    ("resultstore.cli", "resultstore_contract.check"): (
        "an optional distribution (resultstore-contract): only `resultstore check` needs it"
    ),
}


@attrs.frozen
class Import:
    """One import statement's target, as the walk found it."""

    importer: str
    imported: str
    line: int
    #: "module", "type-checking" or "function".
    kind: str


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(tree: ast.Module) -> Iterable[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement in ``tree`` with where it sits."""

    def visit(node: ast.AST, kind: str) -> Iterable[tuple[ast.Import | ast.ImportFrom, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, kind
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from visit(child, "function")
            elif isinstance(child, ast.If) and kind == "module" and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from visit(ast.Module(body=[stmt], type_ignores=[]), "type-checking")
                for stmt in child.orelse:
                    yield from visit(ast.Module(body=[stmt], type_ignores=[]), kind)
            else:
                yield from visit(child, kind)

    yield from visit(tree, "module")


def package_imports(src: Path, package: str) -> tuple[frozenset[str], list[Import]]:
    """The modules of ``package`` (found under ``src``) and every import they make."""
    files = sorted((src / package).rglob("*.py"))
    modules = frozenset(_module_name(path, src) for path in files)
    found: list[Import] = []
    for path in files:
        name = _module_name(path, src)
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for stmt, kind in _statements(tree):
            targets: list[str] = []
            if isinstance(stmt, ast.Import):
                targets = [alias.name for alias in stmt.names]
            else:
                if stmt.level:
                    base = here.split(".")[: len(here.split(".")) - stmt.level + 1]
                    source = ".".join([*base, *([stmt.module] if stmt.module else [])])
                else:
                    source = stmt.module or ""
                for alias in stmt.names:
                    submodule = f"{source}.{alias.name}"
                    targets.append(submodule if submodule in modules else source)
            for target in targets:
                found.append(Import(name, target, stmt.lineno, kind))
    return modules, found


def _internal(modules: frozenset[str], imports: Iterable[Import]) -> list[Import]:
    """Imports of another module of the package."""
    return [i for i in imports if i.imported in modules and i.imported != i.importer]


def cycles(modules: frozenset[str], imports: Iterable[Import]) -> list[list[str]]:
    """Each set of modules that import each other round a circle (Tarjan's SCC)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for i in _internal(modules, imports):
        graph[i.importer].add(i.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found)


def floor_of(layers: Sequence[tuple[str, frozenset[str]]]) -> dict[str, int]:
    return {module: level for level, (_, members) in enumerate(layers) for module in members}


def upward(
    modules: frozenset[str],
    imports: Iterable[Import],
    layers: Sequence[tuple[str, frozenset[str]]],
) -> list[str]:
    """Every import from a lower floor to a higher one, as a sentence."""
    floor = floor_of(layers)
    names = [name for name, _ in layers]
    return [
        f"{i.importer} (floor {names[floor[i.importer]]}) imports {i.imported} "
        f"(floor {names[floor[i.imported]]}) at line {i.line}"
        for i in _internal(modules, imports)
        if i.importer in floor and i.imported in floor and floor[i.imported] > floor[i.importer]
    ]


def unlisted_lazy(imports: Iterable[Import], allowed: Mapping[tuple[str, str], str]) -> list[str]:
    """Imports inside functions that are not allow-listed with a reason."""
    return [
        f"{i.importer} imports {i.imported} inside a function at line {i.line}"
        for i in imports
        if i.kind == "function" and (i.importer, i.imported) not in allowed
    ]


SRC = Path(resultstore.__file__).resolve().parent.parent
MODULES, IMPORTS = package_imports(SRC, "resultstore")


def test_every_module_has_exactly_one_floor() -> None:
    placed = [module for _, members in LAYERS for module in members]
    assert len(placed) == len(set(placed)), "a module is on two floors"
    assert sorted(MODULES - set(placed)) == [], "put each new module on a floor in LAYERS"
    assert sorted(set(placed) - MODULES) == [], "LAYERS names modules that do not exist"


def test_no_import_cycles() -> None:
    assert cycles(MODULES, IMPORTS) == []


def test_imports_point_down() -> None:
    assert upward(MODULES, IMPORTS, LAYERS) == []


def test_lazy_imports_are_the_allow_listed_ones() -> None:
    assert unlisted_lazy(IMPORTS, LAZY_IMPORTS) == []
    lazy = {(i.importer, i.imported) for i in IMPORTS if i.kind == "function"}
    assert sorted(set(LAZY_IMPORTS) - lazy) == [], "drop allow-list entries no longer needed"


# -- the checker itself, on small packages made for it ---------------------------


def _package(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_checker_finds_a_circle_hidden_in_a_function(tmp_path: Path) -> None:
    src = _package(
        tmp_path,
        {
            "__init__.py": "",
            "low.py": "def f():\n    from pkg import high\n",
            "mid.py": "from pkg.low import f\n",
            "high.py": "from . import mid\n",
            "alone.py": "import os\n",
        },
    )
    modules, imports = package_imports(src, "pkg")
    assert cycles(modules, imports) == [["pkg.high", "pkg.low", "pkg.mid"]]
    assert unlisted_lazy(imports, {}) == ["pkg.low imports pkg.high inside a function at line 2"]


def test_checker_finds_a_circle_through_type_checking(tmp_path: Path) -> None:
    src = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n"
            ),
            "b.py": "from pkg.a import A\n",
        },
    )
    modules, imports = package_imports(src, "pkg")
    assert cycles(modules, imports) == [["pkg.a", "pkg.b"]]
    assert {i.kind for i in imports if i.importer == "pkg.a" and i.imported == "pkg.b"} == {
        "type-checking"
    }


def test_checker_finds_an_upward_import(tmp_path: Path) -> None:
    src = _package(
        tmp_path,
        {
            "__init__.py": "from pkg.top import run\n",
            "base.py": "from pkg import run\n",
            "top.py": "from pkg.base import x\n",
        },
    )
    modules, imports = package_imports(src, "pkg")
    layers = (("base", frozenset({"pkg.base"})), ("top", frozenset({"pkg", "pkg.top"})))
    assert upward(modules, imports, layers) == [
        "pkg.base (floor base) imports pkg (floor top) at line 1"
    ]
    assert cycles(modules, imports) == [["pkg", "pkg.base", "pkg.top"]]


def test_checker_passes_a_clean_package(tmp_path: Path) -> None:
    src = _package(
        tmp_path,
        {
            "__init__.py": "from pkg.top import run\n",
            "sub/__init__.py": "",
            "sub/base.py": "import json\n",
            "top.py": "from .sub import base\nfrom pkg.sub.base import json\n",
        },
    )
    modules, imports = package_imports(src, "pkg")
    layers = (
        ("base", frozenset({"pkg.sub", "pkg.sub.base"})),
        ("top", frozenset({"pkg", "pkg.top"})),
    )
    assert cycles(modules, imports) == []
    assert upward(modules, imports, layers) == []
    assert unlisted_lazy(imports, {}) == []
    assert ("pkg.top", "pkg.sub.base") in {(i.importer, i.imported) for i in imports}
