"""Inputs: corpus, queries and positives, loaded and validated.

Every input form (a BEIR folder, a ``datasets.Dataset`` of pairs, plain lists) becomes one
:class:`MiningData`: id'd corpus and queries plus the (query, positive) pairs in input order.
Positives are tracked by corpus *id*, so a negative that is a positive is recognised even when its
text was written differently. Bad input raises :class:`DataError` naming the file and line, or the
row and column, instead of producing a silently wrong dataset.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

MissingPositives = Literal["skip", "error"]


class DataError(ValueError):
    """Raised for malformed input; the message names the file and line, or the row and field."""


@dataclass
class MiningData:
    """Corpus, queries and (query, positive) pairs, all by position with ids kept.

    Args:
        corpus_ids: One id per corpus document.
        corpus_texts: The document texts, aligned with ``corpus_ids``.
        query_ids: One id per unique query.
        query_texts: The query texts, aligned with ``query_ids``.
        pairs: ``(query_index, corpus_index)`` for every input row, in input order. A query with
            several positives appears in several pairs.
        source: A short human description of where the data came from (for provenance).
        skipped: Counts of input rows or queries that were skipped, by reason.
    """

    corpus_ids: list[str]
    corpus_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    pairs: list[tuple[int, int]]
    source: str = "python lists"
    skipped: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.corpus_ids) != len(self.corpus_texts):
            raise DataError("corpus_ids and corpus_texts have different lengths")
        if len(self.query_ids) != len(self.query_texts):
            raise DataError("query_ids and query_texts have different lengths")
        if not self.pairs:
            raise DataError(f"{self.source}: no (query, positive) pairs to mine negatives for")
        if not self.corpus_texts:
            raise DataError(f"{self.source}: the corpus is empty")

    def positives_by_query(self) -> dict[int, list[int]]:
        """Corpus indices of the positives of every query index, in first-seen order."""
        out: dict[int, list[int]] = {}
        for q, d in self.pairs:
            docs = out.setdefault(q, [])
            if d not in docs:
                docs.append(d)
        return out

    def corpus_index(self) -> dict[str, int]:
        return {doc_id: i for i, doc_id in enumerate(self.corpus_ids)}


def _check_text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where}: expected a string, got {type(value).__name__} ({value!r:.60})")
    if not value.strip():
        raise DataError(f"{where}: the text is empty")
    return value


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line; malformed JSON names the line."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            rows.append((lineno, obj))
    return rows


def _read_id_text_jsonl(path: Path, include_title: bool) -> tuple[list[str], list[str]]:
    ids: list[str] = []
    texts: list[str] = []
    first_line: dict[str, int] = {}
    for lineno, obj in _read_jsonl(path):
        where = f"{path}:{lineno}"
        if "_id" not in obj:
            raise DataError(f"{where}: missing field '_id'")
        raw_id = obj["_id"]
        if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
            raise DataError(f"{where}: field '_id' must be a string, got {type(raw_id).__name__}")
        doc_id = str(raw_id)
        if doc_id in first_line:
            raise DataError(f"{where}: duplicate id {doc_id!r} (first seen on line {first_line[doc_id]})")
        first_line[doc_id] = lineno
        if "text" not in obj:
            raise DataError(f"{where}: missing field 'text'")
        text = obj["text"]
        if not isinstance(text, str):
            raise DataError(f"{where}: field 'text' must be a string, got {type(text).__name__}")
        title = obj.get("title") or ""
        if not isinstance(title, str):
            raise DataError(f"{where}: field 'title' must be a string, got {type(title).__name__}")
        # BEIR's own evaluation joins title and text with a space; so do we.
        full = f"{title} {text}".strip() if include_title and title else text
        _check_text(full, f"{where}: field 'text'")
        ids.append(doc_id)
        texts.append(full)
    return ids, texts


def read_qrels(path: Path) -> list[tuple[int, str, str, int]]:
    """(line number, query id, corpus id, score) for every judgment in a BEIR qrels TSV.

    CRLF line endings (as in BEIR's originals) and a ``query-id`` header line are accepted.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    out = []
    with path.open(encoding="utf-8", newline="") as handle:
        for lineno, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            cols = line.split("\t")
            if lineno == 1 and cols[0].strip().lower() in {"query-id", "query_id", "qid"}:
                continue
            if len(cols) != 3:
                raise DataError(f"{path}:{lineno}: expected 3 tab-separated columns, got {len(cols)}")
            try:
                score = int(float(cols[2]))
            except ValueError:
                raise DataError(f"{path}:{lineno}: score {cols[2]!r} is not a number") from None
            out.append((lineno, cols[0].strip(), cols[1].strip(), score))
    return out


def load_beir(
    folder: str | os.PathLike,
    split: str = "train",
    *,
    include_title: bool = True,
    missing_positives: MissingPositives = "skip",
) -> MiningData:
    """Load a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/{split}.tsv``).

    Judgments with a score > 0 are positives. Every qrels id must exist in the corpus and queries.

    Args:
        folder: The BEIR dataset folder.
        split: Which qrels file to read.
        include_title: Prefix each document with its title (as BEIR's evaluation does).
        missing_positives: A query whose judgments are all 0 is ``"skip"``-ped (and counted) or an
            ``"error"``.

    Example::

        data = load_beir("../shared/data/scifact", split="train")
    """
    folder = Path(folder)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        available = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
        raise DataError(f"{qrels_path}: file not found (splits available in {folder}: {available or 'none'})")
    corpus_ids, corpus_texts = _read_id_text_jsonl(folder / "corpus.jsonl", include_title)
    query_ids_all, query_texts_all = _read_id_text_jsonl(folder / "queries.jsonl", include_title=False)
    corpus_pos = {d: i for i, d in enumerate(corpus_ids)}
    query_pos_all = {q: i for i, q in enumerate(query_ids_all)}

    judged: dict[str, list[tuple[int, str, int]]] = {}
    for lineno, qid, did, score in read_qrels(qrels_path):
        if qid not in query_pos_all:
            raise DataError(f"{qrels_path}:{lineno}: query id {qid!r} is not in {folder / 'queries.jsonl'}")
        if did not in corpus_pos:
            raise DataError(f"{qrels_path}:{lineno}: corpus id {did!r} is not in {folder / 'corpus.jsonl'}")
        judged.setdefault(qid, []).append((lineno, did, score))

    query_ids: list[str] = []
    query_texts: list[str] = []
    pairs: list[tuple[int, int]] = []
    no_positive = 0
    for qid, judgments in judged.items():
        positives = [did for _, did, score in judgments if score > 0]
        if not positives:
            if missing_positives == "error":
                raise DataError(f"{qrels_path}:{judgments[0][0]}: query {qid!r} has no judgment with score > 0")
            no_positive += 1
            continue
        q = len(query_ids)
        query_ids.append(qid)
        query_texts.append(query_texts_all[query_pos_all[qid]])
        for did in dict.fromkeys(positives):
            pairs.append((q, corpus_pos[did]))
    skipped = {"queries_without_positives": no_positive} if no_positive else {}
    if no_positive:
        logger.warning("%s: skipped %d queries without a positive judgment", qrels_path, no_positive)
    return MiningData(corpus_ids, corpus_texts, query_ids, query_texts, pairs, f"beir:{folder}#{split}", skipped)


class _Interner:
    """Assigns ids to texts: an explicit id when given, else one id per distinct text."""

    def __init__(self, prefix: str, label: str) -> None:
        self.prefix, self.label = prefix, label
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.by_id: dict[str, int] = {}
        self.by_text: dict[str, int] = {}
        self.text_mismatches = 0

    def add(self, text: str | None, id_: str | None, where: str) -> int:
        if id_ is not None:
            if id_ in self.by_id:
                index = self.by_id[id_]
                if text is not None and text != self.texts[index]:
                    # The id decides (the corpus entry is the positive, so it can never become a
                    # negative); the mismatch is counted and reported, not silently merged.
                    self.text_mismatches += 1
                return index
            if text is None:
                raise DataError(f"{where}: {self.label} id {id_!r} is not in the corpus and has no text")
        elif text in self.by_text:
            return self.by_text[text]
        index = len(self.ids)
        self.ids.append(id_ if id_ is not None else f"{self.prefix}{index}")
        self.texts.append(text)  # type: ignore[arg-type]
        self.by_id[self.ids[-1]] = index
        self.by_text.setdefault(text, index)  # type: ignore[arg-type]
        return index


def from_pairs(
    queries: Sequence[str],
    positives: Sequence[str | None],
    *,
    corpus: Sequence[str] | None = None,
    query_ids: Sequence[str] | None = None,
    positive_ids: Sequence[str] | None = None,
    corpus_ids: Sequence[str] | None = None,
    missing_positives: MissingPositives = "skip",
    source: str = "python lists",
) -> MiningData:
    """Build :class:`MiningData` from (query, positive) pairs and an optional separate corpus.

    Without ids, identical texts share one id, and positives are matched to the corpus by exact
    text (a positive missing from the corpus is added to it, as sentence-transformers does). With
    ids, positives are matched by id.

    Args:
        queries: One query per pair; repeat a query for several positives.
        positives: One positive text per pair (``None``/empty is a missing positive).
        corpus: Extra documents to draw negatives from; the positives alone are used if omitted.
        query_ids / positive_ids / corpus_ids: Optional ids aligned with the lists above.
        missing_positives: Pairs without a positive are ``"skip"``-ped (and counted) or an ``"error"``.
        source: Description used in error messages and provenance.
    """
    if len(queries) != len(positives):
        raise DataError(f"{source}: {len(queries)} queries but {len(positives)} positives")
    for name, ids in (("query_ids", query_ids), ("positive_ids", positive_ids)):
        if ids is not None and len(ids) != len(queries):
            raise DataError(f"{source}: {name} has {len(ids)} entries for {len(queries)} pairs")
    docs = _Interner("d", "corpus")
    if corpus is not None:
        if corpus_ids is not None and len(corpus_ids) != len(corpus):
            raise DataError(f"{source}: corpus_ids has {len(corpus_ids)} entries for {len(corpus)} documents")
        for i, text in enumerate(corpus):
            where = f"{source}: corpus[{i}]"
            _check_text(text, where)
            doc_id = None if corpus_ids is None else str(corpus_ids[i])
            if doc_id is not None and doc_id in docs.by_id:
                raise DataError(f"{where}: duplicate corpus id {doc_id!r} (first at corpus[{docs.by_id[doc_id]}])")
            docs.add(text, doc_id, where)
    qs = _Interner("q", "query")
    pairs: list[tuple[int, int]] = []
    skipped = 0
    for row, (query, positive) in enumerate(zip(queries, positives)):
        where = f"{source}: row {row}"
        _check_text(query, f"{where}, query")
        pos_id = None if positive_ids is None or positive_ids[row] is None else str(positive_ids[row])
        if (positive is None or (isinstance(positive, str) and not positive.strip())) and pos_id is None:
            if missing_positives == "error":
                raise DataError(f"{where}: the positive is missing")
            skipped += 1
            continue
        if positive is not None:
            _check_text(positive, f"{where}, positive")
        q = qs.add(query, None if query_ids is None else str(query_ids[row]), f"{where}, query")
        pairs.append((q, docs.add(positive, pos_id, f"{where}, positive")))
    if skipped:
        logger.warning("%s: skipped %d pairs without a positive", source, skipped)
    for interner in (docs, qs):
        if interner.text_mismatches:
            logger.warning("%s: %d %s ids matched an entry with a different text; the id was used",
                           source, interner.text_mismatches, interner.label)
    return MiningData(
        docs.ids, docs.texts, qs.ids, qs.texts, pairs, source,
        {"pairs_without_positive": skipped} if skipped else {},
    )


_ANCHOR_NAMES = ("anchor", "query", "question", "sentence1")
_POSITIVE_NAMES = ("positive", "answer", "document", "passage", "sentence2")


def from_dataset(
    dataset: Any,
    *,
    anchor_column: str | None = None,
    positive_column: str | None = None,
    corpus: Sequence[str] | None = None,
    corpus_ids: Sequence[str] | None = None,
    missing_positives: MissingPositives = "skip",
    source: str | None = None,
) -> MiningData:
    """Build :class:`MiningData` from a ``datasets.Dataset`` of (anchor, positive) pairs.

    Columns default to the first two (as in sentence-transformers). Id columns named
    ``query_id``/``anchor_id`` and ``positive_id``/``corpus_id`` are used when present.
    """
    columns = list(dataset.column_names)
    source = source or f"dataset({dataset.info.dataset_name or 'in memory'})"
    text_columns = [c for c in columns if not c.endswith("_id")]
    anchor_column = anchor_column or next((c for c in _ANCHOR_NAMES if c in columns), None)
    anchor_column = anchor_column or (text_columns[0] if text_columns else None)
    positive_column = positive_column or next((c for c in _POSITIVE_NAMES if c in columns), None)
    positive_column = positive_column or (text_columns[1] if len(text_columns) > 1 else None)
    for label, col in (("anchor", anchor_column), ("positive", positive_column)):
        if col is None or col not in columns:
            raise DataError(f"{source}: no {label} column {col!r}; columns are {columns}")
    qid_col = next((c for c in ("query_id", "anchor_id") if c in columns), None)
    pid_col = next((c for c in ("positive_id", "corpus_id") if c in columns), None)
    return from_pairs(
        dataset[anchor_column],
        dataset[positive_column],
        corpus=corpus,
        query_ids=dataset[qid_col] if qid_col else None,
        positive_ids=dataset[pid_col] if pid_col else None,
        corpus_ids=corpus_ids,
        missing_positives=missing_positives,
        source=source,
    )


_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".tsv": "csv"}


