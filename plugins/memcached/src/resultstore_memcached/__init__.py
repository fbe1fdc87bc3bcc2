"""resultstore-memcached: the memcached backend for resultstore, one server or a ring.

Importing this package imports no client library; the backend module does,
when a ``memcached://`` URL is first used.
"""

from __future__ import annotations

import importlib.metadata

__version__ = importlib.metadata.version("resultstore-memcached")

__all__ = ["__version__"]
