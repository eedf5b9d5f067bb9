"""Mafin (arXiv 2402.12177): fine-tune a black-box embedding by augmenting it with a small trainable model.

- :mod:`st_hardneg.mafin.blackbox`: where the black box's vectors come from (an API callable, a
  precomputed store looked up by text hash, a frozen local model) and a cache that fetches each once;
- :mod:`st_hardneg.mafin.model`: :class:`MafinModel`, the combined ``SentenceTransformer``;
- :mod:`st_hardneg.mafin.mining`: :func:`black_box_miner`, mining under the black box's scores.

The model and mining names are imported on first use, so ``import st_hardneg.mafin`` loads
neither torch nor sentence-transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

from .blackbox import (
    BlackBox,
    CallableBlackBox,
    MissingVectorError,
    ModelBlackBox,
    PrecomputedBlackBox,
    VectorCache,
    load_black_box,
    text_hash,
)

__all__ = ["BlackBox", "BlackBoxEmbedder", "CallableBlackBox", "MafinCombine", "MafinModel", "MissingVectorError",
           "ModelBlackBox", "PrecomputedBlackBox", "VectorCache", "black_box_miner", "load_black_box",
           "text_hash"]
_LAZY = {"MafinModel": ".model", "MafinCombine": ".model", "BlackBoxEmbedder": ".mining", "black_box_miner": ".mining"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
