"""The bridge class without a worker: URL handoff, settings, meta shape, exceptions, waiting."""

from __future__ import annotations

import datetime as dt
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery  # type: ignore[import-untyped]  # untyped
from celery.app import backends as celery_backends  # type: ignore[import-untyped]  # untyped
from celery.app.task import Context  # type: ignore[import-untyped]  # untyped
from celery.exceptions import (  # type: ignore[import-untyped]  # untyped
    BackendStoreError,
    ImproperlyConfigured,
    TaskRevokedError,
)
from celery.exceptions import TimeoutError as CeleryTimeoutError
from kombu import serialization
from resultstore import BackendUnavailableError, RemoteError, ResultTooLargeError
from resultstore_celery import ResultStoreBackend
from resultstore_contract.servers import Server, free_port
from resultstore_contract.support import wait_until


def _app(backend: str, **conf: Any) -> Any:
    app = Celery(f"unit-{uuid.uuid4().hex[:6]}", broker="memory://", set_as_current=False)
    app.conf.update(result_backend=backend, **conf)
    return app


@pytest.fixture
def app() -> Iterator[Any]:
    made = _app(f"resultstore+memory://{uuid.uuid4().hex}", result_extended=True)
    yield made
    made.backend.close()


def _request(task_id: str, **extra: Any) -> Any:
    return Context(
        id=task_id,
        task="proj.add",
        args=[1, 2],
        kwargs={"z": 3},
        hostname="worker@host",
        retries=1,
        delivery_info={"routing_key": "fast"},
        group=None,
        parent_id=None,
        chord=None,
        **extra,
    )


# -- URLs --------------------------------------------------------------------------


def test_celery_finds_the_class_and_hands_it_the_rest_of_the_url(app: Any) -> None:
    for url, rest in [
        ("resultstore+sqlite:///results.db", "sqlite:///results.db"),
        ("resultstore+redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("resultstore+redis+sentinel://h1:26379/0", "redis+sentinel://h1:26379/0"),
    ]:
        cls, handed = celery_backends.by_url(url, app.loader)
        assert cls is ResultStoreBackend
        assert handed == rest


def test_app_backend_opens_the_store(tmp_path: Path) -> None:
    app = _app(f"resultstore+sqlite:///{tmp_path / 'r.db'}")
    try:
        backend = app.backend
        assert isinstance(backend, ResultStoreBackend)
        assert backend.store.url.scheme == "sqlite"
        assert backend.as_uri() == f"resultstore+sqlite:///{tmp_path / 'r.db'}"
        # One instance for every thread: resultstore stores are thread-safe.
        seen: list[Any] = []
        thread = threading.Thread(target=lambda: seen.append(app.backend))
        thread.start()
        thread.join()
        assert seen == [backend]
    finally:
        app.backend.close()


def test_as_uri_hides_the_password() -> None:
    # redis-py connects lazily: nothing listens on port 1, and nothing needs to.
    app = _app("resultstore+redis://:s3cret@127.0.0.1:1/0")
    try:
        assert "s3cret" not in app.backend.as_uri()
        assert "s3cret" in app.backend.as_uri(include_password=True)
    finally:
        app.backend.close()


def test_bare_resultstore_url_means_the_default_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESULTSTORE_URL", "memory://bare-default")
    app = _app("resultstore://")
    try:
        assert app.backend.store.url.raw == "memory://bare-default"
    finally:
        app.backend.close()


@pytest.mark.parametrize(
    ("backend", "fix"),
    [
        ("resultstore://somewhere", "resultstore+<url of the store>"),
        ("resultstore+nosuchscheme://x", "nosuchscheme"),
    ],
)
def test_bad_urls_are_improperly_configured(backend: str, fix: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=fix.replace("+", r"\+")):
        _ = _app(backend).backend


# -- Celery's result settings -------------------------------------------------------


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ({}, 86400.0),
        ({"result_expires": dt.timedelta(seconds=30)}, 30.0),
        ({"result_expires": 12}, 12.0),
        ({"result_expires": None}, None),
        ({"result_expires": 0}, None),
    ],
)
def test_result_expires_is_the_store_expiry(conf: dict[str, Any], expected: float | None) -> None:
    app = _app("resultstore+memory://", **conf)
    try:
        assert app.backend.settings.options["expires"] == expected
    finally:
        app.backend.close()


