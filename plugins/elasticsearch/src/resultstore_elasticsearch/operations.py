"""Every backend operation as a plan of requests, shared by both products and both APIs.

A plan is a generator that yields :class:`~resultstore_elasticsearch.transport.Call`
values and gets each :class:`~resultstore_elasticsearch.transport.Reply` back;
``backend.py`` and ``aio.py`` drive them. No plan needs a script (the test
Elasticsearch has no Painless): a ready state stays final through
``op_type=create`` for a first write and ``if_seq_no`` / ``if_primary_term``
for the next ones, tried again on conflict. Reads by id (GET, mget) are
realtime, so nothing here refreshes except :meth:`Operations.cleanup`, which
searches.

Chords: one chord document (``_id`` = group id: size, received indices in
order of arrival, count, a generation) and one document per part
(``_id`` = ``group#generation#index``) written with ``op_type=create``, so a
part is recorded once; the chord document is then updated conditionally,
and exactly one call sees its count reach the size.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import os
import time
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from resultstore import (
    ChordError,
    ChordOutcome,
    ChordState,
    Group,
    ResultStoreError,
    StoreOutcome,
    TaskResult,
)
from resultstore.concepts.states import READY_STATES, state_from_str

from resultstore_elasticsearch.documents import Documents, iso, parse_moment, template
from resultstore_elasticsearch.settings import Settings
from resultstore_elasticsearch.transport import Call, Plan, Reply

__all__ = ["CONFLICT_TRIES", "Freshness", "Operations", "doc_id"]

#: how often a conditional write that met a conflict is tried again (each after a read).
CONFLICT_TRIES = 50
#: how long a chord part keeps trying to mark its chord against concurrent parts.
CHORD_MARK_SECONDS = 60.0
#: Elasticsearch and OpenSearch refuse ids over 512 bytes.
_ID_LIMIT = 512
_NOT_FOUND = frozenset({404})
_CONFLICT = frozenset({409})
_BAD_REQUEST = frozenset({400})
#: 400: the server could not index a native document (nesting, a field name it refuses).
_WRITE_OK = frozenset({400, 409})

_TOKEN_PREFIX = uuid.uuid4().hex[:12]
_tokens = itertools.count()


def _token() -> str:
    """Unique per call across processes and hosts."""
    return f"{_TOKEN_PREFIX}{os.getpid():x}-{next(_tokens):x}"


def doc_id(ident: str) -> str:
    """The ``_id`` of a task or group id (a digest for ids over the 512-byte limit)."""
    if len(ident) * 4 <= _ID_LIMIT or len(ident.encode()) <= _ID_LIMIT:
        return ident
    return "sha256~" + hashlib.sha256(ident.encode()).hexdigest()


def _quoted(ident: str) -> str:
    return urllib.parse.quote(doc_id(ident), safe="")


class Freshness:
    """How often the stores of each state met no document, learned as they go.

    Where that is usual (STARTED, the first state of a task) a store creates
    first: one request. Elsewhere (SUCCESS after STARTED) it reads first and
    writes conditionally: two requests, where creating first would cost three.
    """

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
        self._odds[state] = odds + ((1.0 if new else 0.0) - odds) / 8


def _found(reply: Reply) -> Mapping[str, Any] | None:
    """The document of a GET reply, or None."""
    body = reply.body
    if reply.status == 404 or not isinstance(body, Mapping) or not body.get("found"):
        return None
    return body


def _version(doc: Mapping[str, Any]) -> dict[str, str]:
    return {"if_seq_no": str(doc["_seq_no"]), "if_primary_term": str(doc["_primary_term"])}


def _refused_document(reply: Reply) -> bool:
    """A 400 that says the document itself could not be indexed."""
    if reply.status != 400:
        return False
    error = reply.body.get("error") if isinstance(reply.body, Mapping) else None
    kind = error.get("type", "") if isinstance(error, Mapping) else ""
    return "parsing" in kind or "mapper" in kind or "illegal_argument" in kind


def _bad_request(reply: Reply, what: str) -> ResultStoreError:
    return ResultStoreError(f"the server refused {what}: {reply.body}")


def _rounds(results: Sequence[TaskResult]) -> list[list[int]]:
    """Positions of ``results`` by round: the n-th store of an id goes in round n
    (a _bulk may apply its items in any order)."""
    rounds: list[list[int]] = []
    seen: dict[str, int] = {}
    for index, result in enumerate(results):
        n = seen.get(result.task_id, 0)
        seen[result.task_id] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(index)
    return rounds


class Operations:
    """The plans of one backend's configuration (indices, documents, clock)."""

    def __init__(self, settings: Settings, documents: Documents, expires: float | None) -> None:
        self.settings = settings
        self.documents = documents
        self.expires = expires
        self.freshness = Freshness()
        self._results = urllib.parse.quote(settings.results_index, safe="")
        self._groups = urllib.parse.quote(settings.groups_index, safe="")
        self._chords = urllib.parse.quote(settings.chords_index, safe="")

    # -- time ------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.settings.clock(), dt.UTC)

    def expires_at(self, now: dt.datetime) -> str | None:
        if self.expires is None:
            return None
        return iso(now + dt.timedelta(seconds=self.expires))

    @staticmethod
    def live(source: Mapping[str, Any], now: dt.datetime) -> bool:
        raw = source.get("expires_at")
        if raw is None:
            return True
        moment = parse_moment(raw)
        return moment is None or moment > now

    def live_state(self, source: Mapping[str, Any] | None, now: dt.datetime) -> str | None:
        if source is None or not self.live(source, now):
            return None
        state = source.get("state")
        return state_from_str(state) if isinstance(state, str) and state else None

    # -- setup -------------------------------------------------------------------------

    def install_template(self) -> Plan[None]:
        s = self.settings
        name = urllib.parse.quote(f"{s.results_index}-template", safe="")
        body = orjson.dumps(template(s.indices, s.shards, s.replicas))
        yield Call("PUT", f"/_index_template/{name}", body=body)

    def migrate(self) -> Plan[str]:
        """The template, then each index (one that exists already is fine)."""
        yield from self.install_template()
        for index in self.settings.indices:
            reply = yield Call("PUT", f"/{index}", ok=_BAD_REQUEST)
            if reply.status == 400 and "already_exists" not in str(reply.body):
                raise _bad_request(reply, f"creating index {index!r}")
        return f"template and indices {', '.join(self.settings.indices)}"

    def drop(self) -> Plan[None]:
        """Delete the three indices and the template (tests, and ``resultstore`` tooling)."""
        s = self.settings
        names = ",".join(urllib.parse.quote(i, safe="") for i in s.indices)
        yield Call("DELETE", f"/{names}", params={"ignore_unavailable": "true"}, ok=_NOT_FOUND)
        name = urllib.parse.quote(f"{s.results_index}-template", safe="")
        yield Call("DELETE", f"/_index_template/{name}", ok=_NOT_FOUND)

    # -- results -------------------------------------------------------------------------

    def _write(
        self,
        path: str,
        body: bytes,
        result: TaskResult,
        expires_at: str | None,
        params: Mapping[str, str] | None = None,
    ) -> Plan[tuple[Reply, bytes]]:
        """PUT a result document (409 is an answer); a native document the server
        refuses (nesting, field names) is sent again as a payload document."""
        reply = yield Call("PUT", path, params=params, body=body, ok=_WRITE_OK)
        if reply.status == 400:
            if not _refused_document(reply):
                raise _bad_request(reply, f"result {result.task_id!r}")
            body = self.documents.payload_result(result, expires_at)
            reply = yield Call("PUT", path, params=params, body=body, ok=_CONFLICT)
        return reply, body

    def store(self, result: TaskResult, overwrite: bool = False) -> Plan[StoreOutcome]:
        now = self.now()
        expires_at = self.expires_at(now)
        body = self.documents.result(result, expires_at)
        quoted = _quoted(result.task_id)
        path = f"/{self._results}/_doc/{quoted}"
        if overwrite:
            before = _found((yield Call("GET", path, ok=_NOT_FOUND)))
            previous = self.live_state(before["_source"] if before else None, now)
            yield from self._write(path, body, result, expires_at)
            return StoreOutcome(True, result.state, previous)
        state = str(result.state)
        create = self.freshness.expect_new(state)
        mine = False  # the last write's answer was lost and its retry met a conflict
        for _ in range(CONFLICT_TRIES):
            if create:
                create_path = f"/{self._results}/_create/{quoted}"
                reply, body = yield from self._write(create_path, body, result, expires_at)
                self.freshness.learn(state, reply.status < 300)
                if reply.status < 300:
                    return StoreOutcome(True, result.state, None)
                mine = reply.retried  # a try whose answer was lost may have created it
            current = _found((yield Call("GET", path, ok=_NOT_FOUND)))
            if current is None:
                create = True
                continue
            source = current["_source"]
            if mine and source == orjson.loads(body):
                return StoreOutcome(True, result.state, None)
            previous = self.live_state(source, now)
            if previous in READY_STATES:
                return StoreOutcome(False, previous, previous)
            reply, body = yield from self._write(
                path, body, result, expires_at, params=_version(current)
            )
            if reply.status < 300:
                if not create:
                    self.freshness.learn(state, False)
                return StoreOutcome(True, result.state, previous)
            mine = reply.retried
            create = False
        raise ResultStoreError(
            f"storing {result.task_id!r} met a conflicting write {CONFLICT_TRIES} times in a "
            f"row; another program keeps rewriting that document"
        )

    def get(self, task_id: str) -> Plan[TaskResult | None]:
        reply = yield Call("GET", f"/{self._results}/_doc/{_quoted(task_id)}", ok=_NOT_FOUND)
        found = _found(reply)
        if found is None:
            return None
        source = found["_source"]
        if not self.live(source, self.now()):
            return None
        return self.documents.load_result(task_id, source)

    def _mget(self, index: str, ids: Sequence[str]) -> Plan[dict[str, Mapping[str, Any]]]:
        """The found documents (whole mget entries) of ``ids`` by id, one mget per chunk."""
        found: dict[str, Mapping[str, Any]] = {}
        step = self.settings.chunk
        for start in range(0, len(ids), step):
            chunk = ids[start : start + step]
            body = orjson.dumps({"ids": [doc_id(i) for i in chunk]})
            reply = yield Call("POST", f"/{index}/_mget", body=body, ok=_NOT_FOUND)
            docs = reply.body.get("docs", []) if isinstance(reply.body, Mapping) else []
            for ident, doc in zip(chunk, docs, strict=False):
                if isinstance(doc, Mapping) and doc.get("found"):
                    found[ident] = doc
        return found

    def get_many(self, task_ids: Sequence[str]) -> Plan[dict[str, TaskResult | None]]:
        ids = list(dict.fromkeys(task_ids))
        docs = yield from self._mget(self._results, ids)
        now = self.now()
        results: dict[str, TaskResult | None] = {}
        for task_id in ids:
            doc = docs.get(task_id)
            source = doc["_source"] if doc is not None else None
            results[task_id] = (
                self.documents.load_result(task_id, source)
                if source is not None and self.live(source, now)
                else None
            )
        return results

    def store_many(
        self, results: Sequence[TaskResult], overwrite: bool = False
    ) -> Plan[list[StoreOutcome]]:
        outcomes: list[StoreOutcome] = []
        step = self.settings.chunk
        for start in range(0, len(results), step):
            outcomes += yield from self._store_batch(results[start : start + step], overwrite)
        return outcomes

    def _store_batch(
        self, results: Sequence[TaskResult], overwrite: bool
    ) -> Plan[list[StoreOutcome]]:
        """One mget of the current documents, then one _bulk per round (the n-th store
        of an id goes in round n); items that met a conflict are stored one by one."""
        now = self.now()
        expires_at = self.expires_at(now)
        # Encoded first: a result that cannot be stored fails the call before any write.
        bodies = [self.documents.result(r, expires_at) for r in results]
        ids = list(dict.fromkeys(r.task_id for r in results))
        found = yield from self._mget(self._results, ids)
        # What each id holds now: (seq_no, primary_term) or None, and its live state.
        known: dict[str, tuple[tuple[int, int] | None, str | None]] = {
            task_id: (
                (int(doc["_seq_no"]), int(doc["_primary_term"])),
                self.live_state(doc["_source"], now),
            )
            for task_id, doc in found.items()
        }
        outcomes: list[StoreOutcome | None] = [None] * len(results)
        for members in _rounds(results):
            lines: list[bytes] = []
            planned: list[int] = []
            for index in members:
                result = results[index]
                version, state = known.get(result.task_id, (None, None))
                if state in READY_STATES and not overwrite:
                    outcomes[index] = StoreOutcome(False, state, state)
                    continue
                target: dict[str, Any] = {"_id": doc_id(result.task_id)}
                if overwrite:
                    action = "index"
                elif version is None:
                    action = "create"
                else:
                    action = "index"
                    target["if_seq_no"], target["if_primary_term"] = version
                lines += (orjson.dumps({action: target}), bodies[index])
                planned.append(index)
            if not lines:
                continue
            reply = yield Call(
                "POST", f"/{self._results}/_bulk", body=b"\n".join(lines) + b"\n", ndjson=True
            )
            items = reply.body.get("items", []) if isinstance(reply.body, Mapping) else []
            if len(items) != len(planned):
                raise ResultStoreError(f"_bulk answered {len(items)} items for {len(planned)}")
            for index, item in zip(planned, items, strict=True):
                outcomes[index] = yield from self._settle(results[index], item, known, overwrite)
        return [o for o in outcomes if o is not None]

    def _settle(
        self,
        result: TaskResult,
        item: Mapping[str, Any],
        known: dict[str, tuple[tuple[int, int] | None, str | None]],
        overwrite: bool,
    ) -> Plan[StoreOutcome]:
        """The outcome of one _bulk item; ``known`` learns the id's new version."""
        answer = next(iter(item.values()))
        if int(answer.get("status", 500)) < 300:
            previous = known.get(result.task_id, (None, None))[1]
            known[result.task_id] = (
                (int(answer["_seq_no"]), int(answer["_primary_term"])),
                str(result.state),
            )
            return StoreOutcome(True, result.state, previous)
        # A conflict (another writer), a refused native document, or a failure of
        # this item alone: the single store sorts it out, and the id is read again.
        done = yield from self.store(result, overwrite)
        # Version and state from the same read: another writer may have stored a
        # ready state since, and a later round must not overwrite it.
        fresh = yield from self._mget(self._results, [result.task_id])
        doc = fresh.get(result.task_id)
        known[result.task_id] = (
            (
                (int(doc["_seq_no"]), int(doc["_primary_term"])),
                self.live_state(doc["_source"], self.now()),
            )
            if doc
            else (None, None)
        )
        return done

    def plant_payload(self, task_id: str, payload: bytes, state: str) -> Plan[None]:
        """Put raw bytes where a result would be (tests of corrupt payloads)."""
        doc: dict[str, Any] = {
            "task_id": task_id,
            "state": state,
            "payload": base64.b64encode(payload).decode("ascii"),
        }
        expires_at = self.expires_at(self.now())
        if expires_at is not None:
            doc["expires_at"] = expires_at
        yield Call("PUT", f"/{self._results}/_doc/{_quoted(task_id)}", body=orjson.dumps(doc))

    def forget(self, task_id: str) -> Plan[None]:
        yield Call("DELETE", f"/{self._results}/_doc/{_quoted(task_id)}", ok=_NOT_FOUND)

    # -- groups ------------------------------------------------------------------------

    def save_group(self, group: Group) -> Plan[None]:
        expires_at = self.expires_at(self.now())
        path = f"/{self._groups}/_doc/{_quoted(group.group_id)}"
        reply = yield Call("PUT", path, body=self.documents.group(group, expires_at), ok=_WRITE_OK)
        if reply.status == 400:
            if not _refused_document(reply):
                raise _bad_request(reply, f"group {group.group_id!r}")
            yield Call("PUT", path, body=self.documents.payload_group(group, expires_at))

    def get_group(self, group_id: str) -> Plan[Group | None]:
        reply = yield Call("GET", f"/{self._groups}/_doc/{_quoted(group_id)}", ok=_NOT_FOUND)
        found = _found(reply)
        if found is None or not self.live(found["_source"], self.now()):
            return None
        return self.documents.load_group(group_id, found["_source"])

    def delete_group(self, group_id: str) -> Plan[None]:
        yield Call("DELETE", f"/{self._groups}/_doc/{_quoted(group_id)}", ok=_NOT_FOUND)

    # -- chords ------------------------------------------------------------------------

    def _chord_path(self, group_id: str) -> str:
        return f"/{self._chords}/_doc/{_quoted(group_id)}"

    def _part_id(self, group_id: str, generation: str, index: int) -> str:
        return doc_id(f"{group_id}#{generation}#{index}")

    def set_chord_size(self, group_id: str, size: int) -> Plan[None]:
        if size < 0:
            raise ChordError(f"chord size must be >= 0, got {size}")
        path = self._chord_path(group_id)
        for _ in range(CONFLICT_TRIES):
            now = self.now()
            expires_at = self.expires_at(now)
            current = _found((yield Call("GET", path, ok=_NOT_FOUND)))
            source = current["_source"] if current is not None else None
            if source is not None and self.live(source, now) and "size" in source:
                # A live chord keeps its parts.
                doc = {**source, "size": size, "expires_at": expires_at}
            else:
                doc = {
                    "group_id": group_id,
                    "size": size,
                    "count": 0,
                    "received": [],
                    "generation": uuid.uuid4().hex,
                    "expires_at": expires_at,
                }
            if current is None:
                reply = yield Call(
                    "PUT",
                    f"/{self._chords}/_create/{_quoted(group_id)}",
                    body=orjson.dumps(doc),
                    ok=_CONFLICT,
                )
            else:
                reply = yield Call(
                    "PUT", path, params=_version(current), body=orjson.dumps(doc), ok=_CONFLICT
                )
            if reply.status < 300:
                return
        raise ChordError(f"chord {group_id!r}: its size kept meeting conflicting writes")

    def _live_chord(
        self, group_id: str, now: dt.datetime
    ) -> Plan[tuple[Mapping[str, Any], Mapping[str, Any]]]:
        """(the GET answer, its source) of a live chord with a size, or ChordError."""
        current = _found((yield Call("GET", self._chord_path(group_id), ok=_NOT_FOUND)))
        source = current["_source"] if current is not None else None
        if current is None or source is None or not self.live(source, now) or "size" not in source:
            raise ChordError(
                f"chord {group_id!r} has no size set (or it expired); call "
                f"set_chord_size({group_id!r}, n) before its parts return"
            )
        return current, source

    def chord_part_return(
        self, group_id: str, index: int, result: TaskResult
    ) -> Plan[ChordOutcome]:
        now = self.now()
        expires_at = self.expires_at(now)
        token = _token()
        current, source = yield from self._live_chord(group_id, now)
        size = int(source["size"])
        if not 0 <= index < size:
            raise ChordError(f"chord {group_id!r} part index {index} is out of range 0..{size - 1}")
        generation = str(source["generation"])
        part_id = urllib.parse.quote(self._part_id(group_id, generation, index), safe="")
        part: dict[str, Any] = {
            "group_id": group_id,
            "generation": generation,
            "index": index,
            "token": token,
            "part": orjson.Fragment(self.documents.result(result, None)),
        }
        if expires_at is not None:
            part["expires_at"] = expires_at
        reply = yield Call(
            "PUT", f"/{self._chords}/_create/{part_id}", body=orjson.dumps(part), ok=_CONFLICT
        )
        if reply.status == 409:
            existing = _found((yield Call("GET", f"/{self._chords}/_doc/{part_id}", ok=_NOT_FOUND)))
            if existing is None or existing["_source"].get("token") != token:
                return ChordOutcome(
                    group_id=group_id,
                    index=index,
                    duplicate=True,
                    received=len(source.get("received", [])),
                    size=size,
                )
        # Mark the part on the chord document; exactly one call brings count to size.
        give_up = time.monotonic() + max(CHORD_MARK_SECONDS, self.settings.retry_total)
        while True:
            received = list(source.get("received", []))
            if index in received:
                # This call marked it already (a retry after a lost answer).
                count = received.index(index) + 1
                break
            doc = {
                **source,
                "received": [*received, index],
                "count": len(received) + 1,
                "expires_at": expires_at,
            }
            reply = yield Call(
                "PUT",
                self._chord_path(group_id),
                params=_version(current),
                body=orjson.dumps(doc),
                ok=_CONFLICT,
            )
            if reply.status < 300:
                count = len(received) + 1
                break
            if time.monotonic() > give_up:
                raise ChordError(
                    f"chord {group_id!r}: part {index} could not be marked on the chord "
                    f"document for {CHORD_MARK_SECONDS:g} s of conflicting writes"
                )
            current, source = yield from self._live_chord(group_id, now)
            if str(source.get("generation")) != generation:
                raise ChordError(f"chord {group_id!r} was reset while part {index} returned")
            size = int(source["size"])
        complete = count == size
        results = (yield from self._chord_results(group_id, generation, size)) if complete else None
        return ChordOutcome(
            group_id=group_id,
            index=index,
            complete=complete,
            duplicate=False,
            received=count,
            size=size,
            results=results,
        )

    def _chord_results(
        self, group_id: str, generation: str, size: int
    ) -> Plan[tuple[TaskResult, ...]]:
        keys = [self._part_id(group_id, generation, i) for i in range(size)]
        docs = yield from self._mget(self._chords, keys)
        missing = [i for i, key in enumerate(keys) if key not in docs]
        if missing:
            raise ChordError(
                f"chord {group_id!r} completed but parts {missing} are gone; the chord's "
                f"documents were deleted meanwhile"
            )
        results = []
        for key in keys:
            part = docs[key]["_source"]["part"]
            results.append(self.documents.load_result(str(part.get("task_id")), part))
        return tuple(results)

    def get_chord(self, group_id: str) -> Plan[ChordState | None]:
        current = _found((yield Call("GET", self._chord_path(group_id), ok=_NOT_FOUND)))
        if current is None:
            return None
        source = current["_source"]
        if not self.live(source, self.now()) or "size" not in source:
            return None
        size = int(source["size"])
        received = frozenset(int(i) for i in source.get("received", []))
        return ChordState(group_id, size, received, size > 0 and len(received) >= size)

    # -- cleanup -------------------------------------------------------------------------

    def cleanup(self) -> Plan[int]:
        """Delete what expired, in batches: refresh, search, _bulk delete (each delete
        conditional on the version found, so a document stored meanwhile stays)."""
        now = iso(self.now())
        removed = 0
        for index in (self._results, self._groups, self._chords):
            deleted = yield from self._cleanup_index(index, now)
            if index == self._results:
                removed = deleted
        return removed

    def _cleanup_index(self, index: str, now: str) -> Plan[int]:
        step = self.settings.chunk
        query = {
            "query": {"range": {"expires_at": {"lte": now}}},
            "size": step,
            "_source": False,
            "seq_no_primary_term": True,
            "sort": ["_doc"],
        }
        removed = 0
        while True:
            # Searches see what the last refresh made visible: refresh first.
            yield Call("POST", f"/{index}/_refresh", ok=_NOT_FOUND)
            reply = yield Call("POST", f"/{index}/_search", body=orjson.dumps(query), ok=_NOT_FOUND)
            if reply.status == 404:
                return removed
            hits = reply.body.get("hits", {}).get("hits", [])
            if not hits:
                return removed
            lines = [
                orjson.dumps(
                    {
                        "delete": {
                            "_id": hit["_id"],
                            "if_seq_no": hit["_seq_no"],
                            "if_primary_term": hit["_primary_term"],
                        }
                    }
                )
                for hit in hits
            ]
            bulk = yield Call(
                "POST", f"/{index}/_bulk", body=b"\n".join(lines) + b"\n", ndjson=True
            )
            gone = sum(
                1
                for item in bulk.body.get("items", [])
                if item.get("delete", {}).get("result") == "deleted"
            )
            removed += gone
            if len(hits) < step or gone == 0:
                return removed
