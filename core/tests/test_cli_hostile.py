"""The command line on hostile stored data: terminal control, rich markup, huge and deep values.

Whatever a writer put in the store is shown as text: escape sequences are
shown escaped, markup is shown literally, and ``get`` shows a bounded
preview (``--full`` for everything).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import orjson
import pytest
from click.testing import CliRunner, Result
from resultstore import ResultStore, connect
from resultstore.backends.memory import MemoryBackend
from resultstore.cli.commands import EXIT_STORE_ERROR, main
from resultstore.cli.terminal import json_safe, preview, safe_markup, safe_text
from resultstore.payloads.codecs import make_envelope

WIDE = {"COLUMNS": "200", "RESULTSTORE_URL": None}

#: what must never reach a terminal raw: ESC, CSI (8-bit), BEL, CR, bidi override, NUL.
RAW_CONTROL = ["\x1b", "\x9b", "\x07", "\r", "\u202e", "\x00"]

CLEAR = "\x1b[2J\x1b[H"
TITLE = "\x1b]0;pwned\x07"
LINK = "\x1b]8;;https://evil.example/\x1b\\click me\x1b]8;;\x1b\\"


@pytest.fixture
def url() -> str:
    return f"memory://cli-hostile-{uuid.uuid4().hex}"


@pytest.fixture
def store(url: str) -> Iterator[ResultStore]:
    with connect(url) as opened:
        yield opened


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env=WIDE)


def plant(store: ResultStore, task_id: str, document: dict[str, object]) -> None:
    """Store what any writer could: a payload built by hand, past the API's checks."""
    backend = store.backend
    assert isinstance(backend, MemoryBackend)
    body = orjson.dumps({"task_id": task_id, **document})
    backend.plant_payload(task_id, make_envelope({"codec": "json"}, body), str(document["state"]))


def get(runner: CliRunner, url: str, *args: str) -> Result:
    return runner.invoke(main, ["--url", url, "get", *args])


def assert_no_raw_control(output: str) -> None:
    for char in RAW_CONTROL:
        assert char not in output, f"{char!r} reached the terminal raw"


HOSTILE = {
    "state": CLEAR + "SUCCESS",
    "result": {"note": TITLE, "link": LINK},
    "name": LINK,
    "worker": "\x9b31mred",
    "queue": "\u202eeulav",
    "exception": {
        "type_name": "Boom\x1b[8m",
        "module": "m",
        "message": "\r\x1b[1Ahidden",
    },
    "traceback": f"Traceback\n  line {CLEAR}\nBoom\x00",
}


def test_get_shows_stored_terminal_control_escaped(
    runner: CliRunner, url: str, store: ResultStore
) -> None:
    plant(store, "t", HOSTILE)
    result = get(runner, url, "t")
    assert result.exit_code == 0, result.output
    assert_no_raw_control(result.stdout)
    for shown in ("\\x1b[2J", "\\x1b]0;pwned\\x07", "\\x9b31mred", "\\u202eeulav", "\\x00"):
        assert shown in result.stdout, f"{shown} is shown, escaped"


def test_get_json_escapes_what_json_leaves_raw_and_still_parses(
    runner: CliRunner, url: str, store: ResultStore
) -> None:
    plant(store, "t", HOSTILE)
    result = get(runner, url, "t", "--json")
    assert result.exit_code == 0, result.output
    assert_no_raw_control(result.stdout)
    data = json.loads(result.stdout)
    assert data["worker"] == HOSTILE["worker"], "the escapes decode to the stored text"
    assert data["queue"] == HOSTILE["queue"]
    assert data["result"] == HOSTILE["result"]


def test_error_messages_that_quote_stored_data_are_escaped(
    runner: CliRunner, url: str, store: ResultStore
) -> None:
    backend = store.backend
    assert isinstance(backend, MemoryBackend)
    backend.plant_payload("t", f"{CLEAR}not a payload".encode(), "SUCCESS")
    result = get(runner, url, "t")
    assert result.exit_code == EXIT_STORE_ERROR
    assert "CorruptPayloadError" in result.output
    assert_no_raw_control(result.output)