def test_options_in_the_url_win_over_celery_settings() -> None:
    app = _app(
        "resultstore+memory://?expires=5&codec=msgpack",
        result_expires=30,
        resultstore_options={"codec": "json", "max_result_size": "1m"},
    )
    try:
        assert "expires" not in app.backend.settings.options
        assert "codec" not in app.backend.settings.options
        assert app.backend.settings.options["max_result_size"] == "1m"
    finally:
        app.backend.close()


def test_result_expires_sets_the_redis_ttl(redis_server: Server) -> None:
    client = redis.Redis.from_url(redis_server.url)
    apps = {
        "30s": _app(f"resultstore+{redis_server.url}", result_expires=30),
        "never": _app(f"resultstore+{redis_server.url}", result_expires=None),
    }
    try:
        ttl = {}
        for name, app in apps.items():
            task_id = uuid.uuid4().hex
            app.backend.store_result(task_id, 1, "SUCCESS")
            key = app.backend.store.backend.task_key(task_id)
            ttl[name] = client.pttl(key)
        assert 0 < ttl["30s"] <= 30_000
        assert ttl["never"] == -1  # the key exists and has no expiry
    finally:
        for app in apps.values():
            app.backend.close()
        client.close()


def test_result_serializer_picks_the_codec() -> None:
    app = _app("resultstore+memory://", result_serializer="msgpack")
    try:
        app.backend.store_result("m1", {"blob": b"\x00\xff"}, "SUCCESS")
        payload = app.backend.store.backend.data.results["m1"].payload
        assert payload.startswith(b"rs1 codec=msgpack")
        assert app.AsyncResult("m1").result == {"blob": b"\x00\xff"}
    finally:
        app.backend.close()


def test_pickle_needs_to_be_accepted() -> None:
    with pytest.raises(ImproperlyConfigured, match="result_accept_content"):
        _ = _app("resultstore+memory://", result_serializer="pickle").backend
    app = _app(
        "resultstore+memory://",
        result_serializer="pickle",
        accept_content=["json", "pickle"],
    )
    try:
        app.backend.store_result("p1", {1, 2, 3}, "SUCCESS")
        assert app.AsyncResult("p1").result == {1, 2, 3}
    finally:
        app.backend.close()


@pytest.fixture
def other_serializer() -> Iterator[str]:
    """A serializer Celery knows and resultstore has no codec for."""
    name = "bridge-test-text"
    serialization.register(name, repr, lambda text: text, content_type="application/x-bridge-test")
    yield name
    serialization.unregister(name)


def test_unsupported_serializer_names_the_choices(other_serializer: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="json, msgpack or pickle"):
        _ = _app("resultstore+memory://", result_serializer=other_serializer).backend


def test_result_compression_is_done_by_resultstore() -> None:
    # Celery would warn that this backend cannot compress (an error here).
    app = _app(
        "resultstore+memory://",
        result_compression="gzip",
        resultstore_options={"compress_threshold": 10},
    )
    try:
        assert app.backend.settings.options["compression"] == "zlib"
        app.backend.store_result("c1", "x" * 1000, "SUCCESS")
        payload = app.backend.store.backend.data.results["c1"].payload
        assert payload.startswith(b"rs1 codec=json;comp=zlib")
        assert app.AsyncResult("c1").result == "x" * 1000
    finally:
        app.backend.close()
    with pytest.raises(ImproperlyConfigured, match="zlib"):
        _ = _app("resultstore+memory://", result_compression="bzip2").backend


def test_resultstore_options_reach_the_store() -> None:
    app = _app("resultstore+memory://", resultstore_options={"max_result_size": "1k"})
    try:
        with pytest.raises(ResultTooLargeError):
            app.backend.store_result("big", "x" * 4096, "SUCCESS")
    finally:
        app.backend.close()


@pytest.mark.parametrize("listed", [["os.path"], [object], "no_such_module_for_bridge.Error"])
def test_allowed_exceptions_must_be_exception_classes(listed: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="resultstore_allowed_exceptions lists"):
        _ = _app("resultstore+memory://", resultstore_allowed_exceptions=listed).backend


# -- the meta dict -------------------------------------------------------------------


