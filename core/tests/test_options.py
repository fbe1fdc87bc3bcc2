"""Option parsing: booleans, durations and sizes at their edges, and the take/finish protocol."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from resultstore import ConfigurationError, UnknownOptionError
from resultstore.concepts.options import Options, parse_bool, parse_duration, parse_size


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("1", True),
        ("0", False),
        (1, True),
        (0, False),
        ("true", True),
        ("False", False),
        (" YES ", True),
        ("no", False),
        ("on", True),
        ("Off", False),
    ],
)
def test_parse_bool_accepts_the_usual_spellings(value: object, expected: bool) -> None:
    assert parse_bool(value) is expected


@pytest.mark.parametrize("value", ["", "maybe", "2", 2, "t", "y", None, "none"])
def test_parse_bool_refuses_anything_else(value: object) -> None:
    with pytest.raises(ValueError, match="expected a boolean"):
        parse_bool(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10, 10.0),
        (0.5, 0.5),
        ("10", 10.0),
        (" 1.5 ", 1.5),
        ("1e3", 1000.0),
        (dt.timedelta(minutes=2), 120.0),
        (dt.timedelta(microseconds=1), 1e-06),
    ],
)
def test_parse_duration_reads_seconds(value: object, expected: float) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize("value", [None, "none", "None", "never", "", "  ", "null"])
def test_parse_duration_none_keeps_forever(value: object) -> None:
    assert parse_duration(value) is None


@pytest.mark.parametrize(
    "value",
    [
        0,
        "0",
        -1,
        "-0.5",
        dt.timedelta(0),
        dt.timedelta(seconds=-5),
        "soon",
        "10s",
        True,
        False,
        [10],
        "nan",
        "inf",
        float("inf"),
        "-inf",
    ],
)
def test_parse_duration_refuses_what_is_not_a_positive_finite_number(value: object) -> None:
    with pytest.raises(ValueError, match="seconds or 'none'"):
        parse_duration(value)


@given(st.floats(min_value=1e-6, max_value=1e12))
def test_parse_duration_reads_back_any_positive_number_as_text(seconds: float) -> None:
    assert parse_duration(repr(seconds)) == seconds


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (1024, 1024),
        ("1024", 1024),
        ("64k", 64 * 1024),
        ("64K", 64 * 1024),
        ("16m", 16 * 1024**2),
        (" 16M ", 16 * 1024**2),
        ("1g", 1024**3),
        ("1.5k", 1536),
        ("0.5m", 512 * 1024),
        ("1e3", 1000),
    ],
)
def test_parse_size_reads_bytes_and_suffixes(value: object, expected: int) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", [None, "none", "NONE", "never", ""])
def test_parse_size_none_means_no_limit(value: object) -> None:
    assert parse_size(value) is None


@pytest.mark.parametrize(
    "value", [-1, "-1", "-2k", "abc", "k", "16mb", "16 MiB", True, "nan", "inf", "1e400"]
)
def test_parse_size_refuses_what_is_not_a_size(value: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(value)


@given(st.integers(min_value=0, max_value=2**53), st.sampled_from(["", "k", "m", "g"]))
def test_parse_size_reads_back_any_count_with_any_suffix(count: int, suffix: str) -> None:
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[suffix]
    if suffix and count > 2**40:
        return  # beyond float precision once multiplied; nobody writes 2**40 g
    assert parse_size(f"{count}{suffix}") == count * factor


# -- the take / finish protocol ------------------------------------------------


def options(**values: Any) -> Options:
    return Options(values, source="memory:// (memory://)")


def test_take_converts_and_removes_the_value() -> None:
    opts = options(expires="10", ssl="yes")
    assert "expires" in opts
    assert opts.take("expires", parse_duration, None) == 10.0
    assert "expires" not in opts
    assert opts.remaining() == {"ssl": "yes"}


def test_take_returns_the_default_when_absent() -> None:
    sentinel = object()
    assert options().take("clock", lambda v: v, sentinel) is sentinel


def test_a_value_that_does_not_convert_names_the_option_and_the_source() -> None:
    opts = options(expires="soon")
    with pytest.raises(ConfigurationError, match=r"option expires='soon' for memory://") as info:
        opts.take("expires", parse_duration, None)
    assert "seconds or 'none'" in str(info.value)
    assert not isinstance(info.value, UnknownOptionError)


def test_finish_lists_the_unknown_and_every_accepted_option() -> None:
    opts = options(expires="10", colour="blue", bogus="1")
    opts.take("expires", parse_duration, None)
    opts.take("codec", str, "json")
    with pytest.raises(UnknownOptionError) as info:
        opts.finish(also_known=["prefix"])
    message = str(info.value)
    assert "unknown option(s) bogus, colour for memory://" in message
    assert "accepted: codec, expires, prefix" in message


def test_finish_passes_when_everything_was_taken() -> None:
    opts = options(expires="10")
    opts.take("expires", parse_duration, None)
    opts.finish()


def test_finish_with_nothing_accepted_says_so() -> None:
    with pytest.raises(UnknownOptionError, match="accepted: none"):
        options(x=1).finish()
