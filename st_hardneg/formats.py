"""Output layouts that sentence-transformers losses consume, plus an id form, with provenance.

| layout | columns | typical loss |
|---|---|---|
| ``triplet`` | anchor, positive, negative (one row per negative) | MultipleNegativesRankingLoss, TripletLoss |
| ``n-tuple`` | anchor, positive, negative_1 ... negative_n | (Cached)MultipleNegativesRankingLoss, GISTEmbedLoss |
| ``n-tuple-scores`` | n-tuple + label = [s(pos), s(neg_1), ...] | DistillKLDivLoss |
| ``n-tuple-margins`` | n-tuple + label = [s(pos) - s(neg_i), ...] | MarginMSELoss |
| ``labeled-pair`` | anchor, text, label (1 / 0) | BinaryCrossEntropyLoss (CrossEncoder), ContrastiveLoss |
| ``labeled-list`` | query, docs, labels (positive first) | ListNetLoss, LambdaLoss (CrossEncoder) |
| ``ids`` | query_id, positive_id, negative_ids, positive_score, negative_scores, negative_ranks | provenance; :func:`resolve_ids` |

The mining configuration and statistics travel inside ``Dataset.info.description`` (JSON) and, on
disk, in an ``st_hardneg.json`` sidecar, so every row can be traced back to how it was mined.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .mining import MiningResult

logger = logging.getLogger(__name__)

FORMATS = ("triplet", "n-tuple", "n-tuple-scores", "n-tuple-margins", "labeled-pair", "labeled-list", "ids")
_FIXED_WIDTH = ("n-tuple", "n-tuple-scores", "n-tuple-margins")
SIDECAR = "st_hardneg.json"


def count_output_rows(result: MiningResult, output_format: str) -> tuple[int, int]:
    """(rows the layout will have, input rows it must drop)."""
    n = result.config["num_negatives"]
    if output_format in _FIXED_WIDTH:
        full = sum(len(neg) == n for neg in result.negatives)
        return full, len(result.negatives) - full
    if output_format == "triplet":
        return sum(len(neg) for neg in result.negatives), sum(not neg for neg in result.negatives)
    if output_format == "labeled-pair":
        return len(result.negatives) + sum(len(neg) for neg in result.negatives), 0
    return len(result.negatives), 0


def _columns(result: MiningResult, output_format: str) -> dict[str, list]:
    data = result.data
    qt, ct = data.query_texts, data.corpus_texts
    n = result.config["num_negatives"]
    rows = [(data.pairs[r], neg, ns, nr, ps) for r, neg, ns, nr, ps in zip(
        result.row_pairs, result.negatives, result.negative_scores, result.negative_ranks, result.positive_scores)]
    if output_format in _FIXED_WIDTH:
        rows = [row for row in rows if len(row[1]) == n]
        cols: dict[str, list] = {"anchor": [qt[q] for (q, _), *_ in rows], "positive": [ct[d] for (_, d), *_ in rows]}
        for j in range(n):
            cols[f"negative_{j + 1}"] = [ct[neg[j]] for _, neg, *_ in rows]
        if output_format == "n-tuple-scores":
            cols["label"] = [[ps] + list(ns) for _, _, ns, _, ps in rows]
        elif output_format == "n-tuple-margins":
            cols["label"] = [[ps - s for s in ns] for _, _, ns, _, ps in rows]
        return cols
    if output_format == "triplet":
        cols = {"anchor": [], "positive": [], "negative": []}
        for (q, d), neg, *_ in rows:
            for doc in neg:
                cols["anchor"].append(qt[q])
                cols["positive"].append(ct[d])
                cols["negative"].append(ct[doc])
        return cols
    if output_format == "labeled-pair":
        cols = {"anchor": [], "text": [], "label": []}
        for (q, d), neg, *_ in rows:
            for doc, label in [(d, 1)] + [(doc, 0) for doc in neg]:
                cols["anchor"].append(qt[q])
                cols["text"].append(ct[doc])
                cols["label"].append(label)
        return cols
    if output_format == "labeled-list":
        return {
            "query": [qt[q] for (q, _), *_ in rows],
            "docs": [[ct[d]] + [ct[doc] for doc in neg] for (_, d), neg, *_ in rows],
            "labels": [[1] + [0] * len(neg) for _, neg, *_ in rows],
        }
    if output_format == "ids":
        return {
            "query_id": [data.query_ids[q] for (q, _), *_ in rows],
            "positive_id": [data.corpus_ids[d] for (_, d), *_ in rows],
            "negative_ids": [[data.corpus_ids[doc] for doc in neg] for _, neg, *_ in rows],
            "positive_score": [ps for *_, ps in rows],
            "negative_scores": [list(ns) for _, _, ns, _, _ in rows],
            "negative_ranks": [list(nr) for _, _, _, nr, _ in rows],
        }
    raise ValueError(f"unknown output_format {output_format!r}; use one of {list(FORMATS)}")


def provenance(result: MiningResult, output_format: str) -> dict:
    """The JSON-serialisable record stored with every saved dataset."""
    return {"st_hardneg": {"format": output_format, "config": result.config, "stats": result.stats.to_dict()}}


def to_dataset(result: MiningResult, output_format: str) -> Any:
    """Render a :class:`~st_hardneg.mining.MiningResult` as a ``datasets.Dataset``."""
    import datasets
    import pyarrow as pa

    cols = _columns(result, output_format)
    table = pa.table(cols) if cols and len(next(iter(cols.values()))) else pa.table(
        {k: pa.array([], type=pa.string()) for k in cols})
    record = provenance(result, output_format)
    info = datasets.DatasetInfo(description=json.dumps(record, sort_keys=True))
    # A content-derived fingerprint (datasets draws a random one) keeps save_to_disk byte-identical.
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    fingerprint = hashlib.sha256(sink.getvalue().to_pybytes() + info.description.encode()).hexdigest()[:16]
    return datasets.Dataset(table, info=info, fingerprint=fingerprint)


def save(result: MiningResult, path: str | os.PathLike, output_format: str, file_format: str = "arrow") -> Any:
    """Write the dataset as ``arrow`` (``save_to_disk``), ``parquet`` or ``jsonl``, plus the sidecar."""
    if file_format not in ("arrow", "parquet", "jsonl"):
        raise ValueError(f"unknown file format {file_format!r}; use arrow, parquet or jsonl")
    dataset = to_dataset(result, output_format)
    path = Path(path)
    if file_format == "arrow":
        dataset.save_to_disk(str(path))
    else:
        path.mkdir(parents=True, exist_ok=True)
        target = path / f"data.{file_format}"
        if file_format == "parquet":
            dataset.to_parquet(str(target))
        else:  # json.dumps round-trips floats exactly; Dataset.to_json keeps only 10 digits
            with target.open("w", encoding="utf-8") as handle:
                for row in dataset:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    # No timings here: the same inputs and seed must give a byte-identical folder.
    sidecar = provenance(result, output_format)
    (path / SIDECAR).write_text(json.dumps(sidecar, indent=2, sort_keys=True), encoding="utf-8")
    logger.info("saved %d rows (%s, %s) to %s", len(dataset), output_format, file_format, path)
    return dataset


def load_mined(path: str | os.PathLike) -> tuple[Any, dict]:
    """Load a dataset written by :func:`save` (any file format) and its provenance record."""
    import datasets

    path = Path(path)
    sidecar = path / SIDECAR
    if not sidecar.is_file():
        raise FileNotFoundError(f"{sidecar}: not found; {path} was not written by st-hardneg")
    record = json.loads(sidecar.read_text(encoding="utf-8"))["st_hardneg"]
    if (path / "dataset_info.json").is_file():
        dataset = datasets.load_from_disk(str(path))
    elif (path / "data.parquet").is_file():
        dataset = datasets.load_dataset("parquet", data_files=str(path / "data.parquet"), split="train")
    else:
        dataset = datasets.load_dataset("json", data_files=str(path / "data.jsonl"), split="train")
    return dataset, record


def resolve_ids(dataset: Any, corpus: Any, queries: Any, num_negatives: int | None = None) -> Any:
    """Turn an ``ids``-layout dataset into an ``n-tuple`` of texts.

    Args:
        dataset: A dataset with ``query_id``, ``positive_id`` and ``negative_ids`` columns.
        corpus: Mapping (or dataset with ``_id``/``text`` columns) from corpus id to text.
        queries: Mapping (or dataset with ``_id``/``text`` columns) from query id to text.
        num_negatives: Width of the n-tuple (default: the most negatives in any row); shorter rows
            are dropped, with a warning saying how many.
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
