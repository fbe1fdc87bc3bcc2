"""Entry-point module of resultstore-memcached: declares the schemes, imports no client."""

from __future__ import annotations

from collections.abc import Iterable

from resultstore import BackendSpec, Capability, hookimpl

__all__ = ["CAPABILITIES", "resultstore_register_backends"]

#: what every memcached backend declares (the backend module uses this same set).
#: Not PERSISTENT: memcached keeps nothing across a restart and evicts under
#: memory pressure. Not PUSH: memcached cannot announce writes, so waiters poll.
CAPABILITIES = frozenset(
    {
        Capability.BULK_GET,
        Capability.BULK_PAYLOADS,
        Capability.BATCH_STORE,
        Capability.AUTO_EXPIRY,
        Capability.GROUPS,
        Capability.CHORDS,
        Capability.SHARED,
    }
)
_CACHE = "a cache: restarts and evictions lose results"
_SUMMARIES = {
    "memcached": f"memcached over TCP, one server or a ring ({_CACHE})",
    "cache+memcached": f"memcached, Celery's URL spelling ({_CACHE})",
    "memcached+unix": f"memcached over a unix socket ({_CACHE})",
}


@hookimpl
def resultstore_register_backends() -> Iterable[BackendSpec]:
    return [
        BackendSpec(
            scheme=scheme,
            target="resultstore_memcached.backend:MemcachedBackend",
            capabilities=CAPABILITIES,
            summary=summary,
            distribution="resultstore-memcached",
        )
        for scheme, summary in _SUMMARIES.items()
    ]
