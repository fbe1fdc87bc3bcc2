"""Sum the closing lines of every pytest run in a CI log into one line.

Prints ``tests: N passed, N failed, N skipped`` (errors count as failed).

A pytest run's own closing line is the last one before nox reports the
session (a ``nox > `` line) or the log ends: a failing test built on
pytester prints the closing lines of its inner runs in its captured output
above that, and those are not tests of this run.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

CLOSING = re.compile(r"^=+ (?P<counts>.*) in [\d.]+s")
COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?)")
NOX = re.compile(r"^nox > ")


def totals(lines: Iterable[str]) -> dict[str, int]:
    """Passed, failed and skipped counts over the pytest runs in ``lines``."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    last: str | None = None

    def flush() -> None:
        nonlocal last
        if last is not None:
            for number, word in COUNT.findall(last):
                counts["failed" if word.startswith("error") else word] += int(number)
        last = None

    for line in lines:
        text = line.strip()
        if NOX.match(text):
            flush()
            continue
        match = CLOSING.match(text)
        if match:
            last = match["counts"]
    flush()
    return counts


def main(path: str) -> None:
    with open(path, encoding="utf-8", errors="replace") as log:
        found = totals(log)
    print(f"tests: {found['passed']} passed, {found['failed']} failed, {found['skipped']} skipped")


if __name__ == "__main__":
    main(sys.argv[1])
