"""Teacher scoring: relevance of (query, document) pairs on a comparable, normalised scale.

- :class:`BiEncoderScorer`: cosine similarity of a SentenceTransformer's embeddings (raw, not
  rescaled: NV-Retriever's PercPos rule is defined on it).
- :class:`CrossEncoderScorer`: a CrossEncoder's logits passed through a sigmoid *by us*, whatever
  activation the model is configured with, so percentage rules see scores in (0, 1).
- :class:`EnsembleScorer`: the mean of several scorers' normalised scores.

sentence-transformers' ``mine_hard_negatives`` only consults its cross-encoder when a margin or
score bound is set; in st-hardneg a teacher that is given is always used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .embeddings import Embedder, model_fingerprint
from .models import display_name

logger = logging.getLogger(__name__)


@runtime_checkable
class Scorer(Protocol):
    """Scores each query against its own list of documents."""

    name: str

    def score(self, queries: Sequence[str], documents: Sequence[Sequence[str]]) -> list[np.ndarray]: ...


def _check_finite(arrays: list[np.ndarray], name: str, queries: Sequence[str]) -> list[np.ndarray]:
    for i, arr in enumerate(arrays):
        if not np.isfinite(arr).all():
            raise ValueError(
                f"teacher {name!r} returned a non-finite score for query #{i} ({queries[i][:80]!r}); "
                "check the model's dtype and inputs"
            )
    return arrays


class BiEncoderScorer:
    """Cosine similarity under a SentenceTransformer (through an :class:`Embedder` and its cache).

    Args:
        embedder: The embedder to score with.

    Example::

        scorer = BiEncoderScorer(Embedder(teacher_model))
        scores = scorer.score(["what is bm25?"], [["BM25 is a ranking function", "Cats"]])
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    @property
    def name(self) -> str:
        # Computed when asked: a local model's name hashes its weights (see Embedder.name).
        return f"bi-encoder[{self.embedder.label}]"

    def score(self, queries: Sequence[str], documents: Sequence[Sequence[str]]) -> list[np.ndarray]:
        unique_docs = list(dict.fromkeys(d for docs in documents for d in docs))
        q = self.embedder.encode(list(queries), "query")
        d = self.embedder.encode(unique_docs, "document")
        pos = {t: i for i, t in enumerate(unique_docs)}
        out = [d[[pos[t] for t in docs]] @ q[i] if len(docs) else np.zeros(0, np.float32)
               for i, docs in enumerate(documents)]
        return _check_finite([o.astype(np.float32) for o in out], self.name, queries)


class CrossEncoderScorer:
    """A CrossEncoder's relevance, ``sigmoid(logit)``.

    Args:
        model: A ``sentence_transformers.CrossEncoder`` with one output label.
        batch_size: Pairs per forward pass.
        show_progress: Show a progress bar.

    Example::

        scorer = CrossEncoderScorer(CrossEncoder("cross-encoder/ms-marco-MiniLM-L6-v2"))
    """

    def __init__(self, model: Any, *, batch_size: int = 32, show_progress: bool = True) -> None:
        num_labels = getattr(model, "num_labels", 1)
        if num_labels != 1:
            raise ValueError(f"a cross-encoder teacher needs 1 output label, this one has {num_labels}")
        self.model = model
        self.batch_size = batch_size
        self.show_progress = show_progress
        card = getattr(model, "model_card_data", None)
        raw = getattr(card, "base_model", None) or getattr(model.model, "name_or_path", None) or "?"
        # A local folder is named by its folder name and weights hash, never its machine path.
        self.name = f"cross-encoder[{display_name(raw, lambda: model_fingerprint(model.model))}]"

    def score(self, queries: Sequence[str], documents: Sequence[Sequence[str]]) -> list[np.ndarray]:
        import torch

        pairs = [(q, d) for q, docs in zip(queries, documents) for d in docs]
        if not pairs:
            return [np.zeros(0, np.float32) for _ in queries]
        logits = self.model.predict(
            pairs,
            batch_size=self.batch_size,
            activation_fn=torch.nn.Identity(),
            convert_to_numpy=True,
            show_progress_bar=self.show_progress,
        )
        flat = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64).reshape(-1)))
        bounds = np.cumsum([0] + [len(docs) for docs in documents])
        out = [flat[bounds[i] : bounds[i + 1]].astype(np.float32) for i in range(len(queries))]
        return _check_finite(out, self.name, queries)


class EnsembleScorer:
    """Mean of several scorers' normalised scores.

    For NV-Retriever's intra-sample union ensemble (each teacher picks its own negatives, kept
    without de-duplication; arXiv 2407.15831, Table 2) pass the teachers to ``mine`` with
    ``ensemble="union"`` instead.
    """

    def __init__(self, scorers: Sequence[Scorer]) -> None:
        if not scorers:
            raise ValueError("an ensemble needs at least one scorer")
        self.scorers = list(scorers)
        self.name = "mean(" + ", ".join(s.name for s in self.scorers) + ")"

    def score(self, queries: Sequence[str], documents: Sequence[Sequence[str]]) -> list[np.ndarray]:
        parts = [s.score(queries, documents) for s in self.scorers]
        return [np.mean([p[i] for p in parts], axis=0).astype(np.float32) for i in range(len(queries))]


def make_scorer(teacher: Any, *, batch_size: int = 32, cache_dir=None, show_progress: bool = True,
                backend: str = "torch") -> Scorer:
    """A :class:`Scorer` from a SentenceTransformer, a CrossEncoder, a scorer, or a name/path.

    A string is loaded as a CrossEncoder when its ``config.json`` declares a sequence-classification
    architecture, and as a SentenceTransformer otherwise. ``backend`` runs a bi-encoder teacher on
    ONNX Runtime or OpenVINO (see :func:`st_hardneg.load_model`); cross-encoders stay on torch.
    """
    if isinstance(teacher, Scorer):
        return teacher
    from sentence_transformers import CrossEncoder, SentenceTransformer

    loaded_here = isinstance(teacher, str)
    if loaded_here:
        from .models import load_teacher

        teacher = load_teacher(teacher)
    if isinstance(teacher, CrossEncoder):
        if backend != "torch":
            logger.info("backend %r applies to bi-encoders; the cross-encoder teacher runs on torch", backend)
        return CrossEncoderScorer(teacher, batch_size=batch_size, show_progress=show_progress)
    if isinstance(teacher, SentenceTransformer):
        if backend != "torch":
            from .backends import apply_backend

            # A teacher loaded here is converted in place; one the caller passed is copied, not changed.
            teacher = apply_backend(teacher, backend, cache_folder=cache_dir, copy_model=not loaded_here)
        embedder = Embedder(teacher, batch_size=batch_size, cache_dir=cache_dir, show_progress=show_progress)
        return BiEncoderScorer(embedder)
    raise TypeError(f"cannot use {type(teacher).__name__} as a teacher: pass a SentenceTransformer or CrossEncoder")
