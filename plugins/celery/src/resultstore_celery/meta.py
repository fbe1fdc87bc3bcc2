"""Celery's task meta dicts and exception conventions, to and from resultstore's models.

Celery hands a backend raw values (a return value, an exception object, a
progress dict) and reads back a meta dict; resultstore stores a
:class:`~resultstore.TaskResult`. Exceptions are stored as their description
and rebuilt without importing anything (see :mod:`resultstore.concepts.remote`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from resultstore.concepts.models import ExceptionInfo, TaskResult, utcnow
from resultstore.concepts.remote import (
    MAX_CAUSE_DEPTH,
    RemoteError,
    describe_exception,
    rebuild_exception,
)
from resultstore.concepts.states import EXCEPTION_STATES, READY_STATES, State, state_from_str

__all__ = [
    "CELERY_EXCEPTIONS",
    "MISSING_FAILURE",
    "children_ids",
    "exception_info",
    "imported_exception_class",
    "is_celery_exception_dict",
    "pending_meta",
    "rebuild",
    "to_meta",
    "to_task_result",
]

#: what a FAILURE stored without any exception reads back as.
MISSING_FAILURE = ExceptionInfo(
    type_name="Exception",
    module="builtins",
    message="the task failed without a stored exception",
    args=("the task failed without a stored exception",),
)


#: exceptions that stop the process that raises them: never rebuilt as themselves,
#: since re-raising one in a caller's ``get()`` would stop the caller.
_STOPPING: tuple[type[BaseException], ...] = (SystemExit, KeyboardInterrupt, GeneratorExit)


def _rebuildable(value: object) -> bool:
    return (
        isinstance(value, type)
        and issubclass(value, BaseException)
        and not issubclass(value, _STOPPING)
    )


def _celery_exceptions() -> tuple[type[BaseException], ...]:
    # Celery's and billiard's own exceptions: users catch them by class (a
    # revoked task raises TaskRevokedError, a failed chord ChordError, a
    # task may raise Reject or ImproperlyConfigured), so every one defined
    # in their exceptions modules comes back as itself, in either mode.
    from billiard import exceptions as billiard_exc  # type: ignore[import-untyped]  # billiard ships no type information
    from celery import exceptions as celery_exc  # type: ignore[import-untyped]  # celery ships no type information

    classes: dict[str, type[BaseException]] = {}
    for module in (celery_exc, billiard_exc):
        for value in vars(module).values():
            if _rebuildable(value) and value.__module__ == module.__name__:
                classes[f"{value.__module__}.{value.__qualname__}"] = value
    return tuple(classes[name] for name in sorted(classes))


#: exception classes rebuilt as themselves on top of the built-in ones.
CELERY_EXCEPTIONS: tuple[type[BaseException], ...] = _celery_exceptions()

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def imported_exception_class(module: str, type_name: str) -> type[BaseException] | None:
    """The class ``module.type_name`` if the caller has imported its module already.

    Celery's own rule: look in ``sys.modules``, never import, and accept
    only an exception class. The lookup reads the module's and classes'
    ``__dict__`` (no module ``__getattr__``, no descriptors run), and
    exceptions that stop a process (``SystemExit``, ``KeyboardInterrupt``)
    are refused as well.
    """
    if not module or module == "builtins":
        return None  # the core rebuilds built-in exceptions by its own rule
    found: object = sys.modules.get(module)
    if found is None:
        return None
    for part in type_name.split("."):
        if not _IDENTIFIER.match(part):
            return None
        namespace = getattr(found, "__dict__", None)
        if not isinstance(namespace, Mapping) or part not in namespace:
            return None
        found = namespace[part]
    return found if _rebuildable(found) else None  # type: ignore[return-value]  # checked by _rebuildable


def _imported_classes(info: ExceptionInfo, into: dict[str, type[BaseException]]) -> None:
    depth = 0
    link: ExceptionInfo | None = info
    while link is not None and depth <= MAX_CAUSE_DEPTH:
        name = link.qualified_name
        if name not in into:
            cls = imported_exception_class(str(link.module), str(link.type_name))
            if cls is not None:
                into[name] = cls
        link, depth = link.cause, depth + 1


def _shown(exc: RemoteError) -> str:
    # What Celery shows for an exception class it cannot rebuild: the
    # original's repr, e.g. "QuotaError('over by 3')".
    name = exc.remote_type.rsplit(".", 1)[-1] or "RemoteError"
    if exc.args:
        return f"{name}({', '.join(repr(a) for a in exc.args)})"
    return f"{name}({exc.message!r})" if exc.message else f"{name}()"


def rebuild(
    info: ExceptionInfo,
    allowed: Iterable[type[BaseException]] = (),
    *,
    imported: bool = True,
) -> BaseException:
    """A stored exception rebuilt the bridge's way; never imports anything.

    Built-in exceptions, Celery's and billiard's, and the ``allowed``
    classes come back as themselves; with ``imported`` (the default, as in
    Celery) so does any exception class whose module the caller has
    already imported. Anything else is a :class:`~resultstore.RemoteError`
    subclass named like the original, whose ``str()`` shows the class name
    and arguments as Celery's wrapper of an unknown exception does.
    """
    classes: dict[str, type[BaseException]] = {
        f"{cls.__module__}.{cls.__qualname__}": cls for cls in (*CELERY_EXCEPTIONS, *allowed)
    }
    if imported:
        _imported_classes(info, classes)
    exc = rebuild_exception(info, classes)
    link: BaseException | None = exc
    depth = 0
    while link is not None and depth <= MAX_CAUSE_DEPTH:
        if isinstance(link, RemoteError):
            link.message = _shown(link)
        link, depth = link.__cause__, depth + 1
    return exc


def is_celery_exception_dict(value: object) -> bool:
    """True for Celery's JSON form of an exception: ``{"exc_type": ..., "exc_message": ...}``."""
    return isinstance(value, Mapping) and isinstance(value.get("exc_type"), str)


