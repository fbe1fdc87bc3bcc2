"""The backend contract suite, run with encryption on: every rule still holds through it."""

from __future__ import annotations

from resultstore_contract.basic import BasicContract
from resultstore_contract.machine import MachineContract
from resultstore_encryption import Encryption, generate_key

ENCRYPTION = Encryption(keys={"contract": generate_key()})


class TestEncryptedMemory(BasicContract, MachineContract):
    url = "memory://"
    plugins = (ENCRYPTION,)
    clock_option = "clock"


class TestEncryptedSQLite(BasicContract):
    url = "sqlite:///{tmp_path}/contract.db"
    clock_option = "clock"
    plugins = (ENCRYPTION,)
