"""Payload round trips for every model, codec and compression, and every way a payload goes bad."""

from __future__ import annotations

import contextlib
import datetime as dt
import zlib
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st
from resultstore import (
    ChordState,
    ConfigurationError,
    CorruptPayloadError,
    DecodeError,
    EncodeError,
    ExceptionInfo,
    Group,
    ResultTooLargeError,
    State,
    Succeeded,
    TaskResult,
    UnknownCodecError,
    UnsafeCodecError,
)
from resultstore.payloads.codecs import (
    CODECS,
    COMPRESSIONS,
    CodecOptions,
    DecodeRequest,
    EncodeRequest,
    Serializer,
    decode_payload,
    encode_payload,
    make_envelope,
    parse_envelope,
)
from resultstore_contract.strategies import json_values, models, msgpack_values, task_results

ALL_CODECS = frozenset(CODECS)
SAFE_ACCEPT = frozenset({"json", "msgpack"})


def pickle_values() -> st.SearchStrategy[Any]:
    """What only pickle keeps: tuples, sets, naive or aware datetimes and bytes, nested."""
    scalars = st.one_of(
        msgpack_values(max_leaves=4),
        st.datetimes(timezones=st.none() | st.timezones()),
        st.frozensets(st.integers(), max_size=3),
        st.sets(st.text(max_size=3), max_size=3),
    )
    return st.recursive(
        scalars, lambda inner: st.tuples(inner, inner) | st.lists(inner, max_size=3), max_leaves=6
    )


# Built once: hypothesis strategies are cheap to draw from but not to build.
ANY_MODEL = {
    codec: st.one_of(models(), task_results(values()))
    for codec, values in {
        "json": json_values,
        "msgpack": msgpack_values,
        "pickle": pickle_values,
    }.items()
}


def serializer(codec: str = "json", compression: str | None = None, **kwargs: Any) -> Serializer:
    accept = ALL_CODECS if codec == "pickle" else SAFE_ACCEPT
    options = CodecOptions(
        codec=codec,
        accept=kwargs.pop("accept", accept),
        compression=compression,
        compress_threshold=kwargs.pop("compress_threshold", 0),
        **kwargs,
    )
    return Serializer(options)


def json_payload(body: bytes) -> bytes:
    return make_envelope({"codec": "json"}, body)


# -- round trips ---------------------------------------------------------------


@pytest.mark.parametrize("codec", sorted(CODECS))
@given(compression=st.sampled_from([None, *COMPRESSIONS]), data=st.data())
def test_every_model_round_trips(codec: str, compression: str | None, data: st.DataObject) -> None:
    model = data.draw(ANY_MODEL[codec], label="model")
    ser = serializer(codec, compression)
    payload = ser.dumps(model)
    fields, _ = parse_envelope(payload)
    assert fields["codec"] == codec
    assert fields.get("comp") == compression
    assert ser.loads(payload, type(model)) == model


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_tuples_inside_a_result_come_back_as_lists(codec: str) -> None:
    # Documented: JSON and msgpack have one sequence type.
    ser = serializer(codec)
    back = ser.loads(ser.dumps(TaskResult("t1", State.SUCCESS, (1, (2, 3)))), TaskResult)
    assert back.result == [1, [2, 3]]


def test_pickle_keeps_python_objects_inside_a_result() -> None:
    value = (1, frozenset({2}), {3}, dt.datetime(2024, 1, 1))  # naive on purpose
    ser = serializer("pickle")
    assert ser.loads(ser.dumps(TaskResult("t1", State.SUCCESS, value)), TaskResult).result == value


@pytest.mark.parametrize("compression", sorted(COMPRESSIONS))
def test_bodies_up_to_the_threshold_stay_uncompressed(compression: str) -> None:
    ser = serializer("json", compression, compress_threshold=10_000)
    small = ser.dumps(TaskResult("t1", State.SUCCESS, "x" * 10))
    assert "comp" not in parse_envelope(small)[0]
    big = ser.dumps(TaskResult("t1", State.SUCCESS, "x" * 20_000))
    assert parse_envelope(big)[0]["comp"] == compression
    assert len(big) < 20_000


