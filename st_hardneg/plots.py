"""The dataset card's hardness histogram, drawn with matplotlib (the optional ``plots`` extra)."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence

logger = logging.getLogger(__name__)


def hardness_png(counts: Sequence[int], edges: Sequence[float], *,
                 relative_margin: float | None = 0.05) -> bytes | None:
    """PNG bytes of the histogram of negative score / positive score, or ``None`` without matplotlib.

    Two dashed lines mark where the filter cuts (``1 - relative_margin``, e.g. 0.95) and where a
    negative would outscore its positive (1.0); the legend says so.

    Args:
        counts (Sequence[int]): Count per bin (``MiningStats.hardness_histogram["counts"]``).
        edges (Sequence[float]): Bin edges, one more than ``counts``.
        relative_margin (float | None): The filter's TopK-PercPos margin; ``None`` draws no cut-off.
    """
    if len(edges) != len(counts) + 1:
        raise ValueError(f"{len(edges)} edges for {len(counts)} bins; expected {len(counts) + 1}")
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure
    except ImportError:
        logger.info("matplotlib is not installed, so the card has no hardness histogram: "
                    "pip install 'st-hardneg[plots]'")
        return None
    figure = Figure(figsize=(6.4, 2.6), dpi=100)
    ax = figure.add_subplot()
    widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
    ax.bar(edges[:-1], counts, width=widths, align="edge", color="#4C72B0", edgecolor="white", linewidth=0.5,
           label="negatives")
    if relative_margin is not None:
        ax.axvline(1 - relative_margin, color="#DD8452", linestyle="--",
                   label=f"filter cut-off ({1 - relative_margin:g} x positive)")
    ax.axvline(1.0, color="#C44E52", linestyle=":", label="negative = positive")
    ax.set_xlabel("negative score / positive score")
    ax.set_ylabel("negatives")
    ax.set_xlim(edges[0], edges[-1])
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png", metadata={"Software": None})  # no version string: the same bytes every run
    return out.getvalue()
