"""The Redis backend: every operation one round trip, atomic where it matters.

Keys (under ``key_prefix``, default ``resultstore:``)::

    task:<id>                 "<state>\\0<payload>", with the result TTL
    chan:<id>                 pub/sub channel announcing a store of <id>
    group:{<gid>}             the group payload
    chord:{<gid>}:size        the expected number of header parts
    chord:{<gid>}:parts       hash: part index -> part payload
    chord:{<gid>}:done        token of the call that completed the chord; "sent" once
                              the body was sent (SupportsChordBody)
    chord:{<gid>}:done:body   when the sending of an unsent body was last claimed (ms)

The ``{<gid>}`` hash tag keeps a group's keys on one Cluster node, so the
chord script runs there.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import redis
import redis.exceptions
from resultstore import (
    BackendConfig,
    ChordError,
    ChordOutcome,
    ChordState,
    Group,
    Serializer,
    StoreOutcome,
    TaskResult,
)
from resultstore.concepts.states import state_from_str

from resultstore_redis import scripts
from resultstore_redis.client import ClientSettings, build_client, build_retry
from resultstore_redis.direct import DirectConnections
from resultstore_redis.listener import RedisListener
from resultstore_redis.plugin import CAPABILITIES

if TYPE_CHECKING:
    from resultstore_redis.aio import AsyncRedisBackend

__all__ = ["RedisBackend", "again"]

_SEP = b"\0"
_CHUNK = 1000


_TOKEN_PREFIX = uuid.uuid4().hex[:16]
_tokens = itertools.count()


def _token() -> str:
    """Unique per call across processes and hosts, cheaper than a uuid4 each time."""
    return f"{_TOKEN_PREFIX}{os.getpid():x}-{next(_tokens):x}"


def again(args: list[Any], tries: int) -> list[Any]:
    """The store script's arguments for try number ``tries`` (1 = the first): from
    the second on, a ready value equal to this one is the call's own, stored by a
    try whose reply was lost."""
    return [*args, "1" if tries > 1 else "0"]


def _payload(raw: bytes) -> bytes:
    """The payload of a stored value ("<state>\\0<payload>"; older values are bare)."""
    return raw[raw.find(_SEP) + 1 :]


def _text(value: Any) -> str | None:
    if value is None or value is False:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBackend:
    """Results, groups and chords in Redis; waiting through pub/sub."""

    capabilities = CAPABILITIES

    def __init__(self, config: BackendConfig) -> None:
        settings = ClientSettings.take_from(config.options)
        config.options.finish()
        self.url = config.url
        self.settings = settings
        self._serializer: Serializer = config.serializer
        self._prefix = settings.key_prefix
        self._ttl_ms = "0" if config.expires is None else str(max(1, int(config.expires * 1000)))
        self.client, self.cluster = build_client(config.url, settings)
        self.retry = build_retry(config.url, settings)
        self._store_script = self.client.register_script(scripts.STORE)
        self._chord_script = self.client.register_script(scripts.CHORD_PART)
        self._claim_script = self.client.register_script(scripts.CHORD_BODY_CLAIM)
        self._sent_script = self.client.register_script(scripts.CHORD_BODY_SENT)
        # Plain pools (TCP, TLS, unix socket) take the direct path for the hot
        # commands; sentinel and cluster keep redis-py's routing and failover.
        pool = None if self.cluster else self.client.connection_pool
        self.direct = DirectConnections(pool) if type(pool) is redis.ConnectionPool else None

    # -- keys --------------------------------------------------------------------

    def task_key(self, task_id: str) -> str:
        return f"{self._prefix}task:{task_id}"

    def channel(self, task_id: str) -> str:
        return f"{self._prefix}chan:{task_id}"

    def _group_key(self, group_id: str) -> str:
        return f"{self._prefix}group:{{{group_id}}}"

    def _chord_keys(self, group_id: str) -> list[str]:
        base = f"{self._prefix}chord:{{{group_id}}}"
        return [f"{base}:size", f"{base}:parts", f"{base}:done"]

    # -- values -------------------------------------------------------------------

    def _value(self, result: TaskResult) -> bytes:
        return str(result.state).encode() + _SEP + self._serializer.dumps(result)

    def decode(self, raw: bytes) -> TaskResult:
        return self._serializer.loads(_payload(raw), TaskResult)

    def outcome(self, reply: Sequence[Any], result: TaskResult) -> StoreOutcome:
        stored, previous = bool(reply[0]), _text(reply[1])
        prev_state = state_from_str(previous) if previous else None
        if stored:
            return StoreOutcome(stored=True, state=result.state, previous_state=prev_state)
        assert prev_state is not None  # the script only refuses over a stored ready state
        return StoreOutcome(stored=False, state=prev_state, previous_state=prev_state)

    def store_args(self, result: TaskResult, overwrite: bool) -> tuple[list[str], list[Any]]:
        keys = [self.task_key(result.task_id)]
        args = [
            self._value(result),
            str(result.state),
            self._ttl_ms,
            "1" if overwrite else "0",
            self.channel(result.task_id),
        ]
        return keys, args

    # -- ResultBackend ----------------------------------------------------------------

    def _script(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        direct = self.direct
        if direct is not None:
            return self.retry(lambda: direct.evalsha(script.sha, script.script, keys, args))
        return self.retry(lambda: script(keys=keys, args=args))

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        keys, args = self.store_args(result, overwrite)
        script, direct = self._store_script, self.direct
        tries = itertools.count(1)

        def once() -> Any:
            argv = again(args, next(tries))
            if direct is not None:
                return direct.evalsha(script.sha, script.script, keys, argv)
            return script(keys=keys, args=argv)

        return self.outcome(self.retry(once), result)

    def store_many(
        self, results: Sequence[TaskResult], *, overwrite: bool = False
    ) -> list[StoreOutcome]:
        calls = [self.store_args(result, overwrite) for result in results]
        tries = itertools.count(1)

        def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            n = next(tries)
            for keys, args in calls:
                self._store_script(keys=keys, args=again(args, n), client=pipe)
            return list(pipe.execute())

        if self.direct is not None:
            replies = self.retry(self._direct_batch(calls, tries))
        else:
            replies = self.retry(self._cluster_batch(calls, tries) if self.cluster else run)
        return [self.outcome(reply, result) for reply, result in zip(replies, results, strict=True)]

    def _direct_batch(self, calls: list[tuple[list[str], list[Any]]], tries: Iterator[int]) -> Any:
        direct, script = self.direct, self._store_script
        assert direct is not None

        def run() -> list[Any]:
            sha = script.sha
            n = next(tries)
            calls_n = [(keys, again(args, n)) for keys, args in calls]
            commands = [("EVALSHA", sha, len(keys), *keys, *args) for keys, args in calls_n]
            replies = direct.pipeline(commands)
            for index, reply in enumerate(replies):
                if isinstance(reply, redis.exceptions.NoScriptError):
                    keys, args = calls_n[index]
                    replies[index] = direct.evalsha(sha, script.script, keys, args)
                elif isinstance(reply, redis.exceptions.ResponseError):
                    raise reply
            return replies

        return run

    def _cluster_batch(self, calls: list[tuple[list[str], list[Any]]], tries: Iterator[int]) -> Any:
        """Cluster pipelines cannot run scripts, so pipeline per node instead;
        a call that meets a moved slot is done again through the cluster client."""

        def run() -> list[Any]:
            n = next(tries)
            calls_n = [(keys, again(args, n)) for keys, args in calls]
            replies: list[Any] = [None] * len(calls)
            by_node: dict[str, list[int]] = {}
            nodes: dict[str, Any] = {}
            for index, (keys, _) in enumerate(calls):
                node = self.client.get_node_from_key(keys[0])
                by_node.setdefault(node.name, []).append(index)
                nodes[node.name] = node
            for name, indices in by_node.items():
                pipe = nodes[name].redis_connection.pipeline(transaction=False)
                for index in indices:
                    keys, args = calls_n[index]
                    self._store_script(keys=keys, args=args, client=pipe)
                answers = pipe.execute(raise_on_error=False)
                for index, answer in zip(indices, answers, strict=True):
                    replies[index] = answer
                    if isinstance(answer, redis.exceptions.ResponseError):
                        keys, args = calls_n[index]
                        replies[index] = self._store_script(keys=keys, args=args)
            return replies

        return run

    def get(self, task_id: str) -> TaskResult | None:
        key = self.task_key(task_id)
        direct = self.direct
        if direct is not None:
            raw = self.retry(lambda: direct.call("GET", key))
        else:
            raw = self.retry(lambda: self.client.get(key))
        return None if raw is None else self.decode(raw)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        return self._serializer.loads_many(self.get_payloads(task_ids))

    def get_payloads(self, task_ids: Sequence[str]) -> dict[str, bytes | None]:
        ids = dict.fromkeys(task_ids)
        keys = [self.task_key(t) for t in ids]

        direct = self.direct

        def run() -> list[Any]:
            if direct is not None:
                chunks = [("MGET", *keys[i : i + _CHUNK]) for i in range(0, len(keys), _CHUNK)]
                replies = direct.pipeline(chunks)
                for reply in replies:
                    if isinstance(reply, Exception):
                        raise reply
                return [value for chunk in replies for value in chunk]
            if self.cluster:
                return list(self.client.mget_nonatomic(keys))
            if len(keys) <= _CHUNK:
                return list(self.client.mget(keys))
            pipe = self.client.pipeline(transaction=False)
            for start in range(0, len(keys), _CHUNK):
                pipe.mget(keys[start : start + _CHUNK])
            return [value for chunk in pipe.execute() for value in chunk]

        values = self.retry(run) if keys else []
        return {
            task_id: None if raw is None else _payload(raw)
            for task_id, raw in zip(ids, values, strict=True)
        }

    def forget(self, task_id: str) -> None:
        self.retry(lambda: self.client.delete(self.task_key(task_id)))

    def close(self) -> None:
        # Later calls raise BackendUnavailableError (redis-py would reconnect).
        self.retry.close()
        if self.direct is not None:
            self.direct.close()
        self.client.close()
        if not self.cluster:
            # The pool was made by us, so the client would not close it itself.
            self.client.connection_pool.disconnect()

    def plant_payload(self, task_id: str, payload: bytes, state: str = "SUCCESS") -> None:
        """Put raw bytes where a result would be (tests of corrupt payloads)."""
        self.client.set(self.task_key(task_id), state.encode() + _SEP + payload)

    # -- groups --------------------------------------------------------------------------

    def _set(self, key: str, value: bytes) -> None:
        px = None if self._ttl_ms == "0" else int(self._ttl_ms)
        self.retry(lambda: self.client.set(key, value, px=px))

    def save_group(self, group: Group) -> None:
        self._set(self._group_key(group.group_id), self._serializer.dumps(group))

    def get_group(self, group_id: str) -> Group | None:
        raw = self.retry(lambda: self.client.get(self._group_key(group_id)))
        return None if raw is None else self._serializer.loads(raw, Group)

    def delete_group(self, group_id: str) -> None:
        self.retry(lambda: self.client.delete(self._group_key(group_id)))

    # -- chords --------------------------------------------------------------------------

    def set_chord_size(self, group_id: str, size: int) -> None:
        if size < 0:
            raise ChordError(f"chord size must be >= 0, got {size}")
        self._set(self._chord_keys(group_id)[0], str(size).encode())

    def chord_part_return(self, group_id: str, index: int, result: TaskResult) -> ChordOutcome:
        keys = self._chord_keys(group_id)
        # The same token across retries lets a completing call whose reply was
        # lost still learn that it completed the chord.
        args = [str(index), self._serializer.dumps(result), self._ttl_ms, _token()]
        reply = self._script(self._chord_script, keys, args)
        status, added, received, size = (int(v) for v in reply[:4])
        if status == -1:
            raise ChordError(
                f"chord {group_id!r} has no size set (or it expired); call "
                f"set_chord_size({group_id!r}, n) before its parts return"
            )
        if status == -2:
            raise ChordError(f"chord {group_id!r} part index {index} is out of range 0..{size - 1}")
        results = None
        if status == 1:
            flat = reply[4]
            parts = {int(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}
            results = tuple(self._serializer.loads(parts[i], TaskResult) for i in range(size))
        return ChordOutcome(
            group_id=group_id,
            index=index,
            complete=status == 1,
            duplicate=not added,
            received=received,
            size=size,
            results=results,
        )

    def claim_chord_body(self, group_id: str, lease: float) -> ChordOutcome | None:
        _, parts_key, done_key = self._chord_keys(group_id)
        keys = [done_key, f"{done_key}:body", parts_key]
        now_ms = str(int(time.time() * 1000))
        lease_ms = str(max(1, int(lease * 1000)))
        reply = self._script(self._claim_script, keys, [now_ms, lease_ms, self._ttl_ms])
        status = int(reply[0])
        if status == 0:
            return None
        if status == 1:
            return ChordOutcome(group_id, -1)
        flat = reply[1]
        parts = {int(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}
        results = tuple(self._serializer.loads(parts[i], TaskResult) for i in range(len(parts)))
        size = len(results)
        return ChordOutcome(group_id, -1, complete=True, received=size, size=size, results=results)

    def mark_chord_body_sent(self, group_id: str) -> None:
        done_key = self._chord_keys(group_id)[2]
        self._script(self._sent_script, [done_key, f"{done_key}:body"], [])

    def get_chord(self, group_id: str) -> ChordState | None:
        size_key, parts_key, done_key = self._chord_keys(group_id)

        def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.get(size_key)
            pipe.hkeys(parts_key)
            pipe.exists(done_key)
            return list(pipe.execute())

        size, fields, done = self.retry(run)
        if size is None:
            return None
        return ChordState(group_id, int(size), frozenset(int(f) for f in fields), bool(done))

    # -- push ------------------------------------------------------------------------------

    def async_backend(self) -> AsyncRedisBackend:
        """The native asyncio twin (``redis.asyncio``), configured like this backend."""
        from resultstore_redis.aio import AsyncRedisBackend

        return AsyncRedisBackend(self)

    def listener(self) -> RedisListener:
        self.retry.check_open()
        return RedisListener(
            self.client,
            self.channel,
            len(self.channel("")),
            self.decode,
            trust_carried=self.settings.trust_announcements,
        )
