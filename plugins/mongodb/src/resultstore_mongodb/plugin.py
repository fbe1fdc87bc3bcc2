"""Entry-point module of resultstore-mongodb: declares the schemes, imports no client."""

from __future__ import annotations

from collections.abc import Iterable

from resultstore import BackendSpec, Capability, hookimpl

# What a backend of these schemes may declare; each instance declares PUSH
# only when its server has change streams (a replica set or mongos).
_CAPABILITIES = frozenset(
    {
        Capability.BULK_GET,
        Capability.BATCH_STORE,
        Capability.PUSH,
        Capability.AUTO_EXPIRY,
        Capability.CLEANUP,
        Capability.GROUPS,
        Capability.CHORDS,
        Capability.PERSISTENT,
        Capability.SHARED,
        Capability.NATIVE_ASYNC,
        Capability.MIGRATE,
    }
)
_SUMMARIES = {
    "mongodb": "MongoDB: queryable result documents, TTL expiry, change-stream waiting",
    "mongodb+srv": "MongoDB found through a DNS SRV record (Atlas and the like)",
}


@hookimpl
def resultstore_register_backends() -> Iterable[BackendSpec]:
    return [
        BackendSpec(
            scheme=scheme,
            target="resultstore_mongodb.backend:MongoBackend",
            capabilities=_CAPABILITIES,
            summary=summary,
            distribution="resultstore-mongodb",
            clock_option="clock",
        )
        for scheme, summary in _SUMMARIES.items()
    ]
