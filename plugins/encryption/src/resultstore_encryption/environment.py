"""The instance the ``encryption`` entry point registers, configured from the environment.

The entry point's target, ``plugin``, is made each time the hooks are built
(:func:`resultstore.build_hooks`), from ``RESULTSTORE_ENCRYPTION_KEYS``; when
the variable is unset it is an inert object with no hooks, so an installed
but unconfigured plugin costs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping
from typing import Any, ClassVar

from resultstore import ConfigurationError, hookimpl
from resultstore.concepts.options import parse_bool
from resultstore.payloads.codecs import DecodeRequest, EncodeRequest

from resultstore_encryption.keys import parse_keys
from resultstore_encryption.plugin import Encryption

__all__ = ["KEYS_ENV", "REQUIRE_ENV", "EnvironmentEncryption", "Inactive", "from_environment"]

#: ``id:key,id:key`` (urlsafe base64 keys), the active key first.
KEYS_ENV = "RESULTSTORE_ENCRYPTION_KEYS"
#: a boolean; when true, plaintext payloads are refused.
REQUIRE_ENV = "RESULTSTORE_ENCRYPTION_REQUIRED"


class EnvironmentEncryption(Encryption):
    """An :class:`Encryption` read from the environment, which steps aside for any other.

    Its hooks are ``trylast`` so that they always run inside those of an
    instance passed in code; that instance then does all the work.
    """

    from_environment: ClassVar[bool] = True

    @hookimpl(wrapper=True, trylast=True)
    def resultstore_encode(self, request: EncodeRequest) -> Generator[None, bytes, bytes]:
        return (yield from super().resultstore_encode(request))

    @hookimpl(wrapper=True, trylast=True)
    def resultstore_decode(self, request: DecodeRequest) -> Generator[None, Any, Any]:
        return (yield from super().resultstore_decode(request))


class Inactive:
    """What the entry point registers while ``RESULTSTORE_ENCRYPTION_KEYS`` is unset."""

    def __repr__(self) -> str:
        return f"<resultstore-encryption: inactive, {KEYS_ENV} is not set>"


def from_environment(environ: Mapping[str, str] | None = None) -> EnvironmentEncryption | None:
    """The instance ``environ`` (default ``os.environ``) configures, or None if unset.

    Raises ConfigurationError naming the variable when its value is
    malformed; key material is never shown.
    """
    env = os.environ if environ is None else environ
    raw_require = env.get(REQUIRE_ENV, "").strip()
    try:
        require = parse_bool(raw_require) if raw_require else False
    except ValueError as exc:
        raise ConfigurationError(f"{REQUIRE_ENV}: {exc}") from None
    text = env.get(KEYS_ENV, "")
    if not text.strip():
        if require:
            raise ConfigurationError(
                f"{REQUIRE_ENV} is true but {KEYS_ENV} is not set; set {KEYS_ENV} to the "
                f"keys (resultstore-encryption-keygen makes one) or unset {REQUIRE_ENV}"
            )
        return None
    return EnvironmentEncryption(parse_keys(text, source=KEYS_ENV), require_encryption=require)


def __getattr__(name: str) -> object:
    # Computed on every lookup, so each build_hooks() sees the environment as it is then.
    if name == "plugin":
        return from_environment() or Inactive()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
