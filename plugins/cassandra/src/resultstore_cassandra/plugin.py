"""Entry-point module of resultstore-cassandra: declares the scheme, imports no client."""

from __future__ import annotations

from collections.abc import Iterable

from resultstore import BackendSpec, Capability, hookimpl

_CAPABILITIES = frozenset(
    {
        Capability.BULK_GET,
        Capability.BATCH_STORE,
        Capability.AUTO_EXPIRY,
        Capability.GROUPS,
        Capability.CHORDS,
        Capability.PERSISTENT,
        Capability.SHARED,
        Capability.NATIVE_ASYNC,
        Capability.MIGRATE,
    }
)


@hookimpl
def resultstore_register_backends() -> Iterable[BackendSpec]:
    return [
        BackendSpec(
            scheme="cassandra",
            target="resultstore_cassandra.backend:CassandraBackend",
            capabilities=_CAPABILITIES,
            summary="Apache Cassandra, ScyllaDB, Astra: one row per task, LWT ready-is-final, TTL",
            distribution="resultstore-cassandra",
            clock_option="clock",
        )
    ]
