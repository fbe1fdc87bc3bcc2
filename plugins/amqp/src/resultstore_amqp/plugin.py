"""Entry-point module of resultstore-amqp: declares the schemes, imports no client."""

from __future__ import annotations

from collections.abc import Iterable

from resultstore import BackendSpec, Capability, hookimpl

#: what the AMQP backend declares. Not SHARED: only the client a result was
#: sent to reads it. Not PERSISTENT: a result that reached its client lives in
#: that client's memory. No GROUPS or CHORDS: nothing is stored to gather them.
CAPABILITIES = frozenset(
    {
        Capability.BULK_GET,
        Capability.BATCH_STORE,
        Capability.PUSH,
        Capability.AUTO_EXPIRY,
    }
)
_SUMMARIES = {
    "amqp": "results as messages to the caller's reply queue (RabbitMQ, AMQP 0-9-1)",
    "amqps": "results as messages to the caller's reply queue, over TLS",
    "rpc": "Celery's rpc:// name for the AMQP reply-queue backend",
}


@hookimpl
def resultstore_register_backends() -> Iterable[BackendSpec]:
    return [
        BackendSpec(
            scheme=scheme,
            target="resultstore_amqp.backend:AmqpBackend",
            capabilities=CAPABILITIES,
            summary=summary,
            distribution="resultstore-amqp",
            clock_option="clock",
        )
        for scheme, summary in _SUMMARIES.items()
    ]
