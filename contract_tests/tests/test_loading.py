"""The loading check: an entry point that imports its backend or client library fails it."""

from __future__ import annotations

import os
from pathlib import Path

from resultstore_contract.loading import entry_point_problems


def _install(folder: Path, init: str) -> dict[str, str]:
    """A distribution ``heavyep`` serving ``heavy://``, importable through PYTHONPATH."""
    package = folder / "heavyep"
    package.mkdir()
    (package / "__init__.py").write_text(init)
    (package / "clientlib.py").write_text('"""Stands for a client library."""\n')
    (package / "backend.py").write_text('"""The backend module."""\nimport heavyep.clientlib\n')
    (package / "plugin.py").write_text(
        "from resultstore import BackendSpec, hookimpl\n\n"
        "@hookimpl\n"
        "def resultstore_register_backends():\n"
        "    return [BackendSpec(scheme='heavy', target='heavyep.backend:open_backend')]\n"
    )
    info = folder / "heavyep-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: heavyep\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[resultstore.backends]\nheavy = heavyep.plugin\n")
    return {**os.environ, "PYTHONPATH": str(folder)}


def test_a_light_entry_point_passes(tmp_path: Path) -> None:
    env = _install(tmp_path, '"""Light."""\n')
    assert entry_point_problems("heavy", env) == []


def test_an_eager_package_init_fails_and_says_what_it_loaded(tmp_path: Path) -> None:
    env = _install(tmp_path, '"""Eager."""\nfrom heavyep.backend import *  # noqa: F403\n')
    problems = entry_point_problems("heavy", env)
    assert problems is not None
    assert len(problems) == 2
    assert "imported the backend module heavyep.backend" in problems[0]
    assert "heavyep.clientlib" in problems[1]


def test_an_installed_builtin_and_an_unknown_scheme() -> None:
    assert entry_point_problems("sqlite") == []
    assert entry_point_problems("nosuchscheme") is None
