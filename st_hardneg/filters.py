"""PositiveAwareFilter: drop candidate negatives that are likely false negatives.

Pure numpy: no model, no I/O. Rules from NV-Retriever (Moreira et al., "NV-Retriever: Improving
text embedding models with effective hard-negative mining", arXiv 2407.15831, §3.1), under the
names sentence-transformers' ``mine_hard_negatives`` gives them: TopK-PercPos (``relative_margin``),
TopK-MarginPos (``absolute_margin``), TopK-Abs (``max_score``) and Top-K shifted by N (``range_min``).
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .data import OptionError

# The order in which rules are checked (sentence-transformers' order for the score rules). A removed
# candidate is counted under the first rule that hits it, so the counts add up to the removals.
RULES = ("padding", "positive_id", "duplicate_text", "duplicate_score", "absolute_margin", "relative_margin",
         "max_score", "min_score", "range_min")

_UNSET = object()


@functools.lru_cache(maxsize=65536)
def normalize_text(text: str) -> str:
    """Lower-case, strip accents, punctuation and whitespace: the key for near-duplicate matching.

    Equal to ``re.sub(r"[\\W_]+", " ", <NFKD text without combining marks>.lower()).strip()``, computed
    without a pass per character in Python: the ASCII part goes through one ``bytes.translate``.
    """
    if not text.isascii():
        # Marks go before lower-casing: they decide whether a capital sigma ends a word.
        text = _NON_ASCII.sub(_without_marks, unicodedata.normalize("NFKD", text))
    text = text.lower()
    if not text.isascii():
        text = _NON_ASCII.sub(_separators, text)
    # Bytes from 0x80 up are the UTF-8 of the letters and digits kept above, and stay as they are.
    return b" ".join(text.encode().translate(_ASCII_KEYS).split()).decode()


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_ASCII_KEYS = bytes(c if c >= 128 or chr(c).isalnum() else 32 for c in range(256))


# For the prefilter in text_keys: ASCII upper -> lower, and every byte that is not a letter or digit
# deleted, so that two ASCII texts with one normalised text squeeze to the same bytes.
_ASCII_LOWER = bytes(ord(chr(c).lower()) if c < 128 else c for c in range(256))
_ASCII_SEPARATORS = bytes(c for c in range(128) if not chr(c).isalnum())


def _squeezed(text: str) -> bytes:
    """``normalize_text(text)`` without its spaces: equal normalised texts always squeeze equal."""
    if text.isascii():
        return text.encode().translate(_ASCII_LOWER, _ASCII_SEPARATORS)
    return normalize_text(text).replace(" ", "").encode()


def text_keys(texts: Sequence[str | None]) -> np.ndarray:
    """One integer per text, equal exactly when the texts' :func:`normalize_text` keys are equal (-1 for None).

    The keys of one call can be compared with each other only. Cheaper than normalising every text:
    ASCII texts are first grouped by a single ``bytes.translate`` (letters and digits, lower-cased)
    and only texts that collide there are normalised.
    """
    groups: dict[bytes, list[int]] = {}
    for i, text in enumerate(texts):
        if text is not None:
            groups.setdefault(_squeezed(text), []).append(i)
    out = np.full(len(texts), -1, dtype=np.int64)
    next_key = 0
    for members in groups.values():
        if len(members) == 1 or len({texts[i] for i in members}) == 1:
            out[members] = next_key
            next_key += 1
            continue
        # Same letters, maybe split differently ("ab c" / "a bc"): the normalised text decides.
        keys: dict[str, int] = {}
        for i in members:
            key = normalize_text(texts[i])  # type: ignore[arg-type]
            if key not in keys:
                keys[key] = next_key
                next_key += 1
            out[i] = keys[key]
    return out


def rowwise_isin(values: np.ndarray, allowed: Sequence[Sequence[int]]) -> np.ndarray:
    """``out[i, j] = values[i, j] in allowed[i]`` for non-negative integers, without a Python loop per row."""
    values = np.asarray(values, dtype=np.int64)
    n = values.shape[0]
    if len(allowed) != n:
        raise ValueError(f"{len(allowed)} rows of ids for {n} rows of values")
    lengths = np.fromiter((len(a) for a in allowed), dtype=np.int64, count=n)
    flat = np.concatenate([np.asarray(a, dtype=np.int64).ravel() for a in allowed]) if lengths.sum() else \
        np.zeros(0, dtype=np.int64)
    if flat.size == 0:
        return np.zeros(values.shape, dtype=bool)
    # (row, value) pairs as one integer each; +1 keeps padding (-1) apart from every real value.
    span = int(max(values.max(initial=0), flat.max())) + 2
    rows = np.arange(n, dtype=np.int64)
    pairs = rows.reshape((n,) + (1,) * (values.ndim - 1)) * span + values + 1
    return np.isin(pairs, np.repeat(rows, lengths) * span + flat + 1)


def _without_marks(match: re.Match) -> str:
    return "".join(ch for ch in match.group() if not unicodedata.combining(ch))


def _separators(match: re.Match) -> str:
    return "".join(ch if ch.isalnum() else " " for ch in match.group())


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


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"PositiveAwareFilter({old}=...) is deprecated and will be removed in the next release; "
                  f"use {new} (sentence-transformers' name)", FutureWarning, stacklevel=3)


class PositiveAwareFilter:
    """Positive-aware false-negative filter (NV-Retriever, arXiv 2407.15831).

    A candidate is kept only when it passes every enabled rule, checked in this order:

    - it is not a positive (by id) and not a near-duplicate of one (same normalised text, or a
      similarity to a positive of at least ``duplicate_threshold``);
    - TopK-MarginPos: ``score <= positive - absolute_margin``;
    - TopK-PercPos: ``score <= positive - |positive| * relative_margin``, i.e. ``positive * 0.95``
      for a positive score and ``relative_margin=0.05``, and still below the positive when scores
      are negative;
    - TopK-Abs: ``score <= max_score``; and ``score >= min_score``;
    - Top-K shifted by N: the ``range_min`` highest-scoring candidates left after the rules above
      are skipped.

    The rules, their inequalities and this order are those of sentence-transformers'
    ``mine_hard_negatives``, so the same settings keep the same candidates. With several positives
    the margin rules compare against the *lowest* positive score by default (as sentence-transformers
    does): any candidate scoring near a true positive may itself be relevant. With
    ``positive_reference="own"`` each (query, positive) row is compared with its own positive
    instead, as NV-Retriever states the rules; the query's other positives are still excluded by id.
    On datasets with many graded positives a query's lowest positive can score near zero, and the
    lowest-positive rule then leaves almost no negatives. Percentage rules assume comparable, mostly
    positive scores: cross-encoder logits go through a sigmoid first.

    Args:
        relative_margin (float | None): TopK-PercPos margin as a fraction of the positive score
            (NV-Retriever's best, PercPos 95%, is ``0.05``). Defaults to 0.05; ``None`` disables it.
        absolute_margin (float | None): TopK-MarginPos margin. Defaults to None (off).
        max_score (float | None): TopK-Abs threshold. Defaults to None (off).
        min_score (float | None): Drop candidates scoring below this (too easy). Defaults to None (off).
        range_min (int): Skip this many of the highest-scoring remaining candidates (Top-K shifted
            by N). Defaults to 0.
        duplicate_threshold (float | None): Drop candidates whose similarity to any positive reaches
            this value (needs ``duplicate_similarity`` when called). Defaults to None (off).
        drop_duplicate_text (bool): Drop candidates whose normalised text equals a positive's.
            Defaults to True.
        positive_reference (str): What the margin rules compare with when a query has several
            positives: ``"lowest"``, the query's lowest positive score (sentence-transformers), or
            ``"own"``, the score of each row's own positive (the filter is then called with one
            positive score per query row; :func:`~st_hardneg.mine` and
            :class:`~st_hardneg.MiningDataCollator` give every row its own threshold). Defaults to
            ``"lowest"``.

    References:
        Moreira et al., "NV-Retriever: Improving text embedding models with effective hard-negative
        mining", arXiv 2407.15831, §3.1 (mining methods) and Table 3 (TopK-PercPos 95% best).

    Example::

        import numpy as np
        from st_hardneg import PositiveAwareFilter

        result = PositiveAwareFilter(relative_margin=0.05)(np.array([0.90, 0.80, 0.50]), positive_scores=0.88)
        result.keep     # array([False,  True,  True])
        result.removed  # {'relative_margin': 1}
    """

    def __init__(
        self,
        *,
        relative_margin: float | None = 0.05,
        absolute_margin: float | None = None,
        max_score: float | None = None,
        min_score: float | None = None,
        range_min: int = 0,
        duplicate_threshold: float | None = None,
        drop_duplicate_text: bool = True,
        positive_reference: Literal["lowest", "own"] = "lowest",
        perc: float | None = _UNSET,  # type: ignore[assignment]
        margin: float | None = _UNSET,  # type: ignore[assignment]
        skip_top: int = _UNSET,  # type: ignore[assignment]
    ) -> None:
        if perc is not _UNSET:
            _deprecated("perc", "relative_margin=1 - perc")
            relative_margin = None if perc is None else round(1 - perc, 12)
        if margin is not _UNSET:
            _deprecated("margin", "absolute_margin")
            absolute_margin = margin
        if skip_top is not _UNSET:
            _deprecated("skip_top", "range_min")
            range_min = skip_top
        for name, value in (("relative_margin", relative_margin), ("absolute_margin", absolute_margin),
                            ("max_score", max_score), ("min_score", min_score),
                            ("duplicate_threshold", duplicate_threshold)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, np.number))
                                      or not math.isfinite(value)):
                raise OptionError(f"{name} must be a finite number or None, got {value!r}")
        if relative_margin is not None and relative_margin > 1:
            raise OptionError(f"relative_margin must be at most 1, got {relative_margin}")
        if relative_margin is not None and relative_margin < 0:
            # Allowed (old perc > 1), but it keeps negatives scoring *above* the positive: say so, once per filter.
            warnings.warn(f"relative_margin={relative_margin:g} is negative: negatives scoring up to "
                          f"{-relative_margin:.0%} above the positive are kept, and those are likely false negatives",
                          UserWarning, stacklevel=2)
        if absolute_margin is not None and absolute_margin < 0:
            raise OptionError(f"absolute_margin must be >= 0, got {absolute_margin}")
        if isinstance(range_min, bool) or not isinstance(range_min, (int, np.integer)) or range_min < 0:
            raise OptionError(f"range_min must be a non-negative integer, got {range_min!r}")
        if not isinstance(drop_duplicate_text, bool):
            raise TypeError(f"drop_duplicate_text must be True or False, got {drop_duplicate_text!r}")
        if positive_reference not in ("lowest", "own"):
            raise OptionError(f"positive_reference must be 'lowest' or 'own', got {positive_reference!r}")
        if max_score is not None and min_score is not None and min_score > max_score:
            raise OptionError(f"min_score ({min_score}) is above max_score ({max_score})")
        self.relative_margin, self.absolute_margin = relative_margin, absolute_margin
        self.max_score, self.min_score, self.range_min = max_score, min_score, int(range_min)
        self.duplicate_threshold, self.drop_duplicate_text = duplicate_threshold, drop_duplicate_text
        self.positive_reference = positive_reference

    @property
    def description(self) -> str:
        """Short name of the configured rules, e.g. ``TopK-PercPos(0.95)``."""
        parts = []
        if self.relative_margin is not None:
            parts.append(f"TopK-PercPos({1 - self.relative_margin:g})")
        if self.absolute_margin is not None:
            parts.append(f"TopK-MarginPos({self.absolute_margin:g})")
        if self.max_score is not None:
            parts.append(f"TopK-Abs({self.max_score:g})")
        if self.min_score is not None:
            parts.append(f"min_score({self.min_score:g})")
        if self.range_min:
            parts.append(f"shifted({self.range_min})")
        if self.positive_reference == "own" and (self.relative_margin is not None or self.absolute_margin is not None):
            parts.append("own positive")
        return " + ".join(parts) or "positives-only"

    def to_dict(self) -> dict:
        keys = ("relative_margin", "absolute_margin", "max_score", "min_score", "range_min", "duplicate_threshold",
                "drop_duplicate_text", "positive_reference")
        return {k: getattr(self, k) for k in keys}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PositiveAwareFilter) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return "PositiveAwareFilter(" + ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items()) + ")"

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
        candidate_text_keys: np.ndarray | None = None,
        positive_text_keys: Sequence | None = None,
    ) -> FilterResult:
        """Apply the rules to one query (1-D ``scores``) or a batch of queries (2-D, one row each).

        Args:
            scores: Candidate scores, ``[k]`` or ``[n_queries, k]``; any order.
            positive_scores: Per query, the positive score or the list of positive scores (one
                score per query row with ``positive_reference="own"``).
            candidate_ids: Candidate ids, same shape as ``scores``; with ``positive_ids`` a candidate
                that *is* a positive is removed.
            positive_ids: Per query (or for the single query), the collection of positive ids.
            duplicate_similarity: Per candidate, its highest similarity to any positive.
            candidate_texts / positive_texts: Texts for the normalised-text duplicate rule.
            valid: Mask of real candidates (False for padding).
            candidate_text_keys / positive_text_keys: The same rule on keys from one
                :func:`text_keys` call (shaped like ``scores`` / per query), in place of the texts:
                faster when the same corpus is filtered many times.

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
            candidate_text_keys = None if candidate_text_keys is None else np.asarray(candidate_text_keys)[None]
            positive_text_keys = None if positive_text_keys is None else [positive_text_keys]
            duplicate_similarity = None if duplicate_similarity is None else np.asarray(duplicate_similarity)[None]
            valid = None if valid is None else np.asarray(valid)[None]
        if scores.ndim != 2:
            raise ValueError(f"scores must be 1-D or 2-D, got shape {scores.shape}")
        n, k = scores.shape
        valid = np.ones((n, k), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        if not np.isfinite(scores[valid]).all():
            # inf - inf is NaN, so an infinite score would silently pass every margin rule.
            row, col = (int(i) for i in np.argwhere(~np.isfinite(scores) & valid)[0])
            raise ValueError(f"scores contain NaN or an infinite value ({scores[row, col]} in query row {row}): "
                             "the scorer returned an invalid value")
        none = np.zeros((n, k), dtype=bool)
        masks: dict[str, np.ndarray] = {"padding": ~valid}
        masks["positive_id"] = self._membership(candidate_ids, positive_ids, n, k)
        masks["duplicate_text"] = self._same_text(candidate_texts, positive_texts, candidate_text_keys,
                                                  positive_text_keys, n, k) if self.drop_duplicate_text else none
        masks["duplicate_score"] = none
        if self.duplicate_threshold is not None and duplicate_similarity is not None:
            masks["duplicate_score"] = np.asarray(duplicate_similarity, dtype=np.float64) >= self.duplicate_threshold
        if self.absolute_margin is not None or self.relative_margin is not None:
            col = self._lowest_positive(positive_scores, n, single=self.positive_reference == "own")[:, None]
        masks["absolute_margin"] = scores > col - self.absolute_margin if self.absolute_margin is not None else none
        masks["relative_margin"] = (scores > col - np.abs(col) * self.relative_margin
                                    if self.relative_margin is not None else none)
        masks["max_score"] = scores > self.max_score if self.max_score is not None else none
        masks["min_score"] = scores < self.min_score if self.min_score is not None else none

        reasons = np.full((n, k), -1, dtype=np.int8)
        for code, rule in enumerate(RULES[:-1]):
            reasons[masks[rule] & (reasons < 0)] = code
        if self.range_min:
            # Top-K shifted by N, after every other rule: rank among the survivors, best first (stable).
            alive = reasons < 0
            order = np.argsort(-np.where(alive, scores, -np.inf), axis=1, kind="stable")
            rank = np.cumsum(np.take_along_axis(alive, order, axis=1), axis=1) - 1
            skipped = np.zeros((n, k), dtype=bool)
            first = np.take_along_axis(alive, order, axis=1) & (rank < self.range_min)
            np.put_along_axis(skipped, order, first, axis=1)
            reasons[skipped] = RULES.index("range_min")
        removed = {rule: int((reasons == code).sum()) for code, rule in enumerate(RULES)
                   if rule != "padding" and (reasons == code).any()}
        keep = reasons < 0
        if single:
            return FilterResult(keep[0], removed, reasons[0])
        return FilterResult(keep, removed, reasons)

    @staticmethod
    def _lowest_positive(positive_scores, n: int, single: bool = False) -> np.ndarray:
        if np.isscalar(positive_scores):
            positive_scores = [positive_scores]
        if len(positive_scores) != n:
            raise ValueError(f"positive_scores has {len(positive_scores)} entries for {n} queries")
        out = np.empty(n, dtype=np.float64)
        for i, value in enumerate(positive_scores):
            arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
            if arr.size == 0:
                raise ValueError(f"query row {i} has no positive score")
            if single and arr.size > 1:
                raise ValueError(f"query row {i} has {arr.size} positive scores, but positive_reference='own' "
                                 "compares each row with its own positive: pass one score per query row")
            if not np.isfinite(arr).all():
                raise ValueError(f"positive score of query row {i} is NaN or infinite ({arr[~np.isfinite(arr)][0]}): "
                                 "the scorer returned an invalid value")
            out[i] = arr.min()
        return out

    @staticmethod
    def _same_text(candidate_texts, positive_texts, candidate_keys, positive_keys, n: int, k: int) -> np.ndarray:
        if candidate_keys is None and candidate_texts is not None and positive_texts is not None:
            if len(candidate_texts) != n or len(positive_texts) != n:
                raise ValueError(f"candidate_texts and positive_texts need one entry per query ({n})")
            # Key every text in one call, so that keys compare across queries and a text is keyed once.
            flat = [t for row in candidate_texts for t in row] + [t for row in positive_texts for t in row]
            keys = text_keys(flat)
            candidate_keys = np.full((n, k), -1, dtype=np.int64)
            at = 0
            for i, row in enumerate(candidate_texts):
                candidate_keys[i, :len(row)] = keys[at:at + len(row)]
                at += len(row)
            positive_keys = []
            for row in positive_texts:
                positive_keys.append(keys[at:at + len(row)])
                at += len(row)
        if candidate_keys is None or positive_keys is None:
            return np.zeros((n, k), dtype=bool)
        candidate_keys = np.asarray(candidate_keys, dtype=np.int64)
        if candidate_keys.shape != (n, k):
            raise ValueError(f"candidate_text_keys has shape {candidate_keys.shape}, scores {(n, k)}")
        return rowwise_isin(candidate_keys, positive_keys) & (candidate_keys >= 0)

    @staticmethod
    def _membership(candidate_ids, positive_ids, n: int, k: int) -> np.ndarray:
        mask = np.zeros((n, k), dtype=bool)
        if candidate_ids is None or positive_ids is None:
            return mask
        if len(positive_ids) != n:
            raise ValueError(f"positive_ids has {len(positive_ids)} entries for {n} queries")
        for i in range(n):
            for name, value in (("positive_ids", positive_ids[i]), ("candidate_ids", candidate_ids[i])):
                # A bare string is iterable: set("d12") would match the ids "d", "1" and "2" instead.
                if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                    raise TypeError(f"{name} of query row {i} must be a collection of ids, got "
                                    f"{type(value).__name__} {value!r:.60} (wrap a single id in a list)")
        if (isinstance(candidate_ids, np.ndarray) and candidate_ids.dtype.kind in "iu"
                and candidate_ids.shape == (n, k) and candidate_ids.min(initial=0) >= -1
                and all(isinstance(p, (list, tuple, np.ndarray)) and all(_is_int(x) for x in p) for p in positive_ids)):
            # Corpus positions (the engine's case): one vectorised test; -1 padding never matches.
            return rowwise_isin(candidate_ids, positive_ids) & (candidate_ids >= 0)
        for i in range(n):
            ids = set(positive_ids[i])
            mask[i] = [c in ids for c in candidate_ids[i]]
        return mask