def _message(args: Sequence[Any]) -> str:
    # What str(exc) gives for an exception built from these arguments.
    if not args:
        return ""
    if len(args) == 1:
        return str(args[0])
    return str(tuple(args))


def exception_info(value: object) -> ExceptionInfo:
    """Describe what Celery stores for a failed task: an exception, or its dict form.

    Celery's dict form (``exc_type``, ``exc_module``, ``exc_message``) is
    what ``update_state(state=FAILURE, meta=...)`` users write by hand;
    anything else is kept as the message of a plain ``Exception``.
    """
    if isinstance(value, BaseException):
        return describe_exception(value)
    if value is None:
        return MISSING_FAILURE
    if isinstance(value, Mapping) and is_celery_exception_dict(value):
        raw = value.get("exc_message", ())
        args = tuple(raw) if isinstance(raw, list | tuple) else (raw,)
        module = value.get("exc_module")
        return ExceptionInfo(
            type_name=str(value["exc_type"]),
            module=str(module) if module else "",
            args=args,
            message=_message(args),
        )
    text = str(value)
    return ExceptionInfo(type_name="Exception", module="builtins", args=(text,), message=text)


def children_ids(children: Iterable[Any] | None) -> tuple[str, ...]:
    """Task ids from Celery's ``request.children`` (results, or their tuple form).

    A group a task started is kept as its members: resultstore stores
    children as plain task ids.
    """
    ids: list[str] = []
    for child in children or ():
        results = getattr(child, "results", None)
        if results is not None:
            ids.extend(children_ids(results))
            continue
        child_id = getattr(child, "id", None)
        if isinstance(child_id, str):
            ids.append(child_id)
            continue
        # The tuple form: ((id, parent), None) for a task, ((id, parent), [..]) for a group.
        if isinstance(child, list | tuple) and len(child) == 2:
            head, nodes = child
            if nodes is not None:
                ids.extend(children_ids(nodes))
            elif isinstance(head, list | tuple) and head and isinstance(head[0], str):
                ids.append(head[0])
            elif isinstance(head, str):
                ids.append(head)
    return tuple(ids)


