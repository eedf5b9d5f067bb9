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

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .candidates import BM25Retriever, DenseRetriever, HybridRetriever, Retriever
from .data import MiningData
from .embeddings import Embedder, _save_atomic, texts_digest
from .filters import PositiveAwareFilter, text_keys
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
        row_filter: With ``positive_reference="own"``, the filter each row applies to its pool
            against its own positive's score (the pools then hold every survivor under the
            query's highest positive); ``None``: the pools are the rows' pools.
        row_pool_size: With ``row_filter``, the best survivors a row keeps (0: all).
    """

    query_order: list[int]
    kept: list[list[KeptCandidates]]
    positive_scores: list[list[np.ndarray]]
    row_filter: PositiveAwareFilter | None = None
    row_pool_size: int = 0

    def __post_init__(self) -> None:
        self.pool_of = {q: i for i, q in enumerate(self.query_order)}

    def kept_for(self, i: int, k: int) -> list[KeptCandidates]:
        """Per scorer, what the row of pool ``i``'s ``k``-th positive draws from, best first."""
        if self.row_filter is None:
            return self.kept[i]
        return [_narrowed(pool, self.row_filter, float(self.positive_scores[s][i][k]), self.row_pool_size)
                for s, pool in enumerate(self.kept[i])]


def _narrowed(pool: KeptCandidates, row_filter: PositiveAwareFilter, positive_score: float,
              size: int) -> KeptCandidates:
    """The candidates of a query's pool that one row keeps against its own positive, best ``size`` (0: all)."""
    keep = np.flatnonzero(row_filter(pool.scores, positive_score).keep)
    keep = keep[:size] if size else keep
    return KeptCandidates(pool.docs[keep], pool.scores[keep], pool.ranks[keep])


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
    exclude_query_text: bool = True,
    window_extra: int = 0,
) -> CandidatePools:
    """Retrieve, score and filter candidates for every query of ``data`` (``source`` already indexed).

    The first window holds ``range_max`` candidates beyond the most positives any query has
    (``max_positives``, default: counted from ``data``), as in sentence-transformers, and
    ``window_extra`` more (sentence-transformers 6.3 searches one deeper for the query's own text).
    With ``exclude_query_text`` (the default; sentence-transformers' rule from 6.3) the document
    whose text is the query's own is never a candidate either. A query whose
    kept candidates under scorer ``s`` number fewer than ``want[s]`` is searched again with a doubled
    window, up to ``max_candidates`` (``None``: never); ``stats`` receives the counts. Each pool
    keeps its best ``pool_size`` survivors (default: ``range_max`` less the filter's ``range_min``,
    sentence-transformers' candidate range).

    With ``filter.positive_reference == "own"`` the margin rules are first applied against the
    query's *highest* positive, every survivor is kept, and each row applies the full filter against
    its own positive when it draws (:meth:`CandidatePools.kept_for`), keeping its best ``pool_size``.
    A query is widened while the row of its lowest positive (the tightest threshold) is short. The
    rule counts in ``stats`` are then those of the query pass, and text duplicates are dropped
    before ``range_min`` skips the best survivors (after it, with the lowest positive).
    """
    positives = data.positives_by_query()
    most_positives = max_positives or max(len(p) for p in positives.values())
    corpus_size = len(data.corpus_texts)
    keep_at_most = pool_size if pool_size is not None else max(range_max - filter.range_min, max(want))
    query_order = sorted(positives)
    qtexts, ctexts = data.query_texts, data.corpus_texts
    pos_docs = [[ctexts[d] for d in positives[q]] for q in query_order]
    pos_scores = [s.score([qtexts[q] for q in query_order], pos_docs) for s in scorers]
    per_row = filter.positive_reference == "own"
    row_filter, row_pool_size = (filter, keep_at_most) if per_row else (None, 0)
    if per_row:
        # The loosest threshold any row of the query has, nothing shifted yet: rows narrow it when they draw.
        filter = copy.copy(filter)
        filter.positive_reference, filter.range_min = "lowest", 0
        keep_at_most = 0
    # Per scorer and query, what the pool's margin rules compare with (the filter takes the lowest).
    references = [[np.max(p) if per_row else p for p in scores] for scores in pos_scores]
    picked: dict[int, list[KeptCandidates]] = {}
    window = min(range_max + most_positives + window_extra, corpus_size)
    # Ids no query may take as a negative: its positives, and the document that is its own text.
    excluded = {q: [] if include_positives else list(positives[q]) for q in query_order}
    if exclude_query_text:
        text_position = {text: d for d, text in enumerate(ctexts)}  # the last of equal texts, as ST's corpus index
        for q in query_order:
            d = text_position.get(qtexts[q])
            if d is not None and d not in positives[q]:
                excluded[q].append(d)
    limit = window if max_candidates is None else min(max(max_candidates, range_max), corpus_size)
    pending = list(range(len(query_order)))
    widened: set[int] = set()
    reuse = [_retrieval_scores_are_the_scorers(source, scorer) for scorer in scorers]
    # Documents with one normalised text share a key: the duplicate rules compare integers.
    doc_keys = corpus_text_keys(ctexts, embedder.cache_dir)
    # An exact index ranks every document, so a widened query is searched once at the largest window
    # and each later window is a prefix of that (faiss pays ~20 ms per call on small query sets).
    prefixes = _is_exact_dense(source)
    deep: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    first_window = window
    while pending:
        queries = [query_order[i] for i in pending]
        if prefixes and window > first_window:
            new = [i for i in pending if i not in deep]
            if new:
                found = source.search([qtexts[query_order[i]] for i in new], limit)
                deep.update((i, (found[0][r], found[1][r])) for r, i in enumerate(new))
            indices = np.stack([deep[i][0][:window] for i in pending])
            retrieved = np.stack([deep[i][1][:window] for i in pending])
        else:
            indices, retrieved = source.search([qtexts[q] for q in queries], window)
        valid = indices >= 0
        cand_keys = np.where(valid, doc_keys[np.where(valid, indices, 0)], -1)
        own = None if include_positives and not exclude_query_text else [excluded[q] for q in queries]
        own_keys = None if own is None else [doc_keys[docs] for docs in own]
        dup_sim = None if include_positives else _duplicate_similarity(embedder, filter, indices, valid, own, ctexts)
        per_scorer: list[tuple[np.ndarray, Any]] = []
        all_scores = candidate_scores(scorers, [qtexts[q] for q in queries], indices, retrieved, ctexts, reuse)
        for s_i, scores in enumerate(all_scores):
            result = filter(
                scores, [references[s_i][i] for i in pending],
                candidate_ids=indices, positive_ids=own, duplicate_similarity=dup_sim, valid=valid,
                candidate_text_keys=cand_keys, positive_text_keys=own_keys,
            )
            per_scorer.append((scores, result))
        best = [_kept(scores, result.keep, indices, cand_keys, keep_at_most) for scores, result in per_scorer]
        still = []
        for row, i in enumerate(pending):
            kept = [pools_of[row] for pools_of, _ in best]
            dupes = [int(counts[row]) for _, counts in best]
            if per_row:  # the row of the lowest positive has the tightest threshold: widen while it is short
                short = any(len(_narrowed(p, row_filter, float(np.min(pos_scores[s][i])), row_pool_size).docs) < quota
                            for s, (p, quota) in enumerate(zip(kept, want)))
            else:
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
    return CandidatePools(query_order, [picked[i] for i in range(len(query_order))], pos_scores, row_filter,
                          row_pool_size)


