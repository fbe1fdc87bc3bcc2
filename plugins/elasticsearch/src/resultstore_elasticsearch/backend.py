"""The Elasticsearch and OpenSearch backends (sync): one document per result, group,
chord and chord part, in three indices under one prefix.

Indices (prefix from the URL path or ``prefix``, default ``resultstore``)::

    <prefix>-results   one document per task (_id = task id), see documents.py
    <prefix>-groups    one document per group (_id = group id)
    <prefix>-chords    one document per chord and one per recorded part

The backend installs a composable index template with the mapping on first
use (``create_template=false`` to manage it yourself); the indices are
created by the first write. What the operations do is in ``operations.py``;
this module only runs them through the product's client.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, TypeVar

from resultstore import (
    BackendConfig,
    Capability,
    ChordOutcome,
    ChordState,
    Closed,
    Group,
    StoreOutcome,
    TaskResult,
)

from resultstore_elasticsearch.clients import sync_adapter
from resultstore_elasticsearch.documents import Documents
from resultstore_elasticsearch.operations import Operations
from resultstore_elasticsearch.settings import ELASTICSEARCH, OPENSEARCH, Product, Settings
from resultstore_elasticsearch.transport import Plan, Runner, SyncAdapter

if TYPE_CHECKING:
    from resultstore_elasticsearch.aio import AsyncSearchBackend

__all__ = ["CAPABILITIES", "ElasticsearchBackend", "OpenSearchBackend", "SearchBackend"]

T = TypeVar("T")

CAPABILITIES = frozenset(
    {
        Capability.BULK_GET,
        Capability.BATCH_STORE,
        Capability.CLEANUP,
        Capability.GROUPS,
        Capability.CHORDS,
        Capability.PERSISTENT,
        Capability.SHARED,
        Capability.NATIVE_ASYNC,
        Capability.MIGRATE,
    }
)

_installed: set[tuple[str, str, str]] = set()
_installed_lock = threading.Lock()


class SearchBackend:
    """Results, groups and chords as documents of one cluster (either product)."""

    product: ClassVar[Product]
    capabilities = CAPABILITIES

    def __init__(self, config: BackendConfig) -> None:
        settings = Settings.take_from(config, self.product)
        config.options.finish()
        self.url = config.url
        self.settings = settings
        self.serializer = config.serializer
        self.expires = config.expires
        self.documents = Documents(config.serializer)
        self.operations = Operations(settings, self.documents, config.expires)
        self.runner = Runner(settings)
        self.adapter: SyncAdapter | Closed = sync_adapter(settings)
        try:
            if settings.create_template:
                self._install_template()
        except BaseException:
            self.adapter.close()
            raise

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url.redacted()} {self.settings.results_index}>"

    def _install_template(self) -> None:
        """Once per process and cluster: putting a template is a cluster-state update."""
        key = (self.settings.server, self.settings.results_index, self.product.scheme)
        with _installed_lock:
            if key in _installed:
                return
        self.run(self.operations.install_template())
        with _installed_lock:
            _installed.add(key)

    def migrate(self) -> str:
        """Put the index template (even with ``create_template=false``) and create
        the three indices now, rather than at the first write."""
        return self.run(self.operations.migrate())

    def run(self, plan: Plan[T]) -> T:
        return self.runner.run(self.adapter, plan)

    # -- ResultBackend ------------------------------------------------------------------

    def store(self, result: TaskResult, *, overwrite: bool = False) -> StoreOutcome:
        return self.run(self.operations.store(result, overwrite))

    def get(self, task_id: str) -> TaskResult | None:
        return self.run(self.operations.get(task_id))

    def forget(self, task_id: str) -> None:
        self.run(self.operations.forget(task_id))

    def plant_payload(self, task_id: str, payload: bytes, state: str = "SUCCESS") -> None:
        """Put raw bytes where a result would be (the contract's corrupt-payload checks)."""
        self.run(self.operations.plant_payload(task_id, payload, state))

    def close(self) -> None:
        adapter = self.adapter
        if isinstance(adapter, Closed):
            return
        # Every later call raises BackendUnavailableError (the documented error).
        self.adapter = Closed(f"this {self.url.scheme}:// backend")
        adapter.close()

    def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskResult | None]:
        return self.run(self.operations.get_many(task_ids))

    def store_many(
        self, results: Sequence[TaskResult], *, overwrite: bool = False
    ) -> list[StoreOutcome]:
        return self.run(self.operations.store_many(results, overwrite))

    # -- groups, chords, cleanup ------------------------------------------------------------

    def save_group(self, group: Group) -> None:
        self.run(self.operations.save_group(group))

    def get_group(self, group_id: str) -> Group | None:
        return self.run(self.operations.get_group(group_id))

    def delete_group(self, group_id: str) -> None:
        self.run(self.operations.delete_group(group_id))

    def set_chord_size(self, group_id: str, size: int) -> None:
        self.run(self.operations.set_chord_size(group_id, size))

    def chord_part_return(self, group_id: str, index: int, result: TaskResult) -> ChordOutcome:
        return self.run(self.operations.chord_part_return(group_id, index, result))

    def get_chord(self, group_id: str) -> ChordState | None:
        return self.run(self.operations.get_chord(group_id))

    def cleanup(self) -> int:
        return self.run(self.operations.cleanup())

    def drop(self) -> None:
        """Delete this backend's indices and template (everything it stored)."""
        self.run(self.operations.drop())
        with _installed_lock:
            _installed.discard(
                (self.settings.server, self.settings.results_index, self.product.scheme)
            )

    def async_backend(self) -> AsyncSearchBackend:
        """The native asyncio twin (AsyncElasticsearch / AsyncOpenSearch), configured alike."""
        from resultstore_elasticsearch.aio import AsyncSearchBackend

        return AsyncSearchBackend(self)


class ElasticsearchBackend(SearchBackend):
    """``elasticsearch://`` and ``elasticsearch+https://``, through the elasticsearch 8 client."""

    product = ELASTICSEARCH


class OpenSearchBackend(SearchBackend):
    """``opensearch://`` and ``opensearch+https://``, through opensearch-py."""

    product = OPENSEARCH
