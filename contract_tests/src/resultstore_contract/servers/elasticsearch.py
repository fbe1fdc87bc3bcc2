"""A real Elasticsearch 8.19 node (Maven Central's integration-test zip), security off or on.

The zip has no Painless, no ``_delete_by_query`` and no ``GET /`` of its own
(``scripts/install-search-server.sh`` adds a small plugin for ``GET /``, which
the ``elasticsearch`` client's product check needs). 18-64 s to start on two
busy cores, about 750 MiB.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._process import Server, new_password
from ._search import Product, SearchNode, running
from .tls import make_tls_files

ELASTICSEARCH = Product(
    name="elasticsearch",
    version_env="ES_VERSION",
    default_version="8.19.21",
    program="elasticsearch",
    settings_file="elasticsearch.yml",
    env_names=("ES_PATH_CONF", "ES_TMPDIR", "ES_JAVA_OPTS", "ES_JAVA_HOME"),
    base_settings={"xpack.security.enabled": "false", "action.auto_create_index": "true"},
)

#: the superuser of a node started with ``security=True``.
ADMIN_USER = "resultstore-admin"


def elasticsearch_node(*, security: bool = False) -> SearchNode:
    """A node, not yet started. ``security=True`` serves HTTPS only (a throwaway CA
    in ``server.ca_file``) and wants basic auth (``server.username`` /
    ``server.password``, a superuser of the file realm) or an API key."""
    if not security:
        return SearchNode(ELASTICSEARCH)

    def prepare(config: Path, env: dict[str, str]) -> None:
        make_tls_files(config / "tls")

    node = SearchNode(
        ELASTICSEARCH,
        scheme="https",
        auth=(ADMIN_USER, new_password()),
        settings={
            "xpack.security.enabled": "true",
            "xpack.security.http.ssl.enabled": "true",
            "xpack.security.http.ssl.certificate": "tls/server.pem",
            "xpack.security.http.ssl.key": "tls/server.key",
            "xpack.security.http.ssl.certificate_authorities": "tls/ca.pem",
            "xpack.security.authc.api_key.enabled": "true",
        },
        prepare=prepare,
    )
    node.ca_file = node.config / "tls" / "ca.pem"
    node.context = ssl.create_default_context(cafile=str(node.ca_file))
    assert node.auth is not None
    user, password = node.auth
    # The file realm's users, hashed by Elasticsearch's own tool (bcrypt).
    node.tool("elasticsearch-users", "useradd", user, "-p", password, "-r", "superuser")
    return node


@contextlib.contextmanager
def start_elasticsearch(
    workdir: Path | None = None, *, security: bool = False, timeout: float = 240.0
) -> Iterator[Server]:
    """One Elasticsearch node on a free loopback port. ``workdir`` is not used: the
    node needs a folder its own user owns, made under the system temp dir."""
    del workdir
    with running(elasticsearch_node(security=security), "elasticsearch", timeout) as server:
        yield server


# -- session fixtures (registered by the contract plugin) --------------------------


@pytest.fixture(scope="session")
def elasticsearch_server() -> Iterator[Server]:
    """A real Elasticsearch 8.19 node, security off, for the whole session."""
    with start_elasticsearch() as server:
        yield server


@pytest.fixture(scope="session")
def elasticsearch_secure_server() -> Iterator[Server]:
    """A real Elasticsearch 8.19 node over HTTPS with basic auth and API keys."""
    with start_elasticsearch(security=True) as server:
        yield server
