"""``resultstore-encryption-keygen``: print a new ``id:key`` pair for the keys variable."""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Sequence

from resultstore import ConfigurationError

from resultstore_encryption.environment import KEYS_ENV
from resultstore_encryption.keys import format_key, generate_key

__all__ = ["main"]


def _default_kid() -> str:
    # The date tells operators which key is older; the suffix keeps two keys
    # made on the same day from sharing an id.
    return f"{time.strftime('%Y-%m-%d', time.gmtime())}.{secrets.token_hex(2)}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="resultstore-encryption-keygen",
        description=(
            "Print a new AES-256 key as id:key (urlsafe base64) on standard output. "
            f"Put it first in {KEYS_ENV} and keep the older pairs after it, for reading."
        ),
    )
    parser.add_argument("--id", dest="kid", help="key id (default: today's date and a suffix)")
    args = parser.parse_args(argv)
    try:
        pair = format_key(args.kid or _default_kid(), generate_key())
    except ConfigurationError as exc:
        parser.error(str(exc))
    print(pair)
    kid = pair.partition(":")[0]
    print(f"# the active key goes first: {KEYS_ENV}='{kid}:...,<older pairs>'", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
