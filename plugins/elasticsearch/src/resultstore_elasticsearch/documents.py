"""How results, groups and chord parts become JSON documents, and back; the index template.

With the json codec, no compression and no plugin around payloads (the
defaults), a result is a plain document people can search in Kibana or
OpenSearch Dashboards: ``_id`` is the task id and every field of the result
is a field of ``_source`` (the same JSON the json codec would store), plus
``expires_at``::

    {task_id, state, result, exception, traceback, date_done, children,
     group_id, parent_id, name, args, kwargs, worker, retries, queue, expires_at}

Any other configuration (msgpack, pickle, compression, an encrypting plugin)
stores the encoded payload, with its ``rs1`` header, base64 in ``payload``
next to copies of the metadata that can be searched (unless a plugin wraps
the payload: then only state, date and expiry are in the clear). A reader
decodes either kind whatever its own configuration.

The template maps the metadata (keyword and date fields) and leaves
``result``, ``args``, ``kwargs`` and the exception's arguments unindexed
(``enabled: false``), so no task's values can clash with another's mapping.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import cattrs
import orjson
from resultstore import CorruptPayloadError, Group, ResultTooLargeError, TaskResult
from resultstore.payloads.codecs import CODECS, Serializer, make_envelope

__all__ = ["MAPPING", "Documents", "iso", "parse_moment", "template"]

#: fields of a stored result document that are not the model's.
_STORE_FIELDS = frozenset({"expires_at"})
#: metadata copied next to a payload, for searching.
_METADATA = ("name", "worker", "queue", "retries", "group_id", "parent_id")

_KEYWORD = {"type": "keyword"}
_DATE = {"type": "date"}
_OPAQUE = {"type": "object", "enabled": False}

#: one mapping for the three indices (fields of results, groups and chords differ by name).
MAPPING: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        # results
        "task_id": _KEYWORD,
        "state": _KEYWORD,
        "date_done": _DATE,
        "expires_at": _DATE,
        "name": _KEYWORD,
        "worker": _KEYWORD,
        "queue": _KEYWORD,
        "retries": {"type": "integer"},
        "parent_id": _KEYWORD,
        "group_id": _KEYWORD,
        "children": _KEYWORD,
        "traceback": {"type": "text"},
        "exception": {
            "type": "object",
            "dynamic": False,
            "properties": {
                "type_name": _KEYWORD,
                "module": _KEYWORD,
                "message": {"type": "text"},
                "args": _OPAQUE,
                "cause": _OPAQUE,
            },
        },
        "result": _OPAQUE,
        "args": _OPAQUE,
        "kwargs": _OPAQUE,
        "payload": {"type": "binary"},
        # groups
        "task_ids": _KEYWORD,
        # chords
        "size": {"type": "integer"},
        "count": {"type": "integer"},
        "received": {"type": "integer"},
        "generation": _KEYWORD,
        "index": {"type": "integer"},
        "token": _KEYWORD,
        "part": _OPAQUE,
    },
}


def template(indices: tuple[str, ...], shards: int | None, replicas: int | None) -> dict[str, Any]:
    """The body of the composable index template for ``indices``."""
    settings: dict[str, Any] = {}
    if shards is not None:
        settings["number_of_shards"] = shards
    if replicas is not None:
        settings["number_of_replicas"] = replicas
    body: dict[str, Any] = {"mappings": MAPPING}
    if settings:
        body["settings"] = {"index": settings}
    # Exact names, and a priority above the built-in templates (100 in Elasticsearch).
    return {
        "index_patterns": list(indices),
        "priority": 200,
        "template": body,
        "_meta": {"managed_by": "resultstore-elasticsearch"},
    }


def iso(moment: dt.datetime) -> str:
    """A UTC datetime as the ISO 8601 text with milliseconds that both products index."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_moment(value: Any) -> dt.datetime | None:
    """``expires_at`` as stored (ISO text), or None if it is not a date."""
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


