"""Calibrated confidence for audit flags: the probability that a (query, document) pair is relevant.

Qrels are positive-unlabelled data: the labelled positives are relevant, the unlabelled candidates
are a mix. Following Elkan and Noto ("Learning classifiers from only positive and unlabeled data",
KDD 2008), a classifier ``g(x) = P(labelled | x)`` is fit on labelled positives against unlabelled
candidates; under their assumption that the labelled positives are a random sample of the relevant
documents, ``P(relevant | x) = g(x) / c`` with ``c = P(labelled | relevant)``, estimated as the mean
of ``g`` over held-out labelled positives. Every prediction is out-of-fold (folds by query), so a
positive's own label never scores it.

The features are the query-document evidence of each model, relative to the query's unlabelled
candidates: the score, its z-score among the candidates, and how many candidates outscore it. The
classifier learns from the items the retriever returned (labelled positives among the top ``k``
against the unlabelled candidates, which are all from the top ``k``): a positive far down the list
is not comparable with a candidate, and with many positives a query (NFCorpus) a classifier that
saw them would learn that a low score means "labelled". Relational features (the gap to the query's
other positives, the cosine to them) were tried and dropped: a positive is compared with the *other*
positives while a candidate is compared with all of them, and a wrong positive moves every
candidate's reference, so the classifier learned the label structure instead of relevance (on
SciFact train with synthetic noise, wrong-positive ROC-AUC fell from 0.93 to 0.40-0.76;
``benchmarks/bench_audit.py``). The rules and the embedding-outlier test use them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .evidence import Evidence


def features(evidence: Evidence, models: Sequence[int]) -> tuple[np.ndarray, list[str]]:
    """The ``[n, f]`` feature matrix for ``models`` (indices into ``evidence.models``) and the column names."""
    cols, names = [], []
    query = evidence.query
    unlabelled = (~evidence.labelled).astype(np.float64)
    counts = np.bincount(query, weights=unlabelled, minlength=query.max() + 1 if len(query) else 0)
    for m in models:
        s = evidence.scores[m]
        name = evidence.models[m]
        mean = np.bincount(query, weights=s * unlabelled) / np.maximum(counts, 1)
        var = np.bincount(query, weights=s * s * unlabelled) / np.maximum(counts, 1) - mean ** 2
        sd = np.sqrt(np.maximum(var, 1e-12))
        # A query with fewer than two candidates has no spread to standardise by: its z-scores are 0.
        z = np.where(counts[query] >= 2, (s - mean[query]) / sd[query], 0.0)
        cols += [s, z, np.log1p(evidence.above[m].astype(np.float64))]
        names += [f"{name}: score", f"{name}: z-score among the candidates", f"{name}: log(1 + candidates above)"]
    return np.column_stack(cols), names


def labelled_probability(x: np.ndarray, labelled: np.ndarray, groups: np.ndarray, *, train: np.ndarray | None = None,
                         folds: int = 5, seed: int = 0) -> tuple[np.ndarray, float]:
    """Out-of-fold ``g(x) = P(labelled | x)`` for every row, and the estimated ``c = P(labelled | relevant)``.

    Args:
        x: ``[n, f]`` features.
        labelled: Whether each row is a labelled positive.
        groups: Query of each row; folds never split a query.
        train: Rows the classifier learns from and ``c`` is estimated on (default: all); every row
            gets a prediction.
        folds: Cross-fitting folds (at most the number of queries).
        seed: Shuffles queries into folds.

    A fold whose training part lacks labelled or unlabelled rows cannot be fit (too few queries):
    its rows get NaN, never a made-up probability.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labelled = np.asarray(labelled, dtype=bool)
    train = np.ones(len(labelled), dtype=bool) if train is None else np.asarray(train, dtype=bool)
    if labelled[train].all() or not labelled[train].any():
        raise ValueError("calibration needs both labelled positives and unlabelled candidates")
    unique = np.unique(groups)
    folds = max(2, min(folds, len(unique)))
    rng = np.random.default_rng(seed)
    fold_of_query = dict(zip(unique.tolist(), rng.permutation(len(unique)) % folds))
    fold = np.array([fold_of_query[g] for g in groups.tolist()])
    g = np.zeros(len(x))
    for f in range(folds):
        fit, test = (fold != f) & train, fold == f
        if not test.any():
            continue
        if labelled[fit].all() or not labelled[fit].any():
            g[test] = np.nan
            continue
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        clf.fit(x[fit], labelled[fit])
        g[test] = clf.predict_proba(x[test])[:, 1]
    known = labelled & train & ~np.isnan(g)
    return g, float(np.clip(g[known].mean(), 1e-6, 1.0)) if known.any() else float("nan")


def relevance_probability(g: np.ndarray, c: float, *, clip: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``P(relevant | x) = g / c`` and, for an unlabelled row, ``P(relevant | x, unlabelled) =
    (1 - c) / c * g / (1 - g)`` (Elkan and Noto's weight), clipped to [0, 1] unless ``clip`` is False
    (the raw values keep the order of rows that clip at 1)."""
    g = np.clip(np.asarray(g, dtype=np.float64), 0.0, 1.0 - 1e-12)
    relevant, unlabelled = g / c, (1.0 - c) / c * g / (1.0 - g)
    return (np.clip(relevant, 0.0, 1.0), np.clip(unlabelled, 0.0, 1.0)) if clip else (relevant, unlabelled)
