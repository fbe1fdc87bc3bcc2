"""The whole contract in one class: what a backend's test module subclasses."""

from __future__ import annotations

from resultstore_contract.asyncio_api import AsyncContract
from resultstore_contract.bad_input import BadInputContract
from resultstore_contract.basic import BasicContract
from resultstore_contract.bulk import BulkContract
from resultstore_contract.chord_body import ChordBodyContract
from resultstore_contract.expiry import ExpiryContract
from resultstore_contract.ids import IdsContract
from resultstore_contract.lifecycle import LifecycleContract
from resultstore_contract.loading import LoadingContract
from resultstore_contract.machine import MachineContract
from resultstore_contract.payloads import PayloadContract
from resultstore_contract.races import RaceContract
from resultstore_contract.refusals import RefusalContract
from resultstore_contract.roundtrip import CodecContract
from resultstore_contract.timezones import TimezoneContract
from resultstore_contract.waiters import WaitingContract

__all__ = ["GROUPS", "BackendContract"]

#: the groups of checks, by the prefix of their test names (``test_<group>_...``).
GROUPS: dict[str, str] = {
    "basic": "one rule of the backend API per test",
    "bulk": "get_many of hundreds of ids, with repeats and misses",
    "ids": "ids alike in case, wildcards, separators or length are distinct",
    "payload": "payloads of exact sizes around chunk boundaries, byte for byte",
    "expiry": "every store restarts expiry; expired is missing; chords expire whole",
    "tz": "dates and expiry under a local time zone that is not UTC",
    "machine": "random operation sequences against a plain dict model",
    "race": "threads and processes racing states, batches and chord parts",
    "refused": "a refused store changes nothing readers, waiters or listeners see",
    "bad": "corrupt, foreign and hostile payloads; unencodable and oversized results",
    "codec": "every codec and compression through the store",
    "async": "the asyncio API next to the sync one, with the store's options",
    "wait": "waiters, the shared hub and push listeners",
    "lifecycle": "every call after close(), and against a stopped server",
    "loading": "loading the entry point imports no client library",
}


# pytest collects inherited tests from the last base to the first: this order
# runs the plain one-rule checks first, so a broken rule fails by its name.
class BackendContract(
    LoadingContract,
    LifecycleContract,
    WaitingContract,
    AsyncContract,
    RefusalContract,
    MachineContract,
    RaceContract,
    BadInputContract,
    CodecContract,
    TimezoneContract,
    ExpiryContract,
    PayloadContract,
    IdsContract,
    BulkContract,
    ChordBodyContract,
    BasicContract,
):
    """Every check of the contract. Subclass it as ``Test<YourBackend>`` and set ``url``::

        from resultstore_contract import BackendContract

        class TestMyBackend(BackendContract):
            url = "mybackend://localhost/{unique}"

    See :class:`~resultstore_contract.support.ContractBase` for the other knobs.
    """
