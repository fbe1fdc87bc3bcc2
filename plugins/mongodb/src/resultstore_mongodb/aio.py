"""The native asyncio twin of the MongoDB backend, over pymongo's ``AsyncMongoClient``.

Same documents, same atomic store, same retry policy as
:mod:`resultstore_mongodb.backend`; only the client differs. Groups, chords
and waiting stay on the sync backend (the result API's hub does the waiting
for both).
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import bson
import pymongo
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError
from resultstore import StoreOutcome, TaskResult

from resultstore_mongodb.backend import (
    BEFORE_FIELDS,
    CLOSE_TIMEOUT,
    CURRENT_FIELDS,
    UPSERT_TRIES,
    Refused,
    judge,
    live,
    live_state,
    ours,
    outcome,
    stuck,
    unready,
)
from resultstore_mongodb.client import build_client
from resultstore_mongodb.documents import CODEC_OPTIONS, RAW_REPLY

if TYPE_CHECKING:
    from resultstore_mongodb.backend import MongoBackend

__all__ = ["AsyncMongoBackend"]


class AsyncMongoBackend:
    """An :class:`~resultstore.AsyncResultBackend` for one MongoBackend's store."""

    def __init__(self, backend: MongoBackend) -> None:
        self._sync = backend
        self.capabilities = backend.capabilities
        # The same policy; a copy, so that closing this twin refuses its calls only.
        self.retry = copy.copy(backend.retry)
        self.client = build_client(backend.settings, use_asyncio=True)
        database = self.client.get_database(backend.settings.database, codec_options=CODEC_OPTIONS)
        self.database = database
        self.results = database[backend.settings.taskmeta_collection]

    async def _replace(
        self, filter_: Mapping[str, Any], doc: Mapping[str, Any], *, insert: bool = True
    ) -> Any:
        return await self.results.find_one_and_replace(
            filter_,
            doc,
            projection=BEFORE_FIELDS,
            upsert=insert,
            return_document=ReturnDocument.BEFORE,
        )

    async def _overwrite(self, task_id: str, doc: Mapping[str, Any]) -> Any:
        for attempt in range(UPSERT_TRIES):
            try:
                return await self._replace({"_id": task_id}, doc)
            except DuplicateKeyError:
                # Another writer created the document first; the next run replaces it.
                if attempt == UPSERT_TRIES - 1:
                    raise
        return None  # pragma: no cover  # the loop returns or raises

    async def _store(
        self, result: TaskResult, doc: Mapping[str, Any], now: dt.datetime, mine: bool
    ) -> StoreOutcome:
        # The sync backend's _store, awaited: see there.
        freshness, state = self._sync.freshness, str(result.state)
        if freshness.expect_new(state):
            try:
                await self.results.insert_one(doc)
            except DuplicateKeyError:
                freshness.learn(state, False)
            else:
                freshness.learn(state, True)
                return StoreOutcome(True, result.state, None)
        for _ in range(UPSERT_TRIES):
            try:
                before = await self._replace(unready(result.task_id), doc)
            except DuplicateKeyError:
                fields = None if mine else CURRENT_FIELDS
                current = await self.results.find_one({"_id": result.task_id}, fields)
                if mine and ours(current, doc):
                    return StoreOutcome(True, result.state, None)
                try:
                    expired = judge(current, now)
                except Refused as refused:
                    return StoreOutcome(False, refused.state, refused.state)
                if expired is not None and await self._replace(expired, doc, insert=False):
                    return StoreOutcome(True, result.state, None)
                continue
            freshness.learn(state, before is None)
            return outcome(before, result, now)
        raise stuck(result, self.results.full_name)

    async def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        sync = self._sync
        now = sync.now()
        doc = sync.documents.result(result, sync.expires_at(now))
        if overwrite:
            before = await self.retry.run_async(lambda: self._overwrite(result.task_id, doc))
            return StoreOutcome(True, result.state, live_state(before, now))
        tries = 0

        async def attempt() -> StoreOutcome:
            nonlocal tries
            tries += 1
            return await self._store(result, doc, now, tries > 1)

        return await self.retry.run_async(attempt)

    async def _find_one(self, task_id: str) -> Any:
        # As the sync backend's find_one: the find command, without a cursor.
        reply = await self.database.command(
            "find",
            self.results.name,
            filter={"_id": task_id},
            limit=1,
            singleBatch=True,
            # Command replies skip the type registry: decode the document ourselves.
            codec_options=RAW_REPLY,
            read_preference=self.results.read_preference,
        )
        batch = reply["cursor"]["firstBatch"]
        return bson.decode(batch[0].raw, codec_options=CODEC_OPTIONS) if batch else None

    async def get(self, task_id: str) -> TaskResult | None:
        sync = self._sync
        doc = await self.retry.run_async(lambda: self._find_one(task_id))
        if doc is None or not live(doc, sync.now()):
            return None
        return sync.documents.load_result(doc)

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        sync = self._sync
        ids = list(dict.fromkeys(task_ids))
        docs: dict[str, Any] = {}

        async def read(chunk: list[str]) -> list[Any]:
            cursor = self.results.find({"_id": {"$in": chunk}}, batch_size=len(chunk))
            return list(await cursor.to_list(None))

        step = sync.settings.read_batch
        for start in range(0, len(ids), step):
            chunk = ids[start : start + step]
            for doc in await self.retry.run_async(functools.partial(read, chunk)):
                docs[doc["_id"]] = doc
        now = sync.now()
        return {
            task_id: (
                None
                if (doc := docs.get(task_id)) is None or not live(doc, now)
                else sync.documents.load_result(doc)
            )
            for task_id in ids
        }

    async def forget(self, task_id: str) -> None:
        await self.retry.run_async(lambda: self.results.delete_one({"_id": task_id}))

    async def close(self) -> None:
        self.retry.close()
        with pymongo.timeout(CLOSE_TIMEOUT):  # as the sync backend's close()
            await self.client.close()
