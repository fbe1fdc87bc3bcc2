"""resultstore-redis: the Redis (and Valkey) backend for resultstore.

Importing this package imports no client library; the backend module does,
when a ``redis://`` URL is first used.
"""

from __future__ import annotations

import importlib.metadata

__version__ = importlib.metadata.version("resultstore-redis")

__all__ = ["__version__"]
