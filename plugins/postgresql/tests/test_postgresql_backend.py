"""What the PostgreSQL backend adds to the contract: URLs, options, columns, cleanup."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest
import resultstore
from resultstore import State, TaskResult
from resultstore_contract.servers import Server


def _prefix() -> str:
    return f"b{uuid.uuid4().hex[:10]}_"


@pytest.mark.parametrize("scheme", ["postgres", "postgresql+psycopg"])
def test_other_schemes_reach_the_same_tables(postgresql_server: Server, scheme: str) -> None:
    prefix = _prefix()
    url = f"{postgresql_server.url}?table_prefix={prefix}"
    with resultstore.connect(url) as first:
        first.mark_as_done("t", 7)
    other = url.replace("postgresql://", f"{scheme}://", 1)
    with resultstore.connect(other) as second:
        assert second.result("t").get(timeout=5) == 7


def test_libpq_parameters_pass_through(postgresql_server: Server) -> None:
    url = f"{postgresql_server.url}?table_prefix={_prefix()}&application_name=rs-test-app"
    with resultstore.connect(url) as store:
        store.mark_as_done("t", 1)
        with psycopg.connect(postgresql_server.url) as conn:
            names = {
                row[0]
                for row in conn.execute(
                    "SELECT application_name FROM pg_stat_activity WHERE application_name <> ''"
                )
            }
        assert "rs-test-app" in names


def test_an_unknown_parameter_is_named_and_the_password_is_not(
    postgresql_server: Server,
) -> None:
    with pytest.raises(resultstore.ConfigurationError) as caught:
        resultstore.connect(f"{postgresql_server.url}?no_such_param=1")
    message = str(caught.value)
    assert "no_such_param" in message
    assert "libpq" in message
    assert postgresql_server.password is not None
    assert postgresql_server.password not in message


def test_a_wrong_password_is_a_configuration_error(postgresql_server: Server) -> None:
    url = postgresql_server.url.replace(str(postgresql_server.password), "wrong-secret")
    with resultstore.connect(f"{url}?retry_total=2") as store:
        with pytest.raises(resultstore.ConfigurationError, match="password") as caught:
            store.get("t")
        assert "wrong-secret" not in str(caught.value)


def test_a_bad_schema_name_is_refused() -> None:
    with pytest.raises(resultstore.ConfigurationError, match="schema"):
        resultstore.connect("postgresql://u@localhost/db?schema=bad;name")


def test_schema_option_and_queryable_columns(postgresql_server: Server) -> None:
    schema = f"s{uuid.uuid4().hex[:8]}"
    url = f"{postgresql_server.url}?schema={schema}&table_prefix=rs_"
    done = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    with resultstore.connect(url) as store:
        store.store(
            TaskResult(
                "t1",
                State.SUCCESS,
                1,
                date_done=done,
                name="app.add",
                worker="w1",
                queue="q\x00x",
            )
        )
    with psycopg.connect(postgresql_server.url) as conn:
        row = conn.execute(
            f'SELECT state, name, worker, queue, date_done FROM "{schema}".rs_results'
        ).fetchone()
    assert row == ("SUCCESS", "app.add", "w1", "q\ufffdx", done)


def test_cleanup_runs_in_batches(postgresql_server: Server) -> None:
    now = [1_000_000.0]
    url = f"{postgresql_server.url}?table_prefix={_prefix()}&batch_size=7"
    with resultstore.connect(url, expires=10, clock=lambda: now[0]) as store:
        store.backend.store_many(  # type: ignore[attr-defined]
            [TaskResult(f"t{i}", State.SUCCESS, i) for i in range(30)]
        )
        store.mark_as_done("late", 1)
        now[0] += 5
        store.mark_as_done("fresh", 2)
        now[0] += 6
        assert store.get("t0") is None  # expired reads as missing before the sweep
        assert store.cleanup() == 31
        assert store.get("fresh") is not None


@pytest.mark.parametrize(("option", "prepared"), [("", True), ("&prepare_threshold=none", False)])
def test_statements_are_prepared_unless_told_not_to(
    postgresql_server: Server, option: str, prepared: bool
) -> None:
    url = f"{postgresql_server.url}?table_prefix={_prefix()}&pool_max=1{option}"
    with resultstore.connect(url) as store:
        store.mark_as_done("t", 1)
        for _ in range(10):
            assert store.get("t") is not None
        backend: Any = store.backend
        with backend.pool().connection() as conn:
            (count,) = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
    assert (count > 0) is prepared


def test_a_bad_prepare_threshold_is_refused() -> None:
    with pytest.raises(resultstore.ConfigurationError, match="prepare_threshold"):
        resultstore.connect("postgresql://u@localhost/db?prepare_threshold=often")
