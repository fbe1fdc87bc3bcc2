"""The state sets, precedence and name lookup match Celery's, and custom states fit in."""

from __future__ import annotations

import pytest
from hypothesis import given
from resultstore.concepts.states import (
    ALL_STATES,
    EXCEPTION_STATES,
    PROPAGATE_STATES,
    READY_STATES,
    UNREADY_STATES,
    State,
    is_ready,
    precedence,
    state_from_str,
)
from resultstore_contract.strategies import custom_states


def test_members_are_strings_named_after_their_value() -> None:
    for state in State:
        assert state == state.name
        assert isinstance(state, str)
        assert str(state) == state.name


def test_ready_and_unready_partition_the_builtin_states() -> None:
    assert READY_STATES | UNREADY_STATES == ALL_STATES
    assert not READY_STATES & UNREADY_STATES
    assert {State.SUCCESS, State.FAILURE, State.REVOKED} == READY_STATES


def test_exception_and_propagate_sets_are_celerys() -> None:
    assert {State.RETRY, State.FAILURE, State.REVOKED} == EXCEPTION_STATES
    assert {State.FAILURE, State.REVOKED} == PROPAGATE_STATES
    assert PROPAGATE_STATES <= READY_STATES & EXCEPTION_STATES


@pytest.mark.parametrize("state", list(State))
def test_is_ready_for_builtin_states(state: State) -> None:
    assert is_ready(state) is (state in (State.SUCCESS, State.FAILURE, State.REVOKED))
    assert is_ready(state.value) is is_ready(state)


@given(custom_states())
def test_custom_states_are_never_ready(state: str) -> None:
    assert not is_ready(state)


def test_precedence_orders_builtin_states_like_celery() -> None:
    best_first = [
        State.SUCCESS,
        State.FAILURE,
        State.REVOKED,
        State.STARTED,
        State.RECEIVED,
        State.REJECTED,
        State.RETRY,
        State.PENDING,
    ]
    ranks = [precedence(s) for s in best_first]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == len(ranks)


@given(custom_states(), custom_states())
def test_custom_states_share_one_rank_between_failure_and_revoked(a: str, b: str) -> None:
    assert precedence(a) == precedence(b)
    assert precedence(State.FAILURE) < precedence(a) < precedence(State.REVOKED)


@pytest.mark.parametrize("state", list(State))
def test_state_from_str_returns_the_member_for_builtin_names(state: State) -> None:
    found = state_from_str(state.value)
    assert found is state


@given(custom_states())
def test_state_from_str_keeps_custom_names_as_they_are(state: str) -> None:
    found = state_from_str(state)
    assert found == state
    assert not isinstance(found, State)


def test_builtin_names_are_case_sensitive() -> None:
    # Celery's names are upper case; "success" is some app's own custom state.
    assert not isinstance(state_from_str("success"), State)
    assert not is_ready("success")
