"""What every contract test class shares: the knobs an implementer sets, and helpers.

A backend's contract test subclasses :class:`resultstore_contract.BackendContract`
(or single groups of it) and sets the class attributes of :class:`ContractBase`,
or overrides the fixtures of the same names that :mod:`resultstore_contract.plugin`
registers.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import pytest
from hypothesis import HealthCheck, settings
from resultstore import Capability, ResultStore

if TYPE_CHECKING:
    from resultstore import AsyncResultStore

__all__ = [
    "ContractBase",
    "DeadServer",
    "Expiring",
    "IdFactory",
    "ManualClock",
    "StoreFactory",
    "bounded",
    "contract_settings",
    "requires",
    "wait_until",
]

#: builds one more client of the store under test; keywords override options.
StoreFactory = Callable[..., ResultStore]


def requires(*capabilities: Capability) -> pytest.MarkDecorator:
    """Mark a test as needing ``capabilities``; it is skipped, naming them, when the
    backend does not declare them. Same as ``@pytest.mark.requires(...)``."""
    return pytest.mark.requires(*capabilities)


def contract_settings(**overrides: Any) -> settings:
    """Hypothesis settings for the suite: the loaded profile, without deadlines.

    A store does I/O, so per-example deadlines would only measure the
    machine; the profile (``HYPOTHESIS_PROFILE``) still decides how many
    examples run and whether they are derandomized.
    """
    checks = list(settings().suppress_health_check)
    checks += [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
    return settings(deadline=None, suppress_health_check=checks, **overrides)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait (a bounded time) for ``condition``; fail naming ``what`` if it never holds.

    For synchronising with background threads, never for asserting speed:
    the bound is generous and only stops a broken backend from hanging.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout} s")
        time.sleep(0.005)


class ManualClock:
    """A clock that moves only when told: pass it as the backend's ``clock=`` option.

    It starts at the real time so that anything the store stamps with the
    wall clock (``date_done``) stays plausible.
    """

    def __init__(self, start: float | None = None) -> None:
        self._lock = threading.Lock()
        self._now = time.time() if start is None else start

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._now += seconds

    def __repr__(self) -> str:
        return f"ManualClock({self():.3f})"


@attrs.frozen
class DeadServer:
    """A store of the backend under test whose server is (or is about to be) stopped.

    The dead-server checks connect to ``url`` with ``options``. With ``stop``,
    ``url`` reaches a live server of this test's own until ``stop()`` stops it
    (the checks write first, then stop it: clients that were connected meet
    the dead server too); without, ``url`` points at a stopped server or a
    closed port. Every call that takes no timeout of its own must fail within
    ``within`` seconds (the bound the backend's ``options`` set, such as a
    ``retry_total``); a call with a timeout, within that timeout.
    """

    url: str
    stop: Callable[[], None] | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    within: float = 5.0


def bounded(call: Callable[[], Any], within: float, what: str) -> tuple[Any, float]:
    """Run ``call`` in a thread; return what it returned or raised, and how long it took.

    A call still running after ``within`` seconds (and a second's grace) fails the
    test naming ``what``: the thread is left behind (daemon), the test does not hang.
    """
    box: list[Any] = []

    def run() -> None:
        start = time.monotonic()
        try:
            value: Any = call()
        except BaseException as exc:
            value = exc
        box.append((value, time.monotonic() - start))

    thread = threading.Thread(target=run, daemon=True, name=f"contract-bounded-{what}")
    thread.start()
    thread.join(within + 1.0)
    if not box:
        raise AssertionError(f"{what} was still running after {within + 1.0:g} s")
    value, took = box[0]
    return value, float(took)


class ContractBase:
    """The knobs of a backend's contract test, as class attributes.

    - ``url``: the backend URL. ``{tmp_path}`` is replaced by the test's
      temporary directory and ``{unique}`` by a token unique to the test,
      so that every test gets a fresh store (``sqlite:///{tmp_path}/r.db``,
      ``memory://{unique}``). Two connections to the URL must reach the same
      store. For a server started by a fixture, override the
      ``resultstore_url`` fixture instead.
    - ``store_options``: keyword options passed to ``connect()``.
    - ``plugins``: extra plugin objects passed to ``connect()``. Spawned
      processes get them too: modules are re-imported there by name, other
      objects must pickle (a class defined at module level does).
    - ``clock_option``: the name of the option through which the backend
      takes a clock (a callable returning seconds); None to use the one the
      backend declares in its ``BackendSpec``; with neither, expiry is tested
      with short real TTLs.
    - ``max_payload_size``: the largest encoded payload (bytes) the backend
      keeps, if it keeps less than the ``max_result_size`` it is connected
      with; the large-payload checks stop there. None: no limit of its own.
    - ``dead_url``: the URL of the backend at a stopped server or a closed
      port, for the dead-server checks (or override the ``dead_server``
      fixture, returning a :class:`DeadServer`); None skips them.
    """

    url: ClassVar[str | None] = None
    store_options: ClassVar[Mapping[str, Any]] = {}
    plugins: ClassVar[Sequence[object]] = ()
    clock_option: ClassVar[str | None] = None
    max_payload_size: ClassVar[int | None] = None
    dead_url: ClassVar[str | None] = None

    @pytest.fixture
    def connect_store(
        self,
        resultstore_url: str,
        store_options: Mapping[str, Any],
        store_plugins: Sequence[object],
    ) -> Iterator[StoreFactory]:
        """A factory of clients of the store under test, all closed after the test."""
        opened: list[ResultStore] = []

        def connect(**overrides: Any) -> ResultStore:
            import resultstore

            client = resultstore.connect(
                resultstore_url, plugins=store_plugins, **{**store_options, **overrides}
            )
            opened.append(client)
            return client

        yield connect
        for client in reversed(opened):
            client.close()

    @pytest.fixture
    def connect_async_store(
        self,
        resultstore_url: str,
        store_options: Mapping[str, Any],
        store_plugins: Sequence[object],
    ) -> Callable[[], Awaitable[AsyncResultStore]]:
        """An asyncio client of the same store as the ``store`` fixture (call in a loop)."""

        async def connect() -> AsyncResultStore:
            from resultstore import connect_async

            return await connect_async(resultstore_url, plugins=store_plugins, **store_options)

        return connect

    @pytest.fixture
    def store(self, connect_store: StoreFactory) -> ResultStore:
        """The store under test, with the options the implementer gave."""
        return connect_store()

    @pytest.fixture
    def backend_capabilities(self, store: ResultStore) -> frozenset[Capability]:
        return store.capabilities

    @pytest.fixture
    def new_id(self) -> IdFactory:
        """Ids unique to this test, so that tests can share a store."""
        return IdFactory()

    @pytest.fixture
    def connect_expiring(
        self, connect_store: StoreFactory, clock_option: str | None
    ) -> Callable[[float], Expiring]:
        """Clients whose results expire after the given seconds, with a way to let time pass."""

        def connect(expires: float) -> Expiring:
            if clock_option is None:
                return Expiring(connect_store(expires=expires), None)
            clock = ManualClock()
            return Expiring(connect_store(expires=expires, **{clock_option: clock}), clock)

        return connect


class IdFactory:
    """Makes ids no other test uses: ``label-<token>-<n>``."""

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex[:12]
        self._counter = itertools.count()

    def __call__(self, label: str = "task") -> str:
        return f"{label}-{self.token}-{next(self._counter)}"


@attrs.frozen
class Expiring:
    """A client with a short expiry, and the clock it runs on (None = real time)."""

    store: ResultStore
    clock: ManualClock | None

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: on the manual clock, else for real."""
        if self.clock is not None:
            self.clock.advance(seconds)
        else:
            time.sleep(seconds)