def load_data(
    source: str | os.PathLike | Any,
    *,
    split: str = "train",
    corpus: str | os.PathLike | Sequence[str] | None = None,
    anchor_column: str | None = None,
    positive_column: str | None = None,
    missing_positives: MissingPositives = "skip",
) -> MiningData:
    """Load mining input from anything the CLI or ``mine`` accepts.

    ``source`` may be a :class:`MiningData`, a ``datasets.Dataset``, a BEIR folder, a data file
    (``.jsonl``/``.json``/``.csv``/``.parquet``), a folder saved with ``save_to_disk``, or a Hub
    dataset name (loaded with ``datasets.load_dataset``). ``corpus`` may be a list of texts, a BEIR
    ``corpus.jsonl`` or a text file with one document per line.
    """
    if isinstance(source, MiningData):
        return source
    corpus_texts: Sequence[str] | None = None
    corpus_ids: Sequence[str] | None = None
    if corpus is not None:
        if isinstance(corpus, (str, os.PathLike)):
            path = Path(corpus)
            if path.suffix == ".jsonl":
                corpus_ids, corpus_texts = _read_id_text_jsonl(path, include_title=True)
            else:
                if not path.is_file():
                    raise DataError(f"{path}: file not found")
                corpus_texts = [line.rstrip("\r\n") for line in path.open(encoding="utf-8") if line.strip()]
        else:
            corpus_texts = list(corpus)
    common = dict(
        anchor_column=anchor_column, positive_column=positive_column, corpus=corpus_texts,
        corpus_ids=corpus_ids, missing_positives=missing_positives,
    )
    if not isinstance(source, (str, os.PathLike)):
        return from_dataset(source, **common)  # a datasets.Dataset

    import datasets

    path = Path(source)
    if path.is_dir() and (path / "corpus.jsonl").is_file():
        if corpus is not None:
            raise DataError(f"{path}: a BEIR folder brings its own corpus; do not pass corpus as well")
        return load_beir(path, split, missing_positives=missing_positives)
    if path.is_dir() and (path / "dataset_info.json").is_file():
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            loaded = loaded[split]
        return from_dataset(loaded, source=str(path), **common)
    if path.is_file():
        builder = _FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise DataError(f"{path}: unsupported file type {path.suffix!r} (use {sorted(_FILE_BUILDERS)})")
        kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
        try:
            loaded = datasets.load_dataset(builder, data_files=str(path), split="train", **kwargs)
        except Exception as exc:  # datasets wraps parse errors in several types
            raise DataError(f"{path}: could not be read as {builder}: {exc}") from exc
        return from_dataset(loaded, source=str(path), **common)
    if path.exists() or str(source).startswith((".", "/")):
        raise DataError(f"{path}: not a BEIR folder, a saved dataset or a data file")
    loaded = datasets.load_dataset(str(source), split=split)
    return from_dataset(loaded, source=f"hub:{source}#{split}", **common)
