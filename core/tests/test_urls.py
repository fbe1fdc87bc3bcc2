"""Backend URLs parse as documented, and no password ever shows in a repr, str or error."""

from __future__ import annotations

import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st
from resultstore import ConfigurationError, InvalidURLError, UnknownSchemeError, connect
from resultstore.concepts.urls import BackendURL, parse_url, redact

# A recognisable prefix, so "the password is not in the text" cannot pass or
# fail by accident because a short password happens to be part of a host name.
SECRET = "Zq7x"
passwords = st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), max_size=20).map(
    lambda tail: SECRET + tail
)


def shown(url: BackendURL) -> list[str]:
    return [str(url), repr(url), url.redacted()]


def test_a_full_url_is_split_into_its_parts() -> None:
    url = parse_url("redis://alice:pw@cache.local:6380/2?socket_timeout=5&ssl=true")
    assert url.scheme == "redis"
    assert (url.host, url.port) == ("cache.local", 6380)
    assert (url.username, url.password) == ("alice", "pw")
    assert url.path == "/2"
    assert url.query == {"socket_timeout": "5", "ssl": "true"}
    assert url.hosts == (("cache.local", 6380),)
    assert url.raw == "redis://alice:pw@cache.local:6380/2?socket_timeout=5&ssl=true"


def test_percent_encoded_credentials_are_decoded() -> None:
    url = parse_url("redis://us%40er:p%40ss%3Aw%2Frd@h/0")
    assert (url.username, url.password) == ("us@er", "p@ss:w/rd")


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("sqlite:///relative.db", "/relative.db"),
        ("sqlite:////abs/path/results.db", "//abs/path/results.db"),
        ("memory://", ""),
    ],
)
def test_sqlalchemy_style_paths(raw: str, path: str) -> None:
    url = parse_url(raw)
    assert url.path == path
    assert url.host is None


def test_compound_schemes_and_case() -> None:
    assert parse_url("redis+sentinel://h1:26379,h2:26380/mymaster").scheme == "redis+sentinel"
    assert parse_url("REDIS://host").scheme == "redis"


def test_multi_host_urls_keep_every_host() -> None:
    url = parse_url("redis+sentinel://:pw@h1:26379,h2,[::1]:26381/mymaster")
    assert url.hosts == (("h1", 26379), ("h2", None), ("::1", 26381))
    assert url.host is None
    assert url.password == "pw"


@given(password=passwords, user=st.sampled_from(["", "alice", "a.b-c"]))
def test_the_password_never_shows(password: str, user: str) -> None:
    quoted = urllib.parse.quote(password, safe="")
    url = parse_url(f"redis://{user}:{quoted}@cache.local:6379/0?socket_timeout=5")
    assert url.password == password
    for text in shown(url):
        assert SECRET not in text
        assert "***" in text
        assert "cache.local:6379/0" in text


@given(
    password=st.text(
        st.characters(codec="utf-8", exclude_categories=["Cc", "Z"], exclude_characters="/?#"),
        max_size=20,
    ).map(lambda tail: SECRET + tail),
    user=st.sampled_from(["", "alice"]),
)
def test_an_unencoded_password_is_hidden_whole(password: str, user: str) -> None:
    # Not valid URL syntax, but what people paste (whitespace would end the URL in text).
    assert SECRET not in redact(f"redis://{user}:{password}@cache.local:6379/0")
    assert SECRET not in redact(f"{user}:{password}@cache.local:6379/0")


@pytest.mark.parametrize(
    "raw",
    [
        "redis://u:p@ss@cache.local/0",  # an unencoded '@' in the password
        "redis://u:p:ss@cache.local/0",
        "redis://:p@ss@h1:26379,h2:26380/0",
        "redis://u:p?ss@cache.local/0",  # an unencoded '?' ends the netloc early
    ],
)
def test_unencoded_characters_in_a_password_do_not_leak_part_of_it(raw: str) -> None:
    assert "ss" not in redact(raw).replace("cache.local", "")


@pytest.mark.parametrize("name", ["password", "passwd", "secret", "token", "ssl_keyfile_password"])
def test_secret_query_values_are_hidden(name: str) -> None:
    url = parse_url(f"redis://h/0?{name}=hunter2&socket_timeout=5")
    assert url.query[name] == "hunter2"
    for text in shown(url):
        assert "hunter2" not in text
        assert f"{name}=***" in text
        assert "socket_timeout=5" in text


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "localhost",
        "redis:/host",
        "redis:host:6379",
        "admin:hunter2@redis-host:6379/0",  # forgot the scheme, kept the password
    ],
)
def test_urls_without_a_scheme_are_refused_with_an_example(raw: str) -> None:
    with pytest.raises(InvalidURLError, match=r"expected SCHEME://.*memory://") as info:
        parse_url(raw)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("raw", ["1redis://h", "re dis://h", "red_is://h", "+x://h", "://h"])
def test_invalid_schemes_are_refused(raw: str) -> None:
    with pytest.raises(InvalidURLError, match="scheme"):
        parse_url(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "redis://u:hunter2@h:99999/0",
        "redis://u:hunter2@h:port/0",
        "redis://u:hunter2@h:-1/0",
        "redis://u:hunter2@h1:26379,h2:x/0",
        "redis+sentinel://u:hunter2@h1,:26379/0",
    ],
)
def test_bad_ports_and_hosts_are_refused_without_the_password(raw: str) -> None:
    with pytest.raises(InvalidURLError, match="cannot parse backend URL") as info:
        parse_url(raw)
    assert "hunter2" not in str(info.value)
    assert "***" in str(info.value)


def test_an_option_given_twice_is_refused() -> None:
    with pytest.raises(InvalidURLError, match=r"option 'ssl' is given twice"):
        parse_url("redis://h/0?ssl=true&ssl=false")


def test_invalid_url_error_is_a_configuration_error() -> None:
    assert issubclass(InvalidURLError, ConfigurationError)


def test_unknown_scheme_errors_do_not_show_the_password() -> None:
    with pytest.raises(UnknownSchemeError) as info:
        connect("nosuchstore://alice:hunter2@db.local/0?token=t0k3n")
    assert "hunter2" not in str(info.value)
    assert "t0k3n" not in str(info.value)


def test_option_errors_do_not_show_the_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        connect("memory://alice:hunter2@shared-urls-test?bogus=1&token=t0k3n")
    message = str(info.value)
    assert "bogus" in message
    assert "hunter2" not in message
    assert "t0k3n" not in message
    with pytest.raises(ConfigurationError) as bad_value:
        connect("memory://alice:hunter2@shared-urls-test?expires=soon")
    assert "expires" in str(bad_value.value)
    assert "hunter2" not in str(bad_value.value)


def test_a_store_shows_its_url_without_the_password() -> None:
    with connect("memory://alice:hunter2@shared-urls-test") as store:
        assert "hunter2" not in repr(store)
        assert "hunter2" not in str(store.url)
        assert store.url.password == "hunter2"
