"""resultstore: typed, pluggable result storage for Python task queues."""

from __future__ import annotations

import importlib.metadata

from resultstore.codecs import CodecOptions, Serializer
from resultstore.discovery import BackendSpec
from resultstore.errors import (
    BackendUnavailableError,
    ChordError,
    ConfigurationError,
    CorruptPayloadError,
    DecodeError,
    EncodeError,
    InvalidURLError,
    PayloadError,
    ResultStoreError,
    ResultTimeoutError,
    ResultTooLargeError,
    UnknownCodecError,
    UnknownOptionError,
    UnknownSchemeError,
    UnsafeCodecError,
    UnsupportedOperationError,
)
from resultstore.hooks import Hooks, build_hooks
from resultstore.hookspecs import hookimpl
from resultstore.models import (
    ChordOutcome,
    ChordState,
    ExceptionInfo,
    Group,
    StoreOutcome,
    TaskResult,
)
from resultstore.protocols import Capability
from resultstore.remote import RemoteError, TaskRevokedError
from resultstore.states import (
    EXCEPTION_STATES,
    PROPAGATE_STATES,
    READY_STATES,
    UNREADY_STATES,
    State,
)
from resultstore.store import ResultStore, connect, default_url

__version__ = importlib.metadata.version("resultstore")

__all__ = [
    "EXCEPTION_STATES",
    "PROPAGATE_STATES",
    "READY_STATES",
    "UNREADY_STATES",
    "BackendSpec",
    "BackendUnavailableError",
    "Capability",
    "ChordError",
    "ChordOutcome",
    "ChordState",
    "CodecOptions",
    "ConfigurationError",
    "CorruptPayloadError",
    "DecodeError",
    "EncodeError",
    "ExceptionInfo",
    "Group",
    "Hooks",
    "InvalidURLError",
    "PayloadError",
    "RemoteError",
    "ResultStore",
    "ResultStoreError",
    "ResultTimeoutError",
    "ResultTooLargeError",
    "Serializer",
    "State",
    "StoreOutcome",
    "TaskResult",
    "TaskRevokedError",
    "UnknownCodecError",
    "UnknownOptionError",
    "UnknownSchemeError",
    "UnsafeCodecError",
    "UnsupportedOperationError",
    "__version__",
    "build_hooks",
    "connect",
    "default_url",
    "hookimpl",
]
