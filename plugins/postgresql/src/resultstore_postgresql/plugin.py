"""Entry-point module of resultstore-postgresql: declares the schemes, imports no client."""

from __future__ import annotations

from collections.abc import Iterable

from resultstore import BackendSpec, Capability, hookimpl

__all__ = ["CAPABILITIES", "resultstore_register_backends"]

#: what every PostgreSQL backend declares (the backend module uses this same set).
CAPABILITIES = frozenset(
    {
        Capability.BULK_GET,
        Capability.BULK_PAYLOADS,
        Capability.BATCH_STORE,
        Capability.PUSH,
        Capability.CLEANUP,
        Capability.GROUPS,
        Capability.CHORDS,
        Capability.NATIVE_ASYNC,
        Capability.MIGRATE,
        Capability.PERSISTENT,
        Capability.SHARED,
    }
)
_SUMMARIES = {
    "postgresql": "PostgreSQL (psycopg 3, LISTEN/NOTIFY waiting)",
    "postgres": "PostgreSQL (alias of postgresql://)",
    "postgresql+psycopg": "PostgreSQL (SQLAlchemy-style URL, same backend)",
}


@hookimpl
def resultstore_register_backends() -> Iterable[BackendSpec]:
    return [
        BackendSpec(
            scheme=scheme,
            target="resultstore_postgresql.backend:PostgreSQLBackend",
            capabilities=CAPABILITIES,
            summary=summary,
            distribution="resultstore-postgresql",
            clock_option="clock",
        )
        for scheme, summary in _SUMMARIES.items()
    ]
