"""BM25 candidates with bm25s (default, fast) or rank-bm25.

Both backends get the same tokens from :func:`tokenize`, so they differ only in speed and in
BM25 variant (bm25s defaults to Lucene's, rank-bm25's ``BM25Okapi`` to Robertson's with an IDF floor).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Literal

import numpy as np

from .base import pad_results

logger = logging.getLogger(__name__)

_TOKEN = re.compile(r"\w+", re.UNICODE)
# A short English stop list (the most frequent function words); enough to keep BM25 from matching
# on "the" and "of" without pulling in NLTK.
STOPWORDS = frozenset(
    "a an and are as at be but by for from has have he her his i if in into is it its of on or our she "
    "so than that the their them then there these they this to was we were what when which who will "
    "with you your not no do does did been being can could should would may might must".split()
)


def tokenize(text: str, stopwords: frozenset[str] = STOPWORDS) -> list[str]:
    """Lower-cased word tokens without stop words."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in stopwords]


class BM25Retriever:
    """Lexical candidates scored with BM25; also a teacher (:meth:`score`), as in NV-Retriever's Table 1.

    Args:
        backend: ``"bm25s"`` (sparse-matrix scoring; 16x faster than rank-bm25 for SciFact's train
            queries in ``benchmarks/results/mining_scifact.md``) or ``"rank_bm25"`` (``BM25Okapi``).
        k1: Term-frequency saturation.
        b: Length normalisation.
        show_progress: Show progress bars.

    Example::

        retriever = BM25Retriever()
        retriever.index(corpus_texts)
        indices, scores = retriever.search(query_texts, k=100)
        # BM25's own order as the teacher: mine(data, retriever=retriever, teacher=retriever, ...)
    """

    def __init__(
        self,
        backend: Literal["bm25s", "rank_bm25"] = "bm25s",
        *,
        k1: float = 1.5,
        b: float = 0.75,
        show_progress: bool = True,
    ) -> None:
        if backend not in ("bm25s", "rank_bm25"):
            raise ValueError(f"unknown BM25 backend {backend!r}; use 'bm25s' or 'rank_bm25'")
        self.backend = backend
        self.k1, self.b = k1, b
        self.show_progress = show_progress
        self.name = f"bm25[{backend}]"
        self._index = None
        self._size = 0
        self._position: dict[str, int] = {}

    def index(self, corpus: Sequence[str]) -> None:
        tokens = [tokenize(text) for text in corpus]
        self._size = len(tokens)
        self._position = {}
        for i, text in enumerate(corpus):
            self._position.setdefault(text, i)
        if self.backend == "bm25s":
            import bm25s

            # Our own vocabulary, in first-seen order: bm25s builds one from a set, whose order (and so the
            # order of tied documents, e.g. the zero scores of a one-word query) changes with PYTHONHASHSEED.
            vocab: dict[str, int] = {}
            ids = [[vocab.setdefault(t, len(vocab)) for t in doc] for doc in tokens]
            self._index = bm25s.BM25(k1=self.k1, b=self.b)
            self._index.index((ids, vocab), show_progress=self.show_progress)
        else:
            from rank_bm25 import BM25Okapi

            # rank-bm25 divides by zero on an empty document; a placeholder token keeps it defined.
            self._index = BM25Okapi([t or ["\x00"] for t in tokens], k1=self.k1, b=self.b)

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._index is None:
            raise RuntimeError("call index(corpus) before search()")
        kk = min(k, self._size)
        tokens = [tokenize(q) for q in queries]
        if self.backend == "bm25s":
            # bm25s drops tokens absent from its vocabulary. A query with none of them scores 0 everywhere:
            # ties in corpus order, as rank_bm25 gives them; only the others are asked.
            known = [[t for t in q if t in self._index.vocab_dict] for q in tokens]
            indices = np.tile(np.arange(kk, dtype=np.int64), (len(known), 1))
            scores = np.zeros((len(known), kk), dtype=np.float32)
            asked = [i for i, q in enumerate(known) if q]
            if asked:
                found, found_scores = self._index.retrieve([known[i] for i in asked], k=kk,
                                                           show_progress=self.show_progress, n_threads=1)
                indices[asked], scores[asked] = found, found_scores
            return pad_results(indices, scores, k)
        from tqdm.auto import tqdm

        indices = np.empty((len(queries), kk), dtype=np.int64)
        scores = np.empty((len(queries), kk), dtype=np.float32)
        for i, q in enumerate(tqdm(tokens, desc="BM25 (rank_bm25)", disable=not self.show_progress)):
            s = self._index.get_scores(q)
            top = np.argpartition(-s, kk - 1)[:kk] if kk < len(s) else np.arange(len(s))
            top = top[np.lexsort((top, -s[top]))]  # by score, ties by position: deterministic
            indices[i], scores[i] = top, s[top]
        return pad_results(indices, scores, k)

    def _all_scores(self, tokens: list[str]) -> np.ndarray:
        if self.backend == "bm25s":
            known = [t for t in tokens if t in self._index.vocab_dict]
            if not known:  # no query word is in the corpus: every document scores 0
                return np.zeros(self._size, np.float32)
            return np.asarray(self._index.get_scores(known), dtype=np.float32)
        return np.asarray(self._index.get_scores(tokens), dtype=np.float32)

    def score(self, queries: Sequence[str], documents: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """BM25 score of each query against its own documents, which must belong to the indexed corpus."""
        if self._index is None:
            raise RuntimeError("call index(corpus) before score()")
        out = []
        for query, docs in zip(queries, documents):
            missing = next((d for d in docs if d not in self._position), None)
            if missing is not None:
                raise ValueError(f"{self.name} can score only documents of its indexed corpus, not {missing[:60]!r}")
            full = self._all_scores(tokenize(query))
            out.append(full[[self._position[d] for d in docs]] if len(docs) else np.zeros(0, np.float32))
        return out
