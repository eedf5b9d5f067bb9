"""ECI: Effective Contrastive Information, a score that judges hard negatives before training.

Sinha, Seetharaman and Bansal, "ECI: Effective Contrastive Information to Evaluate Hard-Negatives",
arXiv 2603.20990 (v1, March 2026). The abstract defines ECI as a trade-off between *information
capacity* (the logarithmic InfoNCE bound set by the number of negatives) and *discriminative
efficiency* (a harmonic balance of hardness and safety, strictly penalising unsafe negatives).
The paper's exact equations could not be read; this module implements **our** formulation of that
abstract, per query with positive score ``p`` and negative scores ``s_i`` from one fixed scorer:

- a negative is *safe* when ``s_i < alpha * p`` (alpha = 0.95, NV-Retriever's TopK-PercPos);
- safety ``S = clip((p - max_i s_i) / delta, 0, 1)`` with ``delta = (1 - alpha) * p`` by default,
  so ``S = 1`` exactly when every negative is safe and ``S = 0`` as soon as one reaches ``p``;
  the softer fraction of safe negatives is reported too;
- hardness ``H = mean over safe negatives of s_i / p``;
- efficiency ``E = 2HS / (H + S)`` (0 when either is 0);
- capacity ``C = log(1 + number of safe negatives)``;
- ``ECI = C * E``; a dataset's ECI is the mean over queries.

Scores are a bi-encoder's raw cosine clipped at 0 (the scale PercPos uses; mapping cosine to
``(1 + cos) / 2`` compresses the ratios) or a cross-encoder's sigmoid. A query whose positive
scores <= 0 has no safe negative and scores 0.

How well it predicts training (``recipes/validate_eci.py``; numbers in the README): across nine
mining strategies trained for one epoch, Spearman's rho between ECI and nDCG@10 was 0.90 on
NFCorpus but 0.48 on SciFact, where safety ``S`` under a teacher (0.62) predicted better. A set
is safe by construction under the model that filtered it, so score with a different, stronger one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .data import DataError, MiningData, OptionError
from .teachers import Scorer

IDS_COLUMNS = ("query_id", "positive_id", "negative_ids")


@dataclass
class ECIComponents:
    """ECI of one query: capacity, hardness, safety, efficiency and the product."""

    eci: float
    capacity: float
    hardness: float
    safety: float
    efficiency: float
    safe_fraction: float
    num_safe: int


def eci_components(positive: float, negatives: Sequence[float], *, alpha: float = 0.95,
                   delta: float | None = None) -> ECIComponents:
    """ECI of one query from its positive score and its negatives' scores (already on a [0, 1]-like scale).

    Example::

        eci_components(0.8, [0.5, 0.6]).eci   # both safe (< 0.76): S = 1, H = 0.6875, C = log 3
    """
    if not 0 < alpha <= 1:  # NaN fails this too
        raise OptionError(f"alpha must be in (0, 1], got {alpha}")
    neg = np.asarray(negatives, dtype=np.float64)
    if np.isnan(neg).any() or np.isnan(positive):
        raise ValueError("scores contain NaN")
    if neg.size == 0 or positive <= 0:
        return ECIComponents(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    safe = neg < alpha * positive
    num_safe = int(safe.sum())
    width = (1 - alpha) * positive if delta is None else delta
    if width <= 0:
        safety = float(neg.max() < positive)  # alpha = 1: safe means strictly below the positive
    else:
        safety = float(np.clip((positive - neg.max()) / width, 0.0, 1.0))
    hardness = float((neg[safe] / positive).mean()) if num_safe else 0.0
    efficiency = 2 * hardness * safety / (hardness + safety) if hardness > 0 and safety > 0 else 0.0
    capacity = float(np.log1p(num_safe))
    return ECIComponents(capacity * efficiency, capacity, hardness, safety, efficiency, num_safe / neg.size, num_safe)


@dataclass
class ECIResult:
    """ECI of a set of negatives: the overall score, its components and per-query values.

    Attributes:
        eci: Mean ECI over queries (a query's rows are averaged first).
        components: Means over queries of capacity, hardness, safety, efficiency, safe_fraction.
        unsafe_share: Share of queries with safety 0 (a negative reaches the positive).
        per_query: Arrays aligned with ``query_ids``: eci, capacity, hardness, safety, ...
        scorer: Name of the scorer the scores came from.
        alpha / delta: The settings used.
    """

    eci: float
    components: dict[str, float]
    unsafe_share: float
    per_query: dict[str, np.ndarray]
    query_ids: list[str]
    scorer: str
    alpha: float
    delta: float | None
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def distribution(self) -> dict[str, float]:
        """Quartiles of the per-query ECI."""
        q = np.quantile(self.per_query["eci"], [0.0, 0.25, 0.5, 0.75, 1.0]) if len(self.query_ids) else [0.0] * 5
        return dict(zip(("min", "25%", "50%", "75%", "max"), map(float, q)))

    def to_dict(self) -> dict:
        return {"eci": self.eci, **self.components, "unsafe_share": self.unsafe_share, "queries": len(self.query_ids),
                "scorer": self.scorer, "alpha": self.alpha, "delta": self.delta, "distribution": self.distribution()}

    def table(self) -> str:
        d = self.distribution()
        rows = [("ECI", self.eci), *self.components.items(), ("queries with S = 0", self.unsafe_share)]
        lines = [f"ECI of {self.name or 'negatives'} ({len(self.query_ids)} queries, scorer {self.scorer}, "
                 f"alpha {self.alpha})"]
        lines += [f"  {k:<20}{v:>10.4f}" for k, v in rows]
        lines.append("  per-query ECI       " + "  ".join(f"{k} {v:.3f}" for k, v in d.items()))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def eci_from_scores(
    query_ids: Sequence[str],
    positive_scores: Sequence[float],
    negative_scores: Sequence[Sequence[float]],
    *,
    alpha: float = 0.95,
    delta: float | None = None,
    scorer: str = "given scores",
    name: str = "",
) -> ECIResult:
    """ECI from scores already computed: one entry per row (query id, positive score, negatives' scores)."""
    if not (len(query_ids) == len(positive_scores) == len(negative_scores)):
        raise ValueError("query_ids, positive_scores and negative_scores must have the same length")
    if not query_ids:
        raise ValueError("no rows to score")
    per_row = [eci_components(p, n, alpha=alpha, delta=delta) for p, n in zip(positive_scores, negative_scores)]
    order: dict[str, list[int]] = {}
    for i, q in enumerate(query_ids):
        order.setdefault(q, []).append(i)
    keys = ("eci", "capacity", "hardness", "safety", "efficiency", "safe_fraction")
    per_query = {k: np.array([np.mean([getattr(per_row[i], k) for i in rows]) for rows in order.values()])
                 for k in keys}
    components = {k: float(per_query[k].mean()) for k in keys[1:]}
    return ECIResult(float(per_query["eci"].mean()), components, float((per_query["safety"] == 0).mean()), per_query,
                     list(order), scorer, alpha, delta, name)


def is_ids_layout(dataset: Any) -> bool:
    """Whether ``dataset`` holds ids (``query_id``, ``positive_id``, ``negative_ids``) rather than texts."""
    return set(IDS_COLUMNS) <= set(getattr(dataset, "column_names", []))


def _texts_of_ids(dataset: Any, data: MiningData) -> tuple[list[str], list[str], list[list[str]]]:
    """The ids layout's rows as texts, looked up in the data it was mined from."""
    queries = dict(zip(data.query_ids, data.query_texts))
    corpus = dict(zip(data.corpus_ids, data.corpus_texts))

    def text(mapping: dict[str, str], key: Any, kind: str, row: int) -> str:
        if str(key) not in mapping:
            raise DataError(f"row {row}: {kind} id {key!r} is not in {data.source}; pass the data it was mined from")
        return mapping[str(key)]

    q, p, n = [], [], []
    for row, (qid, pid, nids) in enumerate(zip(*(dataset[c] for c in IDS_COLUMNS))):
        q.append(text(queries, qid, "query", row))
        p.append(text(corpus, pid, "corpus", row))
        n.append([text(corpus, d, "corpus", row) for d in nids])
    return q, p, n


def rows_of(dataset: Any, data: MiningData | None = None) -> tuple[list[str], list[str], list[list[str]]]:
    """(queries, positives, negatives per row) from any layout sentence-transformers and ``st_hardneg`` write.

    The anchor is the first column and the positive the second, whatever their names, as in
    sentence-transformers' layouts. The ``ids`` layout is resolved against ``data``, the
    :class:`~st_hardneg.data.MiningData` it was mined from (e.g. ``load_data(folder)``).
    """
    cols = dataset.column_names
    if is_ids_layout(dataset):
        if data is None:
            raise OptionError("the ids layout holds ids, not texts: pass the data it was mined from (data=, or "
                              "--data on the command line), or score it with its stored scores (no scorer)")
        return _texts_of_ids(dataset, data)
    if len(cols) < 3:
        raise ValueError(f"cannot find (query, positive, negatives) in columns {cols}; use a triplet, n-tuple, "
                         "labeled-list or labeled-pair layout, or pass scores")
    anchor, second = cols[0], cols[1]
    if "negative" in cols:  # triplet: one row per negative
        grouped: dict[tuple[str, str], list[str]] = {}
        for a, p, n in zip(dataset[anchor], dataset[second], dataset["negative"]):
            grouped.setdefault((a, p), []).append(n)
        return [a for a, _ in grouped], [p for _, p in grouped], list(grouped.values())
    neg_cols = sorted((c for c in cols if re.fullmatch(r"negative_\d+", c)), key=lambda c: int(c.split("_")[1]))
    if neg_cols:  # n-tuple (with or without scores / label)
        negatives = [list(r) for r in zip(*(dataset[c] for c in neg_cols))]
        return list(dataset[anchor]), list(dataset[second]), negatives
    label = next((c for c in ("labels", "scores", "label", "score") if c in cols), None)
    if label == "labels":  # labeled-list: a label above 0 marks a positive (sentence-transformers puts it first)
        q, p, n = [], [], []
        for i, (query, docs, labels) in enumerate(zip(dataset[anchor], dataset[second], dataset[label])):
            if len(docs) != len(labels):
                raise ValueError(f"row {i}: {len(docs)} documents in {second!r} but {len(labels)} labels")
            negatives = [d for d, lab in zip(docs, labels) if not lab > 0]
            for doc in (d for d, lab in zip(docs, labels) if lab > 0):
                q.append(query)
                p.append(doc)
                n.append(negatives)
        return q, p, n
    if label == "scores":  # labeled-list with scores in place of labels: the positive first, then the negatives
        docs_of = dataset[second]
        return list(dataset[anchor]), [docs[0] for docs in docs_of], [list(docs[1:]) for docs in docs_of]
    if label == "label":  # labeled-pair: label 1 marks the positives, 0 the negatives, per anchor
        pos: dict[str, list[str]] = {}
        neg: dict[str, list[str]] = {}
        for a, t, lab in zip(dataset[anchor], dataset[second], dataset[label]):
            (pos if lab else neg).setdefault(a, []).append(t)
        q = [a for a in pos for _ in pos[a]]
        return q, [t for a in pos for t in pos[a]], [neg.get(a, []) for a in pos for _ in pos[a]]
    raise ValueError(f"cannot find (query, positive, negatives) in columns {cols}; use a triplet, n-tuple, "
                     "labeled-list or labeled-pair layout (with labels, not scores), or pass scores")


def eci_score(
    dataset: Any,
    scorer: Any = None,
    *,
    alpha: float = 0.95,
    delta: float | None = None,
    max_rows: int | None = None,
    name: str = "",
    data: MiningData | None = None,
) -> ECIResult:
    """ECI of a mined dataset under one fixed scorer.

    Args:
        dataset: A ``datasets.Dataset`` in any text layout (triplet, n-tuple, labeled-list,
            labeled-pair), or an ``ids`` layout / :class:`~st_hardneg.mining.MiningResult` whose
            stored teacher scores are used when ``scorer`` is ``None``.
        scorer: A SentenceTransformer (raw cosine, clipped at 0), a CrossEncoder (sigmoid), a
            :class:`~st_hardneg.teachers.Scorer`, or a model name/path. Required for text layouts.
        alpha: Safety threshold as a fraction of the positive score.
        delta: Safety margin width (default ``(1 - alpha) * positive``).
        max_rows: Score only the first ``max_rows`` rows (for a quick estimate).
        name: Label used in the table.
        data: For an ``ids`` layout scored by ``scorer``: the
            :class:`~st_hardneg.data.MiningData` its ids refer to (see :func:`rows_of`).

    Example::

        from st_hardneg import eci_score
        result = eci_score(mined_dataset, model)
        print(result)                    # ECI, capacity, hardness, safety, efficiency, S = 0 share
    """
    from .result import MiningResult

    if isinstance(dataset, MiningResult):  # stored scores in the ids layout; texts for a scorer to read
        dataset = dataset.to_dataset("ids" if scorer is None else "labeled-list")
    cols = getattr(dataset, "column_names", [])
    if max_rows is not None:
        dataset = dataset.select(range(min(max_rows, len(dataset))))
    if scorer is None:
        if "negative_scores" not in cols:
            raise ValueError("a scorer is needed: this dataset carries no stored scores (only the ids layout does)")
        clip = lambda v: max(float(v), 0.0)  # noqa: E731 - stored scores may be raw cosines
        return eci_from_scores(list(dataset["query_id"]), [clip(v) for v in dataset["positive_score"]],
                               [[clip(v) for v in row] for row in dataset["negative_scores"]],
                               alpha=alpha, delta=delta, scorer="mined scores", name=name)
    scorer_obj = _as_scorer(scorer)
    queries, pos, neg = row_scores(dataset, scorer_obj, data)
    return eci_from_scores(queries, pos, neg, alpha=alpha, delta=delta, scorer=scorer_obj.name, name=name)


def row_scores(dataset: Any, scorer: Scorer, data: MiningData | None = None
               ) -> tuple[list[str], list[float], list[np.ndarray]]:
    """(query per row, positive score, negative scores), clipped at 0 as ECI reads them (``data``: see :func:`rows_of`)."""
    queries, positives, negatives = rows_of(dataset, data)
    pos = scorer.score(queries, [[p] for p in positives])
    neg = scorer.score(queries, negatives)
    return queries, [max(float(s[0]), 0.0) for s in pos], [np.clip(s, 0, None) for s in neg]


def _as_scorer(scorer: Any) -> Scorer:
    from .models import load_teacher
    from .teachers import make_scorer

    if isinstance(scorer, str):
        scorer = load_teacher(scorer)
    return make_scorer(scorer, show_progress=False)
