"""The audit's rules: pure functions of :class:`~.evidence.Evidence`, each returning a mask and its votes.

- :func:`missing_label_votes`: an unlabelled candidate scoring at or above the query's labelled
  positive (the median one when there are several), or within a relative margin of it (TopK-PercPos'
  test, NV-Retriever arXiv 2407.15831 §3.1), counted per model: a model that agrees is a vote. The
  median, not the lowest positive as the filter uses: with many graded positives (NFCorpus has 42 a
  query) the lowest is a weak label, and every candidate would pass.
- :func:`wrong_label_votes`: a labelled positive that at least ``rank`` unlabelled candidates
  outscore under a model and, when the query has other positives, that scores far under their median.
- :func:`embedding_outliers`: a positive whose mean cosine to the query's other positives is an
  outlier among them by the modified z-score (Iglewicz and Hoaglin, "How to Detect and Handle
  Outliers", 1993: ``0.6745 (x - median) / MAD``, flagged below ``-3.5``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .evidence import Evidence


def _models(evidence: Evidence, models: Sequence[int] | None) -> list[int]:
    return list(range(len(evidence.models))) if models is None else list(models)


def missing_label_votes(evidence: Evidence, *, margin: float = 0.05,
                        models: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per item: how many of ``models`` put an unlabelled candidate at or near the query's (median) positive.

    Returns ``(within, above)``: votes with the margin, and votes at or above the positive itself
    (both 0 for labelled items).
    """
    use = _models(evidence, models)
    ref = evidence.ref_median[use]
    scores = evidence.scores[use]
    unlabelled = ~evidence.labelled
    with np.errstate(invalid="ignore"):
        within = (scores >= ref - np.abs(ref) * margin) & unlabelled
        above = (scores >= ref) & unlabelled
    return within.sum(axis=0), above.sum(axis=0)


def wrong_label_votes(evidence: Evidence, *, rank: int = 10, far: float = 0.2,
                      models: Sequence[int] | None = None) -> np.ndarray:
    """Per item: how many of ``models`` score at least ``rank`` unlabelled candidates above a labelled
    positive and, when the query has other positives, score it under ``(1 - far)`` times their median
    (0 for unlabelled items)."""
    use = _models(evidence, models)
    scores = evidence.scores[use]
    median = evidence.ref_median[use]
    low_rank = evidence.above[use] >= rank
    with np.errstate(invalid="ignore"):
        far_under = np.where(np.isnan(median), True, scores < median - np.abs(median) * far)
    return (low_rank & far_under & evidence.labelled).sum(axis=0)


def embedding_outliers(evidence: Evidence, *, threshold: float = 3.5, min_positives: int = 3) -> np.ndarray:
    """Modified z-score of each labelled positive's mean cosine to its query's other positives
    (NaN where the query has fewer than ``min_positives`` positives or the spread is zero); an outlier
    is a value below ``-threshold``."""
    z = np.full(len(evidence), np.nan)
    ok = evidence.labelled & (evidence.n_positives >= min_positives) & ~np.isnan(evidence.positive_cosine)
    idx = np.flatnonzero(ok)  # items are grouped by query, in order
    starts = np.flatnonzero(np.diff(evidence.query[idx], prepend=-1))
    for a, b in zip(starts, [*starts[1:], len(idx)]):
        items = idx[a:b]
        values = evidence.positive_cosine[items]
        median = np.median(values)
        mad = np.median(np.abs(values - median))
        if mad > 0:
            z[items] = 0.6745 * (values - median) / mad
    return z
