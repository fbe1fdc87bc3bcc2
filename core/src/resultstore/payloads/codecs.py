"""Payloads: codecs, compression, the self-describing header, and the size limit.

Every stored payload starts with a one-line header naming how its body was
written, so a reader decodes what any writer wrote without matching
configuration::

    rs1 codec=json\\n{"task_id": ...}
    rs1 codec=msgpack;comp=zlib\\n<compressed msgpack>

Plugins that wrap the body (encryption, signing) put their own envelope
around the whole payload with :func:`make_envelope` and unwrap it in a
``resultstore_decode`` wrapper hook; see :mod:`resultstore.plugin.hookspecs`.
"""

from __future__ import annotations

import math
import pickle
import re
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar, final

import attrs
import cattrs
import msgpack
import orjson

from resultstore.concepts.converters import (
    configure_json_converter,
    configure_msgpack_converter,
    configure_pickle_converter,
    new_converter,
)
from resultstore.concepts.errors import (
    ConfigurationError,
    CorruptPayloadError,
    EncodeError,
    ResultTooLargeError,
    UnknownCodecError,
    UnsafeCodecError,
)
from resultstore.concepts.models import TaskResult
from resultstore.concepts.options import Options, parse_size
from resultstore.concepts.states import State

__all__ = [
    "CODECS",
    "COMPRESSIONS",
    "Codec",
    "CodecHooks",
    "CodecOptions",
    "DecodeRequest",
    "EncodeRequest",
    "Serializer",
    "Succeeded",
    "decode_payload",
    "encode_payload",
    "make_envelope",
    "parse_envelope",
]

T = TypeVar("T")

MAGIC = b"rs1 "
_MAX_HEADER = 512
_parsed_lines: dict[bytes, dict[str, str]] = {}
_structure_hooks: dict[tuple[str, type[Any]], Callable[[Any, type[Any]], Any]] = {}
_FIELD = re.compile(rb"^[a-z][a-z0-9_]*=[A-Za-z0-9._:+/=\-]+$")


@attrs.frozen
class Codec:
    """A wire format: how plain data becomes bytes, and the converter for it."""

    name: str
    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes], Any]
    converter: cattrs.Converter
    #: False for codecs that can run code when read (pickle).
    safe: bool = True
    #: the same rules with detailed validation, to explain a failed read.
    explainer: cattrs.Converter | None = None


def _codec(
    name: str,
    dumps: Callable[[Any], bytes],
    loads: Callable[[bytes], Any],
    configure: Callable[[cattrs.Converter], None],
    *,
    safe: bool = True,
) -> Codec:
    fast, explainer = new_converter(detailed_validation=False), new_converter()
    configure(fast)
    configure(explainer)
    return Codec(name, dumps, loads, fast, safe=safe, explainer=explainer)


_SCALARS = frozenset({str, int, bool, type(None)})
# A MessagePack float 64 (0xcb, then big-endian IEEE 754) whose exponent bits
# are all set: NaN or an infinity.
_PACKED_NON_FINITE = re.compile(rb"\xcb[\x7f\xff][\xf0-\xff]")


def _non_finite(value: Any) -> float | None:
    """The first NaN or infinity inside ``value`` (dicts, lists, tuples), else None."""
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind in _SCALARS:
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return item
        elif isinstance(item, dict):
            extend(item.values())
        elif isinstance(item, list | tuple):
            extend(item)
    return None


def _may_hold_non_finite(value: Any) -> bool:
    """False only if ``value`` surely holds no NaN or infinity (checked in C, by msgpack)."""
    try:
        packed = msgpack.packb(value, use_bin_type=True)
    except Exception:  # a type msgpack does not pack: ask the walk
        return True
    return _PACKED_NON_FINITE.search(packed) is not None


