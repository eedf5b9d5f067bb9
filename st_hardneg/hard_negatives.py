"""``mine_hard_negatives``: sentence-transformers' function, signature and output, on st-hardneg's engine.

Switching costs one import line::

    # from sentence_transformers.util import mine_hard_negatives
    from st_hardneg import mine_hard_negatives

Where the algorithms coincide, the rows are sentence-transformers' rows (``tests/test_parity.py``).
Where they differ, they differ on purpose (see the README, "What it does differently"):

- a query with too few candidates left after the rules gets a wider window instead of a dropped or
  short row (``max_candidates``);
- a ``cross_encoder`` that is given always rescores, not only when a margin or score bound is set;
- a candidate whose *normalised* text equals a positive's is no negative, and one row never holds
  two negatives of the same normalised text;
- embeddings are cached by the model's weights (``cache_folder``), not by its name;
- the returned dataset carries its provenance in ``dataset.info.description``.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from typing import Any, Literal

import numpy as np

from .data import DataError, MiningData, from_pairs
from .filters import PositiveAwareFilter
from .mining import MiningSettings, run
from .sources import load_data

logger = logging.getLogger(__name__)


def mine_hard_negatives(
    dataset: Any,
    model: Any,
    anchor_column_name: str | None = None,
    positive_column_name: str | None = None,
    corpus: list[str] | None = None,
    cross_encoder: Any = None,
    range_min: int = 0,
    range_max: int | None = None,
    max_score: float | None = None,
    min_score: float | None = None,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    num_negatives: int = 3,
    sampling_strategy: Literal["random", "top", "sampled", "top1_sampled"] = "top",
    query_prompt_name: str | None = None,
    query_prompt: str | None = None,
    corpus_prompt_name: str | None = None,
    corpus_prompt: str | None = None,
    include_positives: bool = False,
    output_format: Literal["triplet", "n-tuple", "labeled-pair", "labeled-list"] = "triplet",
    output_scores: bool = False,
    batch_size: int = 32,
    faiss_batch_size: int = 16384,
    use_faiss: bool = False,
    use_multi_process: list[str] | bool = False,
    verbose: bool = True,
    cache_folder: str | None = None,
    as_triplets: bool | None = None,
    margin: float | None = None,
    *,
    retriever: Any = "dense",
    teacher: Any = None,
    ensemble: Literal["mean", "union"] = "mean",
    max_candidates: int | None = 1000,
    sample_pool: int = 10,
    temperature: float = 0.05,
    duplicate_threshold: float | None = None,
    index: Literal["flat", "ivf", "hnsw"] = "flat",
    bm25_backend: Literal["bm25s", "rank_bm25"] = "bm25s",
    fusion: Literal["rrf", "weighted"] = "rrf",
    seed: int | None = None,
    backend: str = "torch",
) -> Any:
    """Add hard negatives to a dataset of (anchor, positive) pairs, as sentence-transformers does.

    The same signature, defaults, meanings and return type as
    ``sentence_transformers.util.mine_hard_negatives`` (6.2), running on st-hardneg's engine; see
    the module docstring for the few deliberate differences. Every argument up to ``margin`` is
    sentence-transformers'; the keyword-only ones after it are st-hardneg's extras.

    Args:
        dataset (Dataset): (anchor, positive) pairs; a query with several positives appears in several rows.
        model (SentenceTransformer): Embeds queries and documents for dense retrieval and, without a
            teacher, scores the candidates.
        anchor_column_name (str | None): Anchor column. Defaults to the first column.
        positive_column_name (str | None): Positive column. Defaults to the second column.
        corpus (list[str] | None): Extra candidate documents besides the positives.
        cross_encoder (CrossEncoder | None): Rescores the candidates (sigmoid scores). Always used when given.
        range_min (int): Skip this many of the best candidates left after the rules. Defaults to 0.
        range_max (int | None): Candidates considered per query. Defaults to
            ``range_min + 10 * num_negatives + max_positives`` when a rule may drop candidates,
            else ``range_min + num_negatives + max_positives``.
        max_score (float | None): Drop candidates scoring above this (TopK-Abs).
        min_score (float | None): Drop candidates scoring below this.
        absolute_margin (float | None): Drop candidates within this of the positive score (TopK-MarginPos).
        relative_margin (float | None): Drop candidates above ``positive - |positive| * relative_margin``;
            0.05 is NV-Retriever's TopK-PercPos 95%.
        num_negatives (int): Negatives per query. Defaults to 3.
        sampling_strategy (str): ``"top"`` or ``"random"`` (uniform over the kept candidates; with
            ``seed=None`` it draws from Python's ``random`` module, so ``random.seed`` reproduces
            sentence-transformers' rows), or st-hardneg's ``"sampled"`` / ``"top1_sampled"``.
        query_prompt_name / query_prompt / corpus_prompt_name / corpus_prompt (str | None): Prompts, as in
            sentence-transformers.
        include_positives (bool): Let positives be candidates (reranking evaluation sets); forces "n-tuple".
        output_format (str): ``"triplet"``, ``"n-tuple"``, ``"labeled-pair"`` or ``"labeled-list"``.
        output_scores (bool): Add the scores (``scores`` / ``score`` columns, as sentence-transformers).
        batch_size (int): Encoding batch size. Defaults to 32.
        faiss_batch_size (int): Queries per similarity search call. Defaults to 16384.
        use_faiss (bool): Accepted for compatibility: the search always uses faiss (an exact flat index
            unless ``index`` says otherwise), which returns what sentence-transformers' exact search returns.
        use_multi_process (bool | list[str]): Encode with several processes or devices.
        verbose (bool): Progress bars and a statistics table. Defaults to True.
        cache_folder (str | None): Embedding cache folder, keyed on the model's weights.
        as_triplets (bool | None): Deprecated in sentence-transformers; use ``output_format``.
        margin (float | None): Deprecated in sentence-transformers; use ``absolute_margin``.
        retriever (str | Retriever): ``"dense"``, ``"bm25"``, ``"hybrid"`` or a Retriever. Defaults to "dense".
        teacher (Any): A bi-encoder or cross-encoder teacher, or a list of them for an ensemble
            (instead of ``cross_encoder``).
        ensemble (str): ``"mean"`` or ``"union"`` of several teachers. Defaults to "mean".
        max_candidates (int | None): Widest window tried for a query short of negatives; ``None``
            never widens, as sentence-transformers. Defaults to 1000.
        sample_pool (int): Window of the ``sampled`` strategies. Defaults to 10.
        temperature (float): Softmax temperature of the ``sampled`` strategies. Defaults to 0.05.
        duplicate_threshold (float | None): Drop candidates this similar to a positive under ``model``.
        index (str): faiss index, ``"flat"``, ``"ivf"`` or ``"hnsw"``. Defaults to "flat".
        bm25_backend (str): ``"bm25s"`` or ``"rank_bm25"``. Defaults to "bm25s".
        fusion (str): ``"rrf"`` or ``"weighted"`` for hybrid retrieval. Defaults to "rrf".
        seed (int | None): Seed of every random choice; ``None`` uses Python's global ``random`` state.
        backend (str): Runtime that encodes with ``model`` (and a bi-encoder ``teacher``): ``"torch"``,
            ``"onnx"``, ``"onnx-int8"``, ``"openvino"`` or ``"openvino-int8"`` (see
            :func:`st_hardneg.load_model`). Defaults to "torch".

    Returns:
        Dataset: the rows in the chosen layout, with the input's anchor and positive column names and
        the provenance (``json.loads(dataset.info.description)["st_hardneg"]``).

    References:
        Moreira et al., "NV-Retriever: Improving text embedding models with effective hard-negative
        mining", arXiv 2407.15831 (TopK-PercPos 95% is ``relative_margin=0.05``).

    Example::

        from datasets import Dataset
        from sentence_transformers import SentenceTransformer
        from st_hardneg import mine_hard_negatives
        from st_hardneg.models import default_model_path

        pairs = Dataset.from_dict({"query": ["what is bm25?", "what is faiss?"],
                                   "answer": ["BM25 ranks documents by term statistics.",
                                              "faiss searches dense vectors."]})
        corpus = ["Cats purr.", "The Eiffel Tower is in Paris.", "Dense retrieval embeds text.",
                  "TF-IDF weighs words.", "Vectors live in a space."]
        mined = mine_hard_negatives(pairs, SentenceTransformer(default_model_path()), corpus=corpus,
                                    relative_margin=0.05, num_negatives=2, output_format="n-tuple")
    """
    if as_triplets is not None:
        output_format = "triplet" if as_triplets else "n-tuple"
        logger.warning("The `as_triplets` parameter is deprecated. Use the `output_format` parameter instead. "
                       "Setting `output_format` to `%s`.", output_format)
    if margin is not None:
        absolute_margin = margin
        logger.warning("The `margin` parameter is deprecated. Use the `absolute_margin` and/or `relative_margin` "
                       "parameter instead. Setting `absolute_margin` to `%s`.", absolute_margin)
    if include_positives:
        if (range_min != 0 or range_max is not None or max_score is not None or min_score is not None
                or absolute_margin is not None or relative_margin is not None or sampling_strategy != "top"):
            logger.warning("When using `include_positives=True`, updating `range_min`, `range_max`, `max_score`, "
                           "`min_score`, `absolute_margin`, `relative_margin`, or `sampling_strategy` from the "
                           "default values may still discard the positive values.")
        if output_format != "n-tuple":
            logger.warning('When using `include_positives=True`, `output_format` will be set to `"n-tuple"` to '
                           "ensure that the ranking order is preserved.")
            output_format = "n-tuple"
    if cross_encoder is not None and teacher is not None:
        raise ValueError("pass either cross_encoder or teacher, not both (teacher=[a, b] makes an ensemble)")
    flt = PositiveAwareFilter(relative_margin=relative_margin, absolute_margin=absolute_margin, max_score=max_score,
                              min_score=min_score, range_min=range_min, duplicate_threshold=duplicate_threshold)
    settings = MiningSettings(
        retriever=retriever, teacher=cross_encoder if cross_encoder is not None else teacher, ensemble=ensemble,
        filter=flt, range_max=range_max, max_candidates=max_candidates, num_negatives=num_negatives,
        sampling_strategy=sampling_strategy, sample_pool=sample_pool, temperature=temperature,
        include_positives=include_positives, output_format=output_format, output_scores=output_scores,
        seed=seed, batch_size=batch_size, query_prompt=query_prompt,
        query_prompt_name=query_prompt_name, corpus_prompt=corpus_prompt, corpus_prompt_name=corpus_prompt_name,
        index=index, faiss_batch_size=faiss_batch_size, bm25_backend=bm25_backend, fusion=fusion,
        use_multi_process=use_multi_process, cache_folder=cache_folder, verbose=verbose, backend=backend,
    )
    data = _pairs(dataset, anchor_column_name, positive_column_name, corpus)
    # sentence-transformers mines per unique query (first-seen order) and writes one row per distinct positive.
    rows = [(q, d) for q, docs in data.positives_by_query().items() for d in docs]
    # It sizes its window by the most input rows one anchor has, repeated pairs included.
    max_positives = max(Counter(q for q, _ in data.pairs).values())
    own_text = _excludes_query_text()  # 6.2 may take a query's own text as its negative; 6.3 searches past it
    result = run(data, model, settings, rows=rows, rng_for=_rng_for(settings.sampling_strategy, seed),
                 per_query=True, max_positives=max_positives, exclude_query_text=own_text, window_extra=int(own_text))
    if verbose:
        print(result.stats.table())
    return result.to_dataset(settings.output_format, settings.output_scores)


def _pairs(dataset: Any, anchor: str | None, positive: str | None, corpus: list[str] | None) -> MiningData:
    """The pairs as sentence-transformers reads them: two text columns, the corpus extended by the positives."""
    if not hasattr(dataset, "column_names"):  # a BEIR folder, a file, a Hub name: st-hardneg's loaders
        return load_data(dataset, corpus=corpus, anchor_column_name=anchor, positive_column_name=positive)
    columns = list(dataset.column_names)
    if len(dataset) == 0:
        raise DataError("The dataset is empty. Please provide a non-empty dataset.")
    for label, name in (("anchor_column_name", anchor), ("positive_column_name", positive)):
        if name and name not in columns:  # sentence-transformers would silently take the first two columns
            raise DataError(f"{label}={name!r} is not a column of the dataset; columns are {columns}")
    if not positive and len(columns) < 2:
        raise DataError("Dataset must contain at least two columns to select the positive column automatically.")
    anchor, positive = anchor or columns[0], positive or columns[1]
    data = from_pairs(dataset[anchor], dataset[positive], corpus=corpus, source="dataset(in memory)")
    data.columns = (anchor, positive)
    return data


def _excludes_query_text() -> bool:
    """Whether the installed sentence-transformers (6.3 on) never takes a query's own text as its negative, and
    searches one candidate deeper for it: the drop-in mines as the version the user has."""
    from importlib.metadata import version

    from packaging.version import Version

    return Version(version("sentence-transformers")) >= Version("6.3.0.dev0")


def _rng_for(strategy: str, seed: int | None) -> Any:
    """Per-query random source: sentence-transformers' ``random`` stream for ``"random"``, numpy for the
    sampled strategies, none for ``"top"`` (which must leave the global ``random`` state alone)."""
    if strategy == "top":
        return lambda row: None
    if strategy == "random":
        stream = random if seed is None else random.Random(seed)
        return lambda row: stream
    unseeded = np.random.default_rng()
    return (lambda row: unseeded) if seed is None else (lambda row: np.random.default_rng([seed, row]))
