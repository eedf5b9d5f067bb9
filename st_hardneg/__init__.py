"""st-hardneg: hard-negative mining for sentence-transformers.

The public API is small and imported lazily, so ``import st_hardneg`` stays fast and loads neither
torch nor sentence-transformers until something needs them.

Example::

    from st_hardneg import mine, PositiveAwareFilter

    result = mine("path/to/beir/scifact", filter=PositiveAwareFilter(perc=0.95), num_negatives=4)
    dataset = result.to_dataset("n-tuple")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "mine": "mining",
    "MiningResult": "mining",
    "PositiveAwareFilter": "filters",
    "FilterResult": "filters",
    "MiningData": "data",
    "DataError": "data",
    "load_beir": "data",
    "load_data": "data",
    "from_pairs": "data",
    "Embedder": "embeddings",
    "BM25Retriever": "candidates",
    "DenseRetriever": "candidates",
    "HybridRetriever": "candidates",
    "Retriever": "candidates",
    "BiEncoderScorer": "teachers",
    "CrossEncoderScorer": "teachers",
    "EnsembleScorer": "teachers",
    "MiningStats": "stats",
    "load_mined": "formats",
    "resolve_ids": "formats",
    "sample_data_path": "sample",
    "MiningDataCollator": "collator",
    "ECICallback": "callbacks",
    "eci_score": "eci",
    "ECIResult": "eci",
    "push_dataset": "hub",
    "push_model": "hub",
    "HubPushError": "hub",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # re-exports for type checkers and IDEs; the runtime path is __getattr__
    from .callbacks import ECICallback
    from .collator import MiningDataCollator
    from .eci import ECIResult, eci_score
    from .hub import HubPushError, push_dataset, push_model
    from .candidates import BM25Retriever, DenseRetriever, HybridRetriever, Retriever
    from .data import DataError, MiningData, from_pairs, load_beir, load_data
    from .embeddings import Embedder
    from .filters import FilterResult, PositiveAwareFilter
    from .formats import load_mined, resolve_ids
    from .mining import MiningResult, mine
    from .sample import sample_data_path
    from .stats import MiningStats
    from .teachers import BiEncoderScorer, CrossEncoderScorer, EnsembleScorer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'st_hardneg' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
