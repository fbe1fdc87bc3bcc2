"""Loading a backend's entry point imports no client library.

``resultstore`` loads every backend's entry point to list the installed
schemes, and the one of a scheme to connect to it. A client library (or the
backend module that imports it) loaded there would cost every user of every
other scheme its import time. So the entry-point module may bring in only
itself, its parent packages, the standard library and resultstore's core;
the backend module named by the ``BackendSpec``'s ``target`` and its client
library wait until a backend is built. The check runs in a fresh interpreter
and compares ``sys.modules`` before and after.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from resultstore_contract.support import ContractBase

__all__ = ["LoadingContract", "entry_point_problems"]

_PROBE = """
import json, sys
import resultstore
from resultstore.plugin.discovery import find_backend
from resultstore import UnknownSchemeError
from resultstore import build_hooks

hooks = build_hooks()
before = set(sys.modules)
try:
    spec = find_backend(sys.argv[1], hooks)
except UnknownSchemeError:
    print(json.dumps(None))
else:
    print(json.dumps({"loaded": sorted(set(sys.modules) - before), "target": spec.target}))
"""


def _allowed(module: str) -> bool:
    top = module.partition(".")[0]
    return top in sys.stdlib_module_names or top == "resultstore"


def entry_point_problems(scheme: str, env: dict[str, str] | None = None) -> list[str] | None:
    """What is wrong with what loading ``scheme``'s entry point imports ([]: nothing);
    None when no installed entry point serves ``scheme``. Runs a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, scheme],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        return [f"loading the {scheme}:// entry point failed: {done.stderr.strip()[-2000:]}"]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if found is None:
        return None
    target = found["target"].partition(":")[0]
    entry = {m for m in found["loaded"] if not _allowed(m)}
    # The entry-point module is a leaf; the packages it sits in are expected.
    packages = {m for m in entry if any(other.startswith(m + ".") for other in entry)}
    leaves = sorted(entry - packages)
    problems = []
    if target in entry:
        problems.append(
            f"loading the {scheme}:// entry point imported the backend module {target}: "
            f"import it only when a backend is built (BackendSpec.target does that)"
        )
    if len(leaves) > 1:
        problems.append(
            f"loading the {scheme}:// entry point imported {', '.join(leaves)}: an "
            f"entry-point module may import only itself, its packages, the standard "
            f"library and resultstore. Keep the package's __init__ light and import the "
            f"client library in the backend module (BackendSpec.target)"
        )
    return problems


class LoadingContract(ContractBase):
    """What loading the entry point of the scheme under test imports."""

    def test_loading_the_entry_point_imports_no_client_library(self, resultstore_url: str) -> None:
        scheme = resultstore_url.partition("://")[0]
        problems = entry_point_problems(scheme)
        if problems is None:
            pytest.skip(
                f"{scheme}:// is served by a plugin object given to connect(), not by an "
                f"installed entry point, so there is no entry point to load"
            )
        assert problems == [], "; ".join(problems)
