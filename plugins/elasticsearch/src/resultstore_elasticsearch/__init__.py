"""resultstore-elasticsearch: the Elasticsearch and OpenSearch backends for resultstore.

Importing this package imports no client library; the backend module does,
when an ``elasticsearch://`` or ``opensearch://`` URL is first used.
"""

from __future__ import annotations

import importlib.metadata

__version__ = importlib.metadata.version("resultstore-elasticsearch")

__all__ = ["__version__"]
