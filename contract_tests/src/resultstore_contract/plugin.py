"""pytest plugin of the contract suite: fixtures, markers and hypothesis profiles.

Loaded through the ``pytest11`` entry point wherever resultstore-contract is
installed, so it stays light and does nothing to tests that do not use it.
The fixtures here are the ones an implementer may override (in the test
class, the module or a ``conftest.py``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# The throwaway real servers' session fixtures (redis_server, mongodb_server, ...)
# come with the suite, for backends whose tests start a server.
pytest_plugins = ["resultstore_contract.servers"]

__all__ = [
    "PROFILES",
    "PROFILE_ENV",
    "URL_ENV",
    "clock_option",
    "dead_server",
    "declared_clock_option",
    "max_payload_size",
    "plant_payload",
    "resultstore_url",
    "store_options",
    "store_plugins",
]

#: environment variable naming the hypothesis profile (default, ci, nightly).
PROFILE_ENV = "HYPOTHESIS_PROFILE"
#: environment variable with the URL for test classes that set none (``resultstore check``).
URL_ENV = "RESULTSTORE_CONTRACT_URL"

_RELAXED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

#: the profiles this plugin registers, by name. ``default`` stays hypothesis'
#: own (100 examples, randomized): re-registering it would change every other
#: hypothesis test of a project that merely has this plugin installed. The
#: suite drops per-example deadlines itself (see ``contract_settings``).
PROFILES: Mapping[str, settings] = {
    # Reproducible and bounded: the same examples on every run, a whole
    # backend's contract in about a minute.
    "ci": settings(
        derandomize=True,
        max_examples=20,
        stateful_step_count=40,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=_RELAXED,
    ),
    # Long randomized runs that keep what they find in the example database.
    "nightly": settings(
        max_examples=1000,
        stateful_step_count=100,
        deadline=None,
        suppress_health_check=_RELAXED,
    ),
}

_MISSING_URL = (
    "resultstore_contract: the suite does not know how to reach your backend. "
    "Set the url attribute on your test class, for example\n\n"
    "    class TestMyBackend(BackendContract):\n"
    '        url = "mybackend://localhost/{unique}"\n\n'
    "({tmp_path} and {unique} are replaced per test so that each test gets a fresh "
    "store), or override the resultstore_url fixture (it may depend on tmp_path or on "
    "a fixture that starts your server), or pass --resultstore-url / set "
    f"${URL_ENV}."
)


def _register_profiles() -> None:
    for name, profile in PROFILES.items():
        settings.register_profile(name, profile)


_register_profiles()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("resultstore", "resultstore contract suite")
    group.addoption(
        "--resultstore-url",
        dest="resultstore_url",
        default=None,
        help=f"backend URL for contract test classes that set no url (also ${URL_ENV})",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requires(*capabilities): skip the test unless the backend under test declares "
        "every resultstore.plugin.protocols.Capability named",
    )
    name = os.environ.get(PROFILE_ENV)
    if name:
        try:
            settings.load_profile(name)
        except Exception as exc:
            raise pytest.UsageError(
                f"${PROFILE_ENV}={name!r} is not a hypothesis profile ({exc}); "
                f"the contract suite knows default, {', '.join(PROFILES)}"
            ) from None


@pytest.fixture(autouse=True)
def _resultstore_requires(request: pytest.FixtureRequest) -> None:
    """Skip tests marked ``requires(...)`` whose capabilities the backend lacks."""
    markers = list(request.node.iter_markers("requires"))
    if not markers:
        return
    from resultstore import Capability

    # Only Capability arguments are ours: another plugin's ``requires`` marker is left alone.
    needed = [cap for marker in markers for cap in marker.args if isinstance(cap, Capability)]
    if not needed:
        return
    declared: frozenset[Capability] = request.getfixturevalue("backend_capabilities")
    missing = [cap for cap in needed if cap not in declared]
    if missing:
        names = ", ".join(f"Capability.{cap.name}" for cap in missing)
        pytest.skip(f"the backend does not declare {names}")


def _fill(template: str, request: pytest.FixtureRequest) -> str:
    url = template
    if "{tmp_path}" in url:
        url = url.replace("{tmp_path}", str(request.getfixturevalue("tmp_path")))
    if "{unique}" in url:
        url = url.replace("{unique}", f"t{uuid.uuid4().hex[:16]}")
    return url


@pytest.fixture
def resultstore_url(request: pytest.FixtureRequest) -> str:
    """The URL of a fresh store for this test (required: set ``url`` or override this)."""
    template = (
        getattr(request.cls, "url", None)
        or request.config.getoption("resultstore_url", None)
        or os.environ.get(URL_ENV)
    )
    if not template:
        pytest.fail(_MISSING_URL, pytrace=False)
    return _fill(str(template), request)


@pytest.fixture
def store_options(request: pytest.FixtureRequest) -> Mapping[str, Any]:
    """Keyword options for ``connect()`` (default: the class's ``store_options``)."""
    return dict(getattr(request.cls, "store_options", {}))


@pytest.fixture
def store_plugins(request: pytest.FixtureRequest) -> Sequence[object]:
    """Plugins for ``connect()`` (default: the class's ``plugins``)."""
    return tuple(getattr(request.cls, "plugins", ()))


@pytest.fixture
def clock_option(
    request: pytest.FixtureRequest, resultstore_url: str, store_plugins: Sequence[object]
) -> str | None:
    """The option through which the backend takes a clock, or None (real time).

    The class's ``clock_option`` when it sets one; else the ``clock_option``
    the backend declares in its :class:`resultstore.BackendSpec` (so that
    ``resultstore check``, which has no test class of the backend's own,
    drives the clock too); else None.
    """
    value = getattr(request.cls, "clock_option", None)
    if value is not None:
        return str(value)
    return declared_clock_option(resultstore_url, store_plugins)


def declared_clock_option(url: str, plugins: Sequence[object] = ()) -> str | None:
    """The clock option the backend serving ``url`` declares in its spec (None if none)."""
    from resultstore import build_hooks
    from resultstore.concepts.urls import parse_url
    from resultstore.plugin.discovery import find_backend

    spec = find_backend(parse_url(url).scheme, build_hooks(plugins))
    declared = getattr(spec, "clock_option", None)
    return None if declared is None else str(declared)


@pytest.fixture
def max_payload_size(request: pytest.FixtureRequest) -> int | None:
    """The largest encoded payload the backend keeps (the class's ``max_payload_size``).

    None when the backend keeps whatever the connection's ``max_result_size``
    allows; the large-payload checks skip the sizes above it.
    """
    value = getattr(request.cls, "max_payload_size", None)
    return None if value is None else int(value)


@pytest.fixture
def dead_server(request: pytest.FixtureRequest) -> Any:
    """A :class:`~resultstore_contract.support.DeadServer` for the dead-server checks, or None.

    The default is built from the class's ``dead_url``. A backend whose tests
    start their own server overrides this fixture (see the README): a URL to
    a live server of the test's own, with ``stop`` stopping it, covers
    clients that were connected when the server went away.
    """
    from resultstore_contract.support import DeadServer

    url = getattr(request.cls, "dead_url", None)
    return None if url is None else DeadServer(_fill(str(url), request))


@pytest.fixture
def plant_payload(request: pytest.FixtureRequest) -> Iterator[Callable[[str, bytes], None]]:
    """Write raw bytes where the store keeps a task's result (the bad-input back door).

    The default uses the backend's own ``plant_payload(task_id, payload)``
    method; without one, the tests that need it are skipped. What was planted
    may carry no expiry, so it is forgotten after the test (``resultstore
    check`` leaves nothing behind that does not expire).
    """
    store = request.getfixturevalue("store")
    plant: Callable[[str, bytes], None] | None = getattr(store.backend, "plant_payload", None)
    if plant is None:
        pytest.skip(
            f"{type(store.backend).__name__} has no plant_payload(task_id, payload) method; "
            "to run the corrupt-payload checks, give it one or override the plant_payload "
            "fixture with one that returns a callable(task_id, payload: bytes) writing the "
            "raw bytes where the backend keeps that task's result"
        )
    planted: list[str] = []

    def plant_and_remember(task_id: str, payload: bytes) -> None:
        planted.append(task_id)
        plant(task_id, payload)

    yield plant_and_remember
    for task_id in planted:
        # forget() does not read the payload, so a corrupt one goes too.
        store.forget(task_id)
