"""The native asyncio twin of the search backends, over AsyncElasticsearch / AsyncOpenSearch.

It runs the very plans of ``operations.py`` that the sync backend runs, with
the same retry policy; only the client differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

from resultstore import ChordOutcome, ChordState, Closed, Group, StoreOutcome, TaskResult

from resultstore_elasticsearch.clients import async_adapter
from resultstore_elasticsearch.transport import AsyncAdapter, Plan

if TYPE_CHECKING:
    from resultstore_elasticsearch.backend import SearchBackend

__all__ = ["AsyncSearchBackend"]

T = TypeVar("T")


class AsyncSearchBackend:
    """An :class:`~resultstore.AsyncResultBackend` for one SearchBackend's indices."""

    def __init__(self, backend: SearchBackend) -> None:
        self.capabilities = backend.capabilities
        self.operations = backend.operations
        self.runner = backend.runner
        self.adapter: AsyncAdapter | Closed = async_adapter(backend.settings)
        self._what = f"this {backend.url.scheme}:// asyncio backend"

    async def run(self, plan: Plan[T]) -> T:
        return await self.runner.run_async(self.adapter, plan)

    async def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        return await self.run(self.operations.store(result, overwrite))

    async def get(self, task_id: str) -> TaskResult | None:
        return await self.run(self.operations.get(task_id))

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        return await self.run(self.operations.get_many(task_ids))

    async def store_many(
        self, results: Sequence[TaskResult], *, overwrite: bool = False
    ) -> list[StoreOutcome]:
        return await self.run(self.operations.store_many(results, overwrite))

    async def forget(self, task_id: str) -> None:
        await self.run(self.operations.forget(task_id))

    async def save_group(self, group: Group) -> None:
        await self.run(self.operations.save_group(group))

    async def get_group(self, group_id: str) -> Group | None:
        return await self.run(self.operations.get_group(group_id))

    async def chord_part_return(
        self, group_id: str, index: int, result: TaskResult
    ) -> ChordOutcome:
        return await self.run(self.operations.chord_part_return(group_id, index, result))

    async def get_chord(self, group_id: str) -> ChordState | None:
        return await self.run(self.operations.get_chord(group_id))

    async def cleanup(self) -> int:
        return await self.run(self.operations.cleanup())

    async def close(self) -> None:
        adapter = self.adapter
        if isinstance(adapter, Closed):
            return
        # Every later call raises BackendUnavailableError (the documented error).
        self.adapter = Closed(self._what)
        await adapter.close()