@given(
    writer_codec=st.sampled_from(["json", "msgpack"]),
    compression=st.sampled_from([None, *COMPRESSIONS]),
    result=task_results(),
)
def test_a_reader_decodes_what_any_writer_wrote(
    writer_codec: str, compression: str | None, result: TaskResult
) -> None:
    # The header, not the reader's configuration, says how a payload was written.
    payload = serializer(writer_codec, compression).dumps(result)
    assert Serializer().loads(payload, TaskResult) == result


# -- configuration errors ------------------------------------------------------


def test_pickle_without_accept_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigurationError, match=r"accept=json,msgpack,pickle"):
        CodecOptions(codec="pickle")


def test_unknown_codec_or_compression_in_configuration_lists_the_choices() -> None:
    with pytest.raises(ConfigurationError, match=r"json, msgpack, pickle"):
        CodecOptions(codec="yaml")
    with pytest.raises(ConfigurationError, match=r"known: json, msgpack, pickle"):
        CodecOptions(accept=frozenset({"json", "bson"}))
    with pytest.raises(ConfigurationError, match=r"zlib, zstd or none"):
        CodecOptions(compression="lz4")


# -- encode errors -------------------------------------------------------------


def test_bytes_under_json_suggest_msgpack() -> None:
    with pytest.raises(EncodeError, match=r"codec=msgpack") as info:
        serializer("json").dumps(TaskResult("t1", State.SUCCESS, b"\x00\x01"))
    assert not isinstance(info.value, ResultTooLargeError)


@pytest.mark.parametrize(
    ("codec", "value"),
    [("json", {1: "int key"}), ("json", 2**64), ("msgpack", object()), ("msgpack", 2**64)],
)
def test_values_a_codec_cannot_hold_raise_encode_error(codec: str, value: Any) -> None:
    with pytest.raises(EncodeError, match=f"codec={codec}"):
        serializer(codec).dumps(TaskResult("t1", State.SUCCESS, value))


def test_unpicklable_values_raise_encode_error() -> None:
    with pytest.raises(EncodeError, match="codec=pickle"):
        serializer("pickle").dumps(TaskResult("t1", State.SUCCESS, lambda: None))


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_oversized_result_names_its_size_and_the_limit(codec: str) -> None:
    ser = serializer(codec, max_result_size=1000)
    with pytest.raises(ResultTooLargeError) as info:
        ser.dumps(TaskResult("big-one", State.SUCCESS, "x" * 5000))
    error = info.value
    assert error.task_id == "big-one"
    assert error.limit == 1000
    assert error.size > 5000
    assert f"{error.size:,} bytes" in str(error)
    assert "1,000 bytes" in str(error)
    assert "max_result_size" in str(error)
    assert isinstance(error, EncodeError)


def test_the_size_limit_applies_before_and_after_compression() -> None:
    # Before: readers stop inflating at the limit, so a writer may not go past it.
    result = TaskResult("t1", State.SUCCESS, "x" * 5000)
    with pytest.raises(ResultTooLargeError, match="before compression"):
        serializer("json", "zlib", max_result_size=1000).dumps(result)
    with pytest.raises(ResultTooLargeError, match="enable compression"):
        serializer("json", None, max_result_size=1000).dumps(result)
    # After: the final bytes count, so compression lets a body near the limit fit.
    near = TaskResult("t1", State.SUCCESS, "x" * 900)
    ser = serializer("json", "zlib", max_result_size=1000, compress_threshold=0)
    assert ser.loads(ser.dumps(near), TaskResult) == near


def test_no_size_limit_when_max_result_size_is_none() -> None:
    ser = serializer("json", max_result_size=None)
    assert ser.loads(ser.dumps(TaskResult("t1", State.SUCCESS, "x" * 100_000)), TaskResult)


# -- decode errors -------------------------------------------------------------


def test_unknown_codec_in_header() -> None:
    with pytest.raises(UnknownCodecError, match=r"codec 'yaml'.*Upgrade resultstore"):
        Serializer().loads(make_envelope({"codec": "yaml"}, b"task_id: x"), TaskResult)


