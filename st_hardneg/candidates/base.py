"""The one interface every candidate source implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Retriever(Protocol):
    """A candidate source: index a corpus once, then return the top-k documents for queries.

    ``search`` returns ``(indices, scores)``, both ``[n_queries, k]``: corpus positions (``-1`` pads
    rows when the corpus has fewer than ``k`` documents) and the retriever's own scores, best first.
    A new retriever is one small class with these two methods and a ``name``.
    """

    name: str

    def index(self, corpus: Sequence[str]) -> None: ...

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]: ...


def pad_results(indices: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad ``[n, k']`` results to ``k`` columns with index -1 and score -inf."""
    missing = k - indices.shape[1]
    if missing <= 0:
        return indices[:, :k].astype(np.int64), scores[:, :k].astype(np.float32)
    n = indices.shape[0]
    return (
        np.concatenate([indices.astype(np.int64), np.full((n, missing), -1, dtype=np.int64)], axis=1),
        np.concatenate([scores.astype(np.float32), np.full((n, missing), -np.inf, dtype=np.float32)], axis=1),
    )
