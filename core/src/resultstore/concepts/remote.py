"""Task exceptions: described for storage, rebuilt safely when read.

Reading never imports a module. A stored exception comes back as its
original class only when that class is a built-in ``Exception`` subclass or
was explicitly allow-listed; anything else comes back as a generated
subclass of :class:`RemoteError` that keeps the original type name, module
and args. (Celery imported the stored module on read, which let whoever
could write a result run code in every reader.)
"""

from __future__ import annotations

import builtins
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from resultstore.concepts.models import ExceptionInfo

__all__ = [
    "RemoteError",
    "TaskRevokedError",
    "describe_exception",
    "exception_name",
    "rebuild_exception",
]

#: how deep a cause chain is kept and rebuilt; deeper links are dropped.
MAX_CAUSE_DEPTH = 16
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SAFE_SCALARS = (str, int, float, bool, type(None))


class RemoteError(Exception):
    """An exception raised by a task whose class is not rebuilt in this process.

    ``remote_type`` and ``remote_module`` name the original class; ``args``
    are the original arguments; ``str()`` is the original message.
    """

    remote_type: str = "RemoteError"
    remote_module: str = ""

    def __init__(self, *args: Any, message: str | None = None) -> None:
        super().__init__(*args)
        self.message = message if message is not None else ", ".join(map(str, args))

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_remote, (self.remote_module, self.remote_type, self.args, self.message))


class TaskRevokedError(Exception):
    """Stored as the exception of a REVOKED task; always rebuilt as itself."""

    # Stored under its public name, whichever module of the package defines it.
    __module__ = "resultstore"


#: resultstore's own task-outcome exceptions, rebuilt without being allow-listed.
_OWN: dict[str, type[BaseException]] = {
    f"{TaskRevokedError.__module__}.{TaskRevokedError.__qualname__}": TaskRevokedError
}

#: Names that versions before the core's layer folders stored for its own
#: exceptions, read as the public names they are now.
_RENAMED: dict[str, str] = {
    "resultstore.remote.TaskRevokedError": "resultstore.TaskRevokedError",
    "resultstore.errors.ChordPartFailedError": "resultstore.ChordPartFailedError",
}

_generated: dict[tuple[str, str], type[RemoteError]] = {}
_generated_lock = threading.Lock()


def _remote_class(module: str, type_name: str) -> type[RemoteError]:
    key = (module, type_name)
    with _generated_lock:
        cls = _generated.get(key)
        if cls is None:
            name = type_name.rsplit(".", 1)[-1]
            if not _IDENTIFIER.match(name):
                name = "RemoteError"
            cls = type(
                name,
                (RemoteError,),
                {
                    "remote_type": type_name,
                    "remote_module": module,
                    "__module__": module if module else __name__,
                    "__qualname__": type_name if _IDENTIFIER.match(name) else name,
                },
            )
            # Bound the cache: hostile payloads can invent endless names.
            if len(_generated) < 4096:
                _generated[key] = cls
        return cls


def _rebuild_remote(
    module: str, type_name: str, args: tuple[Any, ...], message: str
) -> RemoteError:
    return _remote_class(module, type_name)(*args, message=message)


def exception_name(exc: BaseException) -> tuple[str, str]:
    """(module, qualified name) of an exception's class, as stored."""
    cls = type(exc)
    if isinstance(exc, RemoteError):
        return exc.remote_module, exc.remote_type
    return cls.__module__, cls.__qualname__


def _storable_arg(value: Any) -> Any:
    if isinstance(value, _SAFE_SCALARS):
        return value
    if isinstance(value, list | tuple):
        return [_storable_arg(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _storable_arg(v) for k, v in value.items()}
    return repr(value)


def describe_exception(exc: BaseException, *, _depth: int = 0) -> ExceptionInfo:
    """An :class:`ExceptionInfo` for ``exc``: type, module, args, message, cause chain.

    Arguments that are not JSON-like scalars, lists or str-keyed dicts are
    stored as their ``repr`` so that every codec can hold them.
    """
    module, type_name = exception_name(exc)
    try:
        message = str(exc)
    except Exception:  # a hostile __str__ must not stop the result being stored
        message = f"<unprintable {type_name}>"
    cause_exc = (
        exc.__cause__
        if exc.__cause__ is not None
        else (None if exc.__suppress_context__ else exc.__context__)
    )
    cause = None
    if cause_exc is not None and _depth < MAX_CAUSE_DEPTH:
        cause = describe_exception(cause_exc, _depth=_depth + 1)
    return ExceptionInfo(
        type_name=type_name,
        module=module,
        args=tuple(_storable_arg(a) for a in exc.args),
        message=message,
        cause=cause,
    )


def _builtin_exception(info: ExceptionInfo) -> type[BaseException] | None:
    if info.module != "builtins":
        return None
    candidate = (
        getattr(builtins, info.type_name, None) if _IDENTIFIER.match(info.type_name) else None
    )
    # Only Exception subclasses: re-raising a stored SystemExit or
    # KeyboardInterrupt in a caller would stop the caller itself.
    if isinstance(candidate, type) and issubclass(candidate, Exception):
        return candidate
    return None


def _allowed_map(
    allowed: Iterable[type[BaseException]] | Mapping[str, type[BaseException]],
) -> dict[str, type[BaseException]]:
    if isinstance(allowed, Mapping):
        return dict(allowed)
    return {f"{cls.__module__}.{cls.__qualname__}": cls for cls in allowed}


def rebuild_exception(
    info: ExceptionInfo,
    allowed: Iterable[type[BaseException]] | Mapping[str, type[BaseException]] = (),
    *,
    _depth: int = 0,
) -> BaseException:
    """Rebuild an exception from its description, never importing anything.

    ``allowed`` lists extra exception classes (or maps ``"module.QualName"``
    to them) that may be rebuilt as themselves. Everything else becomes a
    :class:`RemoteError` subclass named like the original.
    """
    allowed_map = _allowed_map(allowed)
    args = tuple(info.args) if isinstance(info.args, list | tuple) else (info.args,)
    name = _RENAMED.get(info.qualified_name, info.qualified_name)
    cls = allowed_map.get(name) or _OWN.get(name) or _builtin_exception(info)
    exc: BaseException | None = None
    if cls is not None and isinstance(cls, type) and issubclass(cls, BaseException):
        try:
            exc = cls(*args)
        except Exception:
            exc = None  # the stored args do not fit the constructor
    if exc is None:
        exc = _remote_class(str(info.module), str(info.type_name))(*args, message=str(info.message))
    if info.cause is not None and _depth < MAX_CAUSE_DEPTH:
        exc.__cause__ = rebuild_exception(info.cause, allowed_map, _depth=_depth + 1)
    return exc