def test_pickle_payload_is_refused_unless_accepted() -> None:
    payload = serializer("pickle").dumps(TaskResult("t1", State.SUCCESS, 1))
    with pytest.raises(UnsafeCodecError, match=r"add it to accept only if you trust every writer"):
        Serializer().loads(payload, TaskResult)
    assert serializer("pickle").loads(payload, TaskResult).result == 1


def test_pickle_header_is_refused_before_the_body_is_read() -> None:
    # A body that would run code if unpickled: refusal must not depend on reading it.
    hostile = b"cos\nsystem\n(S'echo owned'\ntR."
    with pytest.raises(UnsafeCodecError):
        Serializer().loads(make_envelope({"codec": "pickle"}, hostile), TaskResult)


def test_a_safe_codec_missing_from_accept_names_the_option() -> None:
    payload = serializer("msgpack").dumps(TaskResult("t1"))
    reader = Serializer(CodecOptions(accept=frozenset({"json"})))
    with pytest.raises(UnknownCodecError, match=r"add msgpack to the accept option"):
        reader.loads(payload, TaskResult)


def test_missing_magic_says_who_wrote_it_and_the_fix() -> None:
    with pytest.raises(
        CorruptPayloadError, match=r"does not start with a resultstore header.*Forget"
    ):
        Serializer().loads(b'{"task_id": "t1"}', TaskResult)


@pytest.mark.parametrize(
    "payload",
    [
        b"rs1 codec=json",  # no end of header
        b"rs1 codec=json;;\n{}",  # empty field
        b"rs1 codec json\n{}",  # no '='
        b"rs1 codec=js on\n{}",  # space in a value
        b"rs1 Codec=json\n{}",  # keys are lower case
        b"rs1 codec=json" + b";x=y" * 200 + b"\n{}",  # header longer than allowed
        b"rs1 codec=\xff\n{}",  # not ASCII
    ],
)
def test_damaged_header_is_corrupt(payload: bytes) -> None:
    with pytest.raises(CorruptPayloadError, match="damaged"):
        Serializer().loads(payload, TaskResult)


def test_a_payload_that_is_not_bytes_is_corrupt() -> None:
    with pytest.raises(CorruptPayloadError, match="not bytes"):
        Serializer().loads("rs1 codec=json\n{}", TaskResult)  # type: ignore[arg-type]  # the wrong type is the point


@pytest.mark.parametrize("codec", ["json", "msgpack"])
@pytest.mark.parametrize("compression", [None, *sorted(COMPRESSIONS)])
def test_truncated_body_is_corrupt(codec: str, compression: str | None) -> None:
    ser = serializer(codec, compression)
    payload = ser.dumps(TaskResult("t1", State.SUCCESS, {"numbers": list(range(50))}))
    with pytest.raises(CorruptPayloadError):
        ser.loads(payload[:-7], TaskResult)


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_garbage_body_is_corrupt(codec: str) -> None:
    with pytest.raises(CorruptPayloadError, match=f"not valid {codec}"):
        Serializer().loads(make_envelope({"codec": codec}, b"\xc1\xff{garbage"), TaskResult)


@pytest.mark.parametrize("compression", sorted(COMPRESSIONS))
def test_body_that_does_not_decompress_is_corrupt(compression: str) -> None:
    payload = make_envelope({"codec": "json", "comp": compression}, b"not compressed at all")
    with pytest.raises(CorruptPayloadError, match=f"does not decompress with {compression}"):
        Serializer().loads(payload, TaskResult)


def test_unknown_compression_in_header() -> None:
    payload = make_envelope({"codec": "json", "comp": "lz4"}, b"...")
    with pytest.raises(UnknownCodecError, match=r"compression 'lz4'.*known: zlib, zstd"):
        Serializer().loads(payload, TaskResult)


def test_envelope_without_codec_points_at_the_missing_plugin() -> None:
    payload = make_envelope({"enc": "fernet", "kid": "k1"}, b"opaque")
    with pytest.raises(UnknownCodecError, match=r"enc=fernet.*plugin.*resultstore-encryption"):
        Serializer().loads(payload, TaskResult)