def _json_dumps(value: Any) -> bytes:
    body = orjson.dumps(value)
    # orjson writes NaN and infinities as null, silently. They can only hide
    # where a null was written; the Python walk runs only if msgpack, which
    # keeps them, wrote one's bit pattern.
    if b"null" in body and _may_hold_non_finite(value):
        bad = _non_finite(value)
        if bad is not None:
            raise EncodeError(
                f"cannot encode the result with codec=json: it holds {bad!r} (NaN or infinity), "
                f"which JSON cannot hold and would be read back as null; store None or a "
                f"string instead, or use codec=msgpack, which keeps them"
            )
    return body


def _msgpack_dumps(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True, datetime=True)  # type: ignore[no-any-return]  # untyped library


def _msgpack_loads(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, timestamp=3, strict_map_key=False)


def _pickle_dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


CODECS: Mapping[str, Codec] = {
    "json": _codec("json", _json_dumps, orjson.loads, configure_json_converter),
    "msgpack": _codec("msgpack", _msgpack_dumps, _msgpack_loads, configure_msgpack_converter),
    "pickle": _codec("pickle", _pickle_dumps, pickle.loads, configure_pickle_converter, safe=False),
}


@attrs.frozen
class Compression:
    """A compression: ``decompress(data, limit)`` never holds more than
    ``limit + 1`` bytes of output and raises ``_Inflated`` past it."""

    name: str
    compress: Callable[[bytes, int | None], bytes]
    decompress: Callable[[bytes, int | None], bytes]


class _Inflated(Exception):
    """A body decompresses to more than the limit (``size`` is what is known of it)."""

    def __init__(self, size: int | None) -> None:
        super().__init__(size)
        self.size = size


#: output taken per step of a streamed decompression with no declared size.
_STEP = 1024 * 1024


def _zlib_compress(data: bytes, level: int | None) -> bytes:
    return zlib.compress(data, 6 if level is None else level)


def _zlib_decompress(data: bytes, limit: int | None) -> bytes:
    if limit is None:
        return zlib.decompress(data)
    inflater = zlib.decompressobj()
    # max_length stops zlib itself: a bomb never inflates past limit + 1 bytes.
    out = inflater.decompress(data, limit + 1)
    if len(out) > limit:
        raise _Inflated(None)
    if not inflater.eof:
        raise zlib.error("incomplete or truncated stream")
    return out


def _zstd_module() -> Any:
    try:
        import zstandard
    except ImportError:
        raise UnknownCodecError(
            "zstd compression needs the zstandard package: pip install 'resultstore[zstd]'"
        ) from None
    return zstandard


def _zstd_compress(data: bytes, level: int | None) -> bytes:
    return _zstd_module().ZstdCompressor(level=3 if level is None else level).compress(data)  # type: ignore[no-any-return]  # untyped optional library


def _zstd_decompress(data: bytes, limit: int | None) -> bytes:
    zstandard = _zstd_module()
    size: int = zstandard.frame_content_size(data)
    if size >= 0:
        # The frame declares its size: refuse before allocating anything, and
        # decompression never writes past the size it declared.
        if limit is not None and size > limit:
            raise _Inflated(size)
        return zstandard.ZstdDecompressor().decompress(data)  # type: ignore[no-any-return]  # untyped optional library
    # No declared size (not what resultstore writes): stream, a step at a time.
    reader = zstandard.ZstdDecompressor().stream_reader(data)
    out = bytearray()
    while True:
        step = _STEP if limit is None else min(_STEP, limit + 1 - len(out))
        chunk = reader.read(step)
        if not chunk:
            return bytes(out)
        out += chunk
        if limit is not None and len(out) > limit:
            raise _Inflated(None)


COMPRESSIONS: Mapping[str, Compression] = {
    "zlib": Compression("zlib", _zlib_compress, _zlib_decompress),
    "zstd": Compression("zstd", _zstd_compress, _zstd_decompress),
}

_SAFE_DEFAULT_ACCEPT = frozenset({"json", "msgpack"})


def _parse_names(value: object) -> frozenset[str]:
    names = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]  # any iterable of names
    return frozenset(str(n).strip().lower() for n in names if str(n).strip())


def _optional_name(value: object) -> str | None:
    text = str(value).strip().lower() if value is not None else ""
    return None if text in ("", "none", "off", "false", "0") else text


