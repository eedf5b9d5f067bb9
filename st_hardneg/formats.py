"""Output layouts that sentence-transformers losses consume, plus an id form.

The first four are sentence-transformers' ``mine_hard_negatives`` layouts, with its column names
(the input's own anchor and positive column names) and, with ``output_scores=True``, its score
columns:

| layout | columns (``output_scores=True``) | typical loss |
|---|---|---|
| ``triplet`` | anchor, positive, negative (+ scores = [s(pos), s(neg)]); one row per negative | MultipleNegativesRankingLoss |
| ``n-tuple`` | anchor, positive, negative_1 ... negative_n (+ scores = [s(pos), s(neg_1), ...]) | (Cached)MNRL; DistillKLDivLoss with scores |
| ``labeled-pair`` | anchor, positive (any document), label 1 / 0 (score instead) | BinaryCrossEntropyLoss, ContrastiveLoss |
| ``labeled-list`` | anchor, positive = [pos, neg_1, ...], labels = [1, 0, ...] (scores instead) | ListNetLoss, LambdaLoss |
| ``n-tuple-margins`` | n-tuple + label = [s(pos) - s(neg_i), ...] | MarginMSELoss |
| ``ids`` | query_id, positive_id, negative_ids, positive_score, negative_scores, negative_ranks | provenance; :func:`resolve_ids` |

``n-tuple-scores`` is sentence-transformers' deprecated name of ``n-tuple`` with ``output_scores=True``.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from .data import MiningData, OptionError
from .pools import MinedRows

logger = logging.getLogger(__name__)

FORMATS = ("triplet", "n-tuple", "labeled-pair", "labeled-list", "n-tuple-margins", "ids")


def check_format(output_format: str, output_scores: bool = False) -> tuple[str, bool]:
    """(layout, output_scores) with deprecated names resolved; an unknown layout raises."""
    if output_format == "n-tuple-scores":
        warnings.warn('output_format="n-tuple-scores" is deprecated; use output_format="n-tuple" with '
                      "output_scores=True (as in sentence-transformers)", FutureWarning, stacklevel=3)
        return "n-tuple", True
    if output_format not in FORMATS:
        raise OptionError(f"unknown output_format {output_format!r}; use one of {list(FORMATS)}")
    if not isinstance(output_scores, bool):
        raise TypeError(f"output_scores must be True or False, got {output_scores!r}")
    return output_format, output_scores


def _by_query(rows: MinedRows) -> dict[int, list[int]]:
    """Row numbers grouped by query, queries in the order their first row appears."""
    out: dict[int, list[int]] = {}
    for r, (q, _) in enumerate(rows.pairs):
        out.setdefault(q, []).append(r)
    return out


def count_rows(rows: MinedRows, output_format: str, num_negatives: int) -> tuple[int, int]:
    """(rows the layout will have, input rows it must drop)."""
    negs = rows.negatives
    if output_format in ("n-tuple", "n-tuple-margins"):
        full = sum(len(n) == num_negatives for n in negs)
        return full, len(negs) - full
    if output_format in ("triplet", "labeled-list"):
        empty = sum(not n for n in negs)
        return (sum(map(len, negs)) if output_format == "triplet" else len(negs) - empty), empty
    if output_format == "labeled-pair":  # per query, each document once: its positives, then its negatives
        return sum(len(dict.fromkeys([rows.pairs[r][1] for r in rs] + [d for r in rs for d in negs[r]]))
                   for rs in _by_query(rows).values()), 0
    return len(negs), 0


def columns(data: MiningData, rows: MinedRows, output_format: str, num_negatives: int,
            output_scores: bool = False) -> dict[str, list]:
    """The layout's columns, as lists."""
    qt, ct = data.query_texts, data.corpus_texts
    a, p = data.columns
    items = list(zip(rows.pairs, rows.negatives, rows.negative_scores, rows.negative_ranks, rows.positive_scores))
    if output_format in ("n-tuple", "n-tuple-margins"):
        items = [item for item in items if len(item[1]) == num_negatives]
        cols: dict[str, list] = {a: [qt[q] for (q, _), *_ in items], p: [ct[d] for (_, d), *_ in items]}
        for j in range(num_negatives):
            cols[f"negative_{j + 1}"] = [ct[neg[j]] for _, neg, *_ in items]
        if output_format == "n-tuple-margins":
            cols["label"] = [[ps - s for s in ns] for _, _, ns, _, ps in items]
        elif output_scores:
            cols["scores"] = [[ps, *ns] for _, _, ns, _, ps in items]
        return cols
    if output_format == "triplet":
        cols = {a: [], p: [], "negative": [], **({"scores": []} if output_scores else {})}
        for (q, d), neg, ns, _, ps in items:
            for doc, s in zip(neg, ns):
                cols[a].append(qt[q])
                cols[p].append(ct[d])
                cols["negative"].append(ct[doc])
                if output_scores:
                    cols["scores"].append([ps, s])
        return cols
    if output_format == "labeled-pair":
        # Per query: its positives, then its negatives once (sentence-transformers' order).
        label = "score" if output_scores else "label"
        cols = {a: [], p: [], label: []}
        for q, rs in _by_query(rows).items():
            entries = {rows.pairs[r][1]: (rows.positive_scores[r], 1) for r in rs}
            for r in rs:
                for doc, s in zip(rows.negatives[r], rows.negative_scores[r]):
                    entries.setdefault(doc, (s, 0))
            for doc, (s, positive) in entries.items():
                cols[a].append(qt[q])
                cols[p].append(ct[doc])
                cols[label].append(s if output_scores else positive)
        return cols
    if output_format == "labeled-list":
        items = [item for item in items if item[1]]
        cols = {a: [qt[q] for (q, _), *_ in items], p: [[ct[d]] + [ct[n] for n in neg] for (_, d), neg, *_ in items]}
        if output_scores:
            cols["scores"] = [[ps, *ns] for _, _, ns, _, ps in items]
        else:
            cols["labels"] = [[1] + [0] * len(neg) for _, neg, *_ in items]
        return cols
    if output_format == "ids":
        return {
            "query_id": [data.query_ids[q] for (q, _), *_ in items],
            "positive_id": [data.corpus_ids[d] for (_, d), *_ in items],
            "negative_ids": [[data.corpus_ids[n] for n in neg] for _, neg, *_ in items],
            "positive_score": [ps for *_, ps in items],
            "negative_scores": [list(ns) for _, _, ns, _, _ in items],
            "negative_ranks": [list(nr) for _, _, _, nr, _ in items],
        }
    raise ValueError(f"unknown output_format {output_format!r}; use one of {list(FORMATS)}")


