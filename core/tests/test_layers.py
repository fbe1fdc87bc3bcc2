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

#: The floors, lowest first: each is a sub-package of ``resultstore``, and a
#: module may import its own floor and those below. The package root, which
#: re-exports the public names, sits on top of them all.
FLOORS: tuple[tuple[str, str], ...] = (
    ("concepts", "what is stored and checking it: states, models, errors, URLs, options"),
    ("payloads", "how a model becomes bytes: codecs, compression, the header, the size limit"),
    ("plugin", "protocols, hook specs, the pluggy facade, discovery, the shared retry helper"),
    ("backends", "the built-in backends (third-party ones are distributions of their own)"),
    ("api", "what callers use: the waiting hub, result handles, the store, asyncio"),
    ("cli", "the command line: its commands, their shared state, the terminal, the demo"),
)


def layers_of(
    modules: Iterable[str], package: str, floors: Sequence[str]
) -> tuple[tuple[str, frozenset[str]], ...]:
    """Each module on the floor of the sub-package it sits in; the root on top."""
    placed = [
        (floor, frozenset(m for m in modules if m.split(".")[1:2] == [floor])) for floor in floors
    ]
    return (*placed, ("root", frozenset({package})))


#: (importer, imported) -> why the import waits until a function runs.
LAZY_IMPORTS: Mapping[tuple[str, str], str] = {
    ("resultstore.payloads.codecs", "zstandard"): (
        "an optional client library (the zstd extra): imported when comp=zstd is first used"
    ),
    ("resultstore.cli.commands", "resultstore_contract.check"): (
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


LAYERS = layers_of(MODULES, "resultstore", [name for name, _ in FLOORS])


def test_every_module_sits_in_a_floor_folder() -> None:
    placed = {module for _, members in LAYERS for module in members}
    assert sorted(MODULES - placed) == [], (
        "put each module in one of the floor folders (FLOORS), not beside __init__.py"
    )
    folders = sorted(
        p.name for p in (SRC / "resultstore").iterdir() if (p / "__init__.py").exists()
    )
    assert folders == sorted(name for name, _ in FLOORS), "declare a new folder's floor in FLOORS"


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
