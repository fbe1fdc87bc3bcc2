"""A :class:`~resultstore.KeyValueStore` over a folder: one file per key.

Readers never lock: every write goes to a temporary file that ``os.replace``
renames over the key's file, so a reader sees the old value or the new one,
never part of either. Every write, and each read-then-write step
(``compare_and_set``, ``add_to_set``), holds an ``fcntl`` lock on one of 256
lock files picked by the key's hash, which makes them atomic across the
threads and processes of one machine (not across machines: file locks on
network filesystems are not to be trusted). POSIX only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import quote, unquote

import attrs
from resultstore import BackendUnavailableError, Capability, CorruptPayloadError

__all__ = ["Clock", "FileKeyValueStore"]

Clock = Callable[[], float]

# Each file is one header line, "filekv1 <kind> <expires_at|-> <quoted key>",
# then the value: the bytes themselves, or a set's quoted members one a line.
_MAGIC = b"filekv1"
_BYTES = b"b"
_SET = b"s"
_TEMP_PREFIX = ".tmp-"


@attrs.frozen
class _Entry:
    key: str
    kind: bytes
    expires_at: float | None
    body: bytes

    def encode(self) -> bytes:
        expiry = b"-" if self.expires_at is None else repr(self.expires_at).encode()
        key = quote(self.key, safe="").encode("ascii")
        return b" ".join([_MAGIC, self.kind, expiry, key]) + b"\n" + self.body

    @classmethod
    def decode(cls, path: Path, data: bytes) -> _Entry:
        header, newline, body = data.partition(b"\n")
        parts = header.split(b" ")
        try:
            if not newline or len(parts) != 4 or parts[0] != _MAGIC:
                raise ValueError("no filekv1 header line")
            if parts[1] not in (_BYTES, _SET):
                raise ValueError(f"unknown kind {parts[1]!r}")
            expires_at = None if parts[2] == b"-" else float(parts[2])
            key = unquote(parts[3].decode("ascii"), errors="strict")
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptPayloadError(
                f"{path} is not a filekv file ({exc}); another program wrote it or it is "
                f"damaged: delete it, or give filekv:// a folder of its own"
            ) from None
        return cls(key, parts[1], expires_at, body)

    def members(self) -> set[str]:
        if self.kind != _SET:
            raise TypeError(f"key {self.key!r} holds bytes, not a set")
        return {unquote(line.decode("ascii")) for line in self.body.split(b"\n") if line}


def _set_body(members: set[str]) -> bytes:
    return b"\n".join(quote(member, safe="").encode("ascii") for member in sorted(members))


class FileKeyValueStore:
    """Keys as files under ``folder/keys/``, locks under ``folder/locks/``.

    Expired keys read as absent and stay on disk until :meth:`purge_expired`
    (``resultstore cleanup``) deletes them, so the store declares CLEANUP,
    not AUTO_EXPIRY. ``clock`` returns wall-clock seconds: expiry times are
    compared by every process that opens the folder.
    """

    capabilities: frozenset[Capability] = frozenset(
        {Capability.PERSISTENT, Capability.SHARED, Capability.CLEANUP}
    )

    def __init__(self, folder: Path, *, clock: Clock = time.time) -> None:
        self.folder = folder
        self._clock = clock
        self._keys = folder / "keys"
        self._locks = folder / "locks"
        try:
            self._keys.mkdir(parents=True, exist_ok=True)
            self._locks.mkdir(exist_ok=True)
        except OSError as exc:
            raise BackendUnavailableError(
                f"cannot use {folder} as a filekv:// folder ({exc}); give a folder this "
                f"process can create and write"
            ) from exc

    def __repr__(self) -> str:
        return f"<FileKeyValueStore {str(self.folder)!r}>"

    # -- helpers -------------------------------------------------------------------

    @staticmethod
    def _digest(key: str) -> str:
        # Hashed names keep any key (long, with slashes, non-ASCII) a valid file name.
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    def _path(self, key: str) -> Path:
        digest = self._digest(key)
        return self._keys / digest[:2] / digest

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        # flock belongs to the open file description, so every call opens its
        # own: threads of one process then exclude each other like processes do.
        fd = os.open(self._locks / self._digest(key)[:2], os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _deadline(self, ttl: float | None) -> float | None:
        if ttl is None:
            return None
        if not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds or None, got {ttl!r}")
        return self._clock() + ttl

    def _expired(self, entry: _Entry) -> bool:
        return entry.expires_at is not None and entry.expires_at <= self._clock()

    def _read(self, key: str) -> _Entry | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        entry = _Entry.decode(path, data)
        return None if self._expired(entry) else entry

    def _bytes(self, key: str) -> bytes | None:
        entry = self._read(key)
        if entry is None:
            return None
        if entry.kind != _BYTES:
            raise TypeError(f"key {key!r} holds a set, not bytes")
        return entry.body

    def _write(self, entry: _Entry) -> None:
        path = self._path(entry.key)
        path.parent.mkdir(exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=_TEMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(entry.encode())
            # Atomic on POSIX: readers see the old file or the new one. Add
            # os.fsync(file) before it if results must survive a power cut.
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    # -- KeyValueStore -------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        return self._bytes(key)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self._bytes(key) for key in keys]

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        entry = _Entry(key, _BYTES, self._deadline(ttl), bytes(value))
        with self._locked(key):
            self._write(entry)

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            with self._locked(key), contextlib.suppress(FileNotFoundError):
                self._path(key).unlink()

    def compare_and_set(
        self, key: str, expected: bytes | None, value: bytes, ttl: float | None
    ) -> bool:
        entry = _Entry(key, _BYTES, self._deadline(ttl), bytes(value))
        with self._locked(key):
            if self._bytes(key) != expected:
                return False
            self._write(entry)
            return True

    def add_to_set(self, key: str, member: str, ttl: float | None) -> tuple[bool, int]:
        deadline = self._deadline(ttl)
        with self._locked(key):
            current = self._read(key)
            members = set() if current is None else current.members()
            added = member not in members
            members.add(member)
            # Like a Redis SADD + EXPIRE: every addition restarts the set's expiry.
            self._write(_Entry(key, _SET, deadline, _set_body(members)))
            return added, len(members)

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own files."""

    # -- cleanup (SupportsPurgeExpired) ---------------------------------------------

    def purge_expired(self) -> list[str]:
        """Delete the files of expired keys now and return those keys."""
        purged = []
        for path in self._keys.glob("*/*"):
            if path.name.startswith(_TEMP_PREFIX):
                # A writer's file in flight (or left by a crash mid-write).
                continue
            try:
                entry = _Entry.decode(path, path.read_bytes())
            except (FileNotFoundError, CorruptPayloadError):
                continue
            if not self._expired(entry):
                continue
            with self._locked(entry.key):
                # Checked again under the lock: a writer may have renewed it meanwhile.
                current = self._read_raw(path)
                if current is not None and self._expired(current):
                    path.unlink()
                    purged.append(entry.key)
        return purged

    @staticmethod
    def _read_raw(path: Path) -> _Entry | None:
        try:
            return _Entry.decode(path, path.read_bytes())
        except FileNotFoundError:
            return None
