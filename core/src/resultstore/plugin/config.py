"""What a backend factory receives: its URL, serializer, expiry and options."""

from __future__ import annotations

import attrs

from resultstore.concepts.options import Options
from resultstore.concepts.urls import BackendURL
from resultstore.payloads.codecs import Serializer

__all__ = ["DEFAULT_EXPIRES", "BackendConfig"]

#: results expire after one day unless configured otherwise (Celery's default too).
DEFAULT_EXPIRES = 86400.0


@attrs.define
class BackendConfig:
    """Everything a backend factory gets.

    ``options`` holds the backend-specific options still untaken; a factory
    takes what it knows and calls ``options.finish()``.
    """

    url: BackendURL
    serializer: Serializer
    options: Options
    #: seconds until results, groups and chords expire; None keeps them.
    expires: float | None = DEFAULT_EXPIRES
