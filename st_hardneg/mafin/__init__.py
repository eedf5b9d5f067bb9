"""Mafin (arXiv 2402.12177): fine-tune a black-box embedding by augmenting it with a small trainable model.

This package holds the black-box side: where its vectors come from (:mod:`st_hardneg.mafin.blackbox`).
"""

from .blackbox import (
    BlackBox,
    CallableBlackBox,
    MissingVectorError,
    ModelBlackBox,
    PrecomputedBlackBox,
    VectorCache,
    text_hash,
)

__all__ = ["BlackBox", "CallableBlackBox", "MissingVectorError", "ModelBlackBox", "PrecomputedBlackBox",
           "VectorCache", "text_hash"]
