"""The hot commands on one connection per thread, without the pool's bookkeeping.

redis-py's high-level call costs about as much again as the round trip
itself (pool checkout and return, argument filtering, metrics). The few
commands every store, read and chord part makes (EVALSHA, GET, MGET) go
through :class:`DirectConnections` instead: each thread keeps its own
connection, built from the pool's settings, and talks to it directly.
Errors behave as in redis-py: a connection error drops the socket (the next
call reconnects, the caller's retry policy decides), and a script the server
forgot (restart, SCRIPT FLUSH) is loaded again once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import redis.exceptions

__all__ = ["DirectConnections"]


class DirectConnections:
    """Per-thread connections made from ``pool``'s settings, used one command at a time."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[Any] = []
        self._pid = os.getpid()

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
            return connection.read_response()
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
                    replies.append(connection.read_response())
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
