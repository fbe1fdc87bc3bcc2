"""Bounded retries for network backends, and the caller's deadline they respect.

A backend wraps each call to its server in one :class:`Retry`: connection
errors are tried again after a pause (exponential backoff with full
jitter), until the backend's own ``retry_total`` runs out *or* the caller's
deadline does, whichever comes first. Waits with a timeout
(``AsyncResult.get(timeout=...)``, ``GroupResult.join``, their asyncio
twins) set that deadline with :func:`deadline`; a backend reads what is
left with :func:`time_left` to clip its own connect and socket timeouts, so
a single try cannot outlast the bound either. After a backend's
``close()``, :meth:`Retry.close` (or a :class:`Closed` stand-in for its
client) makes every later call raise BackendUnavailableError.

Example, in a backend's ``__init__`` and one of its calls::

    from resultstore import Retry

    self.retry = Retry(
        "Memcached",
        server=config.url.redacted(),
        total=retry_total,
        retry_on=(ConnectionError, TimeoutError),
        secret=config.url.password,
    )

    def get(self, task_id: str) -> TaskResult | None:
        raw = self.retry(lambda: self.client.get(self.key(task_id)))
        ...

    async def get(self, task_id: str) -> TaskResult | None:  # the asyncio twin
        raw = await self.retry.run_async(lambda: self.aclient.get(self.key(task_id)))
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import random
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NoReturn, TypeVar, cast

from resultstore.concepts.errors import BackendUnavailableError, ResultTimeoutError
from resultstore.concepts.urls import redact

__all__ = ["Closed", "Retry", "RetryOn", "deadline", "scrub", "time_left"]

#: jitter for retries: a generator of our own, so that the application's (and
#: hypothesis's) global ``random`` state is never read or moved by a retry;
#: reseeded in a forked child, as the global one is, so forks do not jitter alike.
_JITTER = random.Random()
os.register_at_fork(after_in_child=_JITTER.seed)

T = TypeVar("T")
#: what :class:`Retry` tries again after: exception classes, or a predicate.
RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]

#: the ``time.monotonic()`` instant by which the running call must be over, if any.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "resultstore_deadline", default=None
)
#: the shortest time a try is given, even past a deadline (one quick attempt).
_MIN_TRY = 0.01
_DETAIL_LIMIT = 300


def time_left() -> float | None:
    """Seconds until the caller's deadline or the running retry's end, or None.

    None means nothing bounds the call beyond the backend's own timeouts
    (the first try of a call made without a deadline). Never below a few
    milliseconds, so it can be passed to a socket as its timeout as is.
    """
    at = _DEADLINE.get()
    if at is None:
        return None
    return max(_MIN_TRY, at - time.monotonic())


@contextlib.contextmanager
def deadline(at: float | None) -> Iterator[None]:
    """Bound every retried call made inside the block by ``at`` (``time.monotonic()``).

    None changes nothing; nested deadlines keep the earliest. When a call
    gives up because this deadline passed, it raises
    :class:`~resultstore.ResultTimeoutError` (the caller's time ran
    out), not :class:`~resultstore.BackendUnavailableError`.
    """
    if at is None:
        yield
        return
    current = _DEADLINE.get()
    token = _DEADLINE.set(at if current is None else min(at, current))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def scrub(text: str, secret: str | None) -> str:
    """``text`` without ``secret`` (in any spelling a client library may echo) or URL passwords."""
    if secret:
        for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}:
            text = text.replace(form, "***")
    return redact(text)


class Retry:
    """Runs a call again after transient errors, bounded by ``total`` seconds
    and by the caller's :func:`deadline`.

    ``retry_on`` says which errors are transient: exception classes, or a
    predicate. ``translate`` may turn an error into the one to raise instead
    (a refused password into a ``ConfigurationError``), or return None to
    let the usual rule apply. Any other error is raised as it is. When the
    time is up the call raises :class:`~resultstore.BackendUnavailableError`
    naming ``system`` at ``server`` (give the redacted address) and the last
    error, with ``secret`` scrubbed from every message; when the caller's
    deadline ended it, :class:`~resultstore.ResultTimeoutError`. After
    :meth:`close`, every call raises BackendUnavailableError at once.

    The first try runs without a bound of its own (the client's timeouts
    apply) unless the caller set a deadline; later tries run with
    :func:`time_left` set, and the asyncio twin cancels a try that outlasts it.
    """

    def __init__(
        self,
        system: str,
        *,
        server: str,
        total: float,
        retry_on: RetryOn,
        translate: Callable[[BaseException], BaseException | None] | None = None,
        secret: str | None = None,
        base: float = 0.025,
        cap: float = 1.0,
    ) -> None:
        if not total > 0:
            raise ValueError(f"total must be a positive number of seconds, got {total!r}")
        self.system = system
        self.server = server
        self.total = total
        self._retryable = _predicate(retry_on)
        self._translate = translate
        self.secret = secret
        self.base = base
        self.cap = cap
        #: how many times a call was tried again (for tests and metrics).
        self.retries = 0
        #: set by :meth:`close`: every later call raises BackendUnavailableError.
        self.closed = False

    def __repr__(self) -> str:
        return f"<Retry {self.system} at {self.server} total={self.total:g}s>"

    def close(self) -> None:
        """Refuse every later call: call it from the backend's ``close()``, so a
        closed backend raises the documented error instead of quietly reconnecting."""
        self.closed = True

    def check_open(self) -> None:
        """Raise BackendUnavailableError if :meth:`close` was called (for calls
        that do not go through the retry, such as opening a listener)."""
        if self.closed:
            raise BackendUnavailableError(
                f"this backend for {self.system} at {self.server} was closed; "
                f"connect() again to use it"
            )

    def _pause(self, exc: Exception, attempt: int, started: float, caller: float | None) -> float:
        """The pause before the next try, or raise the error that ends the call."""
        if self._translate is not None:
            final = self._translate(exc)
            if final is not None and final is not exc:
                raise final from None
        if not self._retryable(exc):
            raise exc
        left = _earliest(started + self.total, caller) - time.monotonic()
        if left <= _MIN_TRY:
            self._give_up(exc, started, caller)
        self.retries += 1
        # The last pause ends just before the bound, for one more quick try.
        return min(_JITTER.uniform(0, min(self.cap, self.base * 2**attempt)), left - _MIN_TRY)

    def _give_up(self, exc: BaseException, started: float, caller: float | None) -> NoReturn:
        now = time.monotonic()
        own = started + self.total
        detail = scrub(f"{type(exc).__name__}: {exc}", self.secret)
        if len(detail) > _DETAIL_LIMIT:
            detail = detail[:_DETAIL_LIMIT] + "..."
        waited = now - started
        if caller is not None and caller <= own:
            raise ResultTimeoutError(
                f"{self.system} at {self.server} did not answer within the caller's timeout "
                f"(gave up after {waited:.3g} s: {detail}); check that the server is running "
                f"and reachable, or wait longer"
            ) from None
        raise BackendUnavailableError(
            f"{self.system} at {self.server} did not answer for {waited:.3g} s "
            f"(retry_total={self.total:g}; {detail}); check that the server is running and "
            f"reachable, or raise retry_total"
        ) from None

    def __call__(self, call: Callable[[], T]) -> T:
        """``call()``, tried again after transient errors until the time is up."""
        self.check_open()
        started = time.monotonic()
        caller = _DEADLINE.get()
        try:
            return call()
        except Exception as exc:
            time.sleep(self._pause(exc, 0, started, caller))
        token = _DEADLINE.set(_earliest(started + self.total, caller))
        try:
            attempt = 1
            while True:
                try:
                    return call()
                except Exception as exc:
                    time.sleep(self._pause(exc, attempt, started, caller))
                    attempt += 1
        finally:
            _DEADLINE.reset(token)

    async def run_async(self, call: Callable[[], Awaitable[T]]) -> T:
        """The same policy for a coroutine function (an asyncio twin); every try
        is cancelled when the time is up."""
        self.check_open()
        started = time.monotonic()
        caller = _DEADLINE.get()
        limit = _earliest(started + self.total, caller)
        token = _DEADLINE.set(limit)
        try:
            attempt = 0
            while True:
                bound = asyncio.timeout_at(_loop_time_of(limit))
                try:
                    async with bound:
                        return await call()
                except Exception as exc:
                    if bound.expired():
                        self._give_up(exc, started, caller)
                    await asyncio.sleep(self._pause(exc, attempt, started, caller))
                    attempt += 1
        finally:
            _DEADLINE.reset(token)


class Closed:
    """A stand-in for a closed backend or client: the attributes given are kept
    (a store's ``capabilities``), any other raises BackendUnavailableError.

    Put it where the closed object was (``self.client = Closed("this memcached://
    backend")``) so every later call fails with the documented error.
    """

    def __init__(self, what: str, **kept: Any) -> None:
        self.__dict__.update(kept)
        self._what = what

    def __repr__(self) -> str:
        return f"<closed: {self._what}>"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)  # copy, pickle and friends probe for these
        raise BackendUnavailableError(f"{self._what} was closed; connect() again to use it")


def _earliest(own: float, caller: float | None) -> float:
    return own if caller is None else min(own, caller)


def _loop_time_of(at: float) -> float:
    """``at`` (``time.monotonic()``) on the running loop's clock, a short try at least."""
    loop = asyncio.get_running_loop()
    return loop.time() + max(_MIN_TRY, at - time.monotonic())


def _predicate(retry_on: RetryOn) -> Callable[[BaseException], bool]:
    if isinstance(retry_on, tuple):
        types = retry_on
    elif isinstance(retry_on, type) and issubclass(retry_on, BaseException):
        types = (retry_on,)
    else:
        # mypy cannot narrow a class away from a callable: what is left is the predicate.
        return cast("Callable[[BaseException], bool]", retry_on)
    return lambda exc: isinstance(exc, types)
