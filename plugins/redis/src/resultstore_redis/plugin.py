"""Entry-point module of resultstore-redis: declares the schemes, imports no client."""

from __future__ import annotations

from collections.abc import Iterable

from resultstore import BackendSpec, Capability, hookimpl

#: what every Redis backend declares (the backend module uses this same set).
CAPABILITIES = frozenset(
    {
        Capability.BULK_GET,
        Capability.BULK_PAYLOADS,
        Capability.BATCH_STORE,
        Capability.PUSH,
        Capability.AUTO_EXPIRY,
        Capability.GROUPS,
        Capability.CHORDS,
        Capability.SHARED,
        Capability.NATIVE_ASYNC,
    }
)
_SUMMARIES = {
    "redis": "Redis / Valkey over TCP",
    "rediss": "Redis / Valkey over TLS",
    "redis+unix": "Redis / Valkey over a unix socket",
    "redis+sentinel": "Redis behind Sentinel (automatic failover)",
    "redis+cluster": "Redis Cluster (keys of a group share a hash tag)",
}


@hookimpl
def resultstore_register_backends() -> Iterable[BackendSpec]:
    return [
        BackendSpec(
            scheme=scheme,
            target="resultstore_redis.backend:RedisBackend",
            capabilities=CAPABILITIES,
            summary=summary,
            distribution="resultstore-redis",
        )
        for scheme, summary in _SUMMARIES.items()
    ]
