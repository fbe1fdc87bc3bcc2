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
nox.options.sessions = ["lint", "typecheck", "tests", "ci_scripts", "docs"]


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
    _install_servers(session, list(dist.test_servers))
    session.chdir(ROOT / dist.folder)
    session.run(
        "pytest",
        *session.posargs,
        env={"HYPOTHESIS_PROFILE": os.environ.get("HYPOTHESIS_PROFILE", "ci")},
    )


@nox.session
def ci_scripts(session: nox.Session) -> None:
    """pytest over the CI's own helpers (.ci/test_*.py), which no distribution owns."""
    session.install("pytest>=8")
    session.chdir(ROOT / ".ci")
    session.run("pytest", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """mkdocs build --strict (the hook reference is generated from resultstore.plugin.hookspecs)."""
    session.install(*MKDOCS, *_editable(_by_folder(CORE)))
    # The variable silences a banner about MkDocs' future, which is not a build problem.
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


def _install_servers(session: nox.Session, servers: list[str]) -> None:
    """Run scripts/install-servers.sh for ``servers`` with this session's python."""
    if not servers:
        return
    # The script installs Python-packaged servers with "$PYTHON -m pip".
    session.install("pip")
    session.run(
        "bash",
        str(ROOT / "scripts" / "install-servers.sh"),
        *servers,
        external=True,
        env={"PYTHON": str(Path(session.bin) / "python")},
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Run bench/*.py with every distribution and bench/requirements.txt installed.

    ``nox -s bench -- redis mongodb`` runs only the scripts whose names start
    with those words, and installs only the servers their plugins test with;
    from the first argument that starts with a dash on, arguments go to every
    script (``nox -s bench -- redis --rounds 9``).
    """
    scripts = sorted(p for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))
    dash = next((i for i, a in enumerate(session.posargs) if a.startswith("-")), None)
    names = list(session.posargs[:dash])
    flags = list(session.posargs[dash:]) if dash is not None else []
    if names:
        scripts = [p for p in scripts if any(p.stem.startswith(name) for name in names)]
    if not scripts:
        session.skip(f"no bench/*.py matches {names}" if names else "no bench/*.py yet")
    session.install(*_editable(*DISTRIBUTIONS))
    requirements = ROOT / "bench" / "requirements.txt"
    if requirements.exists():
        session.install("-r", str(requirements))
    # A script bench/<plugin>_....py needs the servers plugins/<plugin> tests with.
    prefixes = {p.stem.split("_")[0] for p in scripts}
    servers = {
        name
        for dist in DISTRIBUTIONS
        if dist.id in prefixes
        for name in (*dist.test_servers, *_servers_of(dist.test_with))
    }
    _install_servers(session, sorted(servers))
    for script in scripts:
        session.run("python", str(script), *flags)


def _servers_of(folders: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name for folder in folders for name in _by_folder(folder).test_servers)
