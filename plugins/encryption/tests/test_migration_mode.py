"""Migration mode (plaintext still read) is a visible choice: a warning while it is on."""

from __future__ import annotations

import warnings

import pytest
import resultstore
from resultstore_encryption import (
    KEYS_ENV,
    REQUIRE_ENV,
    Encryption,
    PlaintextAcceptedWarning,
    format_key,
    from_environment,
)


def test_migration_mode_warns_when_made_in_code(key1: bytes) -> None:
    with pytest.warns(PlaintextAcceptedWarning, match="require_encryption=True") as caught:
        encryption = Encryption(keys={"k1": key1})
    assert encryption.migration_mode
    message = str(caught[0].message)
    assert "plant results" in message, "the message says what the risk is"
    assert "expired" in message, "and when to turn it off"
    assert caught[0].filename == __file__, "the warning points at the caller's line"


def test_migration_mode_warns_at_connect_when_set_by_the_environment(
    key1: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEYS_ENV, format_key("k1", key1))
    with pytest.warns(PlaintextAcceptedWarning, match="RESULTSTORE_ENCRYPTION_REQUIRED=true"):
        store = resultstore.connect("memory://")
    store.close()


def test_the_warning_can_be_made_an_error(key1: bytes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlaintextAcceptedWarning)
        with pytest.raises(PlaintextAcceptedWarning):
            Encryption(keys={"k1": key1})


def test_requiring_encryption_is_silent(key1: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encryption = Encryption(keys={"k1": key1}, require_encryption=True)
        assert not encryption.migration_mode
        monkeypatch.setenv(KEYS_ENV, format_key("k1", key1))
        monkeypatch.setenv(REQUIRE_ENV, "true")
        from_env = from_environment()
        assert from_env is not None
        assert from_env.require_encryption
        resultstore.connect("memory://").close()


def test_an_unset_environment_is_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert from_environment() is None
        resultstore.connect("memory://").close()
