"""What every command shares: the state a command gets, exit statuses, ``fail``.

It sits below :mod:`resultstore.cli.commands` and :mod:`resultstore.cli.demo` (which the
CLI loads, and which workers import without it) so that neither imports the
other's internals; ``resultstore.cli.commands`` re-exports every public name here.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any, NoReturn

import attrs
import click

from resultstore.api.store import URL_ENV, ResultStore, connect, default_url
from resultstore.concepts.urls import parse_url, redact
from resultstore.plugin.discovery import find_backend
from resultstore.plugin.hooks import build_hooks

__all__ = ["EXIT_NOT_FOUND", "EXIT_OK", "EXIT_STORE_ERROR", "CliState", "fail"]

#: exit status when the command did what it was asked.
EXIT_OK = 0
#: exit status when the thing asked for does not exist (an unknown task id), or
#: when ``check`` found a failing check.
EXIT_NOT_FOUND = 1
#: exit status when the command could not do its work: a resultstore error, a
#: usage error, a store that does not exist or does not connect, a missing piece.
EXIT_STORE_ERROR = 2

_URL_IN_TEXT = re.compile(r"[a-z][a-z0-9+.\-]*://[^\s'\"<>]+", re.IGNORECASE)
# A password this short would blank out ordinary words of the message; the
# URL-shaped redaction above still hides it wherever it appears inside a URL.
_MIN_SCRUBBED_PASSWORD = 4


@attrs.frozen
class CliState:
    """What every command gets from the group: the store URL and extra plugins.

    ``plugins`` are registered on top of the installed ones; a program that
    embeds the CLI passes ``obj=CliState(plugins=...)`` to :data:`main`.
    """

    url: str | None = None
    plugins: tuple[object, ...] = ()

    @property
    def resolved_url(self) -> str:
        return self.url if self.url is not None else default_url()

    @property
    def redacted_url(self) -> str:
        """The URL for messages: never with its password."""
        return redact(self.resolved_url)

    def connect(self, **options: Any) -> ResultStore:
        """Open the store; use it as a context manager so it is closed."""
        return connect(self.resolved_url, plugins=self.plugins, **options)

    def connect_existing(self, **options: Any) -> ResultStore:
        """Open the store for a reading or tidying command: never create one.

        A backend whose ``BackendSpec`` has a ``missing_store`` probe (sqlite://)
        is asked first; a store that is not there is an ``Error:`` naming it
        (exit status 2), not a new, empty store.
        """
        url = self.resolved_url
        spec = find_backend(parse_url(url).scheme, build_hooks(self.plugins))
        missing = spec.missing(url)
        if missing is not None:
            fail(
                f"no store at {self.redacted_url}: {self.scrub(missing)}. Reading commands "
                f"never create a store: check the URL (--url or ${URL_ENV})",
                code=EXIT_STORE_ERROR,
            )
        return self.connect(**options)

    def scrub(self, message: str) -> str:
        """``message`` on one line, with every URL redacted and the password hidden."""
        text = " ".join(message.split())
        text = _URL_IN_TEXT.sub(lambda match: redact(match.group(0)), text)
        password = _password_of(self.resolved_url)
        if password and len(password) >= _MIN_SCRUBBED_PASSWORD:
            # urlsplit leaves the password percent-encoded; drivers may echo either form.
            for form in {password, urllib.parse.unquote(password)}:
                text = text.replace(form, "***")
        return text


def _password_of(url: str) -> str | None:
    try:
        return urllib.parse.urlsplit(url).password
    except ValueError:
        return None


def fail(message: str, code: int = EXIT_NOT_FOUND) -> NoReturn:
    """Print ``Error: message`` on stderr and exit with ``code``."""
    click.echo(f"Error: {message}", err=True)
    raise click.exceptions.Exit(code)
