"""resultstore-encryption: AES-256-GCM encryption at rest for every resultstore backend."""

from __future__ import annotations

import importlib.metadata

from resultstore_encryption.environment import KEYS_ENV, REQUIRE_ENV, from_environment
from resultstore_encryption.errors import (
    DecryptionError,
    PlaintextAcceptedWarning,
    UnencryptedPayloadError,
    UnknownKeyError,
)
from resultstore_encryption.keys import Key, Keyring, format_key, generate_key, parse_keys
from resultstore_encryption.plugin import ALGORITHM, Encryption

__version__ = importlib.metadata.version("resultstore-encryption")

__all__ = [
    "ALGORITHM",
    "KEYS_ENV",
    "REQUIRE_ENV",
    "DecryptionError",
    "Encryption",
    "Key",
    "Keyring",
    "PlaintextAcceptedWarning",
    "UnencryptedPayloadError",
    "UnknownKeyError",
    "__version__",
    "format_key",
    "from_environment",
    "generate_key",
    "parse_keys",
]
