"""st-hardneg: hard-negative mining for sentence-transformers.

Switching from sentence-transformers costs one import line::

    from st_hardneg import mine_hard_negatives  # was: from sentence_transformers.util import mine_hard_negatives

The public API:

- :func:`mine_hard_negatives`: sentence-transformers' function, signature and output, on our engine;
- :func:`mine`, :class:`MiningResult`: every option, and a result with statistics and provenance;
- :class:`PositiveAwareFilter`: NV-Retriever's false-negative rules, under sentence-transformers' names;
- :class:`MiningDataCollator`: negatives drawn per batch inside ``SentenceTransformerTrainer``;
- :func:`eci_score`, :class:`ECICallback`: judge negatives before and during training;
- :func:`audit_labels`, :class:`LabelAudit`: likely missing and wrong relevance labels (:mod:`st_hardneg.audit`);
- :func:`push_dataset`, :func:`push_model`, :func:`load_resolved`, :class:`HubPushError`: publish with honest cards;
- :func:`load_data`, :func:`load_beir`, :func:`load_mined`, :func:`resolve_ids`, :func:`sample_data_path`,
  :func:`load_model`, :class:`DataError`, :class:`OptionError`: inputs and outputs.

Names are imported lazily, so ``import st_hardneg`` loads neither torch nor sentence-transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_EXPORTS = {
    "mine_hard_negatives": "hard_negatives",
    "mine": "mining",
    "MiningResult": "result",
    "PositiveAwareFilter": "filters",
    "MiningDataCollator": "collator",
    "ECICallback": "callbacks",
    "eci_score": "eci",
    "audit_labels": "audit",
    "LabelAudit": "audit",
    "push_dataset": "hub",
    "push_model": "hub",
    "HubPushError": "hub",
    "load_data": "sources",
    "load_beir": "beir",
    "load_mined": "result",
    "resolve_ids": "formats",
    "sample_data_path": "sample",
    "load_model": "models",
    "DataError": "data",
    "OptionError": "data",
    "load_resolved": "hub",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:  # re-exports for type checkers and IDEs; the runtime path is __getattr__
    from .audit import LabelAudit, audit_labels
    from .beir import load_beir
    from .callbacks import ECICallback
    from .collator import MiningDataCollator
    from .data import DataError, OptionError
    from .eci import eci_score
    from .filters import PositiveAwareFilter
    from .formats import resolve_ids
    from .hard_negatives import mine_hard_negatives
    from .hub import HubPushError, load_resolved, push_dataset, push_model
    from .mining import mine
    from .models import load_model
    from .result import MiningResult, load_mined
    from .sample import sample_data_path
    from .sources import load_data


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'st_hardneg' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
