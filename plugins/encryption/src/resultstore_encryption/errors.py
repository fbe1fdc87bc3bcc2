"""The errors of resultstore-encryption, placed in resultstore's own hierarchy.

A caller that already handles :class:`resultstore.DecodeError` handles
these too; the subclasses only add which part of decryption went wrong.
"""

from __future__ import annotations

from collections.abc import Iterable

from resultstore import CorruptPayloadError, DecodeError, UnknownCodecError

__all__ = [
    "DecryptionError",
    "PlaintextAcceptedWarning",
    "UnencryptedPayloadError",
    "UnknownKeyError",
]


class PlaintextAcceptedWarning(UserWarning):
    """Encryption is on in migration mode: unencrypted payloads are still read.

    Issued when an :class:`~resultstore_encryption.Encryption` is made with
    ``require_encryption`` off (the default, and what the environment gives
    unless ``RESULTSTORE_ENCRYPTION_REQUIRED=true``): until it is on, anyone
    who can write to the store can plant a result readers will trust.
    """


class DecryptionError(CorruptPayloadError):
    """An encrypted payload failed authentication: it was altered, or the key differs."""

    def __init__(self, kid: str, detail: str = "") -> None:
        self.kid = kid
        super().__init__(
            f"encrypted payload (kid={kid}) failed authentication{detail}: it was altered "
            f"after it was written (ciphertext or header), or it was encrypted with a "
            f"different key under the same key id; give every writer and reader the same "
            f"key for kid={kid}, and never reuse a key id for a new key"
        )


class UnknownKeyError(UnknownCodecError):
    """A payload was encrypted under a key id that this reader's keyring lacks."""

    def __init__(self, kid: str, known: Iterable[str]) -> None:
        self.kid = kid
        self.known = tuple(known)
        super().__init__(
            f"payload was encrypted with key id {kid!r}, which this reader's keyring does "
            f"not have (it has: {', '.join(self.known)}); add that key for reading, after "
            f"the active key: Encryption(keys={{<active id>: ..., {kid!r}: <key>}}) or "
            f"RESULTSTORE_ENCRYPTION_KEYS='<active id>:<key>,{kid}:<key>'"
        )


class UnencryptedPayloadError(DecodeError):
    """A plaintext payload was read while ``require_encryption`` is on."""

    def __init__(self, fields: Iterable[str]) -> None:
        self.fields = tuple(fields)
        super().__init__(
            f"stored payload is not encrypted (header: {';'.join(self.fields) or 'none'}) and "
            f"this reader requires encryption; it was written by a process without the "
            f"encryption plugin, or planted by someone without the key. Forget the task, "
            f"or turn require_encryption off while plaintext results from before the "
            f"migration are still being read"
        )
