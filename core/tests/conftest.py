"""Fixtures shared by the core's unit tests: a fake clock, and importable throwaway modules."""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest


class FakeClock:
    """A clock that only moves when told to, for the memory backend's ``clock=`` option."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@attrs.frozen
class TempModule:
    """A module written to a folder on ``sys.path``; importing it leaves a marker file."""

    name: str
    folder: Path

    @property
    def imported(self) -> bool:
        return (self.folder / f"{self.name}.imported").exists() or self.name in sys.modules


# Every generated module announces its import through a file, so that a test
# can tell "never imported" apart from "imported and then dropped from sys.modules".
_MARKER = "import pathlib as _p\n_p.Path(__file__).with_suffix('.imported').touch()\n"


@pytest.fixture
def temp_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], TempModule]]:
    """Factory: ``temp_module(source)`` writes a uniquely named, not yet imported module."""
    folder = tmp_path / "modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    made: list[str] = []

    def make(source: str = "") -> TempModule:
        name = f"rs_test_mod_{uuid.uuid4().hex}"
        (folder / f"{name}.py").write_text(_MARKER + source, encoding="utf-8")
        importlib.invalidate_caches()
        made.append(name)
        return TempModule(name, folder)

    yield make
    for name in made:
        sys.modules.pop(name, None)


@pytest.fixture
def fake_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[dict[str, dict[str, str]]], None]:
    """Factory: install a throwaway distribution that declares ``{group: {name: target}}``.

    It is a real ``.dist-info`` folder on ``sys.path``, so ``importlib.metadata``
    finds its entry points exactly as it finds those of a pip-installed plugin.
    """
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))

    def install(entry_points: dict[str, dict[str, str]]) -> None:
        name = f"rs_fake_{uuid.uuid4().hex[:12]}"
        info = folder / f"{name}-0.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0\n", encoding="utf-8"
        )
        lines = []
        for group, entries in entry_points.items():
            lines.append(f"[{group}]")
            lines.extend(f"{key} = {value}" for key, value in entries.items())
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        importlib.invalidate_caches()

    return install