# Bump when normalize_text changes, so that cached keys from an older definition are not reused.
TEXT_KEYS_VERSION = 1


def corpus_text_keys(texts: Sequence[str], cache_dir: Any = None) -> np.ndarray:
    """:func:`~st_hardneg.filters.text_keys` of a corpus, kept in ``cache_dir`` (the embedding cache) when given.

    Normalising the non-ASCII documents of a corpus costs more than a warm run's whole search
    (about 0.15 s for SciFact's 5,183), so a warm run reads the keys back like the embeddings.
    """
    if cache_dir is None:
        return text_keys(texts)
    from pathlib import Path

    path = Path(cache_dir) / f"text-keys-v{TEXT_KEYS_VERSION}-{texts_digest(texts)}.npy"
    if path.is_file():
        try:
            keys = np.load(path)
        except (OSError, ValueError) as err:
            logger.warning("ignoring unreadable text-key cache %s (%s)", path, err)
        else:
            if keys.shape == (len(texts),) and keys.dtype == np.int64:
                return keys
            logger.warning("ignoring text-key cache %s with shape %s for %d texts", path, keys.shape, len(texts))
    keys = text_keys(texts)
    _save_atomic(keys, path)
    return keys


def candidate_scores(scorers: Sequence[Scorer], queries: Sequence[str], indices: np.ndarray, retrieved: np.ndarray,
                     corpus: Sequence[str], reuse: Sequence[bool]) -> list[np.ndarray]:
    """Each scorer's ``[n, k]`` scores of the retrieved candidates (-inf for padding).

    A scorer with ``reuse`` set takes the retriever's own scores (see :func:`_retrieval_scores_are_the_scorers`);
    they are checked for NaN as a teacher's would be.
    """
    valid = indices >= 0
    texts = None if all(reuse) else [[corpus[d] for d in row[ok]] for row, ok in zip(indices, valid)]
    out = []
    for scorer, reused in zip(scorers, reuse):
        if reused:
            scores = np.where(valid, retrieved, -np.inf).astype(np.float32)
            if not np.isfinite(scores[valid]).all():
                row = int(np.argwhere(~np.isfinite(scores) & valid)[0, 0])
                raise ValueError(f"teacher {scorer.name!r} returned a non-finite score for query "
                                 f"{queries[row][:80]!r}; check the model's dtype and inputs")
        else:
            flat = scorer.score(queries, texts)
            scores = np.full(indices.shape, -np.inf, dtype=np.float32)
            for row, values in enumerate(flat):
                scores[row, valid[row]] = values
        out.append(scores)
    return out


