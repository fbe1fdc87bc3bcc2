"""Entry-point module: declares the ``filekv`` scheme and imports nothing heavy.

``resultstore`` loads this module when someone connects to ``filekv://``
(the entry point's name) or lists the installed backends; the backend module
itself is imported only when a backend is built, so a client library
imported there costs nothing to users of other schemes.
"""

from __future__ import annotations

from collections.abc import Iterable

from resultstore import BackendSpec, Capability, hookimpl

__all__ = ["resultstore_register_backends"]


@hookimpl
def resultstore_register_backends() -> Iterable[BackendSpec]:
    return [
        BackendSpec(
            scheme="filekv",
            target="resultstore_template.backend:open_backend",
            # What the backend can declare; the built backend says what it has.
            capabilities=frozenset(
                {
                    Capability.BULK_GET,
                    Capability.BULK_PAYLOADS,
                    Capability.BATCH_STORE,
                    Capability.GROUPS,
                    Capability.CHORDS,
                    Capability.CLEANUP,
                    Capability.PERSISTENT,
                    Capability.SHARED,
                }
            ),
            summary="results as files in a folder (template for third-party backends)",
            distribution="resultstore-template",
            # The option through which the backend takes a clock: `resultstore check`
            # passes a manual one through it to test expiry without sleeping.
            clock_option="clock",
        )
    ]
