"""The MongoDB backend: one document per result, group and chord, atomic where it matters.

Collections (in ``database``, default the URL's path or ``resultstore``)::

    resultstore_taskmeta    one document per task (_id = task id), see documents.py
    resultstore_groupmeta   one document per group (_id = group id)
    resultstore_chordmeta   one document per chord: size, received indices, parts (and,
                            once complete, body_claimed_at / body_sent: SupportsChordBody)

Every collection has a TTL index on ``expires_at``, so MongoDB deletes what
expired by itself; reads treat an expired document as missing meanwhile
(the TTL monitor runs once a minute), and ``cleanup()`` deletes them now.

A store is one ``findAndModify`` whose filter excludes ready states
(``{_id, state: {$nin: [SUCCESS, FAILURE, REVOKED]}}``), replacing the
document or inserting it (upsert); the document it replaced comes back and
gives ``previous_state``. Nothing is read first. When the task holds a
ready state the filter misses, the upsert's insert fails with E11000, and
only then is the document read, to report the state that stays (or, if
that ready state has expired, to replace exactly that document). A state
whose stores usually meet no document (the first store of a task: STARTED,
or SUCCESS when nothing else is tracked) is inserted first instead, the
cheapest write, and takes the conditional path only on E11000.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import bson
import pymongo
import pymongo.errors
from pymongo import IndexModel, InsertOne, ReplaceOne, ReturnDocument
from resultstore import (
    BackendConfig,
    Capability,
    ChordError,
    ChordOutcome,
    ChordState,
    ConfigurationError,
    Group,
    Serializer,
    StoreOutcome,
    TaskResult,
)
from resultstore.concepts.states import READY_STATES, state_from_str

from resultstore_mongodb.client import MongoRetry, Settings, build_client, server_identity
from resultstore_mongodb.documents import CODEC_OPTIONS, RAW_REPLY, Documents
from resultstore_mongodb.listener import ChangeStreamListener

if TYPE_CHECKING:
    from resultstore_mongodb.aio import AsyncMongoBackend

__all__ = [
    "BASE_CAPABILITIES",
    "BEFORE_FIELDS",
    "CURRENT_FIELDS",
    "UPSERT_TRIES",
    "Freshness",
    "MongoBackend",
    "Refused",
    "judge",
    "live_expression",
    "ours",
    "outcome",
    "unready",
]

T = TypeVar("T")

#: what every MongoDB deployment gives; PUSH is added where change streams work.
BASE_CAPABILITIES = frozenset(
    {
        Capability.BULK_GET,
        Capability.BATCH_STORE,
        Capability.AUTO_EXPIRY,
        Capability.CLEANUP,
        Capability.GROUPS,
        Capability.CHORDS,
        Capability.PERSISTENT,
        Capability.SHARED,
        Capability.NATIVE_ASYNC,
        Capability.MIGRATE,
    }
)

_READY = sorted(READY_STATES)
#: results per bulk write.
BATCH = 1000
#: how often an upsert that lost an insert race is run again before giving up.
UPSERT_TRIES = 8
_DUPLICATE_KEY = 11000
#: how long close() may wait to end the client's sessions on the server (seconds).
CLOSE_TIMEOUT = 1.0

_TOKEN_PREFIX = uuid.uuid4().hex[:16]
_tokens = itertools.count()

_ensured: set[tuple[str, str, str]] = set()
_ensured_lock = threading.Lock()


def _token() -> str:
    """Unique per call across processes and hosts, cheaper than a uuid4 each time."""
    return f"{_TOKEN_PREFIX}{os.getpid():x}-{next(_tokens):x}"


def moment(seconds: float) -> dt.datetime:
    """``seconds`` since the epoch as a UTC datetime at millisecond precision, like BSON."""
    whole = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return whole.replace(microsecond=whole.microsecond - whole.microsecond % 1000)


def live_expression(now: dt.datetime) -> dict[str, Any]:
    """Aggregation expression: the current document has not expired at ``now``."""
    return {
        "$or": [
            {"$eq": [{"$ifNull": ["$expires_at", None]}, None]},
            {"$gt": ["$expires_at", now]},
        ]
    }


def live_filter(now: dt.datetime) -> dict[str, Any]:
    """Query clause: not expired at ``now`` (no date, or a later one).

    A clause on the field rather than a top-level ``$or``, which some
    servers cannot plan on ``_id`` and answer with a collection scan.
    """
    return {"$not": {"$lte": now}}


def unready(task_id: str) -> dict[str, Any]:
    """The filter of a plain store: the task holds no ready state."""
    return {"_id": task_id, "state": {"$nin": _READY}}


def live(doc: Mapping[str, Any], now: dt.datetime) -> bool:
    expires_at = doc.get("expires_at")
    return expires_at is None or (isinstance(expires_at, dt.datetime) and expires_at > now)


def live_state(before: Mapping[str, Any] | None, now: dt.datetime) -> str | None:
    """The state a document held, or None if there was none or it had expired."""
    if before is None or not live(before, now):
        return None
    state = before.get("state")
    return state_from_str(state) if isinstance(state, str) and state else None


def outcome(before: Mapping[str, Any] | None, result: TaskResult, now: dt.datetime) -> StoreOutcome:
    """What a conditional store did, from the document it found."""
    previous = live_state(before, now)
    if previous in READY_STATES:
        return StoreOutcome(stored=False, state=previous, previous_state=previous)
    return StoreOutcome(stored=True, state=result.state, previous_state=previous)


def upsert(call: Callable[[], T]) -> T:
    """Run an upsert again when it lost an insert race (E11000 on ``_id``: another
    writer created the document first; the next run finds and judges it)."""
    for _ in range(UPSERT_TRIES - 1):
        try:
            return call()
        except pymongo.errors.DuplicateKeyError:
            continue
    return call()


def _holding(task_id: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    """The filter a batch's compare-and-set replaces ``doc`` with: its state, and
    for a ready state (expired, or nothing would be written) its expiry too, so
    that a live ready state stored over it since is never matched."""
    state = doc.get("state")
    if state in READY_STATES:
        return {"_id": task_id, "state": state, "expires_at": doc.get("expires_at")}
    return {"_id": task_id, "state": state}


def ours(current: Mapping[str, Any] | None, doc: Mapping[str, Any]) -> bool:
    """Whether the whole stored document ``current`` is ``doc``, the one this store
    writes: a try whose reply was lost had been applied."""
    if current is None:
        return False
    # Through BSON and back, as ``current`` came: naive datetimes turn aware UTC.
    written = bson.decode(bson.encode(doc, codec_options=CODEC_OPTIONS), CODEC_OPTIONS)
    return dict(current) == written


class Refused(Exception):
    """A store found a live ready state (``state``) and changed nothing."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


