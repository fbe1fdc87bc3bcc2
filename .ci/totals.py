"""Sum the closing lines of every pytest run in a CI log into one line.

Prints ``tests: N passed, N failed, N skipped`` (errors count as failed).
"""

from __future__ import annotations

import re
import sys

CLOSING = re.compile(r"^=+ (?P<counts>.*) in [\d.]+s")
COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?)")


def main(path: str) -> None:
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    with open(path, encoding="utf-8", errors="replace") as log:
        for line in log:
            match = CLOSING.match(line.strip())
            if not match:
                continue
            for number, word in COUNT.findall(match["counts"]):
                key = "failed" if word.startswith("error") else word
                totals[key] += int(number)
    print(
        f"tests: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped"
    )


if __name__ == "__main__":
    main(sys.argv[1])