@attrs.frozen
class CodecOptions:
    """How results are written and what a reader accepts.

    ``codec`` writes new payloads (json, msgpack, or pickle); ``accept`` lists
    the codecs a reader decodes (pickle only if named); ``compression``
    (zlib, zstd or None) applies to bodies over ``compress_threshold``
    bytes; ``max_result_size`` (bytes, None = no limit) bounds a stored payload.
    """

    codec: str = "json"
    accept: frozenset[str] = _SAFE_DEFAULT_ACCEPT
    compression: str | None = None
    compress_threshold: int = 1024
    compress_level: int | None = None
    max_result_size: int | None = 32 * 1024 * 1024

    def __attrs_post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ConfigurationError(
                f"unknown codec {self.codec!r}; choose one of {', '.join(sorted(CODECS))}"
            )
        unknown = self.accept - CODECS.keys()
        if unknown:
            raise ConfigurationError(
                f"accept names unknown codec(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(CODECS))}"
            )
        if not CODECS[self.codec].safe and self.codec not in self.accept:
            raise ConfigurationError(
                f"codec={self.codec} runs code when a result is read, so it is never "
                f"enabled by default; if you trust every writer and reader of this "
                f"store, also pass accept=json,msgpack,{self.codec}"
            )
        if self.compression is not None and self.compression not in COMPRESSIONS:
            raise ConfigurationError(
                f"unknown compression {self.compression!r}; choose zlib, zstd or none"
            )

    @classmethod
    def take_from(cls, options: Options) -> CodecOptions:
        """Take the codec options (``codec``, ``accept``, ``compression``,
        ``compress_threshold``, ``compress_level``, ``max_result_size``)."""
        default = cls()
        return cls(
            codec=options.take("codec", lambda v: str(v).strip().lower(), default.codec),
            accept=options.take("accept", _parse_names, default.accept),
            compression=options.take("compression", _optional_name, default.compression),
            compress_threshold=options.take(
                "compress_threshold", lambda v: parse_size(v) or 0, default.compress_threshold
            ),
            compress_level=options.take("compress_level", int, default.compress_level),
            max_result_size=options.take("max_result_size", parse_size, default.max_result_size),
        )


def make_envelope(fields: Mapping[str, str], body: bytes) -> bytes:
    """Prefix ``body`` with a header line holding ``fields`` (``key=value``)."""
    line = ";".join(f"{key}={value}" for key, value in fields.items()).encode("ascii")
    return MAGIC + line + b"\n" + body


def parse_envelope(payload: bytes) -> tuple[dict[str, str], bytes]:
    """Split a payload into its header fields and body, or raise CorruptPayloadError."""
    fields, start = _header(payload)
    return dict(fields), bytes(payload[start:])


