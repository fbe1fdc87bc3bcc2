"""resultstore-postgresql: the PostgreSQL backend for resultstore.

Importing this package imports no client library; the backend module does,
when a ``postgresql://`` URL is first used.
"""

from __future__ import annotations

import importlib.metadata

__version__ = importlib.metadata.version("resultstore-postgresql")

__all__ = ["__version__"]
