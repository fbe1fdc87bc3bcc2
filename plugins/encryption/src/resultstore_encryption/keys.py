"""Keys and keyrings: which 256-bit key writes new payloads and which ones still read.

A :class:`Keyring` is ordered: the first key is the active one (it encrypts
everything written from now on), the others only decrypt. Rotating a key
means putting a new id in front and keeping the old ids until nothing they
wrote is still stored. Key material never appears in a repr or an error.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterator, Mapping

import attrs
from resultstore import ConfigurationError

__all__ = ["KEY_SIZE", "Key", "Keyring", "format_key", "generate_key", "parse_keys"]

#: bytes in a key: AES-256.
KEY_SIZE = 32

# Key ids go into the payload header and into the ``id:key,id:key`` text form,
# so they exclude the separators of both (``;`` ``=`` ``:`` ``,``). At most 32
# characters: a key's base64 is 43, so a valid id is never a whole key pasted
# in the wrong place, and error messages may show valid ids.
_KID_MAX = 32
_KID = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{_KID_MAX - 1}}}$")


def generate_key() -> bytes:
    """A new random 256-bit key from the operating system's CSPRNG."""
    return os.urandom(KEY_SIZE)


def format_key(kid: str, key: bytes) -> str:
    """The ``id:key`` text form (urlsafe base64) that :func:`parse_keys` reads."""
    return f"{_check_kid(kid, 'format_key')}:{base64.urlsafe_b64encode(key).decode('ascii')}"


def _check_kid(kid: object, source: str, *, show: bool = True) -> str:
    """Return ``kid`` if valid; ``show=False`` for text that may hold key material."""
    if not isinstance(kid, str) or not _KID.match(kid):
        shown = f" {kid!r}" if show and isinstance(kid, str) else ""
        raise ConfigurationError(
            f"{source}: key id{shown} is not valid; a key id is 1-{_KID_MAX} characters "
            f"of letters, digits, '.', '_' and '-', starting with a letter or digit "
            f"(for example 2025-11)"
        )
    return kid


def _decode_key(text: str) -> bytes | None:
    text = text.strip()
    try:
        # Padding is optional in the text form; urlsafe and standard alphabets both read.
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None


def _key_bytes(kid: str, value: object, source: str) -> bytes:
    if isinstance(value, str):
        decoded = _decode_key(value)
        if decoded is None:
            raise ConfigurationError(
                f"{source}: the key for id {kid!r} is not valid base64; make a new "
                f"pair with resultstore-encryption-keygen"
            )
        value = decoded
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ConfigurationError(
            f"{source}: the key for id {kid!r} is a {type(value).__name__}; pass "
            f"{KEY_SIZE} bytes (resultstore_encryption.generate_key()) or their urlsafe base64"
        )
    key = bytes(value)
    if len(key) != KEY_SIZE:
        raise ConfigurationError(
            f"{source}: the key for id {kid!r} is {len(key)} bytes, not {KEY_SIZE} "
            f"(AES-256); make a new one with resultstore-encryption-keygen or generate_key()"
        )
    return key


@attrs.frozen
class Key:
    """One key: its id (stored in every payload it encrypts) and 32 secret bytes."""

    kid: str
    secret: bytes = attrs.field(repr=False)

    def __attrs_post_init__(self) -> None:
        _check_kid(self.kid, "Key")
        if not isinstance(self.secret, bytes):
            raise ConfigurationError(
                f"Key: the key for id {self.kid!r} is a {type(self.secret).__name__}, not "
                f"bytes; use Keyring.from_mapping() to read keys in base64"
            )
        _key_bytes(self.kid, self.secret, "Key")


@attrs.frozen
class Keyring:
    """Keys by id, the active (writing) key first; the rest decrypt older payloads."""

    keys: tuple[Key, ...]

    def __attrs_post_init__(self) -> None:
        if not self.keys:
            raise ConfigurationError(
                "a keyring needs at least one key; make one with resultstore-encryption-keygen"
            )
        seen: set[str] = set()
        for key in self.keys:
            if key.kid in seen:
                raise ConfigurationError(
                    f"key id {key.kid!r} appears twice in the keyring; each id names "
                    f"exactly one key (give a new key a new id)"
                )
            seen.add(key.kid)

    @classmethod
    def from_mapping(
        cls, keys: Mapping[str, bytes | str], *, source: str = "Encryption(keys=...)"
    ) -> Keyring:
        """Build from ``{id: key}`` in order, active first; a key is bytes or urlsafe base64."""
        return cls(
            tuple(
                Key(_check_kid(kid, source), _key_bytes(kid, value, source))
                for kid, value in keys.items()
            )
        )

    @property
    def active(self) -> Key:
        """The key that encrypts new payloads."""
        return self.keys[0]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(key.kid for key in self.keys)

    def get(self, kid: str) -> Key | None:
        return next((key for key in self.keys if key.kid == kid), None)

    def rotate(self, kid: str, secret: bytes) -> Keyring:
        """A keyring whose active key is the new one; the current keys stay for reading."""
        return Keyring((Key(kid, secret), *self.keys))

    def retire(self, kid: str) -> Keyring:
        """A keyring without ``kid``; payloads it encrypted become unreadable."""
        if self.get(kid) is None:
            raise ConfigurationError(
                f"key id {kid!r} is not in the keyring ({', '.join(self.ids)})"
            )
        return Keyring(tuple(key for key in self.keys if key.kid != kid))

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[Key]:
        return iter(self.keys)

    def __contains__(self, kid: object) -> bool:
        return any(key.kid == kid for key in self.keys)


def parse_keys(text: str, *, source: str) -> Keyring:
    """Read ``id:key,id:key`` (active first, keys in urlsafe base64) into a keyring.

    ``source`` names where the text came from (an environment variable) in
    errors, which show key ids and positions but never key material.
    """
    keys: list[Key] = []
    items = [item.strip() for item in text.split(",")]
    for position, item in enumerate(items, start=1):
        if not item:
            if len(items) > 1:
                raise ConfigurationError(
                    f"{source}: entry {position} is empty; write id:key pairs separated "
                    f"by single commas, the active key first"
                )
            break
        kid, sep, value = item.partition(":")
        kid = kid.strip()
        if not sep:
            raise ConfigurationError(
                f"{source}: entry {position} has no ':' between key id and key; write "
                f"id:key pairs (resultstore-encryption-keygen prints one)"
            )
        # An invalid id is not shown: a key pasted before the ':' would be.
        kid = _check_kid(kid, f"{source} entry {position}", show=False)
        if any(key.kid == kid for key in keys):
            raise ConfigurationError(
                f"{source}: key id {kid!r} appears twice (entry {position}); each id names "
                f"exactly one key (give a new key a new id)"
            )
        keys.append(Key(kid, _key_bytes(kid, value, source)))
    if not keys:
        raise ConfigurationError(
            f"{source} is set but holds no keys; set it to id:key pairs (active first) "
            f"or unset it to turn encryption off"
        )
    return Keyring(tuple(keys))
