"""Mining statistics: an object to read in code and a table to print."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


def hardness_histogram(positive: list[float], negatives: list[list[float]], bins: int = 24,
                       value_range: tuple[float, float] = (0.0, 1.2)) -> dict[str, list]:
    """Histogram of negative/positive score ratios (rows with a positive score > 0)."""
    ratios = [n / p for p, row in zip(positive, negatives) for n in row if p > 0]
    counts, edges = np.histogram(np.clip(ratios, *value_range), bins=bins, range=value_range)
    return {"edges": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts]}


def summarize(values: np.ndarray | list[float]) -> dict[str, float]:
    """count, mean, std, min, quartiles and max of a score distribution."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {"count": 0}
    q = np.quantile(arr, [0.25, 0.5, 0.75])
    return {
        "count": int(arr.size), "mean": float(arr.mean()), "std": float(arr.std()), "min": float(arr.min()),
        "25%": float(q[0]), "50%": float(q[1]), "75%": float(q[2]), "max": float(arr.max()),
    }


def row_stats(positive_scores: list[float], negative_scores: list[list[float]], num_negatives: int) -> dict:
    """The fields of :class:`MiningStats` that describe the rows themselves (not the run that mined them)."""
    return {
        "short_rows": sum(len(row) < num_negatives for row in negative_scores),
        "positive_scores": summarize(positive_scores),
        "negative_scores": summarize([s for row in negative_scores for s in row]),
        "margins": summarize([p - s for p, row in zip(positive_scores, negative_scores) for s in row]),
        "hardness_histogram": hardness_histogram(positive_scores, negative_scores),
    }


@dataclass
class MiningStats:
    """What a mining run did.

    Attributes:
        input_rows: (query, positive) pairs given.
        output_rows: Rows in the output dataset.
        queries: Unique queries mined.
        skipped: Input rows or queries skipped before mining, by reason (e.g. no positive).
        candidates_scored: Candidate (query, document) pairs scored.
        removed_by_rule: Candidates removed by each filter rule.
        widened_queries: Queries whose candidate window had to be widened to find enough negatives.
        short_queries: Queries that still got fewer negatives than asked after widening.
        short_rows: Output rows with fewer negatives than asked.
        dropped_rows: Rows left out of the output because a fixed-width layout could not be filled.
        positive_scores / negative_scores / margins: Score distributions (``summarize``).
        hardness_histogram: Counts of negative score / positive score (``edges``, ``counts``),
            the picture of how close negatives sit to their positives (PercPos cuts at 0.95).
    """

    input_rows: int = 0
    output_rows: int = 0
    queries: int = 0
    num_negatives: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    candidates_scored: int = 0
    removed_by_rule: dict[str, int] = field(default_factory=dict)
    widened_queries: int = 0
    max_window: int = 0
    short_queries: int = 0
    short_rows: int = 0
    dropped_rows: int = 0
    positive_scores: dict[str, float] = field(default_factory=dict)
    negative_scores: dict[str, float] = field(default_factory=dict)
    margins: dict[str, float] = field(default_factory=dict)
    hardness_histogram: dict[str, list] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        """A plain-text table of the counts and score distributions."""
        lines = [
            f"{'rows in / out':<34}{self.input_rows:>10,} / {self.output_rows:,}",
            f"{'unique queries':<34}{self.queries:>10,}",
        ]
        for reason, count in sorted(self.skipped.items()):
            lines.append(f"{'skipped: ' + reason:<34}{count:>10,}")
        lines.append(f"{'candidates scored':<34}{self.candidates_scored:>10,}")
        for rule, count in self.removed_by_rule.items():
            share = count / self.candidates_scored if self.candidates_scored else 0.0
            lines.append(f"{'  removed by ' + rule:<34}{count:>10,}  ({share:.1%})")
        lines += [
            f"{'queries widened':<34}{self.widened_queries:>10,}  (window up to {self.max_window})",
            f"{'queries short of negatives':<34}{self.short_queries:>10,}",
            f"{'rows short of ' + str(self.num_negatives) + ' negatives':<34}{self.short_rows:>10,}",
            f"{'rows dropped':<34}{self.dropped_rows:>10,}",
            "",
            f"{'score':<8}{'positive':>12}{'negative':>12}{'pos - neg':>12}",
        ]
        for key in ("count", "mean", "std", "min", "25%", "50%", "75%", "max"):
            cells = []
            for dist in (self.positive_scores, self.negative_scores, self.margins):
                value = dist.get(key)
                cells.append("" if value is None else (f"{value:,}" if key == "count" else f"{value:.4f}"))
            lines.append(f"{key:<8}" + "".join(f"{c:>12}" for c in cells))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()
