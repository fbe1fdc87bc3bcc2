"""The hot commands on one connection per thread, without the pool's bookkeeping.

redis-py's high-level call costs about as much again as the round trip
itself (pool checkout and return, argument filtering, metrics). The few
commands every store, read and chord part makes (EVALSHA, GET, MGET) go
through :class:`DirectConnections` instead: each thread keeps its own
connection, built from the pool's settings, and talks to it directly.
Errors behave as in redis-py: a connection error drops the socket (the next
call reconnects, the caller's retry policy decides), and a script the server
forgot (restart, SCRIPT FLUSH) is loaded again once. A reply is awaited no
longer than the call has left (:func:`resultstore.plugin.retrying.time_left`), so a
server that stopped answering cannot hold a bounded call for socket_timeout.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import redis.exceptions
from resultstore.plugin.retrying import time_left

__all__ = ["DirectConnections"]


class DirectConnections:
    """Per-thread connections made from ``pool``'s settings, used one command at a time."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[Any] = []
        self._pid = os.getpid()
        kwargs = pool.connection_kwargs
        total, timeout = kwargs.get("retry_total"), kwargs.get("socket_timeout")
        # A first try without a deadline waits as configured, unless that is
        # longer than retry_total (a bound that must hold too).
        self._first_try: float | None = (
            total if total is not None and (timeout is None or total < timeout) else None
        )

    def _reply(self, connection: Any) -> Any:
        left = time_left()
        if left is None:
            left = self._first_try
        if left is None:
            return connection.read_response()
        return connection.read_response(timeout=left)

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is not None and self._pid == os.getpid():
            return connection
        with self._lock:
            if self._pid != os.getpid():
                # A forked child must not touch the parent's sockets.
                self._all = []
                self._pid = os.getpid()
            connection = self._pool.connection_class(**self._pool.connection_kwargs)
            self._all.append(connection)
        self._local.connection = connection
        return connection

    def call(self, *args: Any) -> Any:
        """Send one command and return its reply."""
        connection = self._connection()
        try:
            connection.send_command(*args)
            return self._reply(connection)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
            connection.disconnect()
            raise

    def pipeline(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send several commands in one write; replies in order, errors as values."""
        connection = self._connection()
        replies: list[Any] = []
        try:
            connection.send_packed_command(connection.pack_commands(commands))
            for _ in commands:
                try:
                    replies.append(self._reply(connection))
                except redis.exceptions.ResponseError as exc:
                    replies.append(exc)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
            connection.disconnect()
            raise
        return replies

    def evalsha(self, sha: str, source: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run a script by its digest, loading it first if the server does not have it."""
        try:
            return self.call("EVALSHA", sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            self.call("SCRIPT", "LOAD", source)
            return self.call("EVALSHA", sha, len(keys), *keys, *args)

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for connection in connections:
            connection.disconnect()
