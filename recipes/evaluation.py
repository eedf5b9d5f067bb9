"""Research helpers for the recipes and benchmarks: per-query retrieval metrics and the tests on them.

- :class:`PerQueryIREvaluator`: sentence-transformers' ``InformationRetrievalEvaluator`` that also
  keeps each query's nDCG@10, Recall@10 and Recall@100, computed from the very same ranking;
- :class:`VectorModel`: vectors from a lookup (a black box's) in the place of a model, for that evaluator;
- :func:`paired_permutation_test`: are two runs different, query by query (``scipy.stats.permutation_test``);
- :func:`rank_correlations`: Spearman and Kendall with p-values fit for a handful of points.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

from st_hardneg import load_beir


class PerQueryIREvaluator(InformationRetrievalEvaluator):
    """``InformationRetrievalEvaluator`` that also stores per-query nDCG@10, Recall@10 and Recall@100.

    After a call, ``per_query[score_function]`` maps ``"ndcg@10"``, ``"recall@10"`` and ``"recall@100"``
    to arrays aligned with ``queries_ids``. Relevance is binary, as in the parent class.

    Example::

        evaluator = PerQueryIREvaluator.from_beir("../shared/data/scifact", "test")
        metrics = evaluator(model)
        evaluator.per_query["cosine"]["ndcg@10"]
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("ndcg_at_k", [10])
        kwargs.setdefault("precision_recall_at_k", [1, 10, 100])
        kwargs.setdefault("write_csv", False)
        super().__init__(*args, **kwargs)
        self.per_query: dict[str, dict[str, np.ndarray]] = {}
        self._current: list[dict[str, np.ndarray]] = []

    @classmethod
    def from_beir(cls, folder: str | os.PathLike, split: str = "test", *, max_queries: int | None = None,
                  **kwargs: Any) -> PerQueryIREvaluator:
        """An evaluator over a BEIR folder's split (the whole corpus; the first ``max_queries`` queries)."""
        data = load_beir(folder, split)
        queries = sorted(data.positives_by_query())[:max_queries]
        name = kwargs.pop("name", os.path.basename(os.path.normpath(folder)) + f"-{split}")
        return cls.from_data(data, queries, name=name, **kwargs)

    @classmethod
    def from_data(cls, data: Any, queries: list[int], **kwargs: Any) -> PerQueryIREvaluator:
        """An evaluator over the whole corpus of ``data`` (a ``MiningData``) and the query indices ``queries``."""
        if not queries:
            raise ValueError(f"{kwargs.get('name', data.source)}: no queries to evaluate on")
        positives = data.positives_by_query()
        return cls(
            queries={data.query_ids[q]: data.query_texts[q] for q in queries},
            corpus=dict(zip(data.corpus_ids, data.corpus_texts)),
            relevant_docs={data.query_ids[q]: {data.corpus_ids[d] for d in positives[q]} for q in queries},
            **kwargs,
        )

    def compute_metrics(self, queries_result_list: list[object]) -> dict:
        ndcg, recall10, recall = [], [], []
        for query_id, hits in zip(self.queries_ids, queries_result_list):
            relevant = self.relevant_docs[query_id]
            ranked = [h["corpus_id"] for h in sorted(hits, key=lambda x: (-x["score"], x["corpus_id"]))]
            gains = [1.0 if doc in relevant else 0.0 for doc in ranked[:10]]
            dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
            ideal = sum(1.0 / math.log2(i + 2) for i in range(min(10, len(relevant))))
            ndcg.append(dcg / ideal)
            recall10.append(sum(gains) / len(relevant))
            recall.append(len(relevant & set(ranked[:100])) / len(relevant))
        self._current.append({"ndcg@10": np.array(ndcg), "recall@10": np.array(recall10),
                              "recall@100": np.array(recall)})
        return super().compute_metrics(queries_result_list)

    def compute_all_metrics(self, *args: Any, **kwargs: Any) -> dict:
        self._current = []
        scores = super().compute_all_metrics(*args, **kwargs)
        # compute_metrics runs once per score function, in score_functions order.
        self.per_query = dict(zip(self.score_functions, self._current))
        return scores

    compute_metrices = compute_all_metrics


class VectorModel:
    """A black box's vectors in the place of a model, so :class:`PerQueryIREvaluator` ranks by them alone.

    The evaluator asks its model for ``encode_query`` / ``encode_document``, a similarity and model
    card data; this gives exactly those, from ``black_box.embed`` (unit vectors, cosine), so a black
    box is ranked, tie-broken and scored by the very code that scores every trained model.

    Args:
        black_box: Anything with ``name`` and ``embed(texts) -> float32 [n, dim]`` (``st_hardneg.mafin``).

    Example::

        evaluator = PerQueryIREvaluator.from_beir("../shared/data/scifact", "test")
        evaluator(VectorModel(PrecomputedBlackBox("mpnet.parquet", name="all-mpnet-base-v2")))
    """

    similarity_fn_name = "cosine"

    class _NoCard:
        def set_evaluation_metrics(self, *args: Any, **kwargs: Any) -> None:
            """A black box has no model card to record metrics in."""

    def __init__(self, black_box: Any) -> None:
        self.black_box = black_box
        self.model_card_data = self._NoCard()
        self.device = "cpu"

    def encode_query(self, sentences: list[str], **kwargs: Any) -> Any:
        import torch

        return torch.from_numpy(self.black_box.embed(list(sentences)))

    encode_document = encode_query

    def similarity(self, a: Any, b: Any) -> Any:
        from sentence_transformers.util import cos_sim

        return cos_sim(a, b)


def paired_permutation_test(a: np.ndarray, b: np.ndarray, *, permutations: int = 10000, seed: int = 0) -> float:
    """Two-sided p-value that the mean of ``a - b`` is 0: a paired test that swaps ``a`` and ``b`` within queries.

    ``scipy.stats.permutation_test`` with ``permutation_type="samples"`` (a sign flip per query);
    no normality assumption, which matters for bounded, skewed metrics such as nDCG@10.
    """
    from scipy.stats import permutation_test

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0 or a.shape != b.shape:
        raise ValueError(f"need paired values of the same shape, got {a.shape} and {b.shape}")
    result = permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples",
                              n_resamples=permutations, alternative="two-sided", vectorized=True,
                              random_state=np.random.default_rng(seed))
    return float(result.pvalue)


def rank_correlations(x, y, permutations: int = 20_000, seed: int = 0) -> dict[str, float]:
    """Spearman's rho and Kendall's tau with two-sided p-values fit for a handful of points.

    SciPy's Spearman p-value is a t approximation, loose at n of about 9, so rho's p comes from
    ``scipy.stats.permutation_test`` over pairings; Kendall's uses SciPy's exact distribution (no ties).
    """
    from scipy.stats import kendalltau, permutation_test, spearmanr

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    nan = float("nan")
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"spearman": nan, "spearman_p": nan, "kendall": nan, "kendall_p": nan}
    rho = permutation_test((x, y), lambda u, v: spearmanr(u, v).statistic, permutation_type="pairings",
                           n_resamples=permutations, alternative="two-sided", random_state=np.random.default_rng(seed))
    tau = kendalltau(x, y)
    return {"spearman": float(rho.statistic), "spearman_p": float(rho.pvalue),
            "kendall": float(tau.statistic), "kendall_p": float(tau.pvalue)}
