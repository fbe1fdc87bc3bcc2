"""filekv:// runs the published contract suite: these few lines are all it takes."""

from __future__ import annotations

from resultstore_contract import BackendContract


class TestFileKVContract(BackendContract):
    # {tmp_path} is absolute, so this is filekv://// plus the path: a fresh folder per test.
    url = "filekv:///{tmp_path}/store"
    # The option through which the backend takes a clock, so expiry is tested without sleeping.
    clock_option = "clock"
