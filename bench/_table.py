"""The one way every bench script runs its rounds and prints its ratios.

Contenders run interleaved, round by round, so that a slow moment of a noisy
machine hits all of them alike. Each figure is printed as its median with the
min..max of the rounds beside it, and each ratio is taken per round (ours
against the contender measured next to it) and printed as the median ratio
with its own min..max: a ratio whose range straddles the target is not a
result yet, and the verdict says so.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["RatioTable", "Runs", "Samples", "arguments", "percentile", "run_rounds"]


def arguments(description: str | None, *, rounds: int, ops: int) -> argparse.ArgumentParser:
    """The options every backend's bench takes: ``--rounds`` and ``--ops`` (per rate case)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--ops", type=int, default=ops)
    return parser


class Runs(dict[str, list[float]]):
    """Each case's samples, one per round, by case name."""

    def rate(self, name: str) -> Samples:
        return Samples(self[name])

    def seconds(self, name: str) -> Samples:
        return Samples(self[name], unit="s")


def run_rounds(
    cases: Mapping[str, Callable[[], float]], rounds: int, *, order: Sequence[str] | None = None
) -> Runs:
    """Call every case once per round, in order, and collect one sample per call.

    ``order`` defaults to the mapping's order; every round runs all cases before
    the next round starts (interleaving).
    """
    names = list(order) if order is not None else list(cases)
    samples = Runs({name: [] for name in names})
    for _ in range(rounds):
        for name in names:
            samples[name].append(cases[name]())
    return samples


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank rule, enough for latency tails."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class Samples:
    """One figure's per-round values; ``unit`` formats them ("/s", "s", "ms")."""

    values: Sequence[float]
    unit: str = "/s"

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> float:
        """(max - min) / median: the noise of this figure across rounds."""
        median = self.median
        return (max(self.values) - min(self.values)) / median if median else 0.0

    def _fmt(self, value: float) -> str:
        return f"{value:,.0f}" if self.unit == "/s" else f"{value:.3f}"

    def __str__(self) -> str:
        low, high = min(self.values), max(self.values)
        return (
            f"{self._fmt(self.median)}{self.unit} "
            f"[{self._fmt(low)}..{self._fmt(high)}, {self.spread:.0%}]"
        )


@dataclass
class RatioTable:
    """Rows of "ours against a contender", printed as one rich table."""

    title: str
    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)

    def ratio(
        self,
        what: str,
        ours: Samples,
        peer: Samples,
        *,
        target: float | None = None,
        invert: bool = False,
        at_most: bool = False,
    ) -> float:
        """Add a row with the per-round ratio ours/peer (peer/ours with ``invert``).

        Rates read as ours/peer ("0.9x of the raw client"); for times, either
        ``at_most`` (ours/peer <= target: "join costs at most 1.5x raw") or
        ``invert`` (peer/ours >= target: "5x faster than Celery").
        """
        per_round = [
            (p / o if invert else o / p) if o and p else 0.0
            for o, p in zip(ours.values, peer.values, strict=False)
        ]
        median = statistics.median(per_round)
        low, high = min(per_round), max(per_round)
        if target is None:
            verdict = "-"
        else:
            sign = "<=" if at_most else ">="

            def met(ratio: float) -> bool:
                return ratio <= target if at_most else ratio >= target

            if met(low) and met(high):
                verdict = f"{sign} {target:g}x OK"
            elif not met(low) and not met(high):
                verdict = f"{sign} {target:g}x MISSED"
            else:
                verdict = f"{sign} {target:g}x {'OK' if met(median) else 'MISSED'} (noisy)"
        self.rows.append(
            (what, str(ours), str(peer), f"{median:.2f}x [{low:.2f}..{high:.2f}]", verdict)
        )
        return median

    def note(self, what: str, value: str) -> None:
        """A row without a contender (a count, a setting)."""
        self.rows.append((what, value, "-", "-", "-"))

    def print(self, console: Console | None = None) -> None:
        table = Table(title=self.title)
        columns = (
            "figure",
            "resultstore: median [min..max, spread]",
            "peer: median [min..max, spread]",
            "ratio: median [min..max]",
            "target",
        )
        for column in columns:
            table.add_column(escape(column))
        for row in self.rows:
            table.add_row(*(escape(cell) for cell in row))
        (console or Console(width=200)).print(table)
