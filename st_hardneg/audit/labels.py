"""audit_labels: find likely missing and wrong relevance labels, with evidence and calibrated confidence."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data import OptionError
from .calibration import features, labelled_probability, relevance_probability
from .detectors import embedding_outliers, missing_label_votes, wrong_label_votes
from .evidence import Evidence, lay_out
from .report import LabelAudit

logger = logging.getLogger(__name__)


def audit_labels(
    dataset: Any,
    model: Any = None,
    *,
    teacher: Any = None,
    split: str = "train",
    corpus: Any = None,
    anchor_column_name: str | None = None,
    positive_column_name: str | None = None,
    relevance_threshold: float = 0.0,
    k: int = 100,
    margin: float = 0.05,
    wrong_rank: int = 10,
    far: float = 0.2,
    outlier_threshold: float = 3.5,
    min_votes: int | None = None,
    threshold: float = 0.5,
    retriever: str = "dense",
    batch_size: int = 32,
    max_seq_length: int | None = None,
    backend: str = "torch",
    cache_folder: str | None = None,
    seed: int = 0,
    verbose: bool = True,
) -> LabelAudit:
    """Audit the relevance labels of ``dataset`` with the mining model, one or more teachers, and their agreement.

    Four techniques, one report:

    - **Confident misclassifications → missing labels.** An unlabelled document among a query's top
      ``k`` candidates that scores at or above the query's labelled positive (the median one when
      there are several), or within ``margin`` (relative, as TopK-PercPos) of it, is a vote; a
      document with ``min_votes`` votes is flagged (the candidates the PositiveAwareFilter drops
      silently, for a query with one positive).
    - **Dual models.** Every model votes: the mining model ("student") and each teacher (a second
      teacher is a third vote). The review shows every model's score and rank.
    - **Wrong labels.** A labelled positive that ``wrong_rank`` or more unlabelled candidates
      outscore under ``min_votes`` models and, when the query has other positives, that scores under
      ``(1 - far)`` times their median; and a positive that is an embedding outlier among its
      query's positives (modified z-score below ``-outlier_threshold``, queries with 3+ positives).
    - **Confidence-based correction.** Every flag gets ``P(relevant)`` from a classifier of labelled
      positives against unlabelled candidates (positive-unlabelled learning, Elkan and Noto 2008,
      cross-fitted by query): a missing-label flag's confidence is ``P(relevant)``, a wrong-label
      flag's is ``1 - P(relevant)``. :meth:`LabelAudit.corrected_data` applies the flags above
      ``threshold``.

    Args:
        dataset: What :func:`st_hardneg.mine` accepts: a BEIR folder, a ``datasets.Dataset`` of
            pairs (with ``corpus``), a Hub dataset name, or :class:`~st_hardneg.data.MiningData`.
        model: The mining model (a SentenceTransformer, a name or path; default all-MiniLM-L6-v2).
        teacher: A teacher (bi-encoder or cross-encoder, object or name) or a list of teachers.
        split: BEIR split.
        corpus: Extra corpus documents for a dataset of pairs.
        anchor_column_name, positive_column_name, relevance_threshold: How the labels are read, as in
            :func:`st_hardneg.mine` (audit the label set you mine with).
        k (int): Candidates per query. Defaults to 100.
        margin (float): Relative margin of the missing-label rule. Defaults to 0.05.
        wrong_rank (int): Unlabelled candidates that must outscore a positive for a vote. Defaults to 10.
        far (float): How far under the other positives' median (relative) a wrong positive scores. Defaults to 0.2.
        outlier_threshold (float): Modified z-score cut of the embedding-outlier rule. Defaults to 3.5.
        min_votes (int | None): Models that must agree; default every model with one or two
            models, a majority with three or more.
        threshold (float): Default confidence at which corrections apply. Defaults to 0.5.
        retriever (str): ``"dense"``, ``"bm25"`` or ``"hybrid"`` candidates. Defaults to "dense".
        batch_size, max_seq_length, backend, cache_folder: As in :func:`st_hardneg.mine`.
        seed (int): Seeds the calibration folds. Defaults to 0.
        verbose (bool): Progress bars.

    Returns:
        LabelAudit: flags (most likely errors first), summary, review files and corrected labels.

    References:
        Moreira et al., "NV-Retriever", arXiv 2407.15831 (positive-aware false-negative rules);
        Elkan and Noto, "Learning classifiers from only positive and unlabeled data", KDD 2008;
        Iglewicz and Hoaglin, "How to Detect and Handle Outliers", 1993 (modified z-score).

    Example::

        from st_hardneg import sample_data_path
        from st_hardneg.audit import audit_labels

        audit = audit_labels(sample_data_path(), k=50)
        print(audit.table())
        audit.write_review("review.csv")
        corrected = audit.corrected_data(threshold=0.8)
    """
    _check(k=k, margin=margin, wrong_rank=wrong_rank, far=far, outlier_threshold=outlier_threshold,
           threshold=threshold)
    teachers = teacher if isinstance(teacher, (list, tuple)) else ([] if teacher is None else [teacher])
    _votes_needed(min_votes, 1 + len(teachers))  # checked before anything is encoded
    evidence, names = gather_evidence(dataset, model, teacher=teachers, split=split, corpus=corpus,
                                      anchor_column_name=anchor_column_name, positive_column_name=positive_column_name,
                                      relevance_threshold=relevance_threshold, k=k,
                                      retriever=retriever, batch_size=batch_size, max_seq_length=max_seq_length,
                                      backend=backend, cache_folder=cache_folder, verbose=verbose)
    audit = judge(evidence, margin=margin, wrong_rank=wrong_rank, far=far, outlier_threshold=outlier_threshold,
                  min_votes=min_votes, seed=seed, threshold=threshold)
    audit.models = names
    audit.settings = {"k": k, **audit.settings, "retriever": retriever}
    return audit


def gather_evidence(
    dataset: Any,
    model: Any = None,
    *,
    teacher: Any = None,
    split: str = "train",
    corpus: Any = None,
    anchor_column_name: str | None = None,
    positive_column_name: str | None = None,
    relevance_threshold: float = 0.0,
    k: int = 100,
    retriever: str = "dense",
    batch_size: int = 32,
    max_seq_length: int | None = None,
    backend: str = "torch",
    cache_folder: str | None = None,
    verbose: bool = True,
) -> tuple[Evidence, dict[str, str]]:
    """The engine's top-``k`` candidates of every query, scored by the mining model and each teacher, as
    :class:`~.evidence.Evidence`; and the models' names by role. Arguments as in :func:`audit_labels`."""
    from ..embeddings import Embedder
    from ..models import load_model
    from ..pools import build_retriever, index_all, score_candidates
    from ..sources import load_data
    from ..teachers import BiEncoderScorer, make_scorer

    data = load_data(dataset, split=split, corpus=corpus, anchor_column_name=anchor_column_name,
                     positive_column_name=positive_column_name, relevance_threshold=relevance_threshold)
    st_model = load_model(model, max_seq_length, backend=backend, cache_folder=cache_folder)
    embedder = Embedder(st_model, batch_size=batch_size, cache_dir=cache_folder, show_progress=verbose)
    source = build_retriever(retriever, embedder, show_progress=verbose)
    teachers = teacher if isinstance(teacher, (list, tuple)) else ([] if teacher is None else [teacher])
    scorers = [BiEncoderScorer(embedder)] + [
        make_scorer(t, batch_size=batch_size, cache_dir=cache_folder, show_progress=verbose, backend=backend)
        for t in teachers]
    # Every bi-encoder encodes the whole corpus once: its cache entry serves every later audit, whatever
    # candidates it scores, and the mining model's vectors give the positive cosines.
    corpus_emb = embedder.encode(data.corpus_texts, "document")
    for scorer in scorers[1:]:
        if isinstance(scorer, BiEncoderScorer):
            scorer.embedder.encode(data.corpus_texts, "document")
    roles = ["student"] + ["teacher" if i == 0 else f"teacher {i + 1}" for i in range(len(teachers))]
    index_all(source, scorers, data.corpus_texts)
    scored = score_candidates(data, source, scorers, k)
    evidence = lay_out(data, roles, scored.query_order, scored.indices, scored.scores, scored.positive_scores,
                       corpus_emb, k)
    return evidence, dict(zip(roles, [embedder.label] + [s.name for s in scorers[1:]]))


