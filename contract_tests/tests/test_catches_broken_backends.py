"""The suite must fail against each deliberately broken backend, and pass the faithful one.

Each variant runs the whole ``BackendContract`` in-process through
``pytester`` with the ci profile, stopping at its first failure. Shrinking
is left out: it makes a failure readable, not more likely, and a broken
variant's state machine failure would otherwise shrink for minutes.
"""

from __future__ import annotations

import pathlib

import pytest
from broken_memory import CAUGHT_ONLY_BY, VARIANTS
from hypothesis import Phase, settings

HERE = pathlib.Path(__file__).parent
BROKEN = sorted(scheme for scheme in VARIANTS if scheme.startswith("broken-"))
# Bugs that need no second client, thread, listener or planted payload to show:
# the state machine alone, with no example written by hand, must find them.
# (The variants of CAUGHT_ONLY_BY are each caught by one check alone.)
MACHINE_CATCHES = sorted(
    set(BROKEN)
    - set(CAUGHT_ONLY_BY)
    - {
        "broken-codec-header-ignored",
        "broken-corrupt-payload-crashes",
        "broken-listener-never-unsubscribes",
        "broken-non-atomic-chord-counter",
        "broken-push-that-polls",
    }
)

CONTRACT = """
import functools

import pytest
from broken_memory import VARIANTS, BrokenBackends, Stoppable, stop
from resultstore_contract import BackendContract, DeadServer


class TestVariant(BackendContract):
    url = "{scheme}://{{unique}}"
    plugins = (BrokenBackends,)
    clock_option = "clock"

    @pytest.fixture
    def dead_server(self, resultstore_url):
        if not issubclass(VARIANTS["{scheme}"], Stoppable):
            return None
        halt = functools.partial(stop, resultstore_url)
        return DeadServer(resultstore_url, stop=halt, within=1.0)
"""


def run_contract(pytester: pytest.Pytester, scheme: str, *args: str) -> pytest.RunResult:
    pytester.syspathinsert(HERE)
    pytester.makepyfile(test_variant=CONTRACT.format(scheme=scheme))
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", *args)


settings.register_profile(
    "contract-catch",
    settings.get_profile("ci"),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)


# The state machine alone gets three times the ci examples: one CI run (of
# many) saw the ci profile's 20 miss "groups never expire", so the margin
# is widened here rather than in every plugin's ci run.
settings.register_profile(
    "contract-catch-machine", settings.get_profile("contract-catch"), max_examples=60
)


@pytest.fixture(autouse=True)
def _ci_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "contract-catch")


def test_the_faithful_backend_passes_the_whole_contract(pytester: pytest.Pytester) -> None:
    result = run_contract(pytester, "faithful")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, result.stdout.str()
    assert outcomes.get("errors", 0) == 0, result.stdout.str()
    assert outcomes["passed"] > 100


@pytest.mark.parametrize("scheme", BROKEN)
def test_the_contract_catches(pytester: pytest.Pytester, scheme: str) -> None:
    result = run_contract(pytester, scheme, "-x", "-q")
    outcomes = result.parseoutcomes()
    caught_by = [line for line in result.outlines if line.startswith("FAILED")]
    assert outcomes.get("errors", 0) == 0, (
        "a setup error is not a caught bug:\n" + result.stdout.str()
    )
    assert outcomes.get("failed", 0) >= 1, f"the contract passed {scheme}://, which is broken"
    print(f"{scheme}: caught by {caught_by[0] if caught_by else '?'}")


@pytest.mark.parametrize("scheme", MACHINE_CATCHES)
def test_the_state_machine_alone_catches(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "contract-catch-machine")
    result = run_contract(pytester, scheme, "-x", "-q", "-k", "machine")
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", 0) == 0, result.stdout.str()
    assert outcomes.get("failed", 0) >= 1, f"the state machine passed {scheme}://"


@pytest.mark.parametrize("scheme", sorted(CAUGHT_ONLY_BY))
def test_only_its_check_catches(pytester: pytest.Pytester, scheme: str) -> None:
    """The whole suite fails the variant through the check made for it, and nothing else."""
    check, *also = CAUGHT_ONLY_BY[scheme]
    result = run_contract(pytester, scheme, "-q")
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", 0) == 0, result.stdout.str()
    failed = [line for line in result.outlines if line.startswith("FAILED")]
    assert any(check in line for line in failed), (
        f"{check} passed {scheme}://, the variant made for it:\n" + result.stdout.str()
    )
    others = [line for line in failed if not any(p in line for p in (check, *also))]
    assert not others, (
        f"{scheme}:// is meant to be caught by {check} alone, but also failed:\n"
        + "\n".join(others)
    )
    print(f"{scheme}: caught by {check}: {len(failed)} failed")


def test_there_are_at_least_twelve_broken_variants() -> None:
    assert len(BROKEN) >= 12
    assert len(MACHINE_CATCHES) >= 12
    assert set(CAUGHT_ONLY_BY) <= set(BROKEN)