@pytest.mark.parametrize(
    ("body", "cls", "where"),
    [
        (b'{"task_id": "t1", "state": 7}', TaskResult, "state"),
        (b'{"task_id": "t1", "children": "abc"}', TaskResult, "children"),
        (b'{"task_id": "t1", "date_done": "yesterday"}', TaskResult, "date_done"),
        (b'{"task_id": "t1", "date_done": "2024-01-01T00:00:00"}', TaskResult, "date_done"),
        (b'{"task_id": "t1", "exception": ["ValueError"]}', TaskResult, "exception"),
        (b'{"state": "SUCCESS"}', TaskResult, "task_id"),
        (b'["t1", "SUCCESS"]', TaskResult, "TaskResult"),
        (b'{"group_id": "g", "task_ids": [1, 2]}', Group, "task_ids"),
        (b'{"group_id": "g", "size": 2, "received": ["0"]}', ChordState, "received"),
        (b'{"type_name": "E", "module": "m", "args": 5}', ExceptionInfo, "args"),
    ],
)
def test_structurally_wrong_data_is_corrupt(body: bytes, cls: type[Any], where: str) -> None:
    with pytest.raises(CorruptPayloadError, match=f"does not describe a {cls.__name__}") as info:
        Serializer().loads(json_payload(body), cls)
    assert where in str(info.value)


def test_a_payload_of_another_model_is_corrupt() -> None:
    group = serializer("json").dumps(Group("g", ("a",)))
    with pytest.raises(CorruptPayloadError, match="TaskResult"):
        Serializer().loads(group, TaskResult)


def test_a_deeply_nested_body_is_corrupt_not_a_crash() -> None:
    depth = 100_000
    body = b'{"task_id": "t1", "result": ' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(CorruptPayloadError):
        Serializer().loads(json_payload(body), TaskResult)


def test_a_huge_exception_cause_chain_is_corrupt_not_a_crash() -> None:
    depth = 5000
    link = b'{"type_name": "E", "module": "m", "cause": '
    chain = link * depth + b'{"type_name": "E", "module": "m"}' + b"}" * depth
    with pytest.raises(CorruptPayloadError):
        Serializer().loads(
            json_payload(b'{"task_id": "t1", "exception": ' + chain + b"}"), TaskResult
        )


_HEADERS = [
    b"",
    b"rs1 ",
    b"rs1 codec=json\n",
    b"rs1 codec=msgpack\n",
    b"rs1 codec=json;comp=zlib\n",
    b"rs1 codec=msgpack;comp=zstd\n",
    b"rs1 codec=json;comp=zstd\n",
    b"rs1 enc=fernet\n",
]


@given(
    header=st.sampled_from(_HEADERS),
    body=st.one_of(
        st.binary(max_size=200),
        st.just(zlib.compress(b'{"task_id": 1}')),
        st.builds(lambda b: zlib.compress(msgpack.packb(b)), msgpack_values()),
        msgpack_values().map(lambda v: msgpack.packb(v, use_bin_type=True)),
    ),
    cls=st.sampled_from([TaskResult, Group, ChordState, ExceptionInfo]),
)
def test_arbitrary_bytes_only_ever_raise_decode_errors(
    header: bytes, body: bytes, cls: type[Any]
) -> None:
    # Some of these decode (a msgpack map can happen to be a valid model);
    # the point is that nothing but a DecodeError ever escapes.
    with contextlib.suppress(DecodeError):
        Serializer().loads(header + body, cls)


# -- the read path's remembered header lines ------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body is not valid json"),
        (b'{"state": "SUCCESS"}', "does not describe a TaskResult"),
        (b'["a list"]', "does not describe a TaskResult"),
    ],
)
def test_a_remembered_header_line_still_gives_the_full_error_for_a_bad_body(
    body: bytes, message: str
) -> None:
    serializer = Serializer(CodecOptions())
    good = serializer.dumps(TaskResult("t", State.SUCCESS, 1))
    for _ in range(2):  # the second read takes the remembered line
        assert serializer.loads(good, TaskResult).result == 1
    head = good[: good.index(b"\n") + 1]
    with pytest.raises(CorruptPayloadError, match=message):
        serializer.loads(head + body, TaskResult)


