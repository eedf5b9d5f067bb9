"""Choosing negatives among the candidates a filter kept. Every random choice is seeded.

Strategies (``"top"`` and ``"random"`` as in sentence-transformers' ``mine_hard_negatives``; the
sampled ones from NV-Retriever, arXiv 2407.15831, §3.1 and §4.3.2):

- ``"top"``: the ``n`` highest-scoring kept candidates.
- ``"random"``: ``n`` drawn uniformly, without replacement, from all kept candidates.
- ``"sampled"``: ``n`` drawn without replacement from the ``pool`` highest, with probability
  ``softmax(score / temperature)`` (NV-Retriever footnote 13 samples by a softmax over relevance).
- ``"top1_sampled"``: the top-1, plus ``n - 1`` sampled as above from the rest of the pool.
"""

from __future__ import annotations

import random
import warnings
from typing import Any, Literal

import numpy as np

from .data import OptionError

SamplingStrategy = Literal["top", "random", "sampled", "top1_sampled"]
STRATEGIES: tuple[str, ...] = ("top", "random", "sampled", "top1_sampled")


def check_strategy(strategy: str) -> str:
    """The strategy's current name (``"uniform"`` is the deprecated name of ``"random"``); unknown names raise."""
    if strategy == "uniform":
        warnings.warn('sampling strategy "uniform" is deprecated; use "random" (sentence-transformers\' name), '
                      "which draws from every kept candidate", FutureWarning, stacklevel=3)
        return "random"
    if strategy not in STRATEGIES:
        raise OptionError(f"unknown sampling strategy {strategy!r}; use one of {STRATEGIES}")
    return strategy


def row_rng(seed: int, row: int) -> np.random.Generator:
    """The generator for one output row: independent of every other row and of processing order."""
    return np.random.default_rng([seed, row])


def choose(
    scores: np.ndarray,
    n: int,
    strategy: SamplingStrategy = "top",
    *,
    pool: int = 10,
    temperature: float = 0.05,
    rng: np.random.Generator | random.Random | Any = None,
) -> np.ndarray:
    """Positions (into ``scores``) of the chosen negatives, in descending score order.

    Args:
        scores (np.ndarray): Scores of the kept candidates, sorted in descending order.
        n (int): How many to choose (fewer are returned when fewer exist).
        strategy (str): One of :data:`STRATEGIES`. Defaults to "top".
        pool (int): Size of the top window that ``sampled``/``top1_sampled`` draw from (widened to
            ``n`` when smaller). Defaults to 10.
        temperature (float): Softmax temperature of the sampled strategies. Defaults to 0.05.
        rng: A ``numpy.random.Generator``; required by every strategy except ``top``. For
            ``"random"`` it may also be a ``random.Random`` or the ``random`` module itself, which
            draw exactly as sentence-transformers does (``random.sample`` over the candidates).

    Example::

        choose(np.array([0.8, 0.7, 0.6, 0.5]), 2, "sampled", rng=row_rng(42, 0))
    """
    strategy = check_strategy(strategy)
    scores = np.asarray(scores, dtype=np.float64)
    m = len(scores)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    if strategy == "top":
        return np.arange(min(n, m))
    if rng is None:
        raise ValueError(f"sampling strategy {strategy!r} needs a seeded rng")
    if strategy == "random" and not isinstance(rng, np.random.Generator):
        # sentence-transformers draws n positions among max(m, n) and drops those past the candidates;
        # drawing the same way keeps a seeded stream in step with its rows.
        return np.array(sorted(i for i in rng.sample(range(max(m, n)), n) if i < m), dtype=np.int64)
    if m <= n:
        return np.arange(m)
    if strategy == "random":
        return np.sort(rng.choice(m, size=n, replace=False)).astype(np.int64)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    window = min(m, max(pool, n))
    first = 1 if strategy == "top1_sampled" else 0
    logits = scores[first:window] / temperature
    # Gumbel-top-k: the n largest of logits + Gumbel noise are an exact draw without replacement
    # from softmax(logits), with no underflow when the temperature is low.
    keys = logits + rng.gumbel(size=len(logits))
    drawn = first + np.argsort(-keys, kind="stable")[: n - first]
    return np.sort(np.concatenate([np.arange(first), drawn])).astype(np.int64)
