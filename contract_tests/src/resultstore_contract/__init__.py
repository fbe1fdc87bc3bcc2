"""The contract suite that every resultstore backend runs against itself."""

from __future__ import annotations

import importlib.metadata

from resultstore_contract.basic import BasicContract
from resultstore_contract.machine import MachineContract, StoreMachine
from resultstore_contract.support import (
    ContractBase,
    Expiring,
    IdFactory,
    ManualClock,
    contract_settings,
    requires,
)

__version__ = importlib.metadata.version("resultstore-contract")

__all__ = [
    "BasicContract",
    "ContractBase",
    "Expiring",
    "IdFactory",
    "MachineContract",
    "ManualClock",
    "StoreMachine",
    "__version__",
    "contract_settings",
    "requires",
]