def test_compressed_payloads_are_never_read_past_the_limit_by_a_remembered_line() -> None:
    serializer = Serializer(
        CodecOptions(compression="zlib", compress_threshold=0, max_result_size=1000)
    )
    small = serializer.dumps(TaskResult("t", State.SUCCESS, "x"))
    for _ in range(2):
        assert serializer.loads(small, TaskResult).result == "x"
    head = small[: small.index(b"\n") + 1]
    bomb = head + zlib.compress(b'{"task_id": "t", "result": "' + b"x" * 100_000 + b'"}')
    with pytest.raises(CorruptPayloadError, match="max_result_size"):
        serializer.loads(bomb, TaskResult)


# -- bulk reads: plain successes as values (loads_lean) ------------------------------------


def _lean_reader() -> tuple[Serializer, bytes]:
    """A serializer that has read one plain JSON success, and that payload."""
    serializer = Serializer(CodecOptions())
    first = serializer.dumps(TaskResult("first", State.SUCCESS, 0, date_done=NOW))
    serializer.loads(first, TaskResult)
    return serializer, first


NOW = dt.datetime(2026, 12, 2, 15, 0, tzinfo=dt.UTC)


def test_a_bulk_read_hands_plain_successes_over_as_values_and_the_rest_as_models() -> None:
    serializer, _ = _lean_reader()
    success = TaskResult("ok", State.SUCCESS, {"rows": [1, 2]}, date_done=NOW, name="t.add")
    failure = TaskResult(
        "bad", State.FAILURE, exception=ExceptionInfo("ValueError", "builtins", ("x",), "x")
    )
    progress = TaskResult("busy", "PROGRESS", {"done": 3})
    decoded = serializer.loads_lean(
        {r.task_id: serializer.dumps(r) for r in (success, failure, progress)} | {"gone": None}
    )
    lean = decoded["ok"]
    assert isinstance(lean, Succeeded)
    assert (lean.state, lean.ready, lean.result) == (State.SUCCESS, True, {"rows": [1, 2]})
    assert lean.full() == success  # every field, decoded with the single read's checks
    assert decoded["bad"] == failure
    assert decoded["busy"] == progress
    assert decoded["gone"] is None


def test_a_bulk_read_decodes_in_full_what_it_cannot_read_plainly() -> None:
    serializer = Serializer(CodecOptions(compression="zlib", compress_threshold=0))
    result = TaskResult("z", State.SUCCESS, "x" * 100, date_done=NOW)
    payload = serializer.dumps(result)
    # A header line never decoded before, then one that names compression.
    assert serializer.loads_lean({"z": payload}) == {"z": result}
    assert serializer.loads_lean({"z": payload}) == {"z": result}


def test_a_bulk_read_raises_the_full_error_for_a_bad_body_under_a_known_line() -> None:
    serializer, first = _lean_reader()
    head = first[: first.index(b"\n") + 1]
    with pytest.raises(CorruptPayloadError, match="body is not valid json"):
        serializer.loads_lean({"first": first, "broken": head + b"{not json"})


def test_a_lean_success_defers_the_checks_of_fields_it_does_not_read() -> None:
    serializer, first = _lean_reader()
    head = first[: first.index(b"\n") + 1]
    odd = head + b'{"task_id": "t", "state": "SUCCESS", "result": 5, "date_done": "yesterday"}'
    lean = serializer.loads_lean({"t": odd})["t"]
    assert isinstance(lean, Succeeded)
    assert lean.result == 5
    with pytest.raises(CorruptPayloadError):
        lean.full()


def test_a_bulk_read_through_a_wrapping_plugin_builds_every_model() -> None:
    class Hooks:
        def encode(self, request: EncodeRequest) -> bytes:
            return encode_payload(request.obj, request.options)

        def decode(self, request: DecodeRequest) -> Any:
            return decode_payload(request.payload, request.cls, request.options)

        def codec_is_default(self) -> bool:
            return False

    serializer = Serializer(CodecOptions(), Hooks())
    result = TaskResult("w", State.SUCCESS, 1, date_done=NOW)
    payload = serializer.dumps(result)
    for _ in range(2):
        assert serializer.loads_lean({"w": payload}) == {"w": result}
