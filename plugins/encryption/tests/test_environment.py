"""The entry-point instance: configured by RESULTSTORE_ENCRYPTION_KEYS at build_hooks() time."""

from __future__ import annotations

import base64

import pytest
import resultstore
from encryption_support import raw_result
from resultstore import ConfigurationError, build_hooks
from resultstore.payloads.codecs import parse_envelope
from resultstore_encryption import (
    KEYS_ENV,
    REQUIRE_ENV,
    Encryption,
    UnencryptedPayloadError,
    format_key,
    from_environment,
)
from resultstore_encryption.environment import EnvironmentEncryption, Inactive


def _plugin(hooks: resultstore.Hooks) -> object:
    return hooks.manager.get_plugin("encryption")


def test_unset_variable_registers_an_inert_plugin() -> None:
    hooks = build_hooks()
    assert isinstance(_plugin(hooks), Inactive)
    assert hooks.codec_is_default()
    store = resultstore.connect("memory://", hooks=hooks)
    store.mark_as_done("t", 1)
    assert raw_result(store, "t").startswith(b"rs1 codec=json")


def test_variable_configures_encryption(
    monkeypatch: pytest.MonkeyPatch, key1: bytes, key2: bytes
) -> None:
    monkeypatch.setenv(KEYS_ENV, f"{format_key('env-2', key2)},{format_key('env-1', key1)}")
    hooks = build_hooks()
    plugin = _plugin(hooks)
    assert isinstance(plugin, EnvironmentEncryption)
    assert plugin.keyring.ids == ("env-2", "env-1")
    assert not hooks.codec_is_default()

    store = resultstore.connect("memory://", hooks=hooks)
    store.mark_as_done("t", "secret")
    raw = raw_result(store, "t")
    assert parse_envelope(raw)[0] == {"enc": "aesgcm", "kid": "env-2"}
    assert b"secret" not in raw
    got = store.get("t")
    assert got is not None
    assert got.result == "secret"
    # Readable by a programmatic instance with the same key: one layer only.
    assert Encryption(keys={"env-2": key2}).decrypt(raw).startswith(b"rs1 codec=json\n")


def test_connect_builds_hooks_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, key1: bytes
) -> None:
    monkeypatch.setenv(KEYS_ENV, format_key("env-1", key1))
    store = resultstore.connect("memory://")
    store.mark_as_done("t", 1)
    assert parse_envelope(raw_result(store, "t"))[0]["kid"] == "env-1"


def test_a_programmatic_instance_wins_and_nothing_is_encrypted_twice(
    monkeypatch: pytest.MonkeyPatch, key1: bytes, key2: bytes
) -> None:
    monkeypatch.setenv(KEYS_ENV, format_key("env", key1))
    mine = Encryption(keys={"code": key2})
    store = resultstore.connect("memory://", plugins=[mine])
    assert isinstance(_plugin(store.hooks), EnvironmentEncryption)
    store.mark_as_done("t", "value")
    raw = raw_result(store, "t")
    assert parse_envelope(raw)[0]["kid"] == "code"
    assert mine.decrypt(raw).startswith(b"rs1 codec=json\n")
    got = store.get("t")
    assert got is not None
    assert got.result == "value"


def test_the_environment_instance_steps_aside_whatever_the_order(
    monkeypatch: pytest.MonkeyPatch, key1: bytes, key2: bytes
) -> None:
    # The instance from code registered first, the environment's last: still one layer.
    monkeypatch.setenv(KEYS_ENV, format_key("env", key1))
    mine = Encryption(keys={"code": key2})
    hooks = build_hooks([mine], entry_points=False)
    env = from_environment()
    assert env is not None
    hooks.register(env)
    store = resultstore.connect("memory://", hooks=hooks)
    store.mark_as_done("t", 1)
    raw = raw_result(store, "t")
    assert parse_envelope(raw)[0]["kid"] == "code"
    assert mine.decrypt(raw).startswith(b"rs1 codec=json\n")


def test_two_instances_in_code_are_refused(key1: bytes, key2: bytes) -> None:
    store = resultstore.connect(
        "memory://", plugins=[Encryption(keys={"a": key1}), Encryption(keys={"b": key2})]
    )
    with pytest.raises(ConfigurationError, match="two Encryption plugins"):
        store.mark_as_done("t", 1)
    assert store.get("t") is None


def test_malformed_variable_fails_at_build_without_showing_keys(
    monkeypatch: pytest.MonkeyPatch, key1: bytes
) -> None:
    text = base64.urlsafe_b64encode(key1).decode()
    monkeypatch.setenv(KEYS_ENV, f"ok:{text},{text}")
    with pytest.raises(ConfigurationError) as info:
        build_hooks()
    message = str(info.value)
    assert KEYS_ENV in message
    assert "entry 2" in message
    assert text not in message


def test_disabled_plugin_is_not_loaded(monkeypatch: pytest.MonkeyPatch, key1: bytes) -> None:
    monkeypatch.setenv(KEYS_ENV, format_key("env", key1))
    monkeypatch.setenv("RESULTSTORE_DISABLE_PLUGINS", "encryption")
    hooks = build_hooks()
    assert _plugin(hooks) is None
    assert hooks.codec_is_default()


def test_required_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, key1: bytes, memory_url: str
) -> None:
    resultstore.connect(memory_url).mark_as_done("legacy", 1)
    monkeypatch.setenv(KEYS_ENV, format_key("env", key1))
    monkeypatch.setenv(REQUIRE_ENV, "true")
    store = resultstore.connect(memory_url)
    with pytest.raises(UnencryptedPayloadError):
        store.get("legacy")


@pytest.mark.parametrize(
    ("keys", "required", "fragment"),
    [
        (None, "yes", f"{REQUIRE_ENV} is true but {KEYS_ENV} is not set"),
        ("ok", "perhaps", f"{REQUIRE_ENV}: expected a boolean"),
    ],
)
def test_bad_requirement_settings(
    monkeypatch: pytest.MonkeyPatch,
    key1: bytes,
    keys: str | None,
    required: str,
    fragment: str,
) -> None:
    if keys is not None:
        monkeypatch.setenv(KEYS_ENV, format_key(keys, key1))
    monkeypatch.setenv(REQUIRE_ENV, required)
    with pytest.raises(ConfigurationError, match=fragment):
        build_hooks()


def test_from_environment_reads_a_given_mapping(key1: bytes) -> None:
    assert from_environment({}) is None
    plugin = from_environment({KEYS_ENV: format_key("m", key1), REQUIRE_ENV: "1"})
    assert plugin is not None
    assert plugin.require_encryption
    assert plugin.keyring.ids == ("m",)
