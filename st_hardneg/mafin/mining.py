"""Mining for Mafin: candidates and the positive-aware filter under the *black box's* scores.

Mafin's small model has to learn what the black box gets wrong, so its hard negatives are the
documents the black box ranks too high. :func:`black_box_miner` gives the keyword arguments that
make ``st_hardneg.mine`` (or ``MiningDataCollator``) retrieve candidates with the black box's
vectors and score them with the black box, through the same engine as every other miner: a
:class:`~st_hardneg.candidates.DenseRetriever` and a :class:`~st_hardneg.teachers.BiEncoderScorer`
over :class:`BlackBoxEmbedder`, which serves the black box's vectors where a model's would be.

A teacher goes on top as an ensemble: ``teacher=[miner["teacher"], cross_encoder]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .blackbox import BlackBox, VectorCache


class BlackBoxEmbedder:
    """A black box in the place of an :class:`~st_hardneg.embeddings.Embedder`: one vector per text.

    A black box embeds queries and documents alike, so ``kind`` is accepted and ignored. Vectors come
    through a :class:`~st_hardneg.mafin.VectorCache` (in memory unless one is given), so each text is
    fetched once however often the engine asks.

    Args:
        black_box (BlackBox): The black box (or a ``VectorCache`` of one, e.g. with a folder).
    """

    show_progress = False
    backend = "black box"

    def __init__(self, black_box: BlackBox) -> None:
        self.black_box = black_box if isinstance(black_box, VectorCache) else VectorCache(black_box)
        self.name = self.label = f"black-box[{black_box.name}]"

    @property
    def stats(self) -> dict[str, int]:
        return self.black_box.stats

    def encode(self, texts: Sequence[str], kind: str = "document") -> np.ndarray:
        return self.black_box.embed(list(texts))


def black_box_miner(black_box: BlackBox) -> dict[str, Any]:
    """``mine`` keyword arguments that retrieve and score with ``black_box``: ``retriever`` and ``teacher``.

    Example::

        from st_hardneg import PositiveAwareFilter, mine
        from st_hardneg.mafin import PrecomputedBlackBox, black_box_miner

        box = PrecomputedBlackBox("mpnet_vectors.parquet", name="all-mpnet-base-v2")
        result = mine(data, **black_box_miner(box), filter=PositiveAwareFilter(relative_margin=0.05))
    """
    from ..candidates import DenseRetriever
    from ..teachers import BiEncoderScorer

    embedder = BlackBoxEmbedder(black_box)
    return {"retriever": DenseRetriever(embedder), "teacher": BiEncoderScorer(embedder)}
