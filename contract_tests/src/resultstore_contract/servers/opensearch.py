"""A real OpenSearch 2.19 node (Maven Central's integration-test zip plus Painless).

``scripts/install-search-server.sh`` assembles the lang-painless module from
its Maven Central jars; the security plugin is not there, so the node speaks
plain HTTP without auth. 14-105 s to start on two busy cores, about 730 MiB.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._process import Server
from ._search import Product, SearchNode, running

OPENSEARCH = Product(
    name="opensearch",
    version_env="OS_VERSION",
    default_version="2.19.6",
    program="opensearch",
    settings_file="opensearch.yml",
    env_names=(
        "OPENSEARCH_PATH_CONF",
        "OPENSEARCH_TMPDIR",
        "OPENSEARCH_JAVA_OPTS",
        "OPENSEARCH_JAVA_HOME",
    ),
    base_settings={"action.auto_create_index": "true"},
)


def opensearch_node() -> SearchNode:
    """A node, not yet started."""
    return SearchNode(OPENSEARCH)


@contextlib.contextmanager
def start_opensearch(workdir: Path | None = None, *, timeout: float = 240.0) -> Iterator[Server]:
    """One OpenSearch node on a free loopback port. ``workdir`` is not used: the
    node needs a folder its own user owns, made under the system temp dir."""
    del workdir
    with running(opensearch_node(), "opensearch", timeout) as server:
        yield server


# -- session fixtures (registered by the contract plugin) --------------------------


@pytest.fixture(scope="session")
def opensearch_server() -> Iterator[Server]:
    """A real OpenSearch 2.19 node (with Painless) for the whole session."""
    with start_opensearch() as server:
        yield server
