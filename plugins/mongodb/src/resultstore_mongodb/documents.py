"""How results, groups and chord parts become BSON documents, and back.

With the json codec, no compression and no plugin around payloads (the
defaults), a result is a plain document people can query: ``_id`` is the
task id and every field of the result is a field of the document, the
value a native BSON value. Any other configuration (msgpack, pickle,
compression, an encrypting plugin), or a value the json codec would store
differently than BSON does, stores the payload with its ``rs1`` header as
BSON Binary in ``payload``, next to queryable copies of the metadata::

    {_id, state, result, exception, traceback, date_done, date_done_us,
     children, group_id, parent_id, name, args, kwargs, worker, retries,
     queue, expires_at}                          # a native document
    {_id, state, payload, date_done, name, worker, queue, retries,
     group_id, expires_at}                       # a payload document

``date_done`` is a BSON date (milliseconds); ``date_done_us`` keeps the
microseconds below that when there are any. A reader decodes either
kind whatever its own configuration, as it would a payload's header.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from typing import Any

import bson
import bson.errors
import cattrs
import orjson
from bson.codec_options import CodecOptions, TypeDecoder, TypeRegistry
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument
from resultstore import CorruptPayloadError, EncodeError, Group, ResultTooLargeError, TaskResult
from resultstore.payloads.codecs import CODECS, Serializer, make_envelope

__all__ = [
    "CODEC_OPTIONS",
    "DOCUMENT_LIMIT",
    "RAW_REPLY",
    "Documents",
    "bson_safe",
    "split_datetime",
]


class _PlainInt(TypeDecoder):
    """BSON int64 values come back as ``int``, as they would from JSON (not ``Int64``)."""

    bson_type = Int64

    def transform_bson(self, value: Any) -> int:
        return int(value)


#: how documents are read and written: datetimes are aware UTC, integers plain.
CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    tz_aware=True, tzinfo=dt.UTC, type_registry=TypeRegistry([_PlainInt()])
)
#: command replies as raw bytes, to be decoded with CODEC_OPTIONS.
RAW_REPLY: CodecOptions[RawBSONDocument] = CodecOptions(document_class=RawBSONDocument)
#: mongod refuses documents over 16 MiB; keep room for the command around one.
DOCUMENT_LIMIT = 16 * 1024 * 1024 - 16 * 1024
#: deepest nesting stored natively (mongod refuses documents nested over 100 levels).
MAX_DEPTH = 90

_INT64 = (-(2**63), 2**63 - 1)
#: fields of a stored document that are not the model's.
_STORE_FIELDS = ("_id", "expires_at", "date_done_us")


def _text_ok(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: neither BSON nor JSON can hold them
        return False
    return True


def _key_ok(key: object) -> bool:
    return (
        type(key) is str
        and key != ""
        and key[0] != "$"
        and "." not in key
        and "\0" not in key
        and _text_ok(key)
    )


def bson_safe(value: Any, depth: int = 0) -> bool:
    """True if BSON holds ``value`` and gives back exactly what the json codec would.

    Only the JSON types themselves pass (exact ``dict``, ``list``, ``str``,
    ``int`` within 64 bits, finite ``float``, ``bool``, ``None``), with keys
    that MongoDB stores as written. Anything else (a tuple, a datetime, an
    enum, NaN, a ``$key``) would come back differently than through JSON, so
    it goes through the payload path instead.
    """
    kind = type(value)
    if kind is str:
        return _text_ok(value)
    if kind is int:
        return bool(_INT64[0] <= value <= _INT64[1])
    if kind is float:
        return math.isfinite(value)  # orjson writes NaN and infinities as null
    if value is None or kind is bool:
        return True
    if depth >= MAX_DEPTH:
        return False
    if kind is dict:
        return all(_key_ok(k) and bson_safe(v, depth + 1) for k, v in value.items())
    if kind is list:
        return all(bson_safe(v, depth + 1) for v in value)
    return False


def split_datetime(moment: dt.datetime) -> tuple[dt.datetime, int]:
    """A UTC datetime at millisecond precision (what BSON keeps) and the microseconds below."""
    utc = moment if moment.tzinfo is dt.UTC else moment.astimezone(dt.UTC)
    micros = utc.microsecond % 1000
    return utc.replace(microsecond=utc.microsecond - micros), micros


def _joined_datetime(doc: Mapping[str, Any], what: str) -> dt.datetime | None:
    moment = doc.get("date_done")
    if moment is None:
        return None
    micros = doc.get("date_done_us", 0)
    if type(moment) is not dt.datetime or type(micros) is not int or not 0 <= micros < 1000:
        raise CorruptPayloadError(
            f"{what}: date_done is not a date (or date_done_us not 0..999); the document "
            f"was changed by another program. Forget it, or fix the fields"
        )
    return moment.replace(microsecond=moment.microsecond + micros) if micros else moment


class Documents:
    """Encodes models to documents and back, for one serializer's configuration."""

    def __init__(self, serializer: Serializer) -> None:
        options = serializer.options
        self.serializer = serializer
        #: write native documents (else payload documents).
        self.native = serializer.plain and options.codec == "json" and options.compression is None
        # A native document reads like a "codec=json" payload: straight
        # through the converter when nothing else could object, else through
        # the serializer, so that plugins and ``accept`` still decide.
        self._direct = serializer.plain and "json" in options.accept
        #: copy the metadata next to a payload (not when a plugin wraps it, e.g. encrypts).
        self.metadata = serializer.plain
        self.max_size = options.max_result_size
        codec = CODECS["json"]
        self._converter = codec.converter
        self._explainer = codec.explainer
        self._unstructure_result = codec.converter.get_unstructure_hook(TaskResult)
        self._structure_result = codec.converter.get_structure_hook(TaskResult)
        self._unstructure_group = codec.converter.get_unstructure_hook(Group)
        self._structure_group = codec.converter.get_structure_hook(Group)

    # -- writing ---------------------------------------------------------------------

    def _checked(self, doc: dict[str, Any], ident: str) -> RawBSONDocument | None:
        """``doc`` encoded once (pymongo sends the bytes as they are), size-checked;
        None if BSON cannot hold it."""
        try:
            raw = bson.encode(doc, codec_options=CODEC_OPTIONS)
        except (bson.errors.InvalidDocument, OverflowError, ValueError):
            return None
        if self.max_size is not None and len(raw) > self.max_size:
            raise ResultTooLargeError(ident, len(raw), self.max_size)
        self._within_limit(len(raw), ident)
        return RawBSONDocument(raw)

    @staticmethod
    def _within_limit(size: int, ident: str) -> None:
        if size > DOCUMENT_LIMIT:
            raise EncodeError(
                f"result of {ident!r} makes a {size:,}-byte document, over MongoDB's 16 MiB "
                f"document limit; store a reference to the data instead (a file or "
                f"object-store key), or enable compression"
            )

    def _native_result(self, result: TaskResult) -> dict[str, Any] | None:
        try:
            data = self._unstructure_result(result)
        except Exception:  # the payload path raises the documented EncodeError for it
            return None
        # The converter leaves out default fields; the state is always there to query.
        doc: dict[str, Any] = {"_id": data.pop("task_id"), "state": str(result.state)}
        doc.update(data)
        if not all(bson_safe(v) for k, v in doc.items() if k != "date_done"):
            return None
        if result.date_done is not None:
            try:
                doc["date_done"], micros = split_datetime(result.date_done)
            except (OverflowError, ValueError):
                return None
            if micros:
                doc["date_done_us"] = micros
        return doc

    def result(
        self, result: TaskResult, expires_at: dt.datetime | None = None
    ) -> Mapping[str, Any]:
        """The document of ``result``; raises EncodeError or ResultTooLargeError."""
        if self.native:
            doc = self._native_result(result)
            if doc is not None:
                if expires_at is not None:
                    doc["expires_at"] = expires_at
                raw = self._checked(doc, result.task_id)
                if raw is not None:
                    return raw
        payload = self.serializer.dumps(result)
        self._within_limit(len(payload), result.task_id)
        stored: dict[str, Any] = {"_id": result.task_id, "state": str(result.state)}
        stored["payload"] = payload
        if result.date_done is not None:
            # Payload documents are found by date too; microseconds stay in the payload.
            stored["date_done"] = split_datetime(result.date_done)[0]
        if self.metadata:
            for name in ("name", "worker", "queue", "retries", "group_id"):
                value = getattr(result, name)
                if value is not None and bson_safe(value):
                    stored[name] = value
        if expires_at is not None:
            stored["expires_at"] = expires_at
        return stored

    def group(self, group: Group, expires_at: dt.datetime | None) -> Mapping[str, Any]:
        """The document of ``group``; raises EncodeError or ResultTooLargeError."""
        if self.native:
            try:
                data = self._unstructure_group(group)
            except Exception:
                data = None
            if data is not None:
                doc: dict[str, Any] = {"_id": data.pop("group_id"), **data}
                safe = all(bson_safe(v) for k, v in doc.items() if k != "date_done")
                if safe and group.date_done is not None:
                    try:
                        doc["date_done"], micros = split_datetime(group.date_done)
                    except (OverflowError, ValueError):
                        safe = False
                    else:
                        if micros:
                            doc["date_done_us"] = micros
                if safe:
                    if expires_at is not None:
                        doc["expires_at"] = expires_at
                    raw = self._checked(doc, group.group_id)
                    if raw is not None:
                        return raw
        payload = self.serializer.dumps(group)
        self._within_limit(len(payload), group.group_id)
        stored: dict[str, Any] = {"_id": group.group_id, "payload": payload}
        if expires_at is not None:
            stored["expires_at"] = expires_at
        return stored

    # -- reading -------------------------------------------------------------------------

    def _payload(self, doc: Mapping[str, Any], what: str) -> bytes | None:
        payload = doc.get("payload")
        if payload is None:
            return None
        if not isinstance(payload, bytes):
            raise CorruptPayloadError(
                f"{what}: the payload field holds {type(payload).__name__}, not binary data; "
                f"the document was written by another program. Forget it"
            )
        return payload

    def _as_payload(self, data: dict[str, Any]) -> bytes:
        """A native document as the ``codec=json`` payload it stands for."""
        try:
            body = orjson.dumps(data)
        except TypeError as exc:
            raise CorruptPayloadError(f"the document holds a value JSON cannot: {exc}") from exc
        return make_envelope({"codec": "json"}, body)

    def _structure(self, data: dict[str, Any], cls: type[Any], hook: Callable[..., Any]) -> Any:
        try:
            return hook(data, cls)
        except Exception as exc:
            raise CorruptPayloadError(
                f"document {data.get('task_id', data.get('group_id'))!r} does not describe a "
                f"{cls.__name__}: {self._explain(data, cls, exc)}; it was changed by another "
                f"program. Forget it, or fix the fields"
            ) from exc

    def _explain(self, data: Any, cls: type[Any], error: Exception) -> str:
        try:
            if self._explainer is not None:
                self._explainer.structure(data, cls)
        except cattrs.BaseValidationError as exc:
            return "; ".join(cattrs.transform_error(exc))
        except Exception as exc:
            return str(exc)
        return str(error)

    def load_result(self, doc: Mapping[str, Any]) -> TaskResult:
        """The result a document holds; raises a DecodeError subclass."""
        what = f"stored result {doc.get('_id')!r}"
        payload = self._payload(doc, what)
        if payload is not None:
            return self.serializer.loads(payload, TaskResult)
        if not isinstance(doc.get("state"), str):
            raise CorruptPayloadError(
                f"{what} has neither a payload nor a state field: it was not written by "
                f"resultstore. Forget it, or point the backend at a collection of its own"
            )
        data = {k: v for k, v in doc.items() if k not in _STORE_FIELDS}
        data["task_id"] = doc["_id"]
        date_done = _joined_datetime(doc, what)
        if date_done is not None:
            data["date_done"] = date_done
        if not self._direct:
            return self.serializer.loads(self._as_payload(data), TaskResult)
        result: TaskResult = self._structure(data, TaskResult, self._structure_result)
        return result

    def load_group(self, doc: Mapping[str, Any]) -> Group:
        """The group a document holds; raises a DecodeError subclass."""
        what = f"stored group {doc.get('_id')!r}"
        payload = self._payload(doc, what)
        if payload is not None:
            return self.serializer.loads(payload, Group)
        data = {k: v for k, v in doc.items() if k not in _STORE_FIELDS}
        data["group_id"] = doc["_id"]
        date_done = _joined_datetime(doc, what)
        if date_done is not None:
            data["date_done"] = date_done
        if not self._direct:
            return self.serializer.loads(self._as_payload(data), Group)
        group: Group = self._structure(data, Group, self._structure_group)
        return group
