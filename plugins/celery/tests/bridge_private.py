"""An exception module only the test worker imports (the tests themselves never do)."""

from __future__ import annotations


class PrivateError(Exception):
    """Raised by the worker; the caller has no such class and gets a RemoteError."""
