"""resultstore-celery: any resultstore backend as a Celery result backend.

Set ``result_backend = "resultstore+<store url>"`` (for example
``"resultstore+redis://localhost:6379/0"``); Celery loads
:class:`ResultStoreBackend` through the ``celery.result_backends`` entry point.
"""

from __future__ import annotations

import importlib.metadata

from resultstore_celery.backend import ResultStoreBackend
from resultstore_celery.settings import ALLOWED_EXCEPTIONS_SETTING, OPTIONS_SETTING

__version__ = importlib.metadata.version("resultstore-celery")

__all__ = ["ALLOWED_EXCEPTIONS_SETTING", "OPTIONS_SETTING", "ResultStoreBackend", "__version__"]