def default_votes(n_models: int) -> int:
    """Every model with one or two models; a majority with three or more."""
    return n_models if n_models <= 2 else n_models // 2 + 1


def _votes_needed(min_votes: int | None, n_models: int) -> int:
    """``min_votes`` checked against the number of models, or the default."""
    if min_votes is None:
        return default_votes(n_models)
    if isinstance(min_votes, bool) or not isinstance(min_votes, (int, np.integer)) or not 1 <= min_votes <= n_models:
        raise OptionError(f"min_votes must be between 1 and the number of models ({n_models}), got {min_votes!r}")
    return int(min_votes)


def judge(evidence: Evidence, *, models: Sequence[int] | None = None, margin: float = 0.05, wrong_rank: int = 10,
          far: float = 0.2, outlier_threshold: float = 3.5, min_votes: int | None = None, seed: int = 0,
          threshold: float = 0.5) -> LabelAudit:
    """Apply the rules and the calibration to gathered evidence; ``models`` picks a subset (by index),
    e.g. the student alone. Per-item votes and probabilities, flagged or not, come from :func:`score_items`."""
    use = list(range(len(evidence.models))) if models is None else list(models)
    votes_needed = _votes_needed(min_votes, len(use))
    scores = score_items(evidence, models=use, margin=margin, wrong_rank=wrong_rank, far=far,
                         outlier_threshold=outlier_threshold, seed=seed)
    within, above, wrong, z = (scores[k] for k in ("within", "above", "wrong", "outlier_z"))
    p_relevant, p_missing = scores["relevant"], scores["unlabelled_relevant"]
    order_relevant, order_missing = scores["order_relevant"], scores["order_missing"]
    flags = []
    data, roles = evidence.data, [evidence.models[m] for m in use]
    missing_idx = np.flatnonzero(within >= votes_needed)
    outlier = np.nan_to_num(z, nan=0.0) < -outlier_threshold
    wrong_idx = np.flatnonzero((wrong >= votes_needed) | outlier)
    for i in missing_idx:
        reason = ("at or above the positive" if above[i] >= votes_needed
                  else f"within {margin:.0%} of the positive")
        flags.append(_flag(evidence, use, i, "missing", float(p_missing[i]), reason, int(within[i]),
                           float(order_missing[i])))
    for i in wrong_idx:
        reasons = []
        if wrong[i] >= votes_needed:
            reasons.append(f"{wrong_rank}+ candidates above" + ("" if np.isnan(evidence.ref_median[use[0], i])
                                                                 else ", far under the other positives"))
        if outlier[i]:
            reasons.append(f"embedding outlier among the query's positives (z {z[i]:.1f})")
        flags.append(_flag(evidence, use, i, "wrong", float(1 - p_relevant[i]), "; ".join(reasons), int(wrong[i]),
                           -float(order_relevant[i])))
    uncalibrated = sum(f["confidence"] != f["confidence"] for f in flags)  # NaN: see labelled_probability
    if uncalibrated:
        logger.warning("%d flags have no confidence (too few queries to calibrate on); they are listed last and "
                       "never applied", uncalibrated)
    # Clipping ties confident flags at 1.0; the classifier's own output keeps their order.
    flags.sort(key=lambda f: (f["confidence"] != f["confidence"], -np.nan_to_num(f["confidence"]),
                              -np.nan_to_num(f["_order"]), f["kind"], f["query_id"], f["doc_id"]))
    for flag in flags:
        del flag["_order"]
    stats = {"queries": len(evidence.query_order), "positives": int(evidence.labelled.sum()),
             "candidates": int((~evidence.labelled).sum())}
    calibration = {"method": "positive-unlabelled logistic regression (Elkan and Noto 2008), cross-fitted by query",
                   "c": scores["c"], "features": scores["features"]}
    settings = {"margin": margin, "wrong_rank": wrong_rank, "far": far, "outlier_threshold": outlier_threshold,
                "min_votes": votes_needed, "seed": seed}
    return LabelAudit(flags, {r: r for r in roles}, settings, calibration, stats, threshold, data, data.source)