def _header(payload: bytes) -> tuple[Mapping[str, str], int]:
    """The header fields (shared: do not change them) and where the body starts."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise CorruptPayloadError(
            f"stored payload is {type(payload).__name__}, not bytes; the store holds "
            f"data that resultstore did not write"
        )
    end = payload.find(b"\n", len(MAGIC), _MAX_HEADER) if payload[:4] == MAGIC else -2
    if end > 0:
        known = _parsed_lines.get(payload[len(MAGIC) : end])
        if known is not None:
            return known, end + 1
    if not bytes(payload[:4]) == MAGIC:
        raise CorruptPayloadError(
            f"stored payload does not start with a resultstore header (starts with "
            f"{bytes(payload[:12])!r}); it was written by another program or is damaged. "
            f"Forget the task, or point the backend at a key prefix / table of its own"
        )
    if end < 0:
        raise CorruptPayloadError("stored payload header is not terminated; the payload is damaged")
    line = bytes(payload[len(MAGIC) : end])
    fields: dict[str, str] = {}
    for item in line.split(b";"):
        if not _FIELD.match(item):
            raise CorruptPayloadError(
                f"stored payload header has a malformed field {item[:40]!r}; the payload is damaged"
            )
        key, _, value = item.decode("ascii").partition("=")
        fields[key] = value
    # A process meets few distinct header lines; remembering them keeps the
    # regex off the read path. Bounded, since payloads come from outside.
    if len(_parsed_lines) < 64:
        _parsed_lines[line] = fields
    return fields, end + 1


def encode_payload(obj: Any, options: CodecOptions) -> bytes:
    """The core's own encoding: convert, serialize, maybe compress, add the header."""
    codec = CODECS[options.codec]
    try:
        body = codec.dumps(codec.converter.unstructure(obj))
    except (TypeError, ValueError, OverflowError, pickle.PicklingError, AttributeError) as exc:
        hint = (
            "; the json codec stores JSON types only (no bytes, sets or objects): "
            "use codec=msgpack for bytes"
            if codec.name == "json"
            else ""
        )
        raise EncodeError(
            f"cannot encode {type(obj).__name__} with codec={codec.name}: {exc}{hint}"
        ) from exc
    fields = {"codec": codec.name}
    limit = options.max_result_size
    if options.compression is not None and len(body) > options.compress_threshold:
        if limit is not None and len(body) > limit:
            # A reader stops inflating at its limit: refuse what it could not read.
            ident = getattr(obj, "task_id", None) or getattr(obj, "group_id", "?")
            raise ResultTooLargeError(str(ident), len(body), limit, compressed=True)
        body = COMPRESSIONS[options.compression].compress(body, options.compress_level)
        fields["comp"] = options.compression
    return make_envelope(fields, body)


#: (deserialize, structure): how the body under one header line is read.
_Reader = tuple[Callable[[bytes], Any], Callable[[Any, type[Any]], Any]]
_HEAD = len(MAGIC)
#: header lines per serializer with a remembered reader (payloads come from outside).
_MAX_READERS = 16


def plain_reader(head: bytes, cls: type[Any], options: CodecOptions) -> _Reader | None:
    """How to read a body under the header line ``head`` (magic included) when it
    names an accepted codec and nothing else (no compression, no wrapping)."""
    fields = _parsed_lines.get(head[_HEAD:])
    if fields is None or set(fields) != {"codec"} or fields["codec"] not in options.accept:
        return None
    codec = CODECS.get(fields["codec"])
    hook = _structure_hooks.get((fields["codec"], cls))
    if codec is None or hook is None:
        return None
    return codec.loads, hook


def decode_payload(payload: bytes, cls: type[T], options: CodecOptions) -> T:
    """The core's own decoding: read the header, decompress, deserialize, convert."""
    fields, start = _header(payload)
    body = payload[start:]
    name = fields.get("codec")
    if name is None:
        layers = ", ".join(f"{k}={v}" for k, v in fields.items())
        raise UnknownCodecError(
            f"stored payload is wrapped ({layers}) by a plugin this process does not "
            f"have or has not configured; install and configure that plugin "
            f"(for enc=..., resultstore-encryption with the writer's keys)"
        )
    codec = CODECS.get(name)
    if codec is None:
        raise UnknownCodecError(
            f"stored payload uses codec {name!r}, which this resultstore does not know; "
            f"known: {', '.join(sorted(CODECS))}. Upgrade resultstore on this reader"
        )
    if name not in options.accept:
        error = UnsafeCodecError if not codec.safe else UnknownCodecError
        raise error(
            f"stored payload uses codec={name}, which this reader does not accept "
            f"(accept={','.join(sorted(options.accept))})"
            + (
                "; pickle runs code when read: add it to accept only if you trust every writer"
                if not codec.safe
                else f"; add {name} to the accept option"
            )
        )
    comp = fields.get("comp")
    if comp is not None:
        if comp not in COMPRESSIONS:
            raise UnknownCodecError(
                f"stored payload uses compression {comp!r}, which this resultstore does "
                f"not know; known: {', '.join(sorted(COMPRESSIONS))}"
            )
        limit = options.max_result_size
        try:
            body = COMPRESSIONS[comp].decompress(body, limit)
        except UnknownCodecError:
            raise
        except _Inflated as exc:
            assert limit is not None  # only a limit raises it
            size = f"{exc.size:,} bytes" if exc.size is not None else "more than that"
            raise CorruptPayloadError(
                f"stored payload decompresses ({comp}) past this reader's max_result_size "
                f"of {limit:,} bytes (to {size}); decompression stopped there. A writer "
                f"with a larger limit wrote it, or it is a decompression bomb: if you trust "
                f"every writer, raise max_result_size on this reader (for example "
                f"connect(url, max_result_size='256m') or ?max_result_size=256m), else "
                f"forget the task"
            ) from None
        except Exception as exc:
            raise CorruptPayloadError(
                f"stored payload does not decompress with {comp}: {exc}"
            ) from exc
    try:
        data = codec.loads(body)
    except Exception as exc:
        raise CorruptPayloadError(
            f"stored payload body is not valid {name}: {exc}; the payload is damaged"
        ) from exc
    try:
        hook = _structure_hooks.get((name, cls))
        if hook is None:
            hook = _structure_hooks[(name, cls)] = codec.converter.get_structure_hook(cls)
        result: T = hook(data, cls)
        return result
    except Exception as exc:
        raise CorruptPayloadError(
            f"stored payload does not describe a {cls.__name__}: {_explain(codec, data, cls, exc)}"
        ) from exc


