"""The built-in backends run the published contract suite, with the lines a plugin writes."""

from __future__ import annotations

from resultstore_contract import BackendContract


class TestMemoryContract(BackendContract):
    url = "memory://{unique}"
    clock_option = "clock"


class TestSQLiteContract(BackendContract):
    url = "sqlite:///{tmp_path}/results.db"
    clock_option = "clock"
