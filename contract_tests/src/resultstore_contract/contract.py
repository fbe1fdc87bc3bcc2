"""The whole contract in one class: what a backend's test module subclasses."""

from __future__ import annotations

from resultstore_contract.asyncio_api import AsyncContract
from resultstore_contract.bad_input import BadInputContract
from resultstore_contract.basic import BasicContract
from resultstore_contract.machine import MachineContract
from resultstore_contract.races import RaceContract
from resultstore_contract.roundtrip import CodecContract
from resultstore_contract.waiters import WaitingContract

__all__ = ["GROUPS", "BackendContract"]

#: the groups of checks, by the prefix of their test names (``test_<group>_...``).
GROUPS: dict[str, str] = {
    "basic": "one rule of the backend API per test",
    "machine": "random operation sequences against a plain dict model",
    "race": "threads and processes racing states and chord parts",
    "bad": "corrupt, foreign and hostile payloads; unencodable and oversized results",
    "codec": "every codec and compression through the store",
    "async": "the asyncio API next to the sync one",
    "wait": "waiters, the shared hub and push listeners",
}


# pytest collects inherited tests from the last base to the first: this order
# runs the plain one-rule checks first, so a broken rule fails by its name.
class BackendContract(
    WaitingContract,
    AsyncContract,
    MachineContract,
    RaceContract,
    BadInputContract,
    CodecContract,
    BasicContract,
):
    """Every check of the contract. Subclass it as ``Test<YourBackend>`` and set ``url``::

        from resultstore_contract import BackendContract

        class TestMyBackend(BackendContract):
            url = "mybackend://localhost/{unique}"

    See :class:`~resultstore_contract.support.ContractBase` for the other knobs.
    """
