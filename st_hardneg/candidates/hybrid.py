"""Hybrid candidates: the union of a lexical and a dense pool, fused into one ranking."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from .base import Retriever, pad_results


class HybridRetriever:
    """Fuses several retrievers' pools (BM25 + dense, typically).

    Each retriever returns ``pool_factor * k`` candidates; the union is ranked by

    - ``"rrf"``: reciprocal-rank fusion, ``sum_r weight_r / (rrf_k + rank_r)`` (Cormack et al.,
      SIGIR 2009), robust to incomparable score scales; or
    - ``"weighted"``: ``sum_r weight_r * minmax_r(score)``, scores min-max normalised per query
      (a document missing from a pool contributes 0 for it).

    Args:
        retrievers: The retrievers to fuse (already configured, not yet indexed).
        fusion: ``"rrf"`` or ``"weighted"``.
        weights: One weight per retriever (default: equal).
        rrf_k: The RRF constant.
        pool_factor: Each retriever's pool is ``pool_factor * k`` deep.

    Example::

        hybrid = HybridRetriever([BM25Retriever(), DenseRetriever(Embedder(model))])
    """

    def __init__(
        self,
        retrievers: Sequence[Retriever],
        *,
        fusion: Literal["rrf", "weighted"] = "rrf",
        weights: Sequence[float] | None = None,
        rrf_k: int = 60,
        pool_factor: float = 1.0,
    ) -> None:
        if len(retrievers) < 2:
            raise ValueError("a hybrid retriever needs at least two retrievers")
        if fusion not in ("rrf", "weighted"):
            raise ValueError(f"unknown fusion {fusion!r}; use 'rrf' or 'weighted'")
        if weights is not None and len(weights) != len(retrievers):
            raise ValueError(f"{len(weights)} weights for {len(retrievers)} retrievers")
        self.retrievers = list(retrievers)
        self.fusion = fusion
        self.weights = list(weights) if weights is not None else [1.0] * len(self.retrievers)
        self.rrf_k = rrf_k
        self.pool_factor = pool_factor
        self.name = f"hybrid[{fusion}: " + " + ".join(r.name for r in self.retrievers) + "]"

    def index(self, corpus: Sequence[str]) -> None:
        for retriever in self.retrievers:
            retriever.index(corpus)

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        depth = max(k, int(round(k * self.pool_factor)))
        results = [r.search(queries, depth) for r in self.retrievers]
        out_i = np.full((len(queries), k), -1, dtype=np.int64)
        out_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
        for q in range(len(queries)):
            fused: dict[int, float] = {}
            for (indices, scores), weight in zip(results, self.weights):
                valid = indices[q] >= 0
                docs, raw = indices[q][valid], scores[q][valid]
                if self.fusion == "rrf":
                    contrib = weight / (self.rrf_k + np.arange(1, len(docs) + 1))
                else:
                    span = raw.max() - raw.min() if len(raw) else 0.0
                    contrib = weight * ((raw - raw.min()) / span if span > 0 else np.ones_like(raw))
                for doc, value in zip(docs.tolist(), contrib.tolist()):
                    fused[doc] = fused.get(doc, 0.0) + value
            ranked = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]
            if ranked:
                out_i[q, : len(ranked)] = [d for d, _ in ranked]
                out_s[q, : len(ranked)] = [s for _, s in ranked]
        return pad_results(out_i, out_s, k)
