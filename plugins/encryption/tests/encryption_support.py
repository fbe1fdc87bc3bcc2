"""Helpers for the tests of resultstore-encryption (a module name no other test folder uses)."""

from __future__ import annotations

from typing import Any

import resultstore
from resultstore import ResultStore
from resultstore.backends.memory import MemoryBackend


def memory(store: ResultStore) -> MemoryBackend:
    assert isinstance(store.backend, MemoryBackend)
    return store.backend


def raw_result(store: ResultStore, task_id: str) -> bytes:
    """The bytes the memory backend holds for ``task_id``."""
    return memory(store).data.results[task_id].payload


def connect(url: str, *plugins: object, **options: Any) -> ResultStore:
    return resultstore.connect(url, plugins=plugins, **options)
