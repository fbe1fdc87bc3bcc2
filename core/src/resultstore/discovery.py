"""From a URL scheme to a backend factory, importing only what serves it.

Backends are declared by plugins through the ``resultstore_register_backends``
hook. Plugin modules that serve schemes are found through the
``resultstore.backends`` entry-point group, whose entry names are the URL
schemes; only the entry point named like the requested scheme is loaded,
and its factory (a ``"module:attribute"`` string) is imported only when a
backend is built, so listing backends imports no client library.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable

import attrs

from resultstore.config import BackendConfig
from resultstore.errors import ConfigurationError, UnknownSchemeError
from resultstore.hooks import Hooks, disabled_plugins
from resultstore.protocols import Capability, ResultBackend

__all__ = ["BACKENDS_GROUP", "BackendFactory", "BackendSpec", "find_backend", "installed_backends"]

#: entry-point group whose names are URL schemes and values plugin modules.
BACKENDS_GROUP = "resultstore.backends"

BackendFactory = Callable[[BackendConfig], ResultBackend]


@attrs.frozen
class BackendSpec:
    """One URL scheme a plugin serves and how to build its backend."""

    scheme: str
    #: ``"module:attribute"`` of a callable taking a BackendConfig.
    target: str
    #: capabilities the backend may declare (the built instance says what it has).
    capabilities: frozenset[Capability] = frozenset()
    summary: str = ""
    #: the distribution to ``pip install`` for it.
    distribution: str = "resultstore"
    #: the option through which the backend takes a clock (a callable returning
    #: seconds, like ``time.time``) that decides when results expire; None when
    #: it takes none. ``resultstore check`` passes a manual clock through it, so
    #: every expiry rule is checked without waiting for real time to pass.
    clock_option: str | None = None
    #: ``"module:function"`` of a function taking the URL (a str) and returning
    #: None when the store it names exists, else a sentence saying what is
    #: missing (``"the file /x/r.db does not exist"``). The reading commands of
    #: ``resultstore`` (get, watch, forget, cleanup) call it before connecting,
    #: so that a mistyped URL is an error rather than a new, empty store. None
    #: for backends whose connect() creates nothing (a server's store).
    missing_store: str | None = None

    def missing(self, url: str) -> str | None:
        """What :attr:`missing_store` says of ``url`` (None: there, or not checkable)."""
        if self.missing_store is None:
            return None
        module_name, _, attribute = self.missing_store.partition(":")
        probe: Callable[[str], str | None] = getattr(
            importlib.import_module(module_name), attribute
        )
        return probe(url)

    def load(self) -> BackendFactory:
        """Import the factory (and so the client library)."""
        module_name, _, attribute = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigurationError(
                f"the {self.scheme}:// backend cannot be loaded ({exc}); reinstall it: "
                f"pip install --force-reinstall {self.distribution}"
            ) from exc
        factory: BackendFactory = getattr(module, attribute)
        return factory


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