def score_items(evidence: Evidence, *, models: Sequence[int], margin: float = 0.05, wrong_rank: int = 10,
                far: float = 0.2, outlier_threshold: float = 3.5, seed: int = 0) -> dict[str, Any]:
    """Per item: missing-label votes (``within``, ``above``), wrong-label votes, outlier z and ``P(relevant)``."""
    within, above = missing_label_votes(evidence, margin=margin, models=models)
    wrong = wrong_label_votes(evidence, rank=wrong_rank, far=far, models=models)
    z = embedding_outliers(evidence, threshold=outlier_threshold)
    relevant, unlabelled_relevant, order_relevant, order_missing, c, names = _calibrate(evidence, models, seed)
    return {"within": within, "above": above, "wrong": wrong, "outlier_z": z, "relevant": relevant,
            "unlabelled_relevant": unlabelled_relevant, "order_relevant": order_relevant,
            "order_missing": order_missing, "c": c, "features": names}


def _calibrate(evidence: Evidence, models: Sequence[int], seed: int):
    """P(relevant) per item (see :mod:`.calibration`), unclipped values for ordering flags that clip
    at 1, ``c`` and the feature names."""
    x, names = features(evidence, models)
    g, c = labelled_probability(x, evidence.labelled, evidence.query, train=evidence.retrieved, seed=seed)
    relevant, missing = relevance_probability(g, c)
    order_relevant, order_missing = relevance_probability(g, c, clip=False)
    return relevant, missing, order_relevant, order_missing, c, names


def _flag(evidence: Evidence, use: list[int], i: int, kind: str, confidence: float, reason: str, votes: int,
          order: float) -> dict:
    data = evidence.data
    ref = evidence.ref_median[use, i]
    return {"kind": kind, "query_id": data.query_ids[evidence.query_order[evidence.query[i]]],
            "doc_id": data.corpus_ids[evidence.doc[i]], "confidence": confidence, "reason": reason, "votes": votes,
            "scores": [float(evidence.scores[m, i]) for m in use], "ranks": [int(evidence.ranks[m, i]) for m in use],
            "positive_scores": [None if np.isnan(r) else float(r) for r in ref], "_order": order}


def _check(**values: Any) -> None:
    for name in ("k", "wrong_rank"):
        v = values[name]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise OptionError(f"{name} must be a positive integer, got {v!r}")
    for name in ("margin", "far", "threshold"):
        v = values[name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise OptionError(f"{name} must be between 0 and 1, got {v!r}")
    v = values["outlier_threshold"]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        raise OptionError(f"outlier_threshold must be positive, got {v!r}")
