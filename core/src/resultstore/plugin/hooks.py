"""The one typed facade over pluggy: the only code that calls hooks.

:func:`build_hooks` makes a :class:`Hooks` (nothing is built at import):
it registers the core's own plugin, loads the ``resultstore.plugins`` entry
points unless ``RESULTSTORE_DISABLE_PLUGINS`` names them, adds the plugins
passed in, and checks that every implementation matches a spec.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterable
from typing import Any

import pluggy

from resultstore.concepts.models import ChordOutcome, StoreOutcome, TaskResult
from resultstore.payloads.codecs import DecodeRequest, EncodeRequest
from resultstore.plugin import builtin, hookspecs

__all__ = ["DISABLE_ENV", "PLUGINS_GROUP", "Hooks", "build_hooks", "disabled_plugins"]

#: comma-separated names of entry points (plugins or URL schemes) not to load.
DISABLE_ENV = "RESULTSTORE_DISABLE_PLUGINS"
#: entry-point group of plugins that are not backends (encryption, metrics...).
PLUGINS_GROUP = "resultstore.plugins"


def disabled_plugins() -> frozenset[str]:
    """The entry-point names listed in ``RESULTSTORE_DISABLE_PLUGINS``."""
    raw = os.environ.get(DISABLE_ENV, "")
    return frozenset(name.strip() for name in raw.split(",") if name.strip())


class Hooks:
    """Typed calls to every hook, and registration of plugins."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register ``plugin`` unless it already is; check it against the specs."""
        if self.manager.is_registered(plugin):
            return
        self.manager.register(plugin, name=name)
        self.manager.check_pending()

    def plugin_names(self) -> list[str]:
        return sorted(name for name, _ in self.manager.list_name_plugin())

    def register_backends(self) -> list[Any]:
        """All backend specs of all registered plugins (``BackendSpec`` objects)."""
        return [
            spec for specs in self.manager.hook.resultstore_register_backends() for spec in specs
        ]

    def on_store(self, url: str, result: TaskResult, outcome: StoreOutcome) -> None:
        self.manager.hook.resultstore_on_store(url=url, result=result, outcome=outcome)
        if outcome.stored and outcome.previous_state != outcome.state:
            self.manager.hook.resultstore_on_state_change(
                url=url,
                task_id=result.task_id,
                previous_state=outcome.previous_state,
                state=outcome.state,
                result=result,
            )

    def on_forget(self, url: str, task_id: str) -> None:
        self.manager.hook.resultstore_on_forget(url=url, task_id=task_id)

    def on_chord_part_return(
        self, url: str, group_id: str, index: int, result: TaskResult, outcome: ChordOutcome
    ) -> None:
        self.manager.hook.resultstore_on_chord_part_return(
            url=url, group_id=group_id, index=index, result=result, outcome=outcome
        )

    def encode(self, request: EncodeRequest) -> bytes:
        payload: bytes = self.manager.hook.resultstore_encode(request=request)
        return payload

    def decode(self, request: DecodeRequest) -> Any:
        return self.manager.hook.resultstore_decode(request=request)

    def codec_is_default(self) -> bool:
        """True when only the core encodes and decodes (no wrapper plugin)."""
        hook = self.manager.hook
        impls = [*hook.resultstore_encode.get_hookimpls(), *hook.resultstore_decode.get_hookimpls()]
        return all(impl.plugin is builtin for impl in impls)

    def observes(self) -> bool:
        """True when any plugin implements an observer (``on_*``) hook."""
        hook = self.manager.hook
        return any(
            getattr(hook, name).get_hookimpls()
            for name in (
                "resultstore_on_store",
                "resultstore_on_state_change",
                "resultstore_on_forget",
                "resultstore_on_chord_part_return",
            )
        )


def build_hooks(plugins: Iterable[object] = (), *, entry_points: bool = True) -> Hooks:
    """Build the plugin manager: core plugin, entry-point plugins, then ``plugins``."""
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    hooks = Hooks(manager)
    hooks.register(builtin, name="resultstore.plugin.builtin")
    if entry_points:
        disabled = disabled_plugins()
        for ep in importlib.metadata.entry_points(group=PLUGINS_GROUP):
            if ep.name in disabled or manager.has_plugin(ep.name):
                continue
            hooks.register(ep.load(), name=ep.name)
    for plugin in plugins:
        hooks.register(plugin)
    manager.check_pending()
    return hooks
