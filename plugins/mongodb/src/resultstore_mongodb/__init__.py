"""resultstore-mongodb: the MongoDB backend for resultstore.

Importing this package imports no client library; the backend module does,
when a ``mongodb://`` URL is first used.
"""

from __future__ import annotations

import importlib.metadata

__version__ = importlib.metadata.version("resultstore-mongodb")

__all__ = ["__version__"]
