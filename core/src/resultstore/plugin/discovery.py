"""From a URL scheme to a backend factory, importing only what serves it.

Backends are declared by plugins through the ``resultstore_register_backends``
hook. Plugin modules that serve schemes are found through the
``resultstore.backends`` entry-point group, whose entry names are the URL
schemes; only the entry point named like the requested scheme is loaded,
and its factory (a ``"module:attribute"`` string) is imported only when a
backend is built, so listing backends imports no client library.
"""

from __future__ import annotations

import importlib.metadata

from resultstore.concepts.errors import UnknownSchemeError
from resultstore.plugin.backendspec import BackendFactory, BackendSpec
from resultstore.plugin.hooks import Hooks, disabled_plugins

__all__ = ["BACKENDS_GROUP", "BackendFactory", "BackendSpec", "find_backend", "installed_backends"]

#: entry-point group whose names are URL schemes and values plugin modules.
BACKENDS_GROUP = "resultstore.backends"


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    disabled = disabled_plugins()
    return {
        ep.name: ep
        for ep in importlib.metadata.entry_points(group=BACKENDS_GROUP)
        if ep.name not in disabled
    }


def _registered(hooks: Hooks) -> dict[str, BackendSpec]:
    disabled = disabled_plugins()
    return {spec.scheme: spec for spec in hooks.register_backends() if spec.scheme not in disabled}


def _load_entry_point(hooks: Hooks, ep: importlib.metadata.EntryPoint) -> None:
    hooks.register(ep.load(), name=f"{BACKENDS_GROUP}:{ep.module}")


def find_backend(scheme: str, hooks: Hooks) -> BackendSpec:
    """The spec serving ``scheme``, loading only the entry point of that name."""
    spec = _registered(hooks).get(scheme)
    if spec is not None:
        return spec
    entry_points = _entry_points()
    ep = entry_points.get(scheme)
    if ep is not None:
        _load_entry_point(hooks, ep)
        spec = _registered(hooks).get(scheme)
        if spec is not None:
            return spec
    raise UnknownSchemeError(scheme, {*entry_points, *_registered(hooks)})


def installed_backends(hooks: Hooks) -> dict[str, BackendSpec]:
    """Every scheme served, loading all backend entry points (light modules only)."""
    for ep in _entry_points().values():
        _load_entry_point(hooks, ep)
    return dict(sorted(_registered(hooks).items()))
