"""Backend URLs: parsing, and showing them without their password.

Schemes follow SQLAlchemy's ``backend+driver://`` habit for compound names
(``redis+sentinel://``). ``sqlite:///relative.db`` and
``sqlite:////absolute/path.db`` follow SQLAlchemy too.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import attrs

from resultstore.concepts.errors import InvalidURLError

__all__ = ["BackendURL", "parse_url", "redact"]

_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*$")
# The password runs to the last '@' of the netloc (an unencoded '@' in it is
# common); when '/', '?' or '#' cut the netloc short, to the first '@' at all.
_PASSWORD = r"(?:[^/?#\s]*|[^@\s]*?)"
_PASSWORD_IN_URL = re.compile(
    rf"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]*:){_PASSWORD}(?P<tail>@)", re.I
)
# "user:password@host" with the scheme forgotten, as it shows in error messages.
_PASSWORD_NO_SCHEME = re.compile(rf"^(?P<head>[^:/@\s]*:){_PASSWORD}(?P<tail>@)")
_SECRET_OPTIONS = frozenset(
    {"password", "passwd", "secret", "token", "key", "ssl_keyfile_password"}
)


@attrs.frozen(repr=False)
class BackendURL:
    """A parsed backend URL. Its ``repr`` and ``str`` never show the password."""

    scheme: str
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = None
    path: str = ""
    query: dict[str, str] = attrs.field(factory=dict)
    #: every ``host[:port]`` of a multi-host URL (``h1:26379,h2:26380``), else the one.
    hosts: tuple[tuple[str, int | None], ...] = ()
    #: the URL as given, for clients that parse it themselves (e.g. pymongo).
    raw: str = ""

    def redacted(self) -> str:
        """The URL with its password (and secret query values) replaced by ``***``."""
        return redact(self.raw) if self.raw else f"{self.scheme}://"

    def __str__(self) -> str:
        return self.redacted()

    def __repr__(self) -> str:
        return f"BackendURL({self.redacted()!r})"


def redact(url: str) -> str:
    """Hide the password and secret-looking query values of ``url``."""
    text = _PASSWORD_IN_URL.sub(r"\g<head>***\g<tail>", url)
    if "://" not in text:
        text = _PASSWORD_NO_SCHEME.sub(r"\g<head>***\g<tail>", text)
    if "?" not in text:
        return text
    base, _, query = text.partition("?")
    parts = []
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        hidden = any(word in name.lower() for word in _SECRET_OPTIONS)
        parts.append(f"{name}={'***' if hidden else value}")
    return f"{base}?{'&'.join(parts)}"


def parse_url(url: str) -> BackendURL:
    """Parse a backend URL, raising :class:`InvalidURLError` with the fix."""
    if not isinstance(url, str) or "://" not in url:
        raise InvalidURLError(
            f"{redact(str(url))!r} is not a backend URL; expected SCHEME://..., "
            f"for example sqlite:///results.db, memory:// or redis://localhost:6379/0"
        )
    scheme = url.split("://", 1)[0].lower()
    if not _SCHEME.match(scheme):
        raise InvalidURLError(
            f"{redact(url)!r} has an invalid scheme {scheme!r}; a scheme is letters, "
            f"digits, '+', '-' or '.', starting with a letter"
        )
    try:
        parts = urllib.parse.urlsplit(url)
        hosts = _hosts(parts.netloc.rpartition("@")[2])
    except ValueError as exc:
        raise InvalidURLError(f"cannot parse backend URL {redact(url)!r}: {exc}") from None
    host, port = hosts[0] if len(hosts) == 1 else (None, None)
    query: dict[str, Any] = {}
    for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if name in query:
            raise InvalidURLError(f"option {name!r} is given twice in {redact(url)!r}")
        query[name] = value
    return BackendURL(
        scheme=scheme,
        host=host,
        port=port,
        username=urllib.parse.unquote(parts.username) if parts.username else None,
        password=urllib.parse.unquote(parts.password) if parts.password is not None else None,
        path=parts.path,
        query=query,
        raw=url,
        hosts=hosts,
    )


def _hosts(netloc: str) -> tuple[tuple[str, int | None], ...]:
    """``host[:port]`` items of a netloc, IPv6 ``[::1]:port`` included, separated by
    ``,`` or by ``;`` (how Celery lists memcached servers)."""
    hosts: list[tuple[str, int | None]] = []
    for item in filter(None, netloc.replace(";", ",").split(",")):
        probe = urllib.parse.urlsplit(f"//{item}")
        port = probe.port  # raises ValueError for a bad port
        if probe.hostname is None:
            raise ValueError(f"missing host in {item!r}")
        hosts.append((probe.hostname, port))
    return tuple(hosts)
