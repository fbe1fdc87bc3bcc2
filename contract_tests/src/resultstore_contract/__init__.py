"""The contract suite that every resultstore backend runs against itself.

A backend's whole contract test::

    from resultstore_contract import BackendContract

    class TestMyBackend(BackendContract):
        url = "mybackend://localhost/{unique}"

PYTEST_DONT_REWRITE: this file has no asserts; the suite's modules, imported
on first use (see below), are rewritten by pytest as usual.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resultstore_contract.asyncio_api import AsyncContract
    from resultstore_contract.bad_input import BadInputContract
    from resultstore_contract.basic import BasicContract
    from resultstore_contract.bulk import BulkContract
    from resultstore_contract.contract import GROUPS, BackendContract
    from resultstore_contract.expiry import ExpiryContract
    from resultstore_contract.ids import IdsContract
    from resultstore_contract.lifecycle import LifecycleContract
    from resultstore_contract.loading import LoadingContract
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

# Lazy: ``resultstore check`` imports resultstore_contract.check (and so this
# package) before it starts pytest. Importing the suite's modules here would
# load them before pytest's assertion rewriting is in place, so that their
# asserts would lose pytest's introspection (PytestAssertRewriteWarning), and
# would import hypothesis too early. So each name is imported on first use.
_WHERE: dict[str, str] = {
    "AsyncContract": "resultstore_contract.asyncio_api",
    "BackendContract": "resultstore_contract.contract",
    "BadInputContract": "resultstore_contract.bad_input",
    "BasicContract": "resultstore_contract.basic",
    "BulkContract": "resultstore_contract.bulk",
    "CodecContract": "resultstore_contract.roundtrip",
    "ContractBase": "resultstore_contract.support",
    "DeadServer": "resultstore_contract.support",
    "Expiring": "resultstore_contract.support",
    "ExpiryContract": "resultstore_contract.expiry",
    "GROUPS": "resultstore_contract.contract",
    "IdFactory": "resultstore_contract.support",
    "IdsContract": "resultstore_contract.ids",
    "LifecycleContract": "resultstore_contract.lifecycle",
    "LoadingContract": "resultstore_contract.loading",
    "MachineContract": "resultstore_contract.machine",
    "ManualClock": "resultstore_contract.support",
    "PayloadContract": "resultstore_contract.payloads",
    "RaceContract": "resultstore_contract.races",
    "RefusalContract": "resultstore_contract.refusals",
    "StoreMachine": "resultstore_contract.machine",
    "TimezoneContract": "resultstore_contract.timezones",
    "WaitingContract": "resultstore_contract.waiters",
    "contract_settings": "resultstore_contract.support",
    "requires": "resultstore_contract.support",
    "wait_until": "resultstore_contract.support",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
    "LoadingContract",
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
