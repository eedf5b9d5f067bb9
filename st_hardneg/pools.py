"""Candidate pools: retrieve, score and filter candidates per query, widening short windows.

Shared by :func:`~st_hardneg.mining.mine` (which samples a fixed set of negatives from the pools)
and :class:`~st_hardneg.collator.MiningDataCollator` (which samples fresh ones per batch).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .candidates import BM25Retriever, DenseRetriever, HybridRetriever, Retriever
from .data import MiningData
from .embeddings import Embedder
from .filters import PositiveAwareFilter, normalize_text
from .stats import MiningStats
from .teachers import BiEncoderScorer, EnsembleScorer, Scorer, make_scorer

logger = logging.getLogger(__name__)


@dataclass
class KeptCandidates:
    """The candidates of one query that one scorer's filter kept, best first."""

    docs: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray


@dataclass
class CandidatePools:
    """What negatives are drawn from: per query and scorer, the filtered candidates, best first.

    Attributes:
        query_order: ``data`` query index of each pool.
        kept: ``kept[i][s]`` are the candidates of pool ``i`` kept under scorer ``s``.
        positive_scores: ``positive_scores[s][i]`` scores the positives of pool ``i`` (in
            ``data.positives_by_query()`` order) under scorer ``s``.
    """

    query_order: list[int]
    kept: list[list[KeptCandidates]]
    positive_scores: list[list[np.ndarray]]


def build_retriever(
    retriever: str | Retriever,
    embedder: Embedder,
    *,
    index: str = "flat",
    bm25_backend: str = "bm25s",
    fusion: str = "rrf",
    show_progress: bool = True,
) -> Retriever:
    """A retriever from a name (``dense``, ``bm25``, ``hybrid``) or an instance."""
    if not isinstance(retriever, str):
        return retriever
    if retriever == "dense":
        return DenseRetriever(embedder, index=index)  # type: ignore[arg-type]
    if retriever == "bm25":
        return BM25Retriever(bm25_backend, show_progress=show_progress)  # type: ignore[arg-type]
    if retriever == "hybrid":
        return HybridRetriever(
            [BM25Retriever(bm25_backend, show_progress=show_progress), DenseRetriever(embedder, index=index)],  # type: ignore[arg-type]
            fusion=fusion,  # type: ignore[arg-type]
        )
    raise ValueError(f"unknown retriever {retriever!r}; use 'dense', 'bm25', 'hybrid' or a Retriever")


def make_scorers(teacher: Any, embedder: Embedder, *, ensemble: str = "mean", batch_size: int = 32,
                 cache_dir: str | None = None, show_progress: bool = True) -> list[Scorer]:
    """The scorers a run filters with: the teacher(s), or the mining model when there is none."""
    teachers = teacher if isinstance(teacher, (list, tuple)) else ([] if teacher is None else [teacher])
    made = [make_scorer(t, batch_size=batch_size, cache_dir=cache_dir, show_progress=show_progress) for t in teachers]
    scorers: list[Scorer] = made or [BiEncoderScorer(embedder)]
    if len(scorers) > 1 and ensemble == "mean":
        scorers = [EnsembleScorer(scorers)]
    return scorers


