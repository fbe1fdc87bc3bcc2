"""What a plugin declares for one URL scheme: a :class:`BackendSpec`.

It sits below the hook specs, the core's own plugin and the facade that all
name it, so they need not import :mod:`resultstore.plugin.discovery`, which calls
them; ``resultstore.BackendSpec`` and ``resultstore.BackendSpec``
remain the public names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import attrs

from resultstore.concepts.errors import ConfigurationError
from resultstore.plugin.config import BackendConfig
from resultstore.plugin.protocols import Capability, ResultBackend

__all__ = ["BackendFactory", "BackendSpec"]

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
