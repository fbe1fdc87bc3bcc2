"""Requests as values, and the one place they are sent, retried and judged.

Every operation of the backend is a *plan*: a generator that yields
:class:`Call` values and receives a :class:`Reply` for each (see
``operations.py``). The sync backend and the asyncio twin run the same plans
through :class:`Runner`, each with its own client adapter (``clients.py``),
so the document logic exists once for both products and both APIs.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any, Protocol, TypeVar

import attrs
from resultstore import BackendUnavailableError, ConfigurationError, ResultStoreError
from resultstore.plugin.retrying import Retry, scrub

from resultstore_elasticsearch.settings import Settings

__all__ = [
    "RETRY_STATUSES",
    "AsyncAdapter",
    "Call",
    "Plan",
    "Reply",
    "Runner",
    "SyncAdapter",
    "Transient",
    "Unreachable",
]

T = TypeVar("T")

#: statuses after which the same request is sent again (after a pause).
RETRY_STATUSES = frozenset({429, 502, 503, 504})


@attrs.frozen
class Call:
    """One HTTP request to the cluster."""

    method: str
    path: str
    params: Mapping[str, str] | None = None
    #: JSON (or NDJSON with ``ndjson``) already encoded.
    body: bytes | None = None
    ndjson: bool = False
    #: error statuses that are answers to this call (404 not found, 409 conflict).
    ok: frozenset[int] = frozenset()


@attrs.frozen
class Reply:
    status: int
    body: Any
    #: the request was sent more than once (an earlier try may have taken effect).
    retried: bool = False


Plan = Generator[Call, Reply, T]


class Unreachable(Exception):
    """The request did not get an HTTP answer (connection refused, reset, timed out)."""


class Transient(Exception):
    """The server answered with a status worth trying again (429, 502, 503, 504)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {_reason(body)}")
        self.status = status


class SyncAdapter(Protocol):
    def perform(self, call: Call) -> tuple[int, Any]:
        """Send ``call``; (status, decoded body) for any HTTP answer, else Unreachable."""
        ...

    def close(self) -> None: ...


class AsyncAdapter(Protocol):
    async def perform(self, call: Call) -> tuple[int, Any]: ...

    async def close(self) -> None: ...


def _reason(body: Any) -> str:
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            cause = error.get("root_cause")
            first = cause[0] if isinstance(cause, list) and cause else error
            if isinstance(first, Mapping):
                return f"{first.get('type', 'error')}: {first.get('reason', '')}"
        if error is not None:
            return str(error)
    text = str(body)
    return text[:300] + ("..." if len(text) > 300 else "")


class Runner:
    """Runs plans against one cluster: retries transient failures within
    ``retry_total``, turns other error answers into clear errors."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        secret = settings.password or settings.api_key
        self.where = f"{settings.product.title} at {settings.server}"
        self.retry = Retry(
            settings.product.title,
            server=settings.server,
            total=settings.retry_total,
            retry_on=(Unreachable, Transient),
            secret=secret,
        )
        self._secret = secret

    def judge(self, call: Call, status: int, body: Any, retried: bool) -> Reply:
        """The reply, or the error that an unexpected status stands for."""
        if status < 300 or status in call.ok:
            return Reply(status, body, retried)
        if status in RETRY_STATUSES:
            raise Transient(status, body)
        reason = scrub(_reason(body), self._secret)
        what = f"{self.where} answered {status} to {call.method} {call.path} ({reason})"
        if status == 401:
            raise ConfigurationError(
                f"{what}; put the right user and password in the URL as "
                f"{self.settings.product.scheme}+https://USER:PASSWORD@host:9200, or pass "
                f"api_key=ID:KEY"
            )
        if status == 403:
            raise ConfigurationError(
                f"{what}; grant the user or API key read, write, create_index and "
                f"delete on the indices {', '.join(self.settings.indices)} (and "
                f"manage_index_templates, or pass create_template=false)"
            )
        if status >= 500:
            raise BackendUnavailableError(what)
        raise ResultStoreError(what)

    def send(self, adapter: SyncAdapter, call: Call) -> Reply:
        tries = 0

        def once() -> Reply:
            nonlocal tries
            tries += 1
            status, body = adapter.perform(call)
            return self.judge(call, status, body, tries > 1)

        return self.retry(once)

    async def send_async(self, adapter: AsyncAdapter, call: Call) -> Reply:
        tries = 0

        async def once() -> Reply:
            nonlocal tries
            tries += 1
            status, body = await adapter.perform(call)
            return self.judge(call, status, body, tries > 1)

        return await self.retry.run_async(once)

    def run(self, adapter: SyncAdapter, plan: Plan[T]) -> T:
        """Drive ``plan`` to its result through ``adapter``."""
        try:
            call = next(plan)
            while True:
                call = plan.send(self.send(adapter, call))
        except StopIteration as stop:
            value: T = stop.value
            return value

    async def run_async(self, adapter: AsyncAdapter, plan: Plan[T]) -> T:
        try:
            call = next(plan)
            while True:
                call = plan.send(await self.send_async(adapter, call))
        except StopIteration as stop:
            value: T = stop.value
            return value
