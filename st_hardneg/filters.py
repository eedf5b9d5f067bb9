"""PositiveAwareFilter: drop candidate negatives that are likely false negatives.

Pure numpy: no model, no I/O. Rules from NV-Retriever (Moreira et al., "NV-Retriever: Improving
text embedding models with effective hard-negative mining", arXiv 2407.15831, §3.1):
TopK-Abs (``max_score``), TopK-MarginPos (``margin``), TopK-PercPos (``perc``) and
Top-K shifted by N (``skip_top``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# Order in which rules are checked; a removed candidate is counted under the first rule that hits it,
# so the counts add up to the number of candidates removed.
RULES = ("padding", "positive_id", "duplicate_text", "duplicate_score", "skip_top", "max_score", "min_score",
         "margin_pos", "perc_pos")

_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


@functools.lru_cache(maxsize=65536)
def normalize_text(text: str) -> str:
    """Lower-case, strip accents, punctuation and whitespace: the key for near-duplicate matching."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _PUNCT.sub(" ", text.lower()).strip()


@dataclass
class FilterResult:
    """What a filter kept and why the rest went.

    Attributes:
        keep: Boolean mask with the shape of the scores.
        removed: Number of candidates removed by each rule (each counted once, by the first rule).
        reasons: Index into :data:`RULES` of the rule that removed each candidate (-1: kept).
    """

    keep: np.ndarray
    removed: dict[str, int] = field(default_factory=dict)
    reasons: np.ndarray | None = None

    def removed_in(self, rows) -> dict[str, int]:
        """Per-rule counts restricted to some query rows of a 2-D result."""
        sub = self.reasons[rows]
        return {RULES[i]: int((sub == i).sum()) for i in range(1, len(RULES)) if (sub == i).any()}

    @property
    def kept(self) -> int:
        return int(self.keep.sum())