def _extended(request: Any) -> dict[str, Any]:
    delivery = getattr(request, "delivery_info", None) or {}
    args = getattr(request, "args", None)
    kwargs = getattr(request, "kwargs", None)
    retries = getattr(request, "retries", None)
    return {
        "name": getattr(request, "task", None),
        "args": tuple(args) if isinstance(args, list | tuple) else None,
        "kwargs": dict(kwargs) if isinstance(kwargs, Mapping) else None,
        "worker": getattr(request, "hostname", None),
        "retries": retries if isinstance(retries, int) else None,
        "queue": delivery.get("routing_key") if isinstance(delivery, Mapping) else None,
    }


def to_task_result(
    task_id: str,
    value: Any,
    state: str,
    *,
    traceback: str | None = None,
    request: Any = None,
    extended: bool = False,
    children: Iterable[Any] | None = None,
) -> TaskResult:
    """The :class:`TaskResult` for what Celery passes to ``store_result``.

    In RETRY, FAILURE and REVOKED the value is the exception (or Celery's
    dict form of one); in any other state it is the result itself (the
    return value, or the progress meta of a custom state).
    """
    state = state_from_str(state)
    fields: dict[str, Any] = {}
    if request is not None:
        group_id = getattr(request, "group", None)
        parent_id = getattr(request, "parent_id", None)
        if isinstance(group_id, str) and group_id:
            fields["group_id"] = group_id
        if isinstance(parent_id, str) and parent_id:
            fields["parent_id"] = parent_id
        if extended:
            fields.update(_extended(request))
    exception = None
    if state in EXCEPTION_STATES and (
        isinstance(value, BaseException) or state != State.RETRY or is_celery_exception_dict(value)
    ):
        exception, value = exception_info(value), None
    return TaskResult(
        task_id,
        state,
        value,
        exception=exception,
        traceback=traceback if isinstance(traceback, str) else None,
        date_done=utcnow() if state in READY_STATES else None,
        children=children_ids(children),
        **fields,
    )


def pending_meta(task_id: str) -> dict[str, Any]:
    """The meta Celery reads for a task the store knows nothing about."""
    return {
        "task_id": task_id,
        "status": State.PENDING.value,
        "result": None,
        "traceback": None,
        "children": [],
        "date_done": None,
    }


def to_meta(
    result: TaskResult,
    allowed: Iterable[type[BaseException]] = (),
    *,
    imported: bool = True,
) -> dict[str, Any]:
    """Celery's meta dict for a stored result, the exception rebuilt safely (see :func:`rebuild`).

    The shape is the one Celery's Redis backend returns: ``task_id``,
    ``status``, ``result``, ``traceback``, ``children`` (as result tuples),
    ``date_done`` (ISO 8601 text), ``group_id`` / ``parent_id`` when set,
    and the ``result_extended`` fields when they were stored.
    """
    value: Any = result.result
    if result.exception is not None or result.state in (State.FAILURE, State.REVOKED):
        value = rebuild(result.exception or MISSING_FAILURE, allowed, imported=imported)
    meta: dict[str, Any] = {
        "task_id": result.task_id,
        "status": str(result.state),
        "result": value,
        "traceback": result.traceback,
        "children": [((child, None), None) for child in result.children],
        "date_done": None if result.date_done is None else result.date_done.isoformat(),
    }
    if result.group_id is not None:
        meta["group_id"] = result.group_id
    if result.parent_id is not None:
        meta["parent_id"] = result.parent_id
    if (
        result.name is not None
        or result.args is not None
        or result.kwargs is not None
        or result.worker is not None
    ):
        meta["name"] = result.name
        meta["args"] = None if result.args is None else list(result.args)
        meta["kwargs"] = None if result.kwargs is None else dict(result.kwargs)
        meta["worker"] = result.worker
        meta["retries"] = result.retries
        meta["queue"] = result.queue
    return meta
