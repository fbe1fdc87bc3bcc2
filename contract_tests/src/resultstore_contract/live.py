"""The contract against whatever URL the run is given (``--resultstore-url``).

``resultstore check URL`` runs this module; it also works by hand::

    pytest --pyargs resultstore_contract.live --resultstore-url sqlite:///check.db
"""

from __future__ import annotations

from resultstore_contract.contract import BackendContract

__all__ = ["TestLiveBackend"]


class TestLiveBackend(BackendContract):
    """Takes its URL from ``--resultstore-url`` or ``$RESULTSTORE_CONTRACT_URL``."""
