"""The :class:`Encryption` plugin: AES-256-GCM around every stored payload.

It implements ``resultstore_encode`` and ``resultstore_decode`` as pluggy
wrappers. The whole inner payload (header and body, so even the codec is
hidden) is encrypted and put in an envelope of its own::

    rs1 enc=aesgcm;kid=2025-11\\n<12-byte random nonce><ciphertext and 16-byte tag>

The envelope's header line is the associated data of the AEAD, so neither
the algorithm nor the key id can be changed without the payload failing
authentication.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Generator, Mapping
from contextvars import ContextVar, Token
from typing import Any, ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from resultstore import ConfigurationError, UnknownCodecError, hookimpl
from resultstore.payloads.codecs import DecodeRequest, EncodeRequest, make_envelope, parse_envelope

from resultstore_encryption.errors import (
    DecryptionError,
    PlaintextAcceptedWarning,
    UnencryptedPayloadError,
    UnknownKeyError,
)
from resultstore_encryption.keys import Keyring

__all__ = ["ALGORITHM", "NONCE_SIZE", "TAG_SIZE", "Encryption", "warn_migration_mode"]

#: the ``enc=`` value of the envelope this plugin writes.
ALGORITHM = "aesgcm"
#: 96 bits, random per payload (the size GCM is specified for).
NONCE_SIZE = 12
TAG_SIZE = 16

# The Encryption instances acting on the encode or decode call in progress,
# outermost first. Each instance only sees its own hook arguments, so this is
# how two registered instances find out about each other (and avoid
# encrypting twice).
_LAYERS: ContextVar[tuple[Encryption, ...]] = ContextVar(
    "resultstore_encryption_layers", default=()
)


def warn_migration_mode(encryption: Encryption, *, stacklevel: int = 2) -> None:
    """Issue the :class:`PlaintextAcceptedWarning` for ``encryption`` (in migration mode)."""
    warnings.warn(
        f"{encryption!r} is in migration mode: it reads unencrypted payloads as they are, "
        f"so anyone who can write to the store can plant results that readers trust. Once "
        f"every result written before encryption was turned on has expired (after "
        f"'expires', one day by default) or been forgotten, pass require_encryption=True "
        f"(or set RESULTSTORE_ENCRYPTION_REQUIRED=true); a new store that never held "
        f"plaintext can require it from the start",
        PlaintextAcceptedWarning,
        stacklevel=stacklevel + 1,
    )


class Encryption:
    """Encrypts every payload written with the keyring's active key; decrypts with any of its keys.

    ``keys`` is a :class:`~resultstore_encryption.keys.Keyring` or a mapping
    ``{key id: key}`` in order, the active (writing) key first; a key is 32
    bytes or their urlsafe base64. Payloads written without encryption are
    read as they are, so a store can be migrated while it is in use, unless
    ``require_encryption`` is true: then they are refused with
    :class:`~resultstore_encryption.errors.UnencryptedPayloadError`.

    While ``require_encryption`` is off (migration mode), making an instance
    issues a :class:`~resultstore_encryption.errors.PlaintextAcceptedWarning`.

    Register one instance per hooks (``connect(url, plugins=[Encryption(...)])``).
    It replaces the instance the entry point builds from
    ``RESULTSTORE_ENCRYPTION_KEYS``, which steps aside, so nothing is
    encrypted twice; two instances passed in code are refused.
    """

    #: True for the instance built from the environment, which yields to any other.
    from_environment: ClassVar[bool] = False

    def __init__(
        self,
        keys: Keyring | Mapping[str, bytes | str],
        *,
        require_encryption: bool = False,
    ) -> None:
        self._setup(
            keys if isinstance(keys, Keyring) else Keyring.from_mapping(keys), require_encryption
        )
        if not require_encryption:
            warn_migration_mode(self, stacklevel=2)

    def _setup(self, keyring: Keyring, require_encryption: bool) -> None:
        self.keyring = keyring
        self.require_encryption = require_encryption
        self._aeads = {key.kid: AESGCM(key.secret) for key in keyring}
        self._active = keyring.active.kid
        self._header = make_envelope({"enc": ALGORITHM, "kid": self._active}, b"")

    # Cipher objects do not pickle; the keyring does. Worker processes started
    # with "spawn" receive their plugins pickled, keys included: such a pickle
    # is as secret as the keys.
    def __getstate__(self) -> dict[str, Any]:
        return {"keyring": self.keyring, "require_encryption": self.require_encryption}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._setup(state["keyring"], state["require_encryption"])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(keys={list(self.keyring.ids)}, active={self._active!r}, "
            f"require_encryption={self.require_encryption})"
        )

    @property
    def migration_mode(self) -> bool:
        """True while unencrypted payloads are read as they are (``require_encryption`` off)."""
        return not self.require_encryption

    # -- the envelope ------------------------------------------------------------

    def encrypt(self, payload: bytes) -> bytes:
        """Wrap a whole payload in an ``enc=aesgcm`` envelope under the active key."""
        nonce = os.urandom(NONCE_SIZE)
        sealed = self._aeads[self._active].encrypt(nonce, payload, self._header)
        return self._header + nonce + sealed

    def decrypt(self, payload: bytes) -> bytes:
        """Unwrap an envelope this plugin wrote; plaintext passes unless encryption is required."""
        fields, body = parse_envelope(payload)
        if "enc" not in fields:
            if self.require_encryption:
                raise UnencryptedPayloadError(f"{k}={v}" for k, v in fields.items())
            return bytes(payload)
        if fields["enc"] != ALGORITHM:
            raise UnknownCodecError(
                f"stored payload is encrypted with enc={fields['enc']}, which this version "
                f"of resultstore-encryption does not know (it reads enc={ALGORITHM}); "
                f"upgrade resultstore-encryption on this reader"
            )
        kid = fields.get("kid")
        if kid is None:
            raise DecryptionError("?", ": its header names no key id")
        aead = self._aeads.get(kid)
        if aead is None:
            raise UnknownKeyError(kid, self.keyring.ids)
        if len(body) < NONCE_SIZE + TAG_SIZE:
            raise DecryptionError(kid, f": it is {len(body)} bytes, shorter than nonce and tag")
        # Authenticate exactly the header bytes as stored, not a re-rendering of them.
        header = bytes(payload[: len(payload) - len(body)])
        try:
            return aead.decrypt(body[:NONCE_SIZE], body[NONCE_SIZE:], header)
        except InvalidTag:
            raise DecryptionError(kid) from None

    # -- hooks -------------------------------------------------------------------

    def _enter(self) -> Token[tuple[Encryption, ...]] | None:
        """Join the current call's layers, or return None to step aside."""
        outer = _LAYERS.get()
        if outer:
            if self.from_environment:
                return None
            if any(not layer.from_environment for layer in outer):
                raise ConfigurationError(
                    f"two Encryption plugins are registered ({outer[0]!r} and {self!r}); "
                    f"they would encrypt every payload twice. Register one instance "
                    f"holding every key id"
                )
        return _LAYERS.set((*outer, self))

    @hookimpl(wrapper=True)
    def resultstore_encode(self, request: EncodeRequest) -> Generator[None, bytes, bytes]:
        token = self._enter()
        if token is None:
            return (yield)
        try:
            payload = yield
        finally:
            _LAYERS.reset(token)
        return self.encrypt(payload)

    @hookimpl(wrapper=True)
    def resultstore_decode(self, request: DecodeRequest) -> Generator[None, Any, Any]:
        token = self._enter()
        if token is None:
            return (yield)
        try:
            request.payload = self.decrypt(request.payload)
            return (yield)
        finally:
            _LAYERS.reset(token)
