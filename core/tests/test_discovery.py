"""From a URL scheme to a backend: entry points, programmatic plugins, laziness and errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable

import pytest
from conftest import TempModule
from resultstore import (
    Capability,
    ConfigurationError,
    State,
    TaskResult,
    UnknownSchemeError,
    connect,
    hookimpl,
)
from resultstore.backends.memory import MemoryBackend
from resultstore.plugin.discovery import BackendSpec, find_backend, installed_backends
from resultstore.plugin.hooks import DISABLE_ENV, build_hooks

FakeDistribution = Callable[[dict[str, dict[str, str]]], None]
MakeModule = Callable[[str], TempModule]

# A "heavy" backend module: importing it stands for importing a client library.
HEAVY = "from resultstore.backends.memory import MemoryBackend as Backend\n"


def light_plugin(scheme: str, heavy: TempModule) -> str:
    """Source of a plugin module that declares ``scheme`` served by ``heavy``."""
    return textwrap.dedent(
        f"""
        from resultstore import hookimpl
        from resultstore import BackendSpec

        @hookimpl
        def resultstore_register_backends():
            return [BackendSpec({scheme!r}, {heavy.name + ":Backend"!r}, summary="test")]
        """
    )


class ProgrammaticPlugin:
    """A plugin object passed to connect(plugins=[...]) rather than installed."""

    def __init__(self, scheme: str, target: str) -> None:
        self.spec = BackendSpec(scheme, target, frozenset({Capability.GROUPS}), "programmatic")

    @hookimpl
    def resultstore_register_backends(self) -> Iterable[BackendSpec]:
        return [self.spec]


def test_the_builtin_schemes_are_found() -> None:
    hooks = build_hooks()
    assert find_backend("memory", hooks).target == "resultstore.backends.memory:MemoryBackend"
    assert find_backend("sqlite", hooks).target == "resultstore.backends.sqlite:SQLiteBackend"


def test_the_memory_spec_declares_what_the_backend_declares() -> None:
    assert find_backend("memory", build_hooks()).capabilities == MemoryBackend.capabilities


def test_an_unknown_scheme_lists_the_installed_ones_and_the_pip_hint() -> None:
    with pytest.raises(UnknownSchemeError) as info:
        find_backend("nosuch", build_hooks())
    error = info.value
    assert error.scheme == "nosuch"
    assert {"memory", "sqlite"} <= set(error.installed)
    message = str(error)
    assert "memory" in message
    assert "sqlite" in message
    assert "pip install resultstore-nosuch" in message
    assert DISABLE_ENV in message


def test_a_compound_scheme_hints_at_its_base_distribution() -> None:
    with pytest.raises(UnknownSchemeError, match=r"pip install resultstore-nosuch "):
        connect("nosuch+driver://host/0")


def test_disabling_a_scheme_makes_it_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DISABLE_ENV, "sqlite")
    hooks = build_hooks()
    with pytest.raises(UnknownSchemeError) as info:
        find_backend("sqlite", hooks)
    assert "sqlite" not in info.value.installed
    assert "memory" in info.value.installed
    assert "sqlite" not in installed_backends(hooks)
    with pytest.raises(UnknownSchemeError):
        connect("sqlite:///never-created.db")
    assert find_backend("memory", hooks).scheme == "memory"


def test_a_programmatic_plugin_serves_a_scheme(temp_module: MakeModule) -> None:
    heavy = temp_module(HEAVY)
    plugin = ProgrammaticPlugin("progtest", f"{heavy.name}:Backend")
    with connect("progtest://", plugins=[plugin]) as store:
        assert store.url.scheme == "progtest"
        store.store(TaskResult("t1", State.SUCCESS, 42))
        result = store.get("t1")
        assert result is not None
        assert result.result == 42
    assert heavy.imported


def test_a_disabled_programmatic_scheme_is_unknown_too(
    temp_module: MakeModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    heavy = temp_module(HEAVY)
    monkeypatch.setenv(DISABLE_ENV, "progtest, other")
    with pytest.raises(UnknownSchemeError):
        connect("progtest://", plugins=[ProgrammaticPlugin("progtest", f"{heavy.name}:Backend")])
    assert not heavy.imported


def test_an_installed_entry_point_serves_its_scheme(
    temp_module: MakeModule, fake_distribution: FakeDistribution
) -> None:
    heavy = temp_module(HEAVY)
    light = temp_module(light_plugin("eptest", heavy))
    fake_distribution({"resultstore.backends": {"eptest": light.name}})
    with connect("eptest://") as store:
        store.store(TaskResult("t1", State.STARTED))
        assert store.get("t1") is not None


def test_listing_backends_imports_plugin_modules_but_no_backend_module(
    temp_module: MakeModule, fake_distribution: FakeDistribution
) -> None:
    heavy = temp_module(HEAVY)
    light = temp_module(light_plugin("lazytest", heavy))
    fake_distribution({"resultstore.backends": {"lazytest": light.name}})
    hooks = build_hooks()
    specs = installed_backends(hooks)
    assert specs["lazytest"].target == f"{heavy.name}:Backend"
    assert list(specs) == sorted(specs)
    assert light.imported
    assert not heavy.imported
    assert find_backend("lazytest", hooks).summary == "test"
    assert not heavy.imported
    specs["lazytest"].load()
    assert heavy.imported


def test_finding_one_scheme_loads_only_the_entry_point_of_that_name(
    temp_module: MakeModule, fake_distribution: FakeDistribution
) -> None:
    heavy = temp_module(HEAVY)
    wanted = temp_module(light_plugin("wanted", heavy))
    other = temp_module(light_plugin("other", heavy))
    fake_distribution({"resultstore.backends": {"wanted": wanted.name, "other": other.name}})
    assert find_backend("wanted", build_hooks()).scheme == "wanted"
    assert wanted.imported
    assert not other.imported
    assert not heavy.imported


def test_no_installed_plugin_imports_its_backend_when_listed() -> None:
    # In a fresh interpreter, so that no other test has imported anything yet.
    script = textwrap.dedent(
        """
        import sys
        from resultstore.plugin.discovery import installed_backends
        from resultstore import build_hooks

        for spec in installed_backends(build_hooks()).values():
            module = spec.target.partition(":")[0]
            if module in sys.modules:
                print(f"{spec.scheme}: listing imported {module}")
        for heavy in ("redis", "pymongo", "cassandra", "elasticsearch", "pymemcache"):
            if heavy in sys.modules:
                print(f"listing imported {heavy}")
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert run.stdout == ""


def test_a_target_that_cannot_be_imported_names_the_reinstall_fix() -> None:
    spec = BackendSpec("broken", "resultstore_no_such_module:Backend", distribution="acme-broken")
    with pytest.raises(ConfigurationError, match=r"pip install --force-reinstall acme-broken"):
        spec.load()
