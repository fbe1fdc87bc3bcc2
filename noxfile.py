"""Every check the project runs: lint, typecheck, tests per distribution, docs, benchmarks.

Distributions are found from the folders that hold a ``pyproject.toml``
(``core/``, ``contract_tests/``, ``plugins/*/``); nothing is listed by hand.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CORE = "core"
CONTRACT = "contract_tests"
# Plain folders at the top level and plugins one level down; a folder is a
# distribution exactly when it holds a pyproject.toml.
DISTRIBUTION_GLOBS = ("*/pyproject.toml", "plugins/*/pyproject.toml")

# Tool versions are bounded so that a new release (new lint rules, new mypy
# errors) cannot turn a green tree red between two commits.
RUFF = "ruff>=0.17.6,<0.18"
MYPY = "mypy>=2.4,<2.5"
MKDOCS = ("mkdocs>=1.6,<2", "mkdocs-material>=9.5,<10")

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typecheck", "tests", "docs"]


@dataclass(frozen=True)
class Distribution:
    """One folder with a pyproject.toml: what to install and what its tests need."""

    folder: str
    name: str
    extras: tuple[str, ...]
    test_servers: tuple[str, ...]
    #: folders of other distributions its tests use (``[tool.resultstore] test-with``).
    test_with: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return Path(self.folder).name

    @property
    def requirement(self) -> str:
        """The editable install argument, with every extra so optional paths get tested."""
        extras = f"[{','.join(self.extras)}]" if self.extras else ""
        return f"{self.folder}{extras}"


def _read(pyproject: Path) -> Distribution:
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    project = data.get("project", {})
    settings = data.get("tool", {}).get("resultstore", {})
    return Distribution(
        folder=pyproject.parent.relative_to(ROOT).as_posix(),
        name=project.get("name", pyproject.parent.name),
        extras=tuple(sorted(project.get("optional-dependencies", {}))),
        test_servers=tuple(settings.get("test-servers", ())),
        test_with=tuple(settings.get("test-with", ())),
    )


def discover() -> list[Distribution]:
    """Core first, then the contract suite, then the plugins by folder name."""
    found = {
        path.parent: _read(path)
        for pattern in DISTRIBUTION_GLOBS
        for path in ROOT.glob(pattern)
        # Hidden folders hold tool state (.nox, .venv), never a distribution.
        if not path.parent.name.startswith(".")
    }
    order = {CORE: 0, CONTRACT: 1}
    return sorted(found.values(), key=lambda d: (order.get(d.folder, 2), d.folder))


DISTRIBUTIONS = discover()


def _editable(*distributions: Distribution) -> list[str]:
    args: list[str] = []
    seen: set[str] = set()
    for dist in distributions:
        if dist.folder not in seen:
            seen.add(dist.folder)
            args += ["-e", dist.requirement]
    return args


def _by_folder(folder: str) -> Distribution:
    (dist,) = [d for d in DISTRIBUTIONS if d.folder == folder]
    return dist


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    session.install(RUFF)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over each distribution's src, core and contract sources on the path."""
    session.install(MYPY, *_editable(*DISTRIBUTIONS))
    # mypy_path in the root pyproject.toml puts core/src and contract_tests/src on the path.
    for dist in DISTRIBUTIONS:
        session.run("mypy", "--strict", f"{dist.folder}/src", *session.posargs)


@nox.session
@nox.parametrize("dist", [nox.param(d, id=d.id) for d in DISTRIBUTIONS])
def tests(session: nox.Session, dist: Distribution) -> None:
    """pytest in one distribution's folder, with core and the contract suite installed."""
    others = [_by_folder(folder) for folder in dist.test_with]
    session.install(*_editable(_by_folder(CORE), _by_folder(CONTRACT), *others, dist))
    if dist.test_servers:
        # The script installs Python-packaged servers with "$PYTHON -m pip".
        session.install("pip")
        session.run(
            "bash",
            str(ROOT / "scripts" / "install-servers.sh"),
            *dist.test_servers,
            external=True,
            env={"PYTHON": str(Path(session.bin) / "python")},
        )
    session.chdir(ROOT / dist.folder)
    session.run(
        "pytest",
        *session.posargs,
        env={"HYPOTHESIS_PROFILE": os.environ.get("HYPOTHESIS_PROFILE", "ci")},
    )


@nox.session
def docs(session: nox.Session) -> None:
    """mkdocs build --strict (the hook reference is generated from resultstore.hookspecs)."""
    session.install(*MKDOCS, *_editable(_by_folder(CORE)))
    # The variable silences a banner about MkDocs' future, which is not a build problem.
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """Run every bench/*.py, with every distribution and bench/requirements.txt installed."""
    scripts = sorted((ROOT / "bench").glob("*.py"))
    if not scripts:
        session.skip("no bench/*.py yet")
    session.install(*_editable(*DISTRIBUTIONS))
    requirements = ROOT / "bench" / "requirements.txt"
    if requirements.exists():
        session.install("-r", str(requirements))
    servers = sorted({name for dist in DISTRIBUTIONS for name in dist.test_servers})
    if servers:
        session.run("bash", "scripts/install-servers.sh", *servers, external=True)
    for script in scripts:
        session.run("python", str(script), *session.posargs)
