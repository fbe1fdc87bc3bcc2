"""Every hook specification of resultstore, and the markers plugins use.

A plugin is any object or module with functions named after these specs and
marked ``@resultstore.hookimpl``. Plugins are found through the
``resultstore.plugins`` entry-point group (loaded when the hooks are built)
and the ``resultstore.backends`` group (name = URL scheme; loaded when a URL
with that scheme is first used). Code never calls ``pm.hook`` directly: it
goes through the typed facade :class:`resultstore.Hooks`.

Observer hooks (``on_*``) run after the store answered, in the calling
thread; an exception they raise propagates to the caller, so keep them
small and safe.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from resultstore.concepts.models import ChordOutcome, StoreOutcome, TaskResult
    from resultstore.payloads.codecs import DecodeRequest, EncodeRequest
    from resultstore.plugin.backendspec import BackendSpec

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "resultstore"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def resultstore_register_backends() -> Iterable[BackendSpec]:  # type: ignore[empty-body]  # a spec has no body
    """Declare the backends this plugin serves, one :class:`BackendSpec` per URL scheme.

    Runs when a URL's scheme is looked up (``connect``) and when the CLI
    lists backends. Returns an iterable of specs; results of all plugins
    are gathered (not firstresult). A spec names its factory as a
    ``"module:attribute"`` string so that listing backends imports no
    client library.
    """


@hookspec
def resultstore_on_store(url: str, result: TaskResult, outcome: StoreOutcome) -> None:
    """After every store: ``result`` is what was offered, ``outcome`` what happened.

    ``outcome.stored`` is False when the store refused to replace a ready
    state (see :class:`~resultstore.StoreOutcome`): this is where a
    refusal becomes observable. ``url`` is the backend URL without password.
    All implementations run; return values are ignored.
    """


@hookspec
def resultstore_on_state_change(
    url: str, task_id: str, previous_state: str | None, state: str, result: TaskResult
) -> None:
    """After a store that changed a task's state (``previous_state`` None = new task).

    Runs after ``resultstore_on_store``; all implementations run.
    """


@hookspec
def resultstore_on_forget(url: str, task_id: str) -> None:
    """After a result was forgotten (deleted on request). All implementations run."""


@hookspec
def resultstore_on_chord_part_return(
    url: str, group_id: str, index: int, result: TaskResult, outcome: ChordOutcome
) -> None:
    """After every chord part was recorded, duplicates included.

    ``outcome.complete`` is True in exactly one call per chord, the one
    whose part completed the header; ``outcome.results`` then holds the
    header's results in order. All implementations run.
    """


@hookspec(firstresult=True)
def resultstore_encode(request: EncodeRequest) -> bytes | None:
    """Turn ``request.obj`` (a model) into a stored payload; firstresult.

    The core's own implementation (``trylast``) writes the codec, the
    compression and the header. A plugin that adds a layer (encryption,
    signing) implements this as a ``wrapper=True`` hook: it yields, takes
    the inner payload and returns it wrapped in an envelope of its own
    (:func:`resultstore.payloads.codecs.make_envelope`). The size limit applies to
    what comes out of all wrappers.
    """


@hookspec(firstresult=True)
def resultstore_decode(request: DecodeRequest) -> Any:
    """Turn ``request.payload`` back into a ``request.cls`` instance; firstresult.

    The core's own implementation (``trylast``) reads the header and
    decodes. A plugin that added a layer implements this as a
    ``wrapper=True`` hook: before yielding, it recognises its envelope
    (:func:`resultstore.payloads.codecs.parse_envelope`), unwraps it and replaces
    ``request.payload`` with the inner payload; it leaves payloads without
    its envelope untouched. Errors are :class:`~resultstore.DecodeError`
    subclasses with a message that names the fix.
    """