@dataclass
class ScoredCandidates:
    """Every query's top-``k`` candidates, unfiltered, under each scorer (what the label audit reads).

    Attributes:
        query_order: ``data`` query index of each row.
        indices: ``[n, k]`` corpus positions, best first by the retriever (-1: padding).
        scores: Per scorer, ``[n, k]`` scores of ``indices`` (-inf for padding).
        positive_scores: Per scorer and row, the scores of the query's positives (in
            ``data.positives_by_query()`` order).
    """

    query_order: list[int]
    indices: np.ndarray
    scores: list[np.ndarray]
    positive_scores: list[list[np.ndarray]]


def score_candidates(data: MiningData, source: Retriever, scorers: Sequence[Scorer], k: int) -> ScoredCandidates:
    """Retrieve ``k`` candidates per query with ``source`` (already indexed) and score them and the positives.

    The same retrieval and scoring as :func:`build_pools`, without the filter: nothing is dropped.
    """
    positives = data.positives_by_query()
    query_order = sorted(positives)
    qtexts, ctexts = data.query_texts, data.corpus_texts
    queries = [qtexts[q] for q in query_order]
    pos_scores = [s.score(queries, [[ctexts[d] for d in positives[q]] for q in query_order]) for s in scorers]
    indices, retrieved = source.search(queries, min(k, len(ctexts)))
    reuse = [_retrieval_scores_are_the_scorers(source, scorer) for scorer in scorers]
    scores = candidate_scores(scorers, queries, indices, retrieved, ctexts, reuse)
    return ScoredCandidates(query_order, indices, scores, [list(p) for p in pos_scores])


def _is_exact_dense(source: Retriever) -> bool:
    """Whether ``source`` is a flat (exact) faiss index over its embedder, not a subclass that may search otherwise."""
    return type(source) is DenseRetriever and source.index_type == "flat"


def _retrieval_scores_are_the_scorers(source: Retriever, scorer: Scorer) -> bool:
    """Whether ``source.search`` already returns ``scorer``'s scores: an exact index over the same embedder.

    Rescoring would only recompute the same dot products (sentence-transformers also keeps faiss'
    scores); an approximate index may hold compressed vectors, so it is rescored.
    """
    return isinstance(scorer, BiEncoderScorer) and _is_exact_dense(source) and scorer.embedder is source.embedder