@dataclass
class PositiveAwareFilter:
    """Positive-aware false-negative filter (NV-Retriever, arXiv 2407.15831).

    A candidate is kept only when it passes every enabled rule:

    - it is not a positive (by id) and not a near-duplicate of one (same normalised text, or a
      similarity to a positive of at least ``duplicate_threshold``);
    - it is not among the ``skip_top`` highest-scoring remaining candidates (Top-K shifted by N);
    - TopK-Abs: ``score <= max_score``; and ``score >= min_score``;
    - TopK-MarginPos: ``score < positive - margin``;
    - TopK-PercPos: ``score < positive - |positive| * (1 - perc)``, i.e. ``positive * perc`` for a
      positive score, and still below the positive when scores are negative.

    With several positives the rules compare against the *lowest* positive score: the strictest
    choice, since any candidate scoring near a true positive may itself be relevant. Percentage rules
    assume comparable, mostly positive scores: normalise cross-encoder logits (sigmoid) first.

    Args:
        perc: TopK-PercPos factor (NV-Retriever's best: 0.95). ``None`` disables it.
        margin: TopK-MarginPos absolute margin (e.g. 0.05). ``None`` disables it.
        max_score: TopK-Abs threshold. ``None`` disables it.
        min_score: Drop candidates scoring below this (too easy). ``None`` disables it.
        skip_top: Skip this many of the highest-scoring candidates (Top-K shifted by N).
        duplicate_threshold: Drop candidates whose similarity to any positive reaches this value.
            Needs ``duplicate_similarity`` when called. ``None`` disables it.
        drop_duplicate_text: Drop candidates whose normalised text equals a positive's.

    Example::

        import numpy as np
        from st_hardneg import PositiveAwareFilter

        f = PositiveAwareFilter(perc=0.95)
        result = f(np.array([0.90, 0.80, 0.50]), positive_scores=0.88)
        result.keep     # array([False,  True,  True])
        result.removed  # {'perc_pos': 1}
    """

    perc: float | None = 0.95
    margin: float | None = None
    max_score: float | None = None
    min_score: float | None = None
    skip_top: int = 0
    duplicate_threshold: float | None = None
    drop_duplicate_text: bool = True

    def __post_init__(self) -> None:
        if self.perc is not None and not 0 < self.perc <= 1.5:
            raise ValueError(f"perc must be in (0, 1.5], got {self.perc}")
        if self.margin is not None and self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")
        if self.skip_top < 0:
            raise ValueError(f"skip_top must be >= 0, got {self.skip_top}")
        if self.max_score is not None and self.min_score is not None and self.min_score > self.max_score:
            raise ValueError(f"min_score ({self.min_score}) is above max_score ({self.max_score})")

    @property
    def description(self) -> str:
        """Short name of the configured rule, e.g. ``TopK-PercPos(0.95)``."""
        parts = []
        if self.perc is not None:
            parts.append(f"TopK-PercPos({self.perc:g})")
        if self.margin is not None:
            parts.append(f"TopK-MarginPos({self.margin:g})")
        if self.max_score is not None:
            parts.append(f"TopK-Abs({self.max_score:g})")
        if self.min_score is not None:
            parts.append(f"min_score({self.min_score:g})")
        if self.skip_top:
            parts.append(f"shifted({self.skip_top})")
        return " + ".join(parts) or "positives-only"

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def __call__(
        self,
        scores: np.ndarray | Sequence[float],
        positive_scores: float | np.ndarray | Sequence[float] | Sequence[Sequence[float]],
        *,
        candidate_ids: np.ndarray | Sequence | None = None,
        positive_ids: Sequence | None = None,
        duplicate_similarity: np.ndarray | None = None,
        candidate_texts: Sequence | None = None,
        positive_texts: Sequence | None = None,
        valid: np.ndarray | None = None,
    ) -> FilterResult:
        """Apply the rules to one query (1-D ``scores``) or a batch of queries (2-D, one row each).

        Args:
            scores: Candidate scores, ``[k]`` or ``[n_queries, k]``; any order.
            positive_scores: Per query, the positive score or the list of positive scores.
            candidate_ids: Candidate ids, same shape as ``scores``; with ``positive_ids`` a candidate
                that *is* a positive is removed.
            positive_ids: Per query (or for the single query), the collection of positive ids.
            duplicate_similarity: Per candidate, its highest similarity to any positive.
            candidate_texts / positive_texts: Texts for the normalised-text duplicate rule.
            valid: Mask of real candidates (False for padding).

        Returns:
            A :class:`FilterResult` whose ``keep`` has the shape of ``scores``.
        """
        scores = np.asarray(scores, dtype=np.float64)
        single = scores.ndim == 1
        if single:
            scores = scores[None, :]
            positive_scores = [positive_scores]
            positive_ids = None if positive_ids is None else [positive_ids]
            candidate_ids = None if candidate_ids is None else [candidate_ids]
            candidate_texts = None if candidate_texts is None else [candidate_texts]
            positive_texts = None if positive_texts is None else [positive_texts]
            duplicate_similarity = None if duplicate_similarity is None else np.asarray(duplicate_similarity)[None]
            valid = None if valid is None else np.asarray(valid)[None]
        if scores.ndim != 2:
            raise ValueError(f"scores must be 1-D or 2-D, got shape {scores.shape}")
        n, k = scores.shape
        valid = np.ones((n, k), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        if np.isnan(scores[valid]).any():
            row = int(np.argwhere(np.isnan(scores) & valid)[0][0])
            raise ValueError(f"scores contain NaN (query row {row}): the scorer returned an invalid value")
        pos = self._lowest_positive(positive_scores, n)

        masks: dict[str, np.ndarray] = {"padding": ~valid}
        masks["positive_id"] = self._membership(candidate_ids, positive_ids, n, k, "positive_ids")
        dup_text = np.zeros((n, k), dtype=bool)
        if self.drop_duplicate_text and candidate_texts is not None and positive_texts is not None:
            for i in range(n):
                keys = {normalize_text(t) for t in positive_texts[i]}
                dup_text[i] = [t is not None and normalize_text(t) in keys for t in candidate_texts[i]]
        masks["duplicate_text"] = dup_text
        dup_score = np.zeros((n, k), dtype=bool)
        if self.duplicate_threshold is not None and duplicate_similarity is not None:
            dup_score = np.asarray(duplicate_similarity, dtype=np.float64) >= self.duplicate_threshold
        masks["duplicate_score"] = dup_score

        removed_so_far = np.zeros((n, k), dtype=bool)
        for rule in ("padding", "positive_id", "duplicate_text", "duplicate_score"):
            removed_so_far |= masks[rule]
        skip = np.zeros((n, k), dtype=bool)
        if self.skip_top:
            # Rank among the candidates still eligible, highest score first (stable for ties).
            ranked = np.where(removed_so_far, -np.inf, scores)
            order = np.argsort(-ranked, axis=1, kind="stable")
            eligible_sorted = ~np.take_along_axis(removed_so_far, order, axis=1)
            rank = np.cumsum(eligible_sorted, axis=1) - 1
            top_sorted = eligible_sorted & (rank < self.skip_top)
            np.put_along_axis(skip, order, top_sorted, axis=1)
        masks["skip_top"] = skip
        col = pos[:, None]
        none = np.zeros((n, k), dtype=bool)
        masks["max_score"] = scores > self.max_score if self.max_score is not None else none
        masks["min_score"] = scores < self.min_score if self.min_score is not None else none
        masks["margin_pos"] = scores >= col - self.margin if self.margin is not None else none
        masks["perc_pos"] = scores >= col - np.abs(col) * (1 - self.perc) if self.perc is not None else none

        removed: dict[str, int] = {}
        reasons = np.full((n, k), -1, dtype=np.int8)
        for code, rule in enumerate(RULES):
            newly = masks[rule] & (reasons < 0)
            count = int(newly.sum())
            if count and rule != "padding":
                removed[rule] = count
            reasons[newly] = code
        keep = reasons < 0
        if single:
            return FilterResult(keep[0], removed, reasons[0])
        return FilterResult(keep, removed, reasons)

    @staticmethod
    def _lowest_positive(positive_scores, n: int) -> np.ndarray:
        if np.isscalar(positive_scores):
            positive_scores = [positive_scores]
        if len(positive_scores) != n:
            raise ValueError(f"positive_scores has {len(positive_scores)} entries for {n} queries")
        out = np.empty(n, dtype=np.float64)
        for i, value in enumerate(positive_scores):
            arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
            if arr.size == 0:
                raise ValueError(f"query row {i} has no positive score")
            if np.isnan(arr).any():
                raise ValueError(f"positive score of query row {i} is NaN: the scorer returned an invalid value")
            out[i] = arr.min()
        return out

    @staticmethod
    def _membership(candidate_ids, positive_ids, n: int, k: int, name: str) -> np.ndarray:
        mask = np.zeros((n, k), dtype=bool)
        if candidate_ids is None or positive_ids is None:
            return mask
        if len(positive_ids) != n:
            raise ValueError(f"{name} has {len(positive_ids)} entries for {n} queries")
        for i in range(n):
            ids = set(positive_ids[i])
            mask[i] = [c in ids for c in candidate_ids[i]]
        return mask
