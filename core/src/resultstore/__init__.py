"""resultstore: typed, pluggable result storage for Python task queues."""

from __future__ import annotations

import importlib.metadata

from resultstore.api.aio import AsyncResultStore, connect_async
from resultstore.api.result import (
    AsyncResult,
    ChordResult,
    GroupResult,
    chord_part_done,
    start_chord,
)
from resultstore.api.store import ResultStore, connect, default_url
from resultstore.backends.keyvalue import KeyValueBackend
from resultstore.backends.threaded import ThreadedAsyncBackend
from resultstore.concepts.errors import (
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
from resultstore.concepts.models import (
    ChordOutcome,
    ChordState,
    ExceptionInfo,
    Group,
    StoreOutcome,
    TaskResult,
)
from resultstore.concepts.options import Options
from resultstore.concepts.remote import RemoteError, TaskRevokedError
from resultstore.concepts.states import (
    EXCEPTION_STATES,
    PROPAGATE_STATES,
    READY_STATES,
    UNREADY_STATES,
    State,
)
from resultstore.concepts.urls import BackendURL
from resultstore.payloads.codecs import CodecOptions, Serializer, Succeeded
from resultstore.plugin.config import BackendConfig
from resultstore.plugin.discovery import BackendSpec
from resultstore.plugin.hooks import Hooks, build_hooks
from resultstore.plugin.hookspecs import hookimpl
from resultstore.plugin.protocols import (
    AsyncResultBackend,
    Capability,
    KeyValueStore,
    PushListener,
    ResultBackend,
    SupportsBatchStore,
    SupportsBulkGet,
    SupportsBulkPayloads,
    SupportsCarriedResults,
    SupportsChordBody,
    SupportsChords,
    SupportsCleanup,
    SupportsGroups,
    SupportsMigrate,
    SupportsNativeAsync,
    SupportsPush,
    SupportsReplyTo,
    SupportsWake,
)
from resultstore.plugin.retrying import Closed, Retry

__version__ = importlib.metadata.version("resultstore")

__all__ = [
    "EXCEPTION_STATES",
    "PROPAGATE_STATES",
    "READY_STATES",
    "UNREADY_STATES",
    "AsyncResult",
    "AsyncResultBackend",
    "AsyncResultStore",
    "BackendConfig",
    "BackendSpec",
    "BackendURL",
    "BackendUnavailableError",
    "Capability",
    "ChordError",
    "ChordOutcome",
    "ChordPartFailedError",
    "ChordResult",
    "ChordState",
    "Closed",
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
    "KeyValueBackend",
    "KeyValueStore",
    "Options",
    "PayloadError",
    "PushListener",
    "RemoteError",
    "ResultBackend",
    "ResultStore",
    "ResultStoreError",
    "ResultTimeoutError",
    "ResultTooLargeError",
    "Retry",
    "Serializer",
    "State",
    "StoreOutcome",
    "Succeeded",
    "SupportsBatchStore",
    "SupportsBulkGet",
    "SupportsBulkPayloads",
    "SupportsCarriedResults",
    "SupportsChordBody",
    "SupportsChords",
    "SupportsCleanup",
    "SupportsGroups",
    "SupportsMigrate",
    "SupportsNativeAsync",
    "SupportsPush",
    "SupportsReplyTo",
    "SupportsWake",
    "TaskResult",
    "TaskRevokedError",
    "ThreadedAsyncBackend",
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
