"""After ``close()`` the filekv backend raises the documented error, like every backend."""

from __future__ import annotations

from pathlib import Path

import pytest
import resultstore
from resultstore import BackendUnavailableError, State, TaskResult
from resultstore.concepts.models import Group, utcnow


def test_every_call_after_close_raises_backend_unavailable(tmp_path: Path) -> None:
    store = resultstore.connect(f"filekv:///{tmp_path / 'kv'}")
    store.mark_as_done("a", 1)
    backend = store.backend
    store.close()
    store.close()
    backend.close()
    calls = [
        lambda: store.get("a"),
        lambda: store.mark_as_done("b", 2),
        lambda: store.save_group("g", ["a"]),
        lambda: store.result("a").get(timeout=5),
        # The backend used directly: its files are still there, but it is closed.
        lambda: backend.get("a"),
        lambda: backend.store(TaskResult("c", State.STARTED)),
        lambda: backend.save_group(Group("g", ("a",), utcnow())),
        lambda: backend.get_chord("g"),
        backend.cleanup,
    ]
    for call in calls:
        with pytest.raises(BackendUnavailableError, match="closed"):
            call()
    # Another client of the same folder still reads what was stored.
    with resultstore.connect(f"filekv:///{tmp_path / 'kv'}") as other:
        kept = other.get("a")
        assert kept is not None
        assert kept.result == 1
