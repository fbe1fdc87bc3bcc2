"""The documented hierarchy of errors that resultstore itself raises.

Every message names the problem and the fix. Errors never include a
password: URLs are shown through :func:`resultstore.concepts.urls.redact`.

::

    ResultStoreError
    ├── ConfigurationError
    │   ├── InvalidURLError
    │   ├── UnknownSchemeError
    │   └── UnknownOptionError
    ├── InvalidInputError (also a builtin ValueError)
    │   ├── InvalidIdError
    │   └── InvalidStateError
    ├── BackendUnavailableError
    ├── UnsupportedOperationError
    ├── PayloadError
    │   ├── EncodeError
    │   │   └── ResultTooLargeError
    │   └── DecodeError
    │       ├── CorruptPayloadError
    │       ├── UnknownCodecError
    │       └── UnsafeCodecError
    ├── ChordError
    │   └── ChordPartFailedError
    └── ResultTimeoutError (also a builtin TimeoutError)

Errors that tasks raised are not here: they come back as their own type or
as :class:`resultstore.RemoteError`.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "BackendUnavailableError",
    "ChordError",
    "ChordPartFailedError",
    "ConfigurationError",
    "CorruptPayloadError",
    "DecodeError",
    "EncodeError",
    "InvalidIdError",
    "InvalidInputError",
    "InvalidStateError",
    "InvalidURLError",
    "PayloadError",
    "ResultStoreError",
    "ResultTimeoutError",
    "ResultTooLargeError",
    "UnknownCodecError",
    "UnknownOptionError",
    "UnknownSchemeError",
    "UnsafeCodecError",
    "UnsupportedOperationError",
]


class ResultStoreError(Exception):
    """Base class of every error resultstore raises."""


class ConfigurationError(ResultStoreError):
    """The backend URL or options are wrong."""


class InvalidURLError(ConfigurationError):
    """A backend URL could not be parsed or misses a required part."""


class UnknownSchemeError(ConfigurationError):
    """No installed plugin serves the URL's scheme."""

    def __init__(self, scheme: str, installed: Iterable[str]) -> None:
        self.scheme = scheme
        self.installed = tuple(sorted(installed))
        base = scheme.split("+", 1)[0]
        super().__init__(
            f"no backend is installed for the URL scheme {scheme!r}; "
            f"installed schemes: {', '.join(self.installed) or 'none'}. "
            f"To add it, run: pip install resultstore-{base} "
            f"(from a checkout of resultstore: pip install ./plugins/{base}; "
            f"or check RESULTSTORE_DISABLE_PLUGINS if it is installed but disabled)"
        )


class UnknownOptionError(ConfigurationError):
    """An option that no part of the stack understands was given."""


class InvalidInputError(ResultStoreError, ValueError):
    """A task id, group id or state name that no backend may be given.

    Raised before any backend sees the call, the same way on every backend.
    """


class InvalidIdError(InvalidInputError):
    """A task id or group id is not a str of 1 to 512 UTF-8 bytes without control characters."""


class InvalidStateError(InvalidInputError):
    """A state name is not a str of 1 to 512 UTF-8 bytes without control characters."""


class BackendUnavailableError(ResultStoreError):
    """The store cannot be reached (dead server, unreachable path, ...)."""


class UnsupportedOperationError(ResultStoreError):
    """The backend does not declare the capability an operation needs."""


class PayloadError(ResultStoreError):
    """A result could not be encoded or a stored payload decoded."""


class EncodeError(PayloadError):
    """A value cannot be encoded with the configured codec."""


class ResultTooLargeError(EncodeError):
    """An encoded result is larger than the configured ``max_result_size``."""

    def __init__(self, task_id: str, size: int, limit: int, *, compressed: bool = False) -> None:
        self.task_id = task_id
        self.size = size
        self.limit = limit
        # The limit bounds a body before compression too: readers stop inflating there.
        what = "before compression" if compressed else ""
        cure = "" if compressed else "enable compression, "
        super().__init__(
            f"result of task {task_id!r} encodes to {size:,} bytes{' ' if what else ''}{what}, "
            f"over the max_result_size limit of {limit:,} bytes; store a reference to "
            f"the data instead (a file or object-store key), {cure}or raise max_result_size "
            f"(on readers too)"
        )


class DecodeError(PayloadError):
    """A stored payload cannot be decoded."""


class CorruptPayloadError(DecodeError):
    """A stored payload's header or body is damaged or was not written by resultstore."""


class UnknownCodecError(DecodeError):
    """A payload names a codec, compression or envelope this process does not have."""


class UnsafeCodecError(DecodeError):
    """A payload uses a codec (pickle) that this reader does not accept."""


class ChordError(ResultStoreError):
    """A chord was used wrongly (no size set, index out of range, ...)."""


class ChordPartFailedError(ChordError):
    """A chord's callback did not run because a header part failed or was revoked.

    Stored as the callback's FAILURE; the part's own exception is its cause.
    Its arguments are plain values so that it is rebuilt as itself when read.
    """

    # Stored under its public name, whichever module of the package defines it.
    __module__ = "resultstore"

    def __init__(self, group_id: str, index: int, task_id: str, state: str, reason: str) -> None:
        super().__init__(group_id, index, task_id, state, reason)
        self.group_id = group_id
        self.index = index
        self.task_id = task_id
        self.state = state
        self.reason = reason

    def __str__(self) -> str:
        return (
            f"chord {self.group_id!r}: header part {self.index} (task {self.task_id!r}) "
            f"ended in {self.state}: {self.reason}; the callback did not run"
        )


class ResultTimeoutError(ResultStoreError, TimeoutError):
    """A wait on a result ran out of time."""