@pytest.mark.parametrize("state", ["[/x]", "[bold red]loud[/]", "[link=https://e.example]x"])
def test_watch_shows_stored_states_literally(
    runner: CliRunner, url: str, store: ResultStore, state: str
) -> None:
    store.mark_as_done("a", 1)
    plant(store, "b", {"state": state})
    plant(store, "c", {"state": f"{CLEAR}SUCCESS", "result": 1})
    store.save_group("g[/x]", ["a", "b", "c"])
    result = runner.invoke(main, ["--url", url, "watch", "g[/x]", "--timeout", "0.3"])
    assert result.exit_code == 3, result.output  # b never becomes ready: it times out
    assert state in result.stdout, "the state is shown as written, not as markup"
    assert "g[/x]" in result.stderr  # in the timeout's Error: line
    assert_no_raw_control(result.stdout)
    assert_no_raw_control(result.stderr)


# -- bounded preview ---------------------------------------------------------------------


def test_get_shows_a_bounded_preview_of_a_big_result(
    runner: CliRunner, url: str, store: ResultStore
) -> None:
    rows = [f"row-{i:07d}-" + "x" * 40 for i in range(100_000)]
    store.mark_as_done("big", {"rows": rows, "blob": "y" * 1_000_000, "last": "the-end"})
    result = get(runner, url, "big")
    assert result.exit_code == 0, result.output
    assert len(result.stdout) < 30_000, f"{len(result.stdout):,} characters for a preview"
    assert "row-0000000-" in result.stdout
    assert "99,950 more items" in result.stdout
    assert "1,000,000 chars" in result.stdout
    assert "--full" in result.stdout, "the preview says how to see everything"


def test_get_full_shows_everything(runner: CliRunner, url: str, store: ResultStore) -> None:
    rows = [f"row-{i}" for i in range(300)]
    store.mark_as_done("t", {"rows": rows, "blob": "z" * 2000 + "tail"})
    result = get(runner, url, "t", "--full")
    assert result.exit_code == 0, result.output
    assert "row-299" in result.stdout
    assert "ztail" in "".join(result.stdout.split()), "the whole string, wrapped"
    assert "preview" not in result.stdout


def test_get_previews_a_small_deeply_nested_payload(
    runner: CliRunner, url: str, store: ResultStore
) -> None:
    # 2 KB that nests 1000 levels deep (orjson reads that much; the API never writes it).
    backend = store.backend
    assert isinstance(backend, MemoryBackend)
    body = b'{"task_id":"deep","state":"SUCCESS","result":' + b"[" * 1000 + b"]" * 1000 + b"}"
    backend.plant_payload("deep", make_envelope({"codec": "json"}, body), "SUCCESS")
    result = get(runner, url, "deep")
    assert result.exit_code == 0, result.output
    assert "[... 1 item]" in result.stdout
    assert len(result.stdout) < 2_000
    as_json = get(runner, url, "deep", "--json")
    assert as_json.exit_code == EXIT_STORE_ERROR, "a clean error, not a traceback"
    assert "nested too deeply" in as_json.output


# -- the helpers ---------------------------------------------------------------------------


def test_safe_text_keeps_ordinary_text_and_escapes_control() -> None:
    assert safe_text("ünï 任务 🚀 tab\tnew\nline") == "ünï 任务 🚀 tab\tnew\nline"
    assert safe_text("a\x1bb\x9bc\u202ed\rx") == "a\\x1bb\\x9bc\\u202ed\\x0dx"
    assert safe_text("a\nb", one_line=True) == "a\\x0ab"
    assert safe_markup("[/x]\x1b") == "\\[/x]\\x1b"
    assert json.loads(json_safe(json.dumps("\x9b\u202e\x7f", ensure_ascii=False))) == (
        "\x9b\u202e\x7f"
    )


def test_preview_cost_is_bounded_by_its_limits_not_the_value() -> None:
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    shown, cut = preview(deep)
    assert cut
    assert repr(shown).count("[") <= 7
    wide = {str(i): list(range(1000)) for i in range(10_000)}
    shown, cut = preview(wide)
    assert cut
    assert len(repr(shown)) < 10_000
    small = {"a": [1, 2.5, None, True], "b": ("x", b"y")}
    assert preview(small) == (small, False), "a small value is shown whole"


@pytest.mark.parametrize("command", ["get", "forget"])
def test_an_invalid_id_on_the_command_line_is_a_clean_escaped_error(
    runner: CliRunner, url: str, command: str
) -> None:
    result = runner.invoke(main, ["--url", url, command, f"{CLEAR}id"])
    assert result.exit_code == EXIT_STORE_ERROR, result.output
    assert "InvalidIdError" in result.output
    assert_no_raw_control(result.output)