def build_pools(
    data: MiningData,
    source: Retriever,
    scorers: Sequence[Scorer],
    filter: PositiveAwareFilter,
    embedder: Embedder,
    *,
    want: Sequence[int],
    candidates: int,
    max_candidates: int,
    stats: MiningStats,
) -> CandidatePools:
    """Retrieve, score and filter candidates for every query of ``data`` (``source`` already indexed).

    A query whose kept candidates under scorer ``s`` number fewer than ``want[s]`` is searched again
    with a doubled window, up to ``max_candidates``; ``stats`` receives the counts.
    """
    positives = data.positives_by_query()
    most_positives = max(len(p) for p in positives.values())
    corpus_size = len(data.corpus_texts)
    query_order = sorted(positives)
    qtexts, ctexts = data.query_texts, data.corpus_texts
    pos_docs = [[ctexts[d] for d in positives[q]] for q in query_order]
    pos_scores = [s.score([qtexts[q] for q in query_order], pos_docs) for s in scorers]
    picked: dict[int, list[KeptCandidates]] = {}
    limit = min(max(max_candidates, candidates), corpus_size)
    window = min(candidates + most_positives, corpus_size)
    pending = list(range(len(query_order)))
    widened: set[int] = set()
    while pending:
        queries = [query_order[i] for i in pending]
        indices, _ = source.search([qtexts[q] for q in queries], window)
        valid = indices >= 0
        cand_texts = [[ctexts[d] for d in row[ok]] for row, ok in zip(indices, valid)]
        dup_sim = _duplicate_similarity(embedder, filter, indices, valid, [positives[q] for q in queries], ctexts)
        per_scorer: list[tuple[np.ndarray, Any]] = []
        for s_i, scorer in enumerate(scorers):
            flat = scorer.score([qtexts[q] for q in queries], cand_texts)
            scores = np.full(indices.shape, -np.inf, dtype=np.float32)
            for row, values in enumerate(flat):
                scores[row, valid[row]] = values
            result = filter(
                scores, [pos_scores[s_i][i] for i in pending],
                candidate_ids=indices, positive_ids=[positives[q] for q in queries],
                duplicate_similarity=dup_sim, valid=valid,
                candidate_texts=[[ctexts[d] if d >= 0 else None for d in row] for row in indices],
                positive_texts=[[ctexts[d] for d in positives[q]] for q in queries],
            )
            per_scorer.append((scores, result))
        still = []
        for row, i in enumerate(pending):
            kept = [_kept(scores[row], result.keep[row], indices[row], ctexts) for scores, result in per_scorer]
            short = any(len(p.docs) < quota for p, quota in zip(kept, want))
            if short and window < limit:
                still.append(i)
                widened.add(i)
                continue
            picked[i] = kept
            stats.short_queries += short
            dupes = sum(int(result.keep[row].sum()) - len(p.docs) for (_, result), p in zip(per_scorer, kept))
            if dupes:
                stats.removed_by_rule["duplicate_negative"] = stats.removed_by_rule.get("duplicate_negative", 0) + dupes
        # Count rules on the final pass of each query only, so widening does not double count.
        done = [row for row, i in enumerate(pending) if i in picked]
        for _, result in per_scorer:
            stats.candidates_scored += int(valid[done].sum())
            for rule, count in result.removed_in(done).items():
                stats.removed_by_rule[rule] = stats.removed_by_rule.get(rule, 0) + count
        stats.max_window = max(stats.max_window, window)
        pending = still
        if pending:
            window = min(window * 2, limit)
            logger.info("widening the candidate window to %d for %d queries", window, len(pending))
    stats.widened_queries += len(widened)
    return CandidatePools(query_order, [picked[i] for i in range(len(query_order))], pos_scores)


def _kept(scores: np.ndarray, keep: np.ndarray, docs: np.ndarray, corpus: Sequence[str]) -> KeptCandidates:
    """One query's kept candidates, best first, without two negatives of the same normalised text."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty_like(order)
    ranks[order] = np.arange(len(order))
    seen: set[str] = set()
    chosen = []
    for j in order[keep[order]]:
        key = normalize_text(corpus[docs[j]])
        if key not in seen:  # corpora repeat documents; one row should not carry the same text twice
            seen.add(key)
            chosen.append(j)
    at = np.array(chosen, dtype=np.int64)
    return KeptCandidates(docs[at], scores[at], ranks[at])


def _duplicate_similarity(embedder: Embedder, filter: PositiveAwareFilter, indices: np.ndarray, valid: np.ndarray,
                          positive_docs: Sequence[list[int]], corpus: Sequence[str]) -> np.ndarray | None:
    """Each candidate's highest cosine (under the mining model) to any positive of its query."""
    if filter.duplicate_threshold is None:
        return None
    needed = sorted({int(d) for d in indices[valid]} | {d for docs in positive_docs for d in docs})
    emb = embedder.encode([corpus[d] for d in needed], "document")
    where = {d: i for i, d in enumerate(needed)}
    out = np.full(indices.shape, -np.inf, dtype=np.float32)
    for row, (cands, ok) in enumerate(zip(indices, valid)):
        c = emb[[where[int(d)] for d in cands[ok]]]
        p = emb[[where[d] for d in positive_docs[row]]]
        out[row, ok] = (c @ p.T).max(axis=1)
    return out
