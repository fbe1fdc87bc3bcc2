"""From task and group ids to memcached keys: plain where memcached allows, a digest elsewhere.

memcached's text protocol takes keys of at most 250 bytes of printable
ASCII without spaces or control characters. Every id fits as it is when it
is made of those characters and short enough; any other id (long, with
spaces, newlines or non-ASCII text) is replaced by the SHA-256 digest of its
UTF-8 bytes. The two forms never meet: a plain id follows ``<kind>:`` and a
digest follows ``<kind>#``, so a plain id that happens to look like a digest
is still a different key, and two ids share a key only if SHA-256 collides.

Keys, under ``key_prefix`` (default ``resultstore:``)::

    t:<id> | t#<sha256>              a result: "<state>\\n" + payload
    g:<gid> | g#<sha256>             a saved group
    c:<gid>:n | c#<sha256>:n         a chord's size and count (one integer)
    c:<gid>:p:<i>                    header part i: "<token>\\n" + payload
    c:<gid>:d                        set by the one call that completed the chord

All keys of one chord share the tag ``c:<gid>`` (or ``c#<sha256>``), which a
ring of servers hashes instead of the whole key, so one chord lives on one
server: it is there whole or lost whole, never half.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["MAX_KEY_BYTES", "MAX_PREFIX_BYTES", "KeyMaker", "check_prefix"]

#: the longest key memcached accepts, in bytes.
MAX_KEY_BYTES = 250
#: a prefix leaves room for the kind, a digest and a chord part's suffix.
MAX_PREFIX_BYTES = 100
# Room a chord key needs after its tag: ":p:" and a part index of up to 20 digits.
_CHORD_SUFFIX = 23
# Printable ASCII but the space: what memcached and pymemcache take in a key.
_PLAIN = re.compile(r"[!-~]+")


def check_prefix(prefix: object) -> str:
    """``prefix`` if it can start every key, else ValueError saying what is wrong."""
    if not isinstance(prefix, str):
        kind = type(prefix).__name__
        raise ValueError(f"key_prefix must be a string such as 'myapp:', got {kind}")
    if prefix and not _PLAIN.fullmatch(prefix):
        raise ValueError(
            f"key_prefix {prefix!r} has characters memcached keys cannot hold; use printable "
            f"ASCII without spaces, such as 'myapp:'"
        )
    if len(prefix) > MAX_PREFIX_BYTES:
        raise ValueError(
            f"key_prefix is {len(prefix)} characters; keep it to {MAX_PREFIX_BYTES} so that "
            f"keys stay under memcached's {MAX_KEY_BYTES} bytes"
        )
    return prefix


def _digest(ident: str) -> str:
    # surrogatepass: an id with a lone surrogate still gets a key of its own.
    return hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()


class KeyMaker:
    """The keys of one backend (one prefix)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = check_prefix(prefix)
        self._room = MAX_KEY_BYTES - len(prefix) - 2
        self._chord_room = self._room - _CHORD_SUFFIX

    def _tagged(self, kind: str, ident: str, room: int) -> str:
        # Printable ASCII without the space, tested with str methods (faster than a regex).
        if len(ident) <= room and ident.isascii() and ident.isprintable() and " " not in ident:
            return f"{self.prefix}{kind}:{ident}"
        return f"{self.prefix}{kind}#{_digest(ident)}"

    def task(self, task_id: str) -> str:
        return self._tagged("t", task_id, self._room)

    def group(self, group_id: str) -> str:
        return self._tagged("g", group_id, self._room)

    def chord(self, group_id: str) -> str:
        """The tag every key of the chord starts with (and a ring hashes)."""
        return self._tagged("c", group_id, self._chord_room)

    @staticmethod
    def counter(tag: str) -> str:
        return f"{tag}:n"

    @staticmethod
    def part(tag: str, index: int) -> str:
        return f"{tag}:p:{index}"

    @staticmethod
    def done(tag: str) -> str:
        return f"{tag}:d"