def judge(current: Mapping[str, Any] | None, now: dt.datetime) -> dict[str, Any] | None:
    """After a store's upsert met E11000: raise :class:`Refused` for a live ready
    state, return the filter that replaces exactly an expired ready document,
    or None to run the store again (the document changed or went meanwhile)."""
    if current is None:
        return None
    state = current.get("state")
    if state not in READY_STATES:
        return None
    if live(current, now):
        raise Refused(state_from_str(state))
    return {"_id": current["_id"], "state": state, "expires_at": current.get("expires_at")}


class Freshness:
    """How often the stores of each state met no document, learned as they go.

    Where that is usual, inserting first is the cheapest store (one insert,
    no filter to plan); elsewhere the conditional replace is, and an insert
    would only add a failing round trip. Either way the store is correct.
    """

    #: states tracked at most (custom states are open-ended).
    LIMIT = 64

    def __init__(self) -> None:
        self._odds: dict[str, float] = {}

    def expect_new(self, state: str) -> bool:
        return self._odds.get(state, 1.0) >= 0.5

    def learn(self, state: str, new: bool) -> None:
        odds = self._odds.get(state)
        if odds is None and len(self._odds) >= self.LIMIT:
            return
        odds = 1.0 if odds is None else odds
        # Racing threads may lose an update here; it is only a hint.
        self._odds[state] = odds + ((1.0 if new else 0.0) - odds) / 8


