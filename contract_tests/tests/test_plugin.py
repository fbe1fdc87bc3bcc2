"""The pytest plugin itself: fixtures that say what to override, markers, profiles, URLs."""

from __future__ import annotations

import pathlib

import pytest
from hypothesis import settings
from resultstore_contract.plugin import PROFILES

HERE = pathlib.Path(__file__).parent


def _run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.syspathinsert(HERE)
    pytester.makepyfile(test_it=source)
    return pytester.runpytest("-p", "no:cacheprovider", "-rs", *args)


def test_a_missing_url_fails_saying_what_to_set(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        """
from resultstore_contract import BasicContract

class TestNoUrl(BasicContract):
    pass
""",
        "-k",
        "unknown_id",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*does not know how to reach your backend*"])
    result.stdout.fnmatch_lines(["*resultstore_url fixture*"])


def test_missing_capabilities_skip_naming_them(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        """
from resultstore_contract import BasicContract

class TestMemory(BasicContract):
    url = "memory://{unique}"
""",
        "-k",
        "reconnecting or shared_between",
    )
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*does not declare Capability.PERSISTENT*"])
    result.stdout.fnmatch_lines(["*does not declare Capability.SHARED*"])


def test_other_plugins_requires_markers_are_left_alone(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        """
import pytest

@pytest.mark.requires("network")
def test_unrelated():
    pass
""",
    )
    result.assert_outcomes(passed=1)


def test_without_a_back_door_the_planting_checks_skip_saying_what_to_provide(
    pytester: pytest.Pytester,
) -> None:
    result = _run(
        pytester,
        """
from broken_memory import BrokenBackends
from resultstore_contract import BadInputContract

class TestNoBackDoor(BadInputContract):
    url = "no-back-door://{unique}"
    plugins = (BrokenBackends,)
""",
        "-k",
        "unknown_codec",
    )
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["*override the plant_payload fixture*"])


def test_url_placeholders_and_the_option(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        """
from resultstore_contract import ContractBase

class TestTemplate(ContractBase):
    url = "sqlite:///{tmp_path}/{unique}.db"

    def test_filled(self, resultstore_url, tmp_path):
        assert resultstore_url.startswith(f"sqlite:///{tmp_path}/t")
        assert "{" not in resultstore_url

class TestFromOption(ContractBase):
    def test_option(self, resultstore_url):
        assert resultstore_url == "memory://given"
""",
        "--resultstore-url",
        "memory://given",
    )
    result.assert_outcomes(passed=2)


def test_an_unknown_profile_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "weekly")
    result = _run(pytester, "def test_nothing():\n    pass\n")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*weekly*is not a hypothesis profile*ci, nightly*"])


def test_the_profiles() -> None:
    ci = settings.get_profile("ci")
    assert ci.derandomize
    assert ci.deadline is None
    assert ci.database is None
    nightly = settings.get_profile("nightly")
    assert nightly.max_examples > settings.get_profile("default").max_examples > ci.max_examples
    assert set(PROFILES) == {"ci", "nightly"}