class Documents:
    """Encodes models to ``_source`` bytes and back, for one serializer's configuration."""

    def __init__(self, serializer: Serializer) -> None:
        options = serializer.options
        self.serializer = serializer
        #: write native documents (else payload documents).
        self.native = serializer.plain and options.codec == "json" and options.compression is None
        # A native document reads like a "codec=json" payload: straight through
        # the converter when nothing else could object, else through the
        # serializer, so that plugins and ``accept`` still decide.
        self._direct = serializer.plain and "json" in options.accept
        #: copy the metadata next to a payload (not when a plugin wraps it, e.g. encrypts).
        self.metadata = serializer.plain
        self.max_size = options.max_result_size
        codec = CODECS["json"]
        self._explainer = codec.explainer
        self._unstructure_result = codec.converter.get_unstructure_hook(TaskResult)
        self._structure_result = codec.converter.get_structure_hook(TaskResult)
        self._unstructure_group = codec.converter.get_unstructure_hook(Group)
        self._structure_group = codec.converter.get_structure_hook(Group)

    # -- writing ---------------------------------------------------------------------

    def _native(self, data: dict[str, Any], ident: str) -> bytes | None:
        try:
            body = orjson.dumps(data)
        except (TypeError, ValueError, OverflowError):
            return None  # the payload path raises the documented EncodeError
        if self.max_size is not None and len(body) > self.max_size:
            raise ResultTooLargeError(ident, len(body), self.max_size)
        return body

    def result(self, result: TaskResult, expires_at: str | None) -> bytes:
        """The ``_source`` of ``result``; raises EncodeError or ResultTooLargeError."""
        if self.native:
            try:
                data = self._unstructure_result(result)
            except Exception:
                data = None
            if data is not None:
                # The converter leaves out default fields; the state is always there to search.
                data["state"] = str(result.state)
                if expires_at is not None:
                    data["expires_at"] = expires_at
                body = self._native(data, result.task_id)
                if body is not None:
                    return body
        return self.payload_result(result, expires_at)

    def payload_result(self, result: TaskResult, expires_at: str | None) -> bytes:
        """The payload document of ``result`` (also when the server refuses a native one)."""
        payload = self.serializer.dumps(result)
        doc: dict[str, Any] = {
            "task_id": result.task_id,
            "state": str(result.state),
            "payload": base64.b64encode(payload).decode("ascii"),
        }
        if result.date_done is not None:
            doc["date_done"] = iso(result.date_done)
        if self.metadata:
            for name in _METADATA:
                value = getattr(result, name)
                if value is not None:
                    doc[name] = value
        if expires_at is not None:
            doc["expires_at"] = expires_at
        return orjson.dumps(doc)

    def group(self, group: Group, expires_at: str | None) -> bytes:
        """The ``_source`` of ``group``; raises EncodeError or ResultTooLargeError."""
        if self.native:
            try:
                data = self._unstructure_group(group)
            except Exception:
                data = None
            if data is not None:
                if expires_at is not None:
                    data["expires_at"] = expires_at
                body = self._native(data, group.group_id)
                if body is not None:
                    return body
        return self.payload_group(group, expires_at)

    def payload_group(self, group: Group, expires_at: str | None) -> bytes:
        payload = self.serializer.dumps(group)
        doc: dict[str, Any] = {
            "group_id": group.group_id,
            "payload": base64.b64encode(payload).decode("ascii"),
        }
        if expires_at is not None:
            doc["expires_at"] = expires_at
        return orjson.dumps(doc)

    # -- reading -------------------------------------------------------------------------

    @staticmethod
    def _payload(doc: Mapping[str, Any], what: str) -> bytes | None:
        payload = doc.get("payload")
        if payload is None:
            return None
        if not isinstance(payload, str):
            raise CorruptPayloadError(
                f"{what}: the payload field holds {type(payload).__name__}, not base64 text; "
                f"the document was written by another program. Forget it"
            )
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise CorruptPayloadError(
                f"{what}: the payload field is not base64; the document was changed by "
                f"another program. Forget it"
            ) from None

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

    def _as_payload(self, data: dict[str, Any]) -> bytes:
        """A native document as the ``codec=json`` payload it stands for."""
        try:
            body = orjson.dumps(data)
        except TypeError as exc:
            raise CorruptPayloadError(f"the document holds a value JSON cannot: {exc}") from exc
        return make_envelope({"codec": "json"}, body)

    def load_result(self, task_id: str, doc: Mapping[str, Any]) -> TaskResult:
        """The result a ``_source`` holds; raises a DecodeError subclass."""
        what = f"stored result {task_id!r}"
        payload = self._payload(doc, what)
        if payload is not None:
            return self.serializer.loads(payload, TaskResult)
        if not isinstance(doc.get("state"), str):
            raise CorruptPayloadError(
                f"{what} has neither a payload nor a state field: it was not written by "
                f"resultstore. Forget it, or give the backend an index prefix of its own"
            )
        data = {k: v for k, v in doc.items() if k not in _STORE_FIELDS}
        data["task_id"] = task_id
        if not self._direct:
            return self.serializer.loads(self._as_payload(data), TaskResult)
        result: TaskResult = self._structure(data, TaskResult, self._structure_result)
        return result

    def load_group(self, group_id: str, doc: Mapping[str, Any]) -> Group:
        """The group a ``_source`` holds; raises a DecodeError subclass."""
        payload = self._payload(doc, f"stored group {group_id!r}")
        if payload is not None:
            return self.serializer.loads(payload, Group)
        data = {k: v for k, v in doc.items() if k not in _STORE_FIELDS}
        data["group_id"] = group_id
        if not self._direct:
            return self.serializer.loads(self._as_payload(data), Group)
        group: Group = self._structure(data, Group, self._structure_group)
        return group
