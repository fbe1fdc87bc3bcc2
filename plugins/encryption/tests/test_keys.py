"""Keyrings and the ``id:key`` text form: validation, ordering, and never showing key material."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from resultstore import ConfigurationError
from resultstore_encryption import Key, Keyring, format_key, generate_key, parse_keys

KIDS = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,31}\Z")


def test_generate_key_is_32_random_bytes() -> None:
    one, two = generate_key(), generate_key()
    assert len(one) == len(two) == 32
    assert one != two


def test_mapping_order_sets_the_active_key() -> None:
    k1, k2 = generate_key(), generate_key()
    ring = Keyring.from_mapping({"new": k2, "old": k1})
    assert ring.active == Key("new", k2)
    assert ring.ids == ("new", "old")
    assert ring.get("old") == Key("old", k1)
    assert ring.get("nope") is None
    assert "old" in ring
    assert len(ring) == 2


def test_mapping_accepts_base64_text() -> None:
    key = generate_key()
    text = base64.urlsafe_b64encode(key).decode()
    assert Keyring.from_mapping({"a": text}).active.secret == key
    assert Keyring.from_mapping({"a": text.rstrip("=")}).active.secret == key


def test_rotate_puts_the_new_key_first_and_retire_drops_one() -> None:
    k1, k2 = generate_key(), generate_key()
    ring = Keyring.from_mapping({"k1": k1}).rotate("k2", k2)
    assert ring.ids == ("k2", "k1")
    assert ring.retire("k1").ids == ("k2",)
    with pytest.raises(ConfigurationError, match="not in the keyring"):
        ring.retire("k3")


def test_repr_never_shows_key_material() -> None:
    key = generate_key()
    ring = Keyring.from_mapping({"k1": key})
    for shown in (repr(ring), repr(ring.active), str(ring)):
        assert "k1" in shown
        assert repr(key) not in shown
        assert base64.urlsafe_b64encode(key).decode() not in shown


@pytest.mark.parametrize(
    ("keys", "fragment"),
    [
        ({}, "at least one key"),
        ({"k": b"short"}, "5 bytes, not 32"),
        ({"k": "not base64!"}, "not valid base64"),
        ({"k": 42}, "is a int"),
        ({"bad id": generate_key()}, "key id 'bad id' is not valid"),
        ({"k:1": generate_key()}, "is not valid"),
        ({"x" * 33: generate_key()}, "1-32 characters"),
    ],
)
def test_bad_mappings_are_configuration_errors(keys: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        Keyring.from_mapping(keys)  # type: ignore[arg-type]  # wrong types are the point


def test_duplicate_ids_are_refused() -> None:
    key = generate_key()
    with pytest.raises(ConfigurationError, match="appears twice"):
        Keyring((Key("a", key), Key("a", generate_key())))


def test_key_checks_its_secret() -> None:
    with pytest.raises(ConfigurationError, match="not bytes"):
        Key("a", "text")  # type: ignore[arg-type]  # wrong type is the point
    with pytest.raises(ConfigurationError, match="31 bytes"):
        Key("a", bytes(31))


@settings(max_examples=25)
@given(kids=st.lists(KIDS, min_size=1, max_size=4, unique=True))
def test_format_and_parse_round_trip(kids: list[str]) -> None:
    keys = [generate_key() for _ in kids]
    text = " , ".join(format_key(kid, key) for kid, key in zip(kids, keys, strict=True))
    ring = parse_keys(text, source="TEST_VAR")
    assert ring.ids == tuple(kids)
    assert [k.secret for k in ring] == keys


def test_parse_accepts_standard_base64_alphabet() -> None:
    key = generate_key()
    ring = parse_keys(f"a:{base64.b64encode(key).decode()}", source="V")
    assert ring.active.secret == key


def _secret_text() -> tuple[bytes, str]:
    key = generate_key()
    return key, base64.urlsafe_b64encode(key).decode()


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{key}", "entry 1 has no ':'"),
        ("{key}:a", "entry 1: key id is not valid"),
        ("a:{key},,b:{key}", "entry 2 is empty"),
        ("a:{key},a:{key}", "appears twice"),
        ("a:{key}x", "not valid base64"),
        ("a:{short}", "24 bytes, not 32"),
        (" , ", "entry 1 is empty"),
    ],
)
def test_parse_errors_name_the_source_but_never_the_key(template: str, fragment: str) -> None:
    _, text = _secret_text()
    short = base64.urlsafe_b64encode(bytes(24)).decode()
    with pytest.raises(ConfigurationError, match=fragment) as info:
        parse_keys(template.format(key=text, short=short), source="MY_KEYS")
    message = str(info.value)
    assert "MY_KEYS" in message
    assert text not in message
    assert text[:16] not in message
    assert short not in message


def test_parse_of_blank_text_says_it_holds_no_keys() -> None:
    with pytest.raises(ConfigurationError, match="holds no keys"):
        parse_keys("  ", source="MY_KEYS")
