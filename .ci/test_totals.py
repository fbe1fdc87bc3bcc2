"""The CI totals line counts each pytest run once, whatever its captured output holds."""

from __future__ import annotations

from totals import totals


def test_each_nox_session_counts_its_own_closing_line() -> None:
    log = [
        "nox > Running session tests(core)\n",
        "============ 120 passed, 3 skipped in 12.01s ============\n",
        "nox > Session tests(core) was successful in 20 seconds.\n",
        "nox > Running session tests(redis)\n",
        "======= 1 failed, 40 passed, 2 errors in 3.50s =======\n",
        "nox > Session tests(redis) failed.\n",
    ]
    assert totals(log) == {"passed": 160, "failed": 3, "skipped": 3}


def test_a_failing_pytester_test_counts_once_not_with_its_inner_runs() -> None:
    # The real failure seen in CI: one failed test whose captured output held
    # an inner run, once printed as "1 passed, 2 failed".
    log = [
        "nox > Running session tests(contract_tests)\n",
        "FAILED tests/test_catches.py::test_variant\n",
        "----------------------------- Captured stdout call -----------------------------\n",
        "============================= test session starts ==============================\n",
        "========================= 1 failed, 1 passed in 0.40s ==========================\n",
        "=========================== short test summary info ============================\n",
        "========================= 1 failed, 57 passed in 80.20s ========================\n",
        "nox > Session tests(contract_tests) failed.\n",
    ]
    assert totals(log) == {"passed": 57, "failed": 1, "skipped": 0}


def test_a_log_without_nox_counts_its_last_closing_line() -> None:
    assert totals(["== 5 passed in 1.00s ==\n"]) == {"passed": 5, "failed": 0, "skipped": 0}