def stuck(result: TaskResult, where: str) -> ConfigurationError:
    return ConfigurationError(
        f"storing {result.task_id!r} kept meeting E11000 on {where}: a unique index "
        f"other than _id refuses the document; drop that index"
    )


#: what a store needs of the document it replaced, and of the one that refused it.
BEFORE_FIELDS = {"_id": 0, "state": 1, "expires_at": 1}
CURRENT_FIELDS = {"state": 1, "expires_at": 1}


class MongoBackend:
    """Results, groups and chords in MongoDB; waiting through a change stream."""

    def __init__(self, config: BackendConfig) -> None:
        settings = Settings.take_from(config)
        config.options.finish()
        self.url = config.url
        self.settings = settings
        self._serializer: Serializer = config.serializer
        self._expires = config.expires
        self._clock = settings.clock
        self.documents = Documents(config.serializer)
        self.freshness = Freshness()
        self.retry = MongoRetry(settings.server, settings.retry_total, config.url.password)
        self.client = build_client(settings)
        try:
            hello = self.retry(lambda: self.client.admin.command("hello"))
            database = self.client.get_database(settings.database, codec_options=CODEC_OPTIONS)
            self.database = database
            self.results = database[settings.taskmeta_collection]
            self.groups = database[settings.groupmeta_collection]
            self.chords = database[settings.chordmeta_collection]
            if settings.create_indexes:
                self._ensure_indexes()
        except BaseException:
            self.client.close()
            raise
        # Change streams need a replica set or a sharded cluster (mongos says "isdbgrid").
        streams = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
        if settings.change_streams and not streams:
            self.client.close()
            raise ConfigurationError(
                f"change_streams=true, but MongoDB at {settings.server} is a standalone server, "
                f"which has no change streams; run it as a replica set (even of one member) "
                f"or leave change_streams=auto to poll"
            )
        push = streams and settings.change_streams is not False
        self.capabilities = BASE_CAPABILITIES | ({Capability.PUSH} if push else frozenset())

    def __repr__(self) -> str:
        return f"<MongoBackend {self.url.redacted()} {self.settings.database}>"

    # -- setup ------------------------------------------------------------------

    def migrate(self) -> str:
        """Create the indexes now, even with ``create_indexes=false``."""
        self._ensure_indexes(now=True)
        names = (self.results.name, self.groups.name, self.chords.name)
        return f"indexes of {', '.join(names)} in {self.settings.database}"

    def _ensure_indexes(self, *, now: bool = False) -> None:
        """Create the indexes once per process and collection (createIndexes is
        idempotent); ``now`` creates them again."""
        ttl = IndexModel([("expires_at", pymongo.ASCENDING)], expireAfterSeconds=0)
        wanted = {
            self.results: [
                IndexModel([("state", pymongo.ASCENDING)]),
                IndexModel([("date_done", pymongo.ASCENDING)]),
                IndexModel([("group_id", pymongo.ASCENDING)]),
                ttl,
            ],
            self.groups: [ttl],
            self.chords: [ttl],
        }
        for collection, indexes in wanted.items():
            key = (self.settings.server, self.settings.database, collection.name)
            with _ensured_lock:
                if key in _ensured and not now:
                    continue
            try:
                self.retry(functools.partial(collection.create_indexes, indexes))
            except pymongo.errors.OperationFailure as exc:
                raise ConfigurationError(
                    f"cannot create the indexes of {self.settings.database}.{collection.name} "
                    f"on {self.settings.server} ({exc}); an index on the same field with other "
                    f"options exists (drop it), or the user lacks the createIndex right "
                    f"(create them once by hand and pass create_indexes=false)"
                ) from None
            with _ensured_lock:
                _ensured.add(key)

    # -- time -------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return moment(self._clock())

    def expires_at(self, now: dt.datetime) -> dt.datetime | None:
        if self._expires is None:
            return None
        return now + dt.timedelta(seconds=self._expires)

    # -- ResultBackend ------------------------------------------------------------

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        now = self.now()
        doc = self.documents.result(result, self.expires_at(now))
        return self._store_one(result, doc, now, overwrite)

    def _store_one(
        self,
        result: TaskResult,
        doc: Mapping[str, Any],
        now: dt.datetime,
        overwrite: bool,
        mine: bool = False,
    ) -> StoreOutcome:
        """``store`` of an encoded ``doc``; ``mine``: an earlier write of ``doc`` may
        have been applied (its reply was lost), as every try after the first."""
        if overwrite:
            before = self.retry(lambda: upsert(lambda: self._replace({"_id": result.task_id}, doc)))
            return StoreOutcome(True, result.state, live_state(before, now))
        tries = 0

        def attempt() -> StoreOutcome:
            nonlocal tries
            tries += 1
            return self._store(result, doc, now, mine or tries > 1)

        return self.retry(attempt)

    def _replace(
        self, filter_: Mapping[str, Any], doc: Mapping[str, Any], *, insert: bool = True
    ) -> Any:
        return self.results.find_one_and_replace(
            filter_,
            doc,
            projection=BEFORE_FIELDS,
            upsert=insert,
            return_document=ReturnDocument.BEFORE,
        )

    def _store(
        self, result: TaskResult, doc: Mapping[str, Any], now: dt.datetime, mine: bool = False
    ) -> StoreOutcome:
        state = str(result.state)
        if self.freshness.expect_new(state):
            try:
                self.results.insert_one(doc)
            except pymongo.errors.DuplicateKeyError:
                self.freshness.learn(state, False)
            else:
                self.freshness.learn(state, True)
                return StoreOutcome(True, result.state, None)
        for _ in range(UPSERT_TRIES):
            try:
                before = self._replace(unready(result.task_id), doc)
            except pymongo.errors.DuplicateKeyError:
                fields = None if mine else CURRENT_FIELDS
                current = self.results.find_one({"_id": result.task_id}, fields)
                if mine and ours(current, doc):
                    return StoreOutcome(True, result.state, None)
                try:
                    expired = judge(current, now)
                except Refused as refused:
                    return StoreOutcome(False, refused.state, refused.state)
                if expired is not None and self._replace(expired, doc, insert=False) is not None:
                    return StoreOutcome(True, result.state, None)
                continue
            self.freshness.learn(state, before is None)
            return outcome(before, result, now)
        raise stuck(result, self.results.full_name)

    def store_many(
        self, results: Sequence[TaskResult], *, overwrite: bool = False
    ) -> list[StoreOutcome]:
        """``store`` for each result in order: one ``$in`` read of the current states,
        then one unordered ``bulk_write`` of conditional upserts per batch."""
        outcomes: list[StoreOutcome] = []
        for start in range(0, len(results), BATCH):
            outcomes += self._store_batch(results[start : start + BATCH], overwrite)
        return outcomes

    def _store_batch(self, results: Sequence[TaskResult], overwrite: bool) -> list[StoreOutcome]:
        now = self.now()
        expires_at = self.expires_at(now)
        # Encoded first: a result that cannot be stored fails the call before any write.
        docs = [self.documents.result(r, expires_at) for r in results]
        ids = list(dict.fromkeys(r.task_id for r in results))
        found = self.find_many(ids, {"state": 1, "expires_at": 1})
        # What each id holds now: the filter of its document (None: no document)
        # and its live state.
        known: dict[str, tuple[dict[str, Any] | None, str | None]] = {
            task_id: (_holding(task_id, doc), live_state(doc, now))
            for task_id, doc in found.items()
        }
        outcomes: list[StoreOutcome | None] = [None] * len(results)
        # The n-th store of each id goes in the n-th round: an unordered bulk
        # write may apply its operations in any order.
        rounds: list[list[int]] = []
        seen: dict[str, int] = {}
        for index, result in enumerate(results):
            n = seen.get(result.task_id, 0)
            seen[result.task_id] = n + 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append(index)
        for members in rounds:
            ops: list[Any] = []
            planned: list[int] = []
            for index in members:
                result = results[index]
                filter_, state = known.get(result.task_id, (None, None))
                if state in READY_STATES and not overwrite:
                    outcomes[index] = StoreOutcome(False, state, state)
                    continue
                if filter_ is not None:
                    # Compare-and-set on what was read: a concurrent change makes
                    # the filter miss, the upsert then fails with E11000, and that
                    # store is done again on its own.
                    ops.append(ReplaceOne(filter_, docs[index], upsert=True))
                else:
                    ops.append(InsertOne(docs[index]))
                planned.append(index)
            if not ops:
                continue
            tries = 0

            def attempt(ops: list[Any] = ops) -> tuple[set[int], set[int]]:
                nonlocal tries
                tries += 1
                return self._bulk(ops)

            conflicts, upserted = self.retry(attempt)
            for position, index in enumerate(planned):
                result = results[index]
                if position in conflicts:
                    # After a lost reply the conflict may be this very write, applied.
                    done = self._store_one(result, docs[index], now, overwrite, tries > 1)
                else:
                    previous = known.get(result.task_id, (None, None))[1]
                    if position in upserted:
                        previous = None  # the document was deleted meanwhile
                    done = StoreOutcome(True, result.state, previous)
                outcomes[index] = done
                # A ready state here is live: the next round refuses without a filter.
                known[result.task_id] = ({"_id": result.task_id, "state": done.state}, done.state)
        return [o for o in outcomes if o is not None]

    def _bulk(self, ops: list[Any]) -> tuple[set[int], set[int]]:
        """Run ``ops`` unordered; the positions that met E11000, and those that upserted."""
        try:
            reply = self.results.bulk_write(ops, ordered=False)
        except pymongo.errors.BulkWriteError as exc:
            details = exc.details
            errors = details.get("writeErrors", [])
            others = [e for e in errors if e.get("code") != _DUPLICATE_KEY]
            if others:
                raise
            return (
                {e["index"] for e in errors},
                {u["index"] for u in details.get("upserted", [])},
            )
        return set(), set(reply.upserted_ids)

    def find_one(self, task_id: str) -> Any:
        """The document of ``task_id``, or None: the ``find`` command itself, which
        skips the cursor that ``Collection.find_one`` builds around one document."""
        reply = self.database.command(
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

    def get(self, task_id: str) -> TaskResult | None:
        doc = self.retry(lambda: self.find_one(task_id))
        if doc is None or not live(doc, self.now()):
            return None
        return self.documents.load_result(doc)

    def find_many(
        self, ids: Sequence[str], projection: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The documents of ``ids`` (distinct) that exist, by id: ``$in`` queries of
        ``read_batch`` ids each."""
        docs: dict[str, Any] = {}
        step = self.settings.read_batch
        for start in range(0, len(ids), step):
            chunk = ids[start : start + step]
            docs.update(self.retry(functools.partial(self._find_in, chunk, projection)))
        return docs

    def _find_in(self, ids: Sequence[str], projection: Mapping[str, Any] | None) -> dict[str, Any]:
        cursor = self.results.find({"_id": {"$in": list(ids)}}, projection, batch_size=len(ids))
        return {doc["_id"]: doc for doc in cursor}

    def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        ids = list(dict.fromkeys(task_ids))
        docs = self.find_many(ids)
        now = self.now()
        found: dict[str, TaskResult | None] = {}
        for task_id in ids:
            doc = docs.get(task_id)
            found[task_id] = (
                None if doc is None or not live(doc, now) else self.documents.load_result(doc)
            )
        return found

    def forget(self, task_id: str) -> None:
        self.retry(lambda: self.results.delete_one({"_id": task_id}))

    def close(self) -> None:
        # Later calls raise BackendUnavailableError (pymongo's would be its own error).
        self.retry.close()
        # close() ends the client's sessions on the server, which waits for a
        # server up to serverSelectionTimeoutMS: not past CLOSE_TIMEOUT.
        with pymongo.timeout(CLOSE_TIMEOUT):
            self.client.close()

    def plant_payload(self, task_id: str, payload: bytes, state: str = "SUCCESS") -> None:
        """Put raw bytes where a result would be (tests of corrupt payloads)."""
        doc: dict[str, Any] = {"state": state, "payload": payload}
        expires_at = self.expires_at(self.now())
        if expires_at is not None:
            doc["expires_at"] = expires_at
        self.results.replace_one({"_id": task_id}, doc, upsert=True)

    # -- groups ------------------------------------------------------------------------

    def save_group(self, group: Group) -> None:
        doc = self.documents.group(group, self.expires_at(self.now()))
        self.retry(
            lambda: upsert(
                lambda: self.groups.replace_one({"_id": group.group_id}, doc, upsert=True)
            )
        )

    def get_group(self, group_id: str) -> Group | None:
        doc = self.retry(lambda: self.groups.find_one({"_id": group_id}))
        if doc is None or not live(doc, self.now()):
            return None
        return self.documents.load_group(doc)

    def delete_group(self, group_id: str) -> None:
        self.retry(lambda: self.groups.delete_one({"_id": group_id}))

    # -- chords ------------------------------------------------------------------------

    def set_chord_size(self, group_id: str, size: int) -> None:
        if size < 0:
            raise ChordError(f"chord size must be >= 0, got {size}")
        now = self.now()
        expires_at = self.expires_at(now)
        fresh = {"_id": group_id, "size": size, "received": [], "count": 0, "parts": {}}
        fresh["expires_at"] = expires_at
        # A live chord keeps its parts; a missing or expired one starts afresh.
        exists = {"$ne": [{"$type": "$size"}, "missing"]}
        update = [
            {
                "$replaceWith": {
                    "$cond": [
                        {"$and": [exists, live_expression(now)]},
                        {
                            "$mergeObjects": [
                                "$$ROOT",
                                {"$literal": {"size": size, "expires_at": expires_at}},
                            ]
                        },
                        {"$literal": fresh},
                    ]
                }
            }
        ]
        self.retry(
            lambda: upsert(lambda: self.chords.update_one({"_id": group_id}, update, upsert=True))
        )

    def chord_part_return(self, group_id: str, index: int, result: TaskResult) -> ChordOutcome:
        part = self.documents.result(result)
        # The same token across retries lets a call whose reply was lost find
        # that it recorded the part itself (and maybe completed the chord).
        token = _token()
        now = self.now()
        after = None
        if index >= 0:
            after = self.retry(
                lambda: self.chords.find_one_and_update(
                    {
                        "_id": group_id,
                        "size": {"$gt": index},
                        "received": {"$ne": index},
                        "expires_at": live_filter(now),
                    },
                    {
                        # The filter already excludes a received index; $addToSet
                        # appends, so the order of "received" is the order of arrival.
                        "$addToSet": {"received": index},
                        "$inc": {"count": 1},
                        "$set": {
                            f"parts.{index}": {"t": token, "d": part},
                            "expires_at": self.expires_at(now),
                        },
                    },
                    projection={"_id": 0, "size": 1, "count": 1},
                    return_document=ReturnDocument.AFTER,
                )
            )
        if after is not None:
            size, received = int(after["size"]), int(after["count"])
            added = True
        else:
            size, received, added = self._why_not_recorded(group_id, index, token, now)
        # Each recorded part raises the count by one, atomically: exactly one
        # call sees it reach the size.
        complete = added and received == size
        results = self._chord_results(group_id, size) if complete else None
        return ChordOutcome(
            group_id=group_id,
            index=index,
            complete=complete,
            duplicate=not added,
            received=received,
            size=size,
            results=results,
        )

    def _why_not_recorded(
        self, group_id: str, index: int, token: str, now: dt.datetime
    ) -> tuple[int, int, bool]:
        """(size, parts received up to this call, recorded by this call) for a part the
        update did not record, or the ChordError that explains it."""
        doc = self.retry(
            lambda: self.chords.find_one(
                {"_id": group_id},
                {"size": 1, "received": 1, "expires_at": 1, f"parts.{index}.t": 1},
            )
        )
        if doc is None or not live(doc, now) or "size" not in doc:
            raise ChordError(
                f"chord {group_id!r} has no size set (or it expired); call "
                f"set_chord_size({group_id!r}, n) before its parts return"
            )
        size = int(doc["size"])
        if not 0 <= index < size:
            raise ChordError(f"chord {group_id!r} part index {index} is out of range 0..{size - 1}")
        received: list[int] = list(doc.get("received", []))
        recorded_by = doc.get("parts", {}).get(str(index), {}).get("t")
        if recorded_by == token:
            # This very call recorded it (a retry after a lost reply).
            return size, received.index(index) + 1, True
        return size, len(received), False

    def _chord_results(self, group_id: str, size: int) -> tuple[TaskResult, ...]:
        doc = self.retry(lambda: self.chords.find_one({"_id": group_id}, {"parts": 1}))
        parts = (doc or {}).get("parts", {})
        missing = [i for i in range(size) if str(i) not in parts]
        if missing:
            raise ChordError(
                f"chord {group_id!r} completed but parts {missing} are gone; the chord "
                f"document was changed or deleted meanwhile"
            )
        return tuple(self.documents.load_result(parts[str(i)]["d"]) for i in range(size))

    def get_chord(self, group_id: str) -> ChordState | None:
        doc = self.retry(
            lambda: self.chords.find_one(
                {"_id": group_id}, {"size": 1, "count": 1, "received": 1, "expires_at": 1}
            )
        )
        if doc is None or not live(doc, self.now()) or "size" not in doc:
            return None
        size = int(doc["size"])
        received = frozenset(int(i) for i in doc.get("received", []))
        return ChordState(group_id, size, received, size > 0 and len(received) >= size)

    def claim_chord_body(self, group_id: str, lease: float) -> ChordOutcome | None:
        now = self.now()
        doc = self.retry(
            lambda: self.chords.find_one(
                {"_id": group_id},
                {"size": 1, "count": 1, "expires_at": 1, "body_sent": 1, "body_claimed_at": 1},
            )
        )
        if doc is None or not live(doc, now) or "size" not in doc or doc.get("body_sent"):
            return None
        size = int(doc["size"])
        if not 0 < size <= int(doc.get("count", 0)):
            return None  # open
        clock = float(self._clock())
        claimed = doc.get("body_claimed_at")
        pending = ChordOutcome(group_id, -1, received=size, size=size)
        if isinstance(claimed, int | float) and clock - float(claimed) < lease:
            return pending
        # Compare-and-set on the claim just read: one caller moves it.
        before = claimed if isinstance(claimed, int | float) else {"$exists": False}
        moved = self.retry(
            lambda: self.chords.update_one(
                {"_id": group_id, "body_claimed_at": before, "body_sent": {"$ne": True}},
                {"$set": {"body_claimed_at": clock}},
            )
        )
        if moved.modified_count != 1 or not isinstance(claimed, int | float):
            return pending  # lost the race, or the first claim, which waits
        results = self._chord_results(group_id, size)
        return ChordOutcome(group_id, -1, complete=True, received=size, size=size, results=results)

    def mark_chord_body_sent(self, group_id: str) -> None:
        self.retry(
            lambda: self.chords.update_one(
                {"_id": group_id}, {"$set": {"body_sent": True}, "$unset": {"body_claimed_at": ""}}
            )
        )

    # -- cleanup, push, asyncio ---------------------------------------------------------

    def cleanup(self) -> int:
        expired = {"expires_at": {"$lte": self.now()}}
        removed = self.retry(lambda: self.results.delete_many(expired)).deleted_count
        self.retry(lambda: self.groups.delete_many(expired))
        self.retry(lambda: self.chords.delete_many(expired))
        return int(removed)

    def listener(self) -> ChangeStreamListener:
        self.retry.check_open()
        return ChangeStreamListener(
            self.results,
            self.documents.load_result,
            lambda: server_identity(self.client),
            open_timeout=min(self.settings.retry_total, 10.0),
        )

    def async_backend(self) -> AsyncMongoBackend:
        """The native asyncio twin (pymongo's AsyncMongoClient), configured like this backend."""
        from resultstore_mongodb.aio import AsyncMongoBackend

        return AsyncMongoBackend(self)
