"""resultstore-template: the ``filekv://`` backend, a template for third-party backends.

Keep this file light. The entry point (``resultstore_template.plugin``) sits
in this package, so Python runs this file whenever resultstore loads any
plugin's entry point (to list the installed backends, say): a module
imported here, and the client library it imports, would be loaded for every
user of every scheme. So the store class is imported on first use only, and
the contract suite checks that loading the entry point imports nothing more
(``test_loading_the_entry_point_imports_no_client_library``).
"""

from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resultstore_template.store import FileKeyValueStore

__version__ = importlib.metadata.version("resultstore-template")

__all__ = ["FileKeyValueStore", "__version__"]


def __getattr__(name: str) -> Any:
    # `from resultstore_template import FileKeyValueStore` still works.
    if name == "FileKeyValueStore":
        from resultstore_template.store import FileKeyValueStore

        return FileKeyValueStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
