"""The native asyncio twin of the Redis backend, over ``redis.asyncio``.

Same keys, same scripts, same retry policy as :mod:`resultstore_redis.backend`;
only the client differs. Groups, chords and waiting stay on the sync
backend (the result API's hub does the waiting for both).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from resultstore import StoreOutcome, TaskResult

from resultstore_redis import scripts
from resultstore_redis.backend import again
from resultstore_redis.client import build_client

if TYPE_CHECKING:
    from resultstore_redis.backend import RedisBackend

__all__ = ["AsyncRedisBackend"]

_CHUNK = 1000


class AsyncRedisBackend:
    """An :class:`~resultstore.AsyncResultBackend` for one RedisBackend's store."""

    def __init__(self, backend: RedisBackend) -> None:
        self._sync = backend
        self.capabilities = backend.capabilities
        # The same policy; a copy, so that closing this twin refuses its calls only.
        self.retry = copy.copy(backend.retry)
        self.client, self.cluster = build_client(backend.url, backend.settings, use_asyncio=True)
        self._store_script = self.client.register_script(scripts.STORE)

    async def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        keys, args = self._sync.store_args(result, overwrite)
        tries = itertools.count(1)

        async def once() -> Any:
            return await self._store_script(keys=keys, args=again(args, next(tries)))

        reply = await self.retry.run_async(once)
        return self._sync.outcome(reply, result)

    async def get(self, task_id: str) -> TaskResult | None:
        key = self._sync.task_key(task_id)
        raw = await self.retry.run_async(lambda: self.client.get(key))
        return None if raw is None else self._sync.decode(raw)

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        ids = list(dict.fromkeys(task_ids))
        keys = [self._sync.task_key(t) for t in ids]

        async def run() -> list[Any]:
            if self.cluster:
                return list(await self.client.mget_nonatomic(keys))
            pipe = self.client.pipeline(transaction=False)
            for start in range(0, len(keys), _CHUNK):
                pipe.mget(keys[start : start + _CHUNK])
            return [value for chunk in await pipe.execute() for value in chunk]

        values = await self.retry.run_async(run) if keys else []
        return {
            task_id: None if raw is None else self._sync.decode(raw)
            for task_id, raw in zip(ids, values, strict=True)
        }

    async def forget(self, task_id: str) -> None:
        key = self._sync.task_key(task_id)
        await self.retry.run_async(lambda: self.client.delete(key))

    async def close(self) -> None:
        self.retry.close()
        if self.cluster:
            await self.client.aclose()
        else:
            # The pool was made by us, so the client would not close it itself.
            await self.client.aclose(close_connection_pool=True)
