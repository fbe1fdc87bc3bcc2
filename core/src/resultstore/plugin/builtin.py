"""The core's own plugin: the built-in backends and the default codec hooks.

It is registered like any third-party plugin would be (the ``memory`` and
``sqlite`` entry points point here), so nothing in the core special-cases it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from resultstore.payloads.codecs import DecodeRequest, EncodeRequest, decode_payload, encode_payload
from resultstore.plugin.backendspec import BackendSpec
from resultstore.plugin.hookspecs import hookimpl
from resultstore.plugin.protocols import Capability as C


@hookimpl
def resultstore_register_backends() -> Iterable[BackendSpec]:
    return [
        BackendSpec(
            scheme="memory",
            target="resultstore.backends.memory:MemoryBackend",
            capabilities=frozenset(
                {
                    C.BULK_GET,
                    C.BULK_PAYLOADS,
                    C.BATCH_STORE,
                    C.PUSH,
                    C.AUTO_EXPIRY,
                    C.CLEANUP,
                    C.GROUPS,
                    C.CHORDS,
                }
            ),
            summary="in-process reference backend (thread-safe, not persistent)",
            clock_option="clock",
        ),
        BackendSpec(
            scheme="sqlite",
            target="resultstore.backends.sqlite:SQLiteBackend",
            capabilities=frozenset(
                {
                    C.BULK_GET,
                    C.BULK_PAYLOADS,
                    C.BATCH_STORE,
                    C.CLEANUP,
                    C.GROUPS,
                    C.CHORDS,
                    C.PERSISTENT,
                    C.SHARED,
                    C.MIGRATE,
                }
            ),
            summary="embedded default: one SQLite file, safe for processes on one machine",
            clock_option="clock",
            missing_store="resultstore.backends.sqlite:missing_database",
        ),
    ]


@hookimpl(trylast=True)
def resultstore_encode(request: EncodeRequest) -> bytes:
    return encode_payload(request.obj, request.options)


@hookimpl(trylast=True)
def resultstore_decode(request: DecodeRequest) -> Any:
    return decode_payload(request.payload, request.cls, request.options)