def _kept(scores: np.ndarray, keep: np.ndarray, docs: np.ndarray, keys: np.ndarray,
          keep_at_most: int) -> tuple[list[KeptCandidates], np.ndarray]:
    """Per query row, the best ``keep_at_most`` kept candidates without two of the same text key, and
    how many text duplicates were passed over on the way (all rows at once)."""
    n, k = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")  # a candidate's rank is its column here
    kept = np.take_along_axis(keep, order, axis=1)
    # A key's first kept appearance in its row; corpora repeat documents and one row should not
    # carry the same text twice. Row and key fold into one integer, so one unique() does every row.
    span = int(keys.max(initial=0)) + 2
    folded = np.where(kept, np.arange(n)[:, None] * span + np.take_along_axis(keys, order, axis=1) + 1, -1)
    first = np.zeros(n * k, dtype=bool)
    first[np.unique(folded.ravel(), return_index=True)[1]] = True
    first = first.reshape(n, k) & kept
    before = np.cumsum(first, axis=1) - first  # first appearances ahead of each column
    limit = keep_at_most if keep_at_most > 0 else k
    take = first & (before < limit)
    dupes = (kept & ~first & (before < limit)).sum(axis=1)
    sorted_docs = np.take_along_axis(docs, order, axis=1)
    sorted_scores = np.take_along_axis(scores, order, axis=1)
    pools = []
    for row in range(n):
        at = np.flatnonzero(take[row])
        pools.append(KeptCandidates(sorted_docs[row, at], sorted_scores[row, at], at))
    return pools, dupes


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
) -> list[tuple[int, float, int, int]]:
    """One row's negatives as (corpus position, score, rank, scorer): each scorer's quota, merged round-robin.

    ``usable`` limits the candidates (e.g. a batch's positives, stale documents); ``fresh`` prefers
    candidates for which it holds (e.g. not yet used in the batch) when enough of them remain.
    Union ensembles keep duplicates across teachers, as NV-Retriever does.
    """
    chosen: list[list[tuple[int, float, int, int]]] = []
    for source, (pool, quota) in enumerate(zip(kept, quotas)):
        options = np.arange(len(pool.docs))
        if usable is not None:
            options = options[[usable(int(d)) for d in pool.docs]] if len(options) else options
        if fresh is not None:
            preferred = options[[fresh(int(pool.docs[j])) for j in options]] if len(options) else options
            options = preferred if len(preferred) >= quota else options
        at = options[choose(pool.scores[options], quota, strategy, pool=sample_pool, temperature=temperature,
                            rng=rng)]
        chosen.append([(int(pool.docs[j]), float(pool.scores[j]), int(pool.ranks[j]), source) for j in at])
    return [c[j] for j in range(max(quotas, default=0)) for c in chosen if j < len(c)]


def on_positive_scale(merged: Sequence[tuple[int, float, int, int]], positive_scores: Sequence[float]) -> list[float]:
    """The scores of ``draw``'s negatives on the scale of the row's positive score, the mean over the scorers.

    With one scorer they are its scores. In a union ensemble each negative is shifted by the gap
    between the mean and its own scorer's positive score, so that positive minus negative is the
    margin under the teacher that picked it (a cross-encoder's sigmoid beside a bi-encoder's
    cosine would otherwise make meaningless margins for MarginMSE).
    """
    if len(positive_scores) == 1:
        return [m[1] for m in merged]
    mean = float(np.mean(positive_scores))
    return [m[1] + mean - positive_scores[m[3]] for m in merged]


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
    mines per query; not with per-row pools, whose rows differ); otherwise every row draws on its own.
    """
    positives = data.positives_by_query()
    out = MinedRows([], [], [], [], [])
    by_query: dict[int, list[tuple[int, float, int, int]]] = {}
    per_query = per_query and pools.row_filter is None
    for r, (q, d) in enumerate(rows):
        i = pools.pool_of[q]
        k = positives[q].index(d)
        if per_query and q in by_query:
            merged = by_query[q]
        else:
            # "top" draws nothing, and a seeded generator per row is not free (~50 µs).
            rng = None if strategy == "top" else rng_for(r)
            merged = draw(pools.kept_for(i, k), quotas, strategy, rng, sample_pool=sample_pool,
                          temperature=temperature)
            by_query[q] = merged
        values = [float(ps[i][k]) for ps in pools.positive_scores]
        out.pairs.append((q, d))
        out.negatives.append([m[0] for m in merged])
        out.negative_scores.append(on_positive_scale(merged, values))
        out.negative_ranks.append([m[2] for m in merged])
        out.positive_scores.append(values[0] if len(values) == 1 else float(np.mean(values)))
    return out
