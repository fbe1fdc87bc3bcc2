"""Real Elasticsearch and OpenSearch nodes for the plugin's tests, one of each per session.

Both JVMs are launched together when the first test needs either (two cores
boot them faster side by side than one after the other), and the tests that
restart a node get the node itself (``elasticsearch_node``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from resultstore_contract.servers import Server, osmem_server
from resultstore_contract.servers._search import SearchNode
from resultstore_contract.servers.elasticsearch import elasticsearch_node as new_es_node
from resultstore_contract.servers.opensearch import opensearch_node as new_os_node

__all__ = ["osmem_server"]

#: seconds a node may take to start on two busy cores.
START_TIMEOUT = 300.0


@pytest.fixture(scope="session")
def _search_nodes() -> Iterator[dict[str, SearchNode]]:
    nodes: dict[str, SearchNode] = {}
    try:
        nodes["elasticsearch"] = new_es_node()
        nodes["opensearch"] = new_os_node()
        for node in nodes.values():
            node.launch()
        yield nodes
    finally:
        for node in nodes.values():
            node.remove()


@pytest.fixture(scope="session")
def elasticsearch_node(_search_nodes: dict[str, SearchNode]) -> SearchNode:
    node = _search_nodes["elasticsearch"]
    node.wait(START_TIMEOUT)
    START_TIMES.setdefault("elasticsearch", node.started_in or 0.0)
    return node


@pytest.fixture(scope="session")
def opensearch_node(_search_nodes: dict[str, SearchNode]) -> SearchNode:
    node = _search_nodes["opensearch"]
    node.wait(START_TIMEOUT)
    START_TIMES.setdefault("opensearch", node.started_in or 0.0)
    return node


@pytest.fixture
def elasticsearch_server(elasticsearch_node: SearchNode) -> Server:
    """The session's Elasticsearch node (a test may have restarted it: waits until up)."""
    elasticsearch_node.wait(START_TIMEOUT)
    return elasticsearch_node.server("elasticsearch")


@pytest.fixture
def opensearch_server(opensearch_node: SearchNode) -> Server:
    opensearch_node.wait(START_TIMEOUT)
    return opensearch_node.server("opensearch")


#: seconds from launch until a test first found the node ready (an upper bound of its
#: start time: both launch together, and the second is first needed later).
START_TIMES: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for name, seconds in START_TIMES.items():
        terminalreporter.write_line(f"{name} node ready within {seconds:.1f} s of its launch")