def _explain(codec: Codec, data: Any, cls: type[Any], error: Exception) -> str:
    """Where ``data`` fails to fit ``cls``, by the detailed converter (slow path only)."""
    try:
        if codec.explainer is not None:
            codec.explainer.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        return "; ".join(cattrs.transform_error(exc))
    except Exception as exc:
        return str(exc)
    return str(error)


@attrs.define
class EncodeRequest:
    """The argument of the ``resultstore_encode`` hook."""

    obj: Any
    options: CodecOptions


@attrs.define
class DecodeRequest:
    """The argument of the ``resultstore_decode`` hook.

    A wrapper hook that undoes a layer of its own (decryption, say) replaces
    ``payload`` before it yields, so the inner implementations see the
    unwrapped bytes.
    """

    payload: bytes
    cls: type[Any]
    options: CodecOptions


class CodecHooks(Protocol):
    """What a :class:`Serializer` calls of the plugin facade
    (:class:`resultstore.Hooks` is one); declared here so that payloads
    sit a floor below the plugin machinery and never import it."""

    def encode(self, request: EncodeRequest) -> bytes: ...

    def decode(self, request: DecodeRequest) -> Any: ...

    def codec_is_default(self) -> bool: ...


@final
class Succeeded:
    """A stored SUCCESS read only as far as its value: what a bulk read hands
    over when nothing else was asked for, so that a join of thousands builds
    no :class:`TaskResult` it does not return.

    It answers ``state``, ``ready`` and ``result`` like the model; :meth:`full`
    decodes the whole payload (with every check of a single read) when the
    rest is wanted.
    """

    __slots__ = ("_serializer", "payload", "result")
    state: str = State.SUCCESS
    ready = True

    def __init__(self, result: Any, payload: bytes, serializer: Serializer) -> None:
        self.result = result
        self.payload = payload
        self._serializer = serializer

    def full(self) -> TaskResult:
        return self._serializer.loads(self.payload, TaskResult)

    def __repr__(self) -> str:
        return f"<Succeeded {self.result!r:.60}>"


def _no_body(_body: bytes) -> Any:
    raise AssertionError("read only under a known header line")


