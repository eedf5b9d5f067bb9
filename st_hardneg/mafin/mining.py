"""Mining for Mafin: candidates and the positive-aware filter under the *black box's* scores.

Mafin's small model has to learn what the black box gets wrong, so its hard negatives are the
documents the black box ranks too high. :func:`black_box_miner` gives the keyword arguments that
make ``st_hardneg.mine`` (or ``MiningDataCollator``) retrieve candidates with the black box's
vectors (alone, or fused with BM25's) and score them with the black box, through the same engine as
every other miner: the engine's retrievers and a :class:`~st_hardneg.teachers.BiEncoderScorer` over
:class:`BlackBoxEmbedder`, which serves the black box's vectors where a model's would be.

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


def black_box_miner(black_box: BlackBox, retriever: str = "dense", *, bm25_backend: str = "bm25s",
                    fusion: str = "rrf") -> dict[str, Any]:
    """``mine`` keyword arguments that retrieve and score with ``black_box``: ``retriever`` and ``teacher``.

    Args:
        black_box (BlackBox): The black box (or a ``VectorCache`` of one).
        retriever (str): ``"dense"``: candidates are the black box's nearest documents; ``"hybrid"``:
            those fused with BM25's (``fusion``), so a query whose many positives leave few dense
            candidates under the PercPos bound still finds lexical ones; ``"bm25"``: BM25 alone.
            Scores, and so the filter, are the black box's in every case. Defaults to "dense".
        bm25_backend (str): ``"bm25s"`` or ``"rank_bm25"``, for ``"hybrid"`` and ``"bm25"``.
        fusion (str): ``"rrf"`` or ``"weighted"``, for ``"hybrid"``.

    Example::

        from st_hardneg import PositiveAwareFilter, mine
        from st_hardneg.mafin import PrecomputedBlackBox, black_box_miner

        box = PrecomputedBlackBox("mpnet_vectors.parquet", name="all-mpnet-base-v2")
        result = mine(data, **black_box_miner(box, "hybrid"), filter=PositiveAwareFilter(relative_margin=0.05))
    """
    from ..pools import build_retriever
    from ..teachers import BiEncoderScorer

    embedder = BlackBoxEmbedder(black_box)
    return {"retriever": build_retriever(retriever, embedder, bm25_backend=bm25_backend, fusion=fusion,
                                         show_progress=False),
            "teacher": BiEncoderScorer(embedder)}
