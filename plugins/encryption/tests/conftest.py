"""Shared fixtures: fresh keys, named memory stores, and an environment without encryption."""

from __future__ import annotations

import uuid

import pytest
from resultstore_encryption import KEYS_ENV, REQUIRE_ENV, generate_key


def pytest_configure(config: pytest.Config) -> None:
    # Most tests here run in migration mode on purpose (they plant plaintext);
    # test_migration_mode.py checks the warning itself with pytest.warns.
    config.addinivalue_line(
        "filterwarnings", "ignore::resultstore_encryption.PlaintextAcceptedWarning"
    )


@pytest.fixture(autouse=True)
def _no_encryption_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The entry-point plugin reads these at build_hooks(); a developer's own
    # settings must not change what a test sees.
    monkeypatch.delenv(KEYS_ENV, raising=False)
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    monkeypatch.delenv("RESULTSTORE_DISABLE_PLUGINS", raising=False)


@pytest.fixture
def key1() -> bytes:
    return generate_key()


@pytest.fixture
def key2() -> bytes:
    return generate_key()


@pytest.fixture
def memory_url() -> str:
    """A named in-process store, so that several ResultStores can share it."""
    return f"memory://enc-{uuid.uuid4().hex}"
