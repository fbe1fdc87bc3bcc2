"""An index prefix of its own per test on a shared node, emptied afterwards.

Creating an index is a cluster-state update that takes a second or more on
a busy machine, so prefixes are pooled: a test gets a prefix whose indices
earlier tests emptied (documents deleted, indices and template kept) and
leaves it empty for the next one.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

from resultstore_contract.servers import Server
from resultstore_contract.servers._search import http_json

SCHEMES = {"elasticsearch": "elasticsearch", "opensearch": "opensearch", "osmem": "opensearch"}
KINDS = ("results", "groups", "chords")

_free: dict[str, list[str]] = {}


def base_url(server: Server) -> str:
    scheme = SCHEMES[server.kind]
    return f"{scheme}://{server.host}:{server.port}"


def _bulk(server: Server, lines: list[dict[str, Any]]) -> None:
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    request = urllib.request.Request(
        f"{server.url}/_bulk",
        data=body,
        method="POST",
        headers={"Content-Type": "application/x-ndjson"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


def empty(server: Server, prefix: str) -> bool:
    """Delete every document under ``prefix``; False if that did not work out."""
    names = ",".join(f"{prefix}-{kind}" for kind in KINDS)
    for _ in range(5):
        http_json(f"{server.url}/{names}/_refresh?ignore_unavailable=true", "POST", timeout=60)
        answer: Any = http_json(
            f"{server.url}/{names}/_search?ignore_unavailable=true",
            "POST",
            {"size": 5000, "_source": False, "query": {"match_all": {}}},
            timeout=60,
        )
        hits = answer["hits"]["hits"]
        if not hits:
            return True
        _bulk(server, [{"delete": {"_index": h["_index"], "_id": h["_id"]}} for h in hits])
    return False


def isolated(server: Server, **options: str) -> Iterator[str]:
    """A URL with a prefix no other running test uses, holding no documents."""
    pool = _free.setdefault(server.url, [])
    prefix = pool.pop() if pool else f"t{uuid.uuid4().hex[:16]}"
    query = "&".join(f"{k}={v}" for k, v in options.items())
    yield f"{base_url(server)}/{prefix}" + (f"?{query}" if query else "")
    try:
        clean = empty(server, prefix)
    except OSError:
        clean = False  # the node is down or restarting: this prefix is not reused
    if clean:
        pool.append(prefix)
