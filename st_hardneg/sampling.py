"""Choosing negatives among the candidates a filter kept. Every random choice is seeded.

Strategies (NV-Retriever, arXiv 2407.15831, §3.1 and §4.3.2):

- ``"top"``: the ``n`` highest-scoring kept candidates.
- ``"sampled"``: ``n`` drawn without replacement from the ``pool`` highest, with probability
  ``softmax(score / temperature)`` (NV-Retriever footnote 13 samples by a softmax over relevance).
- ``"top1_sampled"``: the top-1, plus ``n - 1`` sampled as above from the rest of the pool.
- ``"uniform"``: ``n`` drawn uniformly from the ``pool`` highest (a rank window).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Strategy = Literal["top", "sampled", "top1_sampled", "uniform"]
STRATEGIES: tuple[str, ...] = ("top", "sampled", "top1_sampled", "uniform")


def row_rng(seed: int, row: int) -> np.random.Generator:
    """The generator for one output row: independent of every other row and of processing order."""
    return np.random.default_rng([seed, row])


def choose(
    scores: np.ndarray,
    n: int,
    strategy: Strategy = "top",
    *,
    pool: int = 10,
    temperature: float = 0.05,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Positions (into ``scores``) of the chosen negatives, in descending score order.

    Args:
        scores: Scores of the kept candidates, sorted in descending order.
        n: How many to choose (fewer are returned when fewer exist).
        strategy: One of :data:`STRATEGIES`.
        pool: Size of the top window that ``sampled``/``top1_sampled``/``uniform`` draw from
            (widened to ``n`` when smaller).
        temperature: Softmax temperature for the sampled strategies.
        rng: Random generator; required by every strategy except ``top``.

    Example::

        choose(np.array([0.8, 0.7, 0.6, 0.5]), 2, "sampled", rng=row_rng(42, 0))
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown sampling strategy {strategy!r}; use one of {STRATEGIES}")
    scores = np.asarray(scores, dtype=np.float64)
    m = len(scores)
    if n <= 0 or m == 0:
        return np.zeros(0, dtype=np.int64)
    if strategy == "top" or m <= n:
        return np.arange(min(n, m))
    if rng is None:
        raise ValueError(f"sampling strategy {strategy!r} needs a seeded rng")
    window = min(m, max(pool, n))
    if strategy == "uniform":
        picked = rng.choice(window, size=n, replace=False)
    else:
        first = 1 if strategy == "top1_sampled" else 0
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        logits = scores[first:window] / temperature
        # Gumbel-top-k: the n largest of logits + Gumbel noise are an exact draw without replacement
        # from softmax(logits), with no underflow when the temperature is low.
        keys = logits + rng.gumbel(size=len(logits))
        drawn = first + np.argsort(-keys, kind="stable")[: n - first]
        picked = np.concatenate([np.arange(first), drawn])
    return np.sort(picked).astype(np.int64)