class Serializer:
    """Encodes models to payloads and back, through the encode/decode hooks."""

    def __init__(
        self, options: CodecOptions | None = None, hooks: CodecHooks | None = None
    ) -> None:
        self.options = options or CodecOptions()
        self._hooks = hooks
        # Skip the hook machinery on the hot path when only the core encodes.
        self._plain = hooks is None or hooks.codec_is_default()
        self._readers: dict[tuple[bytes, type[Any]], _Reader] = {}

    @property
    def plain(self) -> bool:
        """True when only the core encodes and decodes: no plugin wraps payloads
        (backends that store documents instead of payloads may do so only then)."""
        return self._plain

    def dumps(self, obj: Any) -> bytes:
        """Encode a model; raises EncodeError or ResultTooLargeError."""
        if self._plain or self._hooks is None:
            payload = encode_payload(obj, self.options)
        else:
            payload = self._hooks.encode(EncodeRequest(obj, self.options))
        limit = self.options.max_result_size
        if limit is not None and len(payload) > limit:
            ident = getattr(obj, "task_id", None) or getattr(obj, "group_id", "?")
            raise ResultTooLargeError(str(ident), len(payload), limit)
        return payload

    def loads(self, payload: bytes, cls: type[T]) -> T:
        """Decode a payload into ``cls``; raises a DecodeError subclass."""
        if self._plain or self._hooks is None:
            # Bulk reads decode thousands of payloads with a handful of header
            # lines: a line already decoded once without compression goes
            # straight to its codec. Anything unusual (and every error, so that
            # its message is the full one) takes the general path.
            if type(payload) is bytes:
                end = payload.find(b"\n", _HEAD, _MAX_HEADER)
                reader = self._readers.get((payload[:end], cls)) if end > 0 else None
                if reader is not None:
                    try:
                        fast: T = reader[1](reader[0](payload[end + 1 :]), cls)
                        return fast
                    except Exception:  # the general path raises the right error
                        pass
                decoded = decode_payload(payload, cls, self.options)
                if end > 0 and len(self._readers) < _MAX_READERS:
                    reader = plain_reader(payload[:end], cls, self.options)
                    if reader is not None:
                        self._readers[(payload[:end], cls)] = reader
                return decoded
            return decode_payload(payload, cls, self.options)
        result: T = self._hooks.decode(DecodeRequest(payload, cls, self.options))
        return result

    def loads_many(self, payloads: Mapping[str, bytes | None]) -> dict[str, TaskResult | None]:
        """Decode stored results by id (what ``get_payloads`` returns); None stays None."""
        loads = self.loads
        return {
            task_id: None if payload is None else loads(payload, TaskResult)
            for task_id, payload in payloads.items()
        }

    def loads_lean(
        self, payloads: Mapping[str, bytes | None]
    ) -> dict[str, TaskResult | Succeeded | None]:
        """Decode stored results by id as a bulk read wants them: a plain SUCCESS
        (under a header line this serializer has decoded before, no compression,
        no plugin wrapping) as a :class:`Succeeded`, parsed only as far as its
        value; anything else in full with :meth:`loads`, errors included.
        None (missing) stays None.

        The fields a value does not need (dates, metadata) are not checked here
        but by :meth:`Succeeded.full`.
        """
        decoded: dict[str, TaskResult | Succeeded | None] = {}
        lean = self._plain
        line, start = b"", 0
        body_loads: Callable[[bytes], Any] = _no_body
        for task_id, payload in payloads.items():
            if payload is None:
                decoded[task_id] = None
                continue
            if lean and type(payload) is bytes:
                if not start or not payload.startswith(line):
                    line, body_loads = self._plain_line(payload)
                    start = len(line)
                if start:
                    try:
                        body = body_loads(payload[start:])
                    except Exception:  # loads() below raises the right error
                        body = None
                    if type(body) is dict and body.get("state") == "SUCCESS":
                        decoded[task_id] = Succeeded(body.get("result"), payload, self)
                        continue
            decoded[task_id] = self.loads(payload, TaskResult)
        return decoded

    def _plain_line(self, payload: bytes) -> tuple[bytes, Callable[[bytes], Any]]:
        """The header line of ``payload`` (newline included) and its body reader,
        when a TaskResult under that line was decoded before; else ``b""``."""
        end = payload.find(b"\n", _HEAD, _MAX_HEADER)
        reader = self._readers.get((payload[:end], TaskResult)) if end > 0 else None
        return (b"", _no_body) if reader is None else (payload[: end + 1], reader[0])