def resolve_ids(dataset: Any, corpus: Any, queries: Any, num_negatives: int | None = None) -> Any:
    """Turn an ``ids``-layout dataset into an ``n-tuple`` of texts.

    Args:
        dataset (Dataset): A dataset with ``query_id``, ``positive_id`` and ``negative_ids`` columns.
        corpus (dict | Dataset): Mapping (or dataset with ``_id``/``text`` columns) from corpus id to text.
        queries (dict | Dataset): Mapping (or dataset with ``_id``/``text`` columns) from query id to text.
        num_negatives (int | None): Width of the n-tuple (default: the most negatives in any row);
            shorter rows are dropped, with a warning saying how many.

    Example::

        from st_hardneg import resolve_ids

        n_tuple = resolve_ids(ids_dataset, corpus={"d1": "..."}, queries={"q1": "..."})
    """
    import datasets

    corpus_map = corpus if isinstance(corpus, dict) else dict(zip(corpus["_id"], corpus["text"]))
    query_map = queries if isinstance(queries, dict) else dict(zip(queries["_id"], queries["text"]))
    for column in ("query_id", "positive_id", "negative_ids"):
        if column not in dataset.column_names:
            raise ValueError(f"dataset has no column {column!r}; columns are {dataset.column_names}")
    width = num_negatives or max((len(n) for n in dataset["negative_ids"]), default=0)
    cols: dict[str, list] = {"anchor": [], "positive": [], **{f"negative_{j + 1}": [] for j in range(width)}}
    dropped = 0
    for row, (qid, pid, nids) in enumerate(zip(dataset["query_id"], dataset["positive_id"], dataset["negative_ids"])):
        for kind, mapping, key in (("query", query_map, qid), ("corpus", corpus_map, pid),
                                   *(("corpus", corpus_map, n) for n in nids)):
            if key not in mapping:
                raise KeyError(f"row {row}: {kind} id {key!r} not found")
        if len(nids) < width:
            dropped += 1
            continue
        cols["anchor"].append(query_map[qid])
        cols["positive"].append(corpus_map[pid])
        for j in range(width):
            cols[f"negative_{j + 1}"].append(corpus_map[nids[j]])
    if dropped:
        logger.warning("resolve_ids: dropped %d rows with fewer than %d negatives", dropped, width)
    return datasets.Dataset.from_dict(cols)
