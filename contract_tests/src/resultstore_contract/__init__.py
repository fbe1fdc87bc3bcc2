"""The contract suite that every resultstore backend runs against itself.

A backend's whole contract test::

    from resultstore_contract import BackendContract

    class TestMyBackend(BackendContract):
        url = "mybackend://localhost/{unique}"
"""

from __future__ import annotations

import importlib.metadata

from resultstore_contract.asyncio_api import AsyncContract
from resultstore_contract.bad_input import BadInputContract
from resultstore_contract.basic import BasicContract
from resultstore_contract.bulk import BulkContract
from resultstore_contract.contract import GROUPS, BackendContract
from resultstore_contract.expiry import ExpiryContract
from resultstore_contract.ids import IdsContract
from resultstore_contract.lifecycle import LifecycleContract
from resultstore_contract.machine import MachineContract, StoreMachine
from resultstore_contract.payloads import PayloadContract
from resultstore_contract.races import RaceContract
from resultstore_contract.refusals import RefusalContract
from resultstore_contract.roundtrip import CodecContract
from resultstore_contract.support import (
    ContractBase,
    DeadServer,
    Expiring,
    IdFactory,
    ManualClock,
    contract_settings,
    requires,
    wait_until,
)
from resultstore_contract.timezones import TimezoneContract
from resultstore_contract.waiters import WaitingContract

__version__ = importlib.metadata.version("resultstore-contract")

__all__ = [
    "GROUPS",
    "AsyncContract",
    "BackendContract",
    "BadInputContract",
    "BasicContract",
    "BulkContract",
    "CodecContract",
    "ContractBase",
    "DeadServer",
    "Expiring",
    "ExpiryContract",
    "IdFactory",
    "IdsContract",
    "LifecycleContract",
    "MachineContract",
    "ManualClock",
    "PayloadContract",
    "RaceContract",
    "RefusalContract",
    "StoreMachine",
    "TimezoneContract",
    "WaitingContract",
    "__version__",
    "contract_settings",
    "requires",
    "wait_until",
]
