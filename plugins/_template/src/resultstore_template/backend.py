"""The ``filekv://`` backend factory: parse the URL, open the store, wrap it.

``filekv:///relative/folder`` is relative to the current folder and
``filekv:////absolute/folder`` absolute (SQLAlchemy's slashes). Options:
``clock`` (a callable returning seconds, for tests of expiry) and, through
:meth:`KeyValueBackend.from_config`, ``prefix``.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from pathlib import Path
from typing import Any

from resultstore import BackendConfig, BackendURL, InvalidURLError, KeyValueBackend

from resultstore_template.store import Clock, FileKeyValueStore

__all__ = ["folder_of", "open_backend"]


def folder_of(url: BackendURL) -> Path:
    """The absolute folder a ``filekv://`` URL names, or :class:`InvalidURLError`."""
    if url.host or url.port or url.username:
        raise InvalidURLError(
            f"{url.redacted()!r} has a host part, but filekv:// stores files in a local "
            f"folder: write filekv:///relative/folder or filekv:////absolute/folder"
        )
    raw = urllib.parse.unquote(url.path[1:] if url.path.startswith("/") else url.path)
    if not raw:
        raise InvalidURLError(
            f"{url.redacted()!r} names no folder; give one: filekv:///results "
            f"(relative) or filekv:////var/lib/app/results (absolute)"
        )
    return Path(os.path.abspath(raw))


def _clock(value: Any) -> Clock:
    if not callable(value):
        raise ValueError("clock must be a callable returning seconds (like time.time)")
    clock: Clock = value
    return clock


# --8<-- [start:factory]
def open_backend(config: BackendConfig) -> KeyValueBackend:
    """Build the backend for ``config`` (the ``target`` of the BackendSpec)."""
    clock = config.options.take("clock", _clock, time.time)
    store = FileKeyValueStore(folder_of(config.url), clock=clock)
    # KeyValueBackend adds states, ready-is-final, groups, chords and expiry
    # on top of the store's few atomic primitives.
    return KeyValueBackend.from_config(store, config)


# --8<-- [end:factory]
