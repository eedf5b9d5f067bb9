"""The mining engine: candidate pools per query, then negatives drawn from them for rows.

Two stages, shared by every entry point (:func:`~st_hardneg.mine`,
:func:`~st_hardneg.mine_hard_negatives`, :class:`~st_hardneg.MiningDataCollator`, the recipes):

1. :func:`build_pools` retrieves candidates for every query, scores them with each teacher, filters
   them with a :class:`~st_hardneg.filters.PositiveAwareFilter` and keeps the survivors best first,
   widening the window of queries left short;
2. :func:`draw` picks one row's negatives from a query's pools (per teacher quota, seeded), and
   :func:`sample_rows` does so for a list of (query, positive) rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .candidates import BM25Retriever, DenseRetriever, HybridRetriever, Retriever
from .data import MiningData
from .embeddings import Embedder
from .filters import PositiveAwareFilter, normalize_text
from .sampling import choose
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

    def __post_init__(self) -> None:
        self.pool_of = {q: i for i, q in enumerate(self.query_order)}


@dataclass
class MinedRows:
    """Rows in id form: each (query, positive) pair with its negatives (corpus positions), best first."""

    pairs: list[tuple[int, int]]
    negatives: list[list[int]]
    negative_scores: list[list[float]]
    negative_ranks: list[list[int]]
    positive_scores: list[float]


def build_retriever(
    retriever: str | Retriever,
    embedder: Embedder,
    *,
    index: str = "flat",
    bm25_backend: str = "bm25s",
    fusion: str = "rrf",
    query_chunk: int = 4096,
    show_progress: bool = True,
) -> Retriever:
    """A retriever from a name (``dense``, ``bm25``, ``hybrid``) or an instance."""
    if not isinstance(retriever, str):
        return retriever
    dense = DenseRetriever(embedder, index=index, query_chunk=query_chunk)  # type: ignore[arg-type]
    bm25 = BM25Retriever(bm25_backend, show_progress=show_progress)  # type: ignore[arg-type]
    if retriever == "dense":
        return dense
    if retriever == "bm25":
        return bm25
    if retriever == "hybrid":
        return HybridRetriever([bm25, dense], fusion=fusion)  # type: ignore[arg-type]
    raise ValueError(f"unknown retriever {retriever!r}; use 'dense', 'bm25', 'hybrid' or a Retriever")


def make_scorers(teacher: Any, embedder: Embedder, *, ensemble: str = "mean", batch_size: int = 32,
                 cache_dir: str | None = None, show_progress: bool = True, backend: str = "torch") -> list[Scorer]:
    """The scorers a run filters with: the teacher(s), or the mining model when there is none."""
    teachers = teacher if isinstance(teacher, (list, tuple)) else ([] if teacher is None else [teacher])
    made = [make_scorer(t, batch_size=batch_size, cache_dir=cache_dir, show_progress=show_progress, backend=backend)
            for t in teachers]
    scorers: list[Scorer] = made or [BiEncoderScorer(embedder)]
    if len(scorers) > 1 and ensemble == "mean":
        scorers = [EnsembleScorer(scorers)]
    return scorers


def index_all(source: Retriever, scorers: Sequence[Scorer], corpus: Sequence[str]) -> None:
    """Index the retriever, and every teacher that is a retriever of its own (e.g. BM25 as a teacher)."""
    source.index(corpus)
    members = [source, *getattr(source, "retrievers", [])]
    for scorer in scorers:
        for teacher in getattr(scorer, "scorers", [scorer]):  # an ensemble's members
            if isinstance(teacher, Retriever) and not any(teacher is m for m in members):
                teacher.index(corpus)
                members.append(teacher)


def build_pools(
    data: MiningData,
    source: Retriever,
    scorers: Sequence[Scorer],
    filter: PositiveAwareFilter,
    embedder: Embedder,
    *,
    want: Sequence[int],
    range_max: int,
    max_candidates: int | None,
    stats: MiningStats,
    pool_size: int | None = None,
    include_positives: bool = False,
    max_positives: int | None = None,
) -> CandidatePools:
    """Retrieve, score and filter candidates for every query of ``data`` (``source`` already indexed).

    The first window holds ``range_max`` candidates beyond the most positives any query has
    (``max_positives``, default: counted from ``data``), as in sentence-transformers. A query whose
    kept candidates under scorer ``s`` number fewer than ``want[s]`` is searched again with a doubled
    window, up to ``max_candidates`` (``None``: never); ``stats`` receives the counts. Each pool
    keeps its best ``pool_size`` survivors (default: ``range_max`` less the filter's ``range_min``,
    sentence-transformers' candidate range).
    """
    positives = data.positives_by_query()
    most_positives = max_positives or max(len(p) for p in positives.values())
    corpus_size = len(data.corpus_texts)
    keep_at_most = pool_size if pool_size is not None else max(range_max - filter.range_min, max(want))
    query_order = sorted(positives)
    qtexts, ctexts = data.query_texts, data.corpus_texts
    pos_docs = [[ctexts[d] for d in positives[q]] for q in query_order]
    pos_scores = [s.score([qtexts[q] for q in query_order], pos_docs) for s in scorers]
    picked: dict[int, list[KeptCandidates]] = {}
    window = min(range_max + most_positives, corpus_size)
    limit = window if max_candidates is None else min(max(max_candidates, range_max), corpus_size)
    pending = list(range(len(query_order)))
    widened: set[int] = set()
    reuse = [_retrieval_scores_are_the_scorers(source, scorer) for scorer in scorers]
    while pending:
        queries = [query_order[i] for i in pending]
        indices, retrieved = source.search([qtexts[q] for q in queries], window)
        valid = indices >= 0
        cand_texts = None if all(reuse) else [[ctexts[d] for d in row[ok]] for row, ok in zip(indices, valid)]
        padded_texts = [[ctexts[d] if d >= 0 else None for d in row] for row in indices]
        own = None if include_positives else [positives[q] for q in queries]
        own_texts = None if own is None else [[ctexts[d] for d in docs] for docs in own]
        dup_sim = None if include_positives else _duplicate_similarity(embedder, filter, indices, valid, own, ctexts)
        per_scorer: list[tuple[np.ndarray, Any]] = []
        for s_i, scorer in enumerate(scorers):
            if reuse[s_i]:
                scores = np.where(valid, retrieved, -np.inf).astype(np.float32)
                if not np.isfinite(scores[valid]).all():
                    row = int(np.argwhere(~np.isfinite(scores) & valid)[0, 0])
                    raise ValueError(f"teacher {scorer.name!r} returned a non-finite score for query "
                                     f"{qtexts[queries[row]][:80]!r}; check the model's dtype and inputs")
            else:
                flat = scorer.score([qtexts[q] for q in queries], cand_texts)
                scores = np.full(indices.shape, -np.inf, dtype=np.float32)
                for row, values in enumerate(flat):
                    scores[row, valid[row]] = values
            result = filter(
                scores, [pos_scores[s_i][i] for i in pending],
                candidate_ids=indices, positive_ids=own, duplicate_similarity=dup_sim, valid=valid,
                candidate_texts=padded_texts, positive_texts=own_texts,
            )
            per_scorer.append((scores, result))
        still = []
        for row, i in enumerate(pending):
            kept, dupes = zip(*(_kept(scores[row], result.keep[row], indices[row], ctexts, keep_at_most)
                                for scores, result in per_scorer))
            short = any(len(p.docs) < quota for p, quota in zip(kept, want))
            if short and window < limit:
                still.append(i)
                widened.add(i)
                continue
            picked[i] = list(kept)
            stats.short_queries += short
            if sum(dupes):
                rules = stats.removed_by_rule
                rules["duplicate_negative"] = rules.get("duplicate_negative", 0) + sum(dupes)
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


def _retrieval_scores_are_the_scorers(source: Retriever, scorer: Scorer) -> bool:
    """Whether ``source.search`` already returns ``scorer``'s scores: an exact index over the same embedder.

    Rescoring would only recompute the same dot products (sentence-transformers also keeps faiss'
    scores); an approximate index may hold compressed vectors, so it is rescored.
    """
    return (isinstance(scorer, BiEncoderScorer) and type(source) is DenseRetriever
            and source.index_type == "flat" and scorer.embedder is source.embedder)


def _kept(scores: np.ndarray, keep: np.ndarray, docs: np.ndarray, corpus: Sequence[str],
          keep_at_most: int) -> tuple[KeptCandidates, int]:
    """One query's best ``keep_at_most`` kept candidates without two of the same normalised text, and
    how many text duplicates were passed over on the way."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty_like(order)
    ranks[order] = np.arange(len(order))
    seen: set[str] = set()
    chosen = []
    dupes = 0
    for j in order[keep[order]]:
        key = normalize_text(corpus[docs[j]])
        if key in seen:  # corpora repeat documents; one row should not carry the same text twice
            dupes += 1
            continue
        seen.add(key)
        chosen.append(j)
        if len(chosen) == keep_at_most:
            break
    at = np.array(chosen, dtype=np.int64)
    return KeptCandidates(docs[at], scores[at], ranks[at]), dupes


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


def draw(
    kept: Sequence[KeptCandidates],
    quotas: Sequence[int],
    strategy: str,
    rng: Any,
    *,
    sample_pool: int = 10,
    temperature: float = 0.05,
    usable: Callable[[int], bool] | None = None,
    fresh: Callable[[int], bool] | None = None,
) -> list[tuple[int, float, int]]:
    """One row's negatives as (corpus position, score, rank): each scorer's quota, merged round-robin.

    ``usable`` limits the candidates (e.g. a batch's positives, stale documents); ``fresh`` prefers
    candidates for which it holds (e.g. not yet used in the batch) when enough of them remain.
    Union ensembles keep duplicates across teachers, as NV-Retriever does.
    """
    chosen: list[list[tuple[int, float, int]]] = []
    for pool, quota in zip(kept, quotas):
        options = np.arange(len(pool.docs))
        if usable is not None:
            options = options[[usable(int(d)) for d in pool.docs]] if len(options) else options
        if fresh is not None:
            preferred = options[[fresh(int(pool.docs[j])) for j in options]] if len(options) else options
            options = preferred if len(preferred) >= quota else options
        at = options[choose(pool.scores[options], quota, strategy, pool=sample_pool, temperature=temperature,
                            rng=rng)]
        chosen.append([(int(pool.docs[j]), float(pool.scores[j]), int(pool.ranks[j])) for j in at])
    return [c[j] for j in range(max(quotas, default=0)) for c in chosen if j < len(c)]


def sample_rows(
    data: MiningData,
    pools: CandidatePools,
    rows: Sequence[tuple[int, int]],
    quotas: Sequence[int],
    strategy: str,
    rng_for: Callable[[int], Any],
    *,
    sample_pool: int = 10,
    temperature: float = 0.05,
    per_query: bool = False,
) -> MinedRows:
    """Negatives for every (query, positive) row, drawn from ``pools`` with ``rng_for(row number)``.

    With ``per_query`` the rows of one query share the draw of its first row (sentence-transformers
    mines per query); otherwise every row draws on its own.
    """
    positives = data.positives_by_query()
    out = MinedRows([], [], [], [], [])
    by_query: dict[int, list[tuple[int, float, int]]] = {}
    for r, (q, d) in enumerate(rows):
        i = pools.pool_of[q]
        if per_query and q in by_query:
            merged = by_query[q]
        else:
            # "top" draws nothing, and a seeded generator per row is not free (~50 µs).
            rng = None if strategy == "top" else rng_for(r)
            merged = draw(pools.kept[i], quotas, strategy, rng, sample_pool=sample_pool, temperature=temperature)
            by_query[q] = merged
        k = positives[q].index(d)
        out.pairs.append((q, d))
        out.negatives.append([m[0] for m in merged])
        out.negative_scores.append([m[1] for m in merged])
        out.negative_ranks.append([m[2] for m in merged])
        values = [ps[i][k] for ps in pools.positive_scores]
        out.positive_scores.append(float(values[0] if len(values) == 1 else np.mean(values)))
    return out
