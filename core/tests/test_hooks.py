"""The typed hook facade: what gets registered, validated, disabled and detected."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from typing import Any

import pluggy
import pytest
from conftest import TempModule
from resultstore import BackendSpec, StoreOutcome, TaskResult, hookimpl
from resultstore.payloads.codecs import DecodeRequest, EncodeRequest
from resultstore.plugin import builtin
from resultstore.plugin.hooks import DISABLE_ENV, build_hooks, disabled_plugins

FakeDistribution = Callable[[dict[str, dict[str, str]]], None]
MakeModule = Callable[[str], TempModule]


class Observer:
    @hookimpl
    def resultstore_on_forget(self, url: str, task_id: str) -> None:
        pass


class EncodeWrapper:
    @hookimpl(wrapper=True)
    def resultstore_encode(self, request: EncodeRequest) -> Generator[None, bytes, bytes]:
        return (yield)


class DecodeWrapper:
    @hookimpl(wrapper=True)
    def resultstore_decode(self, request: DecodeRequest) -> Generator[None, Any, Any]:
        return (yield)


class Misspelled:
    @hookimpl
    def resultstore_on_stor(self, url: str) -> None:
        pass


class WrongArgument:
    @hookimpl
    def resultstore_on_forget(self, url: str, task: str) -> None:
        pass


class Backends:
    @hookimpl
    def resultstore_register_backends(self) -> Iterable[BackendSpec]:
        return [BackendSpec("one", "m:a"), BackendSpec("two", "m:b")]


def test_the_core_plugin_is_registered_and_alone_encodes() -> None:
    hooks = build_hooks(entry_points=False)
    assert hooks.plugin_names() == ["resultstore.plugin.builtin"]
    assert hooks.manager.is_registered(builtin)
    assert hooks.codec_is_default()
    assert not hooks.observes()


def test_an_observer_is_detected() -> None:
    hooks = build_hooks([Observer()], entry_points=False)
    assert hooks.observes()
    assert hooks.codec_is_default()


@pytest.mark.parametrize("wrapper", [EncodeWrapper, DecodeWrapper])
def test_either_codec_wrapper_turns_off_the_default_path(wrapper: type) -> None:
    hooks = build_hooks([wrapper()], entry_points=False)
    assert not hooks.codec_is_default()


def test_registering_a_plugin_twice_is_harmless() -> None:
    plugin = Observer()
    hooks = build_hooks([plugin, plugin], entry_points=False)
    hooks.register(plugin)
    assert len(hooks.manager.get_plugins()) == 2


@pytest.mark.parametrize("plugin", [Misspelled, WrongArgument])
def test_an_implementation_that_matches_no_spec_is_refused(plugin: type) -> None:
    with pytest.raises(pluggy.PluginValidationError):
        build_hooks([plugin()], entry_points=False)


def test_backend_specs_of_every_plugin_are_gathered() -> None:
    schemes = {spec.scheme for spec in build_hooks([Backends()]).register_backends()}
    assert {"one", "two", "memory", "sqlite"} <= schemes


@pytest.mark.parametrize(
    ("raw", "names"),
    [("", set()), ("a", {"a"}), (" a, b ,,c ", {"a", "b", "c"}), (",", set())],
)
def test_disabled_plugins_reads_the_environment(
    raw: str, names: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DISABLE_ENV, raw)
    assert disabled_plugins() == names


_OBSERVER_SOURCE = """
from resultstore import hookimpl

@hookimpl
def resultstore_on_forget(url, task_id):
    pass
"""


def test_plugins_from_entry_points_are_loaded_unless_disabled(
    temp_module: MakeModule,
    fake_distribution: FakeDistribution,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = temp_module(_OBSERVER_SOURCE)
    fake_distribution({"resultstore.plugins": {"audit-test": module.name}})
    assert "audit-test" in build_hooks().plugin_names()
    assert "audit-test" not in build_hooks(entry_points=False).plugin_names()
    monkeypatch.setenv(DISABLE_ENV, "audit-test")
    assert "audit-test" not in build_hooks().plugin_names()


def test_a_disabled_plugin_is_not_even_imported(
    temp_module: MakeModule,
    fake_distribution: FakeDistribution,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = temp_module(_OBSERVER_SOURCE)
    fake_distribution({"resultstore.plugins": {"audit-test": module.name}})
    monkeypatch.setenv(DISABLE_ENV, "audit-test")
    build_hooks()
    assert not module.imported


def test_observer_hooks_receive_keyword_arguments() -> None:
    seen: list[tuple[str, str | None, str]] = []

    class StateLog:
        @hookimpl
        def resultstore_on_state_change(
            self, url: str, task_id: str, previous_state: str | None, state: str
        ) -> None:
            seen.append((task_id, previous_state, state))

    hooks = build_hooks([StateLog()], entry_points=False)
    result = TaskResult("t1", "SUCCESS")
    hooks.on_store("memory://", result, StoreOutcome(True, "SUCCESS", "STARTED"))
    hooks.on_store("memory://", result, StoreOutcome(False, "SUCCESS", "SUCCESS"))
    hooks.on_store("memory://", result, StoreOutcome(True, "SUCCESS", "SUCCESS"))
    assert seen == [("t1", "STARTED", "SUCCESS")]