def test_meta_shape_with_result_extended(app: Any) -> None:
    app.backend.store_result("t1", {"total": 3}, "SUCCESS", request=_request("t1"))
    meta = app.backend.get_task_meta("t1")
    assert meta["task_id"] == "t1"
    assert meta["status"] == "SUCCESS"
    assert meta["result"] == {"total": 3}
    assert meta["traceback"] is None
    assert meta["children"] == []
    assert dt.datetime.fromisoformat(meta["date_done"]).tzinfo is not None
    assert meta["name"] == "proj.add"
    assert meta["args"] == [1, 2]
    assert meta["kwargs"] == {"z": 3}
    assert meta["worker"] == "worker@host"
    assert meta["retries"] == 1
    assert meta["queue"] == "fast"


def test_extended_fields_only_when_result_extended() -> None:
    app = _app("resultstore+memory://")
    try:
        app.backend.store_result("t1", 1, "SUCCESS", request=_request("t1"))
        assert "name" not in app.backend.get_task_meta("t1")
        assert app.AsyncResult("t1").name is None
    finally:
        app.backend.close()


def test_group_and_parent_ids_are_kept(app: Any) -> None:
    request = _request("t2")
    request.group, request.parent_id = "g1", "p1"
    app.backend.store_result("t2", 1, "SUCCESS", request=request)
    meta = app.backend.get_task_meta("t2")
    assert meta["group_id"] == "g1"
    assert meta["parent_id"] == "p1"
    stored = app.backend.store.get("t2")
    assert stored.group_id == "g1"
    assert stored.parent_id == "p1"


def test_unknown_task_reads_as_pending(app: Any) -> None:
    meta = app.backend.get_task_meta("never-sent")
    assert meta["status"] == "PENDING"
    assert meta["result"] is None
    assert not app.AsyncResult("never-sent").exists()


def test_a_ready_state_is_final(app: Any) -> None:
    backend = app.backend
    backend.store_result("done", 1, "SUCCESS")
    backend.store_result("done", None, "STARTED")
    backend.mark_as_failure("done", ValueError("late"))
    assert backend.get_task_meta("done", cache=False)["status"] == "SUCCESS"
    backend.mark_as_failure("failed", ValueError("first"))
    backend.store_result("failed", 2, "SUCCESS")
    assert isinstance(app.AsyncResult("failed").result, ValueError)


def test_custom_state_keeps_its_meta(app: Any) -> None:
    app.backend.store_result("p", {"done": 3, "total": 10}, "PROGRESS")
    result = app.AsyncResult("p")
    assert result.state == "PROGRESS"
    assert result.info == {"done": 3, "total": 10}
    assert not result.ready()


def test_retry_and_revoked_carry_exceptions(app: Any) -> None:
    app.backend.mark_as_retry("r", ValueError("try again"), traceback="tb")
    retry = app.AsyncResult("r")
    assert retry.state == "RETRY"
    assert isinstance(retry.result, ValueError)
    assert retry.traceback == "tb"
    app.backend.mark_as_revoked("v", reason="stop")
    with pytest.raises(TaskRevokedError, match="stop"):
        app.AsyncResult("v").get(timeout=1)


def test_celery_exception_dicts_are_rebuilt(app: Any) -> None:
    # The form update_state(state=FAILURE, meta=...) users write by hand.
    meta = {"exc_type": "KeyError", "exc_module": "builtins", "exc_message": ["missing"]}
    app.backend.store_result("d", meta, "FAILURE")
    with pytest.raises(KeyError, match="missing"):
        app.AsyncResult("d").get(timeout=1)


