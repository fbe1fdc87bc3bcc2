"""resultstore: typed, pluggable result storage for Python task queues."""

from __future__ import annotations

import importlib.metadata

from resultstore.aio import AsyncResultStore, connect_async
from resultstore.codecs import CodecOptions, Serializer
from resultstore.discovery import BackendSpec
from resultstore.errors import (
    BackendUnavailableError,
    ChordError,
    ChordPartFailedError,
    ConfigurationError,
    CorruptPayloadError,
    DecodeError,
    EncodeError,
    InvalidIdError,
    InvalidInputError,
    InvalidStateError,
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
from resultstore.result import (
    AsyncResult,
    ChordResult,
    GroupResult,
    chord_part_done,
    start_chord,
)
from resultstore.retrying import Retry
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
    "AsyncResult",
    "AsyncResultStore",
    "BackendSpec",
    "BackendUnavailableError",
    "Capability",
    "ChordError",
    "ChordOutcome",
    "ChordPartFailedError",
    "ChordResult",
    "ChordState",
    "CodecOptions",
    "ConfigurationError",
    "CorruptPayloadError",
    "DecodeError",
    "EncodeError",
    "ExceptionInfo",
    "Group",
    "GroupResult",
    "Hooks",
    "InvalidIdError",
    "InvalidInputError",
    "InvalidStateError",
    "InvalidURLError",
    "PayloadError",
    "RemoteError",
    "ResultStore",
    "ResultStoreError",
    "ResultTimeoutError",
    "ResultTooLargeError",
    "Retry",
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
    "chord_part_done",
    "connect",
    "connect_async",
    "default_url",
    "hookimpl",
    "start_chord",
]
