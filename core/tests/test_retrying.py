"""The shared retry helper: what is retried, what bounds it, what it raises."""

from __future__ import annotations

import asyncio
import copy
import time

import pytest
from resultstore import BackendUnavailableError, ConfigurationError, ResultTimeoutError, Retry
from resultstore.plugin.retrying import Closed, deadline, scrub, time_left

SECRET = "s3cr%t/pw"


class Flaky:
    """Fails ``failures`` times with ConnectionError, then returns ``value``."""

    def __init__(self, failures: int, value: object = "ok") -> None:
        self.failures = failures
        self.value = value
        self.calls = 0
        self.left: list[float | None] = []

    def __call__(self) -> object:
        self.calls += 1
        self.left.append(time_left())
        if self.calls <= self.failures:
            raise ConnectionError(f"refused (password {SECRET})")
        return self.value


def _retry(total: float = 5.0, **kwargs: object) -> Retry:
    return Retry(
        "Thing",
        server="thing://127.0.0.1:1",
        total=total,
        retry_on=ConnectionError,
        secret=SECRET,
        base=0.001,
        cap=0.01,
        **kwargs,  # type: ignore[arg-type]  # the few keyword options under test
    )


def test_transient_errors_are_tried_again_until_the_call_works() -> None:
    retry = _retry()
    call = Flaky(3)
    assert retry(call) == "ok"
    assert call.calls == 4
    assert retry.retries == 3
    # The first try runs under the client's own timeouts; later ones with the time left.
    assert call.left[0] is None
    assert all(left is not None and 0 < left <= 5.0 for left in call.left[1:])


def test_retries_leave_the_global_random_state_alone() -> None:
    # Another thread's retry must not move it under an application's seeded
    # random, nor under a hypothesis draw (HypothesisDeprecationWarning).
    import random

    random.seed(18)
    before = random.getstate()
    retry = _retry()
    assert retry(Flaky(3)) == "ok"
    assert retry.retries == 3
    assert random.getstate() == before


def test_total_bounds_the_call_and_the_error_names_the_server_not_the_secret() -> None:
    retry = _retry(total=0.3)
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as info:
        retry(Flaky(10**9))
    assert 0.25 < time.monotonic() - started < 2.0
    message = str(info.value)
    assert "Thing at thing://127.0.0.1:1 did not answer" in message
    assert "retry_total=0.3" in message
    assert SECRET not in message
    assert "s3cr%25t%2Fpw" not in message
    assert info.value.__cause__ is None  # the raw error held the secret


def test_the_callers_deadline_ends_it_first_with_a_timeout_error() -> None:
    retry = _retry(total=30)
    started = time.monotonic()
    with deadline(time.monotonic() + 0.3), pytest.raises(ResultTimeoutError) as info:
        retry(Flaky(10**9))
    assert time.monotonic() - started < 2.0
    assert "within the caller's timeout" in str(info.value)
    assert time_left() is None  # the deadline ended with the block


def test_nested_deadlines_keep_the_earliest() -> None:
    now = time.monotonic()
    with deadline(now + 10), deadline(now + 1), deadline(now + 5):
        left = time_left()
        assert left is not None
        assert left <= 1
    with deadline(None):
        assert time_left() is None


def test_errors_that_are_not_transient_pass_through_at_once() -> None:
    retry = _retry()
    calls = 0

    def broken() -> None:
        nonlocal calls
        calls += 1
        raise KeyError("bug")

    with pytest.raises(KeyError):
        retry(broken)
    assert calls == 1


def test_translate_replaces_an_error() -> None:
    def refused(exc: BaseException) -> BaseException | None:
        return ConfigurationError("bad password") if "password" in str(exc) else None

    retry = _retry(translate=refused)
    with pytest.raises(ConfigurationError, match="bad password"):
        retry(Flaky(1))


def test_retry_on_takes_a_predicate() -> None:
    retry = Retry("Thing", server="x", total=1, retry_on=lambda exc: "again" in str(exc))
    state = {"n": 0}

    def call() -> int:
        state["n"] += 1
        if state["n"] == 1:
            raise RuntimeError("try again")
        return state["n"]

    assert retry(call) == 2


def test_the_asyncio_twin_cancels_a_try_that_outlasts_the_bound() -> None:
    retry = _retry(total=0.3)

    async def hangs() -> None:
        await asyncio.sleep(60)

    async def main() -> None:
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError):
            await retry.run_async(hangs)
        assert time.monotonic() - started < 2.0
        with deadline(time.monotonic() + 0.2), pytest.raises(ResultTimeoutError):
            await _retry(total=30).run_async(hangs)

    asyncio.run(main())


def test_the_asyncio_twin_retries_too() -> None:
    retry = _retry()
    flaky = Flaky(2)

    async def call() -> object:
        return flaky()

    assert asyncio.run(retry.run_async(call)) == "ok"
    assert retry.retries == 2


def test_a_closed_retry_refuses_every_call() -> None:
    retry = _retry()
    retry.close()
    with pytest.raises(BackendUnavailableError, match="was closed; connect"):
        retry(Flaky(0))
    with pytest.raises(BackendUnavailableError, match="was closed"):
        retry.check_open()


def test_total_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Retry("Thing", server="x", total=0, retry_on=ConnectionError)


def test_closed_stand_in_keeps_what_it_was_given() -> None:
    closed = Closed("this thing", capabilities=frozenset({"x"}))
    assert closed.capabilities == frozenset({"x"})
    with pytest.raises(BackendUnavailableError, match="this thing was closed"):
        _ = closed.get
    assert copy.copy(closed) is not None  # dunder probes stay AttributeErrors


def test_scrub_removes_every_spelling_of_the_secret_and_url_passwords() -> None:
    text = f"{SECRET} s3cr%25t%2Fpw s3cr%25t%2Fpw redis://u:pw@h/0"
    cleaned = scrub(text, SECRET)
    assert SECRET not in cleaned
    assert "%25t" not in cleaned
    assert ":pw@" not in cleaned