def test_hostile_exception_dicts_never_import_or_call(app: Any, tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    hostile = {"exc_type": "system", "exc_module": "os", "exc_message": f"touch {target}"}
    unknown = {"exc_type": "Boom", "exc_module": "bridge_never_imported_module", "exc_message": "x"}
    app.backend.store_result("h1", hostile, "FAILURE")
    app.backend.store_result("h2", unknown, "FAILURE")
    for task_id in ("h1", "h2"):
        exc = app.AsyncResult(task_id).get(timeout=1, propagate=False)
        assert isinstance(exc, RemoteError)
    assert not target.exists()
    assert "bridge_never_imported_module" not in sys.modules
    rebuilt = app.backend.exception_to_python(hostile)
    assert isinstance(rebuilt, RemoteError)
    assert rebuilt.remote_module == "os"


def test_children_are_stored_as_result_handles(app: Any) -> None:
    children = [app.AsyncResult("c1"), app.GroupResult("g", [app.AsyncResult("c2")])]
    request = _request("parent")
    request.children.extend(children)  # what Task.add_trail() does
    app.backend.store_result("parent", None, "SUCCESS", request=request)
    assert [child.id for child in app.AsyncResult("parent").children] == ["c1", "c2"]


# -- waiting ---------------------------------------------------------------------------


def _store_when_watched(app: Any, task_id: str, value: Any) -> threading.Thread:
    hub = app.backend.store.hub

    def later() -> None:
        wait_until(lambda: task_id in hub.watched_ids(), f"a waiter on {task_id!r}")
        app.backend.store_result(task_id, value, "SUCCESS")

    thread = threading.Thread(target=later)
    thread.start()
    return thread


def test_get_waits_by_push_without_polling(app: Any) -> None:
    thread = _store_when_watched(app, "w1", 41)
    assert app.AsyncResult("w1").get(timeout=30) == 41
    thread.join()
    hub = app.backend.store.hub
    assert hub.mode == "push"
    assert hub.polls == 0
    assert hub.listens >= 1


def test_join_polls_a_store_without_push(tmp_path: Path) -> None:
    app = _app(f"resultstore+sqlite:///{tmp_path / 'r.db'}")
    try:
        app.backend.store_result("a", 1, "SUCCESS")
        thread = _store_when_watched(app, "b", 2)
        group = app.GroupResult("g", [app.AsyncResult("a"), app.AsyncResult("b")])
        assert group.join_native(timeout=30) == [1, 2]
        thread.join()
        assert app.backend.store.hub.mode == "poll"
    finally:
        app.backend.close()


def test_timeout_raises_celery_timeout_error(app: Any) -> None:
    with pytest.raises(CeleryTimeoutError, match="never-ready"):
        app.AsyncResult("never-ready").get(timeout=0.1)
    group = app.GroupResult("g", [app.AsyncResult("never-1"), app.AsyncResult("never-2")])
    with pytest.raises(CeleryTimeoutError, match="never-1"):
        group.join_native(timeout=0.1)


def test_on_interval_runs_while_waiting(app: Any) -> None:
    calls: list[int] = []
    with pytest.raises(CeleryTimeoutError):
        app.backend.wait_for(
            "slow", timeout=1.0, interval=0.01, on_interval=lambda: calls.append(1)
        )
    assert calls


def test_get_many_with_one_iteration_does_not_wait(app: Any) -> None:
    app.backend.store_result("ready", 1, "SUCCESS")
    app.backend.store_result("running", None, "STARTED")
    found = dict(app.backend.get_many(["ready", "running", "unknown"], max_iterations=1))
    assert list(found) == ["ready"]
    assert found["ready"]["result"] == 1
    assert app.backend.store.hub.watched == 0
    # More iterations wait up to that many intervals, then stop without an error.
    found = dict(app.backend.get_many(["ready", "running"], interval=0.01, max_iterations=3))
    assert list(found) == ["ready"]
    with pytest.raises(CeleryTimeoutError):
        dict(app.backend.get_many(["running"], timeout=0.05, interval=1, max_iterations=3))


def test_undecodable_result_is_raised_to_the_waiter(app: Any) -> None:
    app.backend.store.backend.plant_payload("bad", b"not a resultstore payload")
    with pytest.raises(Exception, match="resultstore header"):
        app.AsyncResult("bad").get(timeout=1)


# -- groups, chords, pickling ----------------------------------------------------------


def test_group_save_and_restore_flattens_nested_groups(app: Any) -> None:
    inner = app.GroupResult("inner", [app.AsyncResult("b"), app.AsyncResult("c")])
    outer = app.GroupResult("outer", [app.AsyncResult("a"), inner])
    outer.save()
    restored = app.GroupResult.restore("outer")
    assert [r.id for r in restored.results] == ["a", "b", "c"]
    app.backend.delete_group("outer")
    assert app.GroupResult.restore("outer") is None


def test_add_to_chord_outside_a_chord_task_explains_itself(app: Any) -> None:
    with pytest.raises(NotImplementedError, match="task calling it"):
        app.backend.add_to_chord("g", app.AsyncResult("x"))


def test_chord_settings_are_checked() -> None:
    for setting, value in [
        ("resultstore_chord_body_lease", 0),
        ("resultstore_chord_body_lease", "soon"),
        ("resultstore_chord_body_lease", None),
        ("resultstore_chord_size_wait", -1),
    ]:
        with pytest.raises(ImproperlyConfigured, match=setting):
            _ = _app("resultstore+memory://", **{setting: value}).backend


def test_chord_size_wait_follows_the_expiry_or_the_setting() -> None:
    default = _app("resultstore+memory://", result_expires=600)
    in_url = _app("resultstore+memory://?expires=90")
    forever = _app("resultstore+memory://", result_expires=None)
    bounded = _app("resultstore+memory://", resultstore_chord_size_wait=0.2)
    try:
        assert default.backend.settings.chord_size_wait == 600
        assert in_url.backend.settings.chord_size_wait == 90
        assert forever.backend.settings.chord_size_wait is None
        assert bounded.backend.settings.chord_size_wait == pytest.approx(0.2)
        assert default.backend.settings.chord_body_lease == 10
    finally:
        for made in (default, in_url, forever, bounded):
            made.backend.close()


def test_a_part_whose_size_never_comes_fails_the_chord_naming_the_setting() -> None:
    app = _app("resultstore+memory://", resultstore_chord_size_wait=0.3)
    try:
        body = app.signature("proj.body").freeze()
        request = _request("part", group_index=0)
        request.group = "g-never-sized"
        request.chord = app.signature("proj.body", task_id=body.id)
        app.backend.on_chord_part_return(request, "SUCCESS", 1)
        failed = app.AsyncResult(body.id).get(timeout=1, propagate=False)
        assert "resultstore_chord_size_wait" in str(failed)
    finally:
        app.backend.close()


def test_pickled_backend_keeps_its_url(app: Any) -> None:
    _rebuild, (cls, args, kwargs) = app.backend.__reduce__()
    assert cls is ResultStoreBackend
    copy = cls(*args, app=app, **kwargs)
    try:
        assert copy.settings.url == app.backend.settings.url
    finally:
        copy.close()


def test_cleanup_deletes_expired_results(tmp_path: Path) -> None:
    now = [1000.0]
    app = _app(
        f"resultstore+sqlite:///{tmp_path / 'r.db'}",
        result_expires=10,
        resultstore_options={"clock": lambda: now[0]},
    )
    try:
        # SQLite does not expire by itself: Celery beat must schedule backend_cleanup.
        assert app.backend.supports_autoexpire is False
        app.backend.store_result("old", 1, "SUCCESS")
        now[0] += 11
        app.backend.store_result("new", 2, "SUCCESS")
        app.backend.cleanup()
        # Back to the old time: "old" would read as live again had cleanup not deleted it.
        now[0] -= 11
        assert app.backend.store.get("old") is None
        assert app.AsyncResult("new").result == 2
    finally:
        app.backend.close()


def test_unreachable_store_is_retried_only_when_celery_is_told_to() -> None:
    # Nothing listens on the port; resultstore-redis gives up almost at once
    # (retry_total must be positive).
    url = (
        f"resultstore+redis://127.0.0.1:{free_port()}/0?retry_total=0.05&socket_connect_timeout=0.2"
    )
    plain = _app(url)
    try:
        with pytest.raises(BackendUnavailableError):
            plain.backend.store_result("t", 1, "SUCCESS")
    finally:
        plain.backend.close()
    retrying = _app(
        url,
        result_backend_always_retry=True,
        result_backend_max_retries=2,
        result_backend_base_sleep_between_retries_ms=1,
        result_backend_max_sleep_between_retries_ms=2,
    )
    retried: list[BaseException] = []
    retrying.backend.on_backend_retryable_error = retried.append
    try:
        with pytest.raises(BackendStoreError):
            retrying.backend.store_result("t", 1, "SUCCESS")
        assert len(retried) == 2
        assert all(isinstance(exc, BackendUnavailableError) for exc in retried)
    finally:
        retrying.backend.close()
