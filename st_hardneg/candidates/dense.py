"""Dense candidates: a bi-encoder and a faiss index (exact by default, IVF or HNSW when large)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from ..embeddings import Embedder
from .base import pad_results

logger = logging.getLogger(__name__)


class DenseRetriever:
    """Nearest documents by cosine similarity of the embedder's unit vectors.

    Queries are searched in chunks of ``query_chunk`` so memory holds at most
    ``query_chunk x k`` results, never a queries x corpus matrix.

    Args:
        embedder: The :class:`~st_hardneg.embeddings.Embedder` (model, prompts, cache).
        index: ``"flat"`` (exact inner product), ``"ivf"`` (``IndexIVFFlat``) or ``"hnsw"``
            (``IndexHNSWFlat``); approximate indexes pay off from about a million documents.
        nlist: IVF cells (default ``4 * sqrt(n_docs)``).
        nprobe: IVF cells visited per query.
        hnsw_m: HNSW neighbours per node.
        ef_search: HNSW search breadth (raised to ``k`` when smaller).
        query_chunk: Queries per faiss search call.

    Example::

        retriever = DenseRetriever(Embedder(model))
        retriever.index(corpus_texts)
        indices, scores = retriever.search(query_texts, k=100)
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        index: Literal["flat", "ivf", "hnsw"] = "flat",
        nlist: int | None = None,
        nprobe: int = 16,
        hnsw_m: int = 32,
        ef_search: int = 128,
        query_chunk: int = 4096,
    ) -> None:
        if index not in ("flat", "ivf", "hnsw"):
            raise ValueError(f"unknown index type {index!r}; use 'flat', 'ivf' or 'hnsw'")
        self.embedder = embedder
        self.index_type = index
        self.nlist, self.nprobe, self.hnsw_m, self.ef_search = nlist, nprobe, hnsw_m, ef_search
        self.query_chunk = query_chunk
        self.name = f"dense[{embedder.label}, {index}]"
        self._faiss_index = None
        self.corpus_embeddings: np.ndarray | None = None

    def index(self, corpus: Sequence[str]) -> None:
        import faiss

        emb = self.embedder.encode(corpus, "document")
        self.corpus_embeddings = emb
        dim = emb.shape[1]
        if self.index_type == "flat":
            index = faiss.IndexFlatIP(dim)
        elif self.index_type == "hnsw":
            index = faiss.IndexHNSWFlat(dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        else:
            nlist = self.nlist or max(1, int(4 * math.sqrt(len(emb))))
            nlist = min(nlist, len(emb))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(emb)
            index.nprobe = min(self.nprobe, nlist)
        index.add(emb)
        self._faiss_index = index

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._faiss_index is None:
            raise RuntimeError("call index(corpus) before search()")
        q = self.embedder.encode(queries, "query")
        kk = min(k, self._faiss_index.ntotal)
        if self.index_type == "hnsw":
            self._faiss_index.hnsw.efSearch = max(self.ef_search, kk)
        from tqdm.auto import tqdm

        parts_i, parts_s = [], []
        starts = range(0, len(q), self.query_chunk)
        for start in tqdm(starts, desc="faiss search", disable=not self.embedder.show_progress or len(starts) < 2):
            scores, indices = self._faiss_index.search(q[start : start + self.query_chunk], kk)
            parts_i.append(indices)
            parts_s.append(scores)
        indices = np.concatenate(parts_i)
        scores = np.concatenate(parts_s)
        scores[indices < 0] = -np.inf  # approximate indexes may return fewer than k
        return pad_results(indices, scores, k)
