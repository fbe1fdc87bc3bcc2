"""resultstore-template: the ``filekv://`` backend, a template for third-party backends."""

from __future__ import annotations

import importlib.metadata

from resultstore_template.store import FileKeyValueStore

__version__ = importlib.metadata.version("resultstore-template")

__all__ = ["FileKeyValueStore", "__version__"]
