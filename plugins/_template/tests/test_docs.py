"""docs/writing-a-backend.md shows the template's code inline: it must be this code.

The page is read on GitHub too, where include lines would show nothing, so
it carries copies, each after a ``<!-- copy of PATH[:SECTION] ... -->`` line;
a section is what lies between ``# --8<-- [start:SECTION]`` and
``# --8<-- [end:SECTION]`` in the file. In a copy of the template outside
the resultstore repository there is no such page, and nothing to check.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PAGE = ROOT / "docs" / "writing-a-backend.md"
_COPY = re.compile(r"<!-- copy of (\S+) [^\n]*-->\n```python\n(.*?)\n```", re.DOTALL)


def _copies() -> list[tuple[str, str]]:
    if not PAGE.exists():
        return []
    return _COPY.findall(PAGE.read_text(encoding="utf-8"))


def _source(target: str) -> str:
    path, _, section = target.partition(":")
    text = (ROOT / path).read_text(encoding="utf-8")
    if section:
        start = f"# --8<-- [start:{section}]\n"
        text = text[text.index(start) + len(start) : text.index(f"# --8<-- [end:{section}]")]
    return text.rstrip()


@pytest.mark.skipif(not PAGE.exists(), reason="a copy of the template: no docs page here")
def test_the_page_shows_the_template_files() -> None:
    shown = {target for target, _ in _copies()}
    assert shown == {
        "plugins/_template/src/resultstore_template/plugin.py",
        "plugins/_template/src/resultstore_template/backend.py:factory",
        "plugins/_template/tests/test_contract.py",
    }


@pytest.mark.parametrize(("target", "code"), _copies(), ids=[t for t, _ in _copies()])
def test_each_copy_is_the_code_it_copies(target: str, code: str) -> None:
    assert code == _source(target), (
        f"docs/writing-a-backend.md's copy of {target} differs from the file: "
        f"paste the file's current code into the page"
    )
