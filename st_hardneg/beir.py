"""BEIR-layout data: corpus, queries and qrels, from a local folder or a dataset on the Hub.

A local folder holds ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``. On the Hub the
same data is spread over configs: ``corpus`` and ``queries`` (with ``_id``, ``title``, ``text``) and
the qrels (``query-id``, ``corpus-id``, ``score``) either in the repository's default config (as
``mteb/scifact``) or in a sibling ``<name>-qrels`` repository (as ``BeIR/scifact``). Both become
one :class:`~st_hardneg.data.MiningData`; every bad record names its file and line, or its
repository, config and row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .data import DataError, MiningData, MissingPositives, OptionError, check_text

logger = logging.getLogger(__name__)

_BOM = b"\xef\xbb\xbf"


def read_lines(path: Path, digest: Any = None) -> Iterator[tuple[int, str]]:
    """(line number, text without its line ending) of a UTF-8 file, a leading BOM dropped.

    Invalid UTF-8 is a :class:`DataError` naming the file, line and column (Python's own
    ``UnicodeDecodeError`` names neither). ``digest`` (a ``hashlib`` object), when given, is fed the
    raw bytes, so a source's content hash costs no second read.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            if digest is not None:
                digest.update(raw)
            if lineno == 1 and raw.startswith(_BOM):  # Excel and Notepad write one; utf-8-sig semantics
                raw = raw[len(_BOM):]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                                f"{exc.start + 1}); re-save the file as UTF-8") from None
            yield lineno, line.rstrip("\r\n")


def short_hash(digest: Any) -> str:
    """The first 12 hex digits of a digest: enough to tell two versions of a source apart in provenance."""
    return digest.hexdigest()[:12]


def read_jsonl(path: Path, digest: Any = None) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line; malformed JSON or bad bytes name the line."""
    rows = []
    for lineno, line in read_lines(path, digest):
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


def id_text_records(records: Iterable[tuple[str, dict]], include_title: bool) -> tuple[list[str], list[str]]:
    """(ids, texts) of BEIR corpus or query records, each given with the place it came from."""
    ids: list[str] = []
    texts: list[str] = []
    first: dict[str, str] = {}
    for where, obj in records:
        if "_id" not in obj:
            raise DataError(f"{where}: missing field '_id'")
        raw_id = obj["_id"]
        if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
            raise DataError(f"{where}: field '_id' must be a string, got {type(raw_id).__name__}")
        doc_id = str(raw_id)
        if doc_id in first:
            raise DataError(f"{where}: duplicate id {doc_id!r} (first seen on {first[doc_id]})")
        tail = where.rpartition(":")[2]
        first[doc_id] = f"line {tail}" if tail.isdigit() else "row " + where.rpartition(" row ")[2]
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
        check_text(full, f"{where}: field 'text'")
        ids.append(doc_id)
        texts.append(full)
    return ids, texts


def _jsonl_records(path: Path, digest: Any = None) -> list[tuple[str, dict]]:
    return [(f"{path}:{lineno}", obj) for lineno, obj in read_jsonl(path, digest)]


def parse_score(value: Any, where: str) -> float:
    """A relevance judgment's score as a finite float; anything else is a :class:`DataError` naming ``where``."""
    try:
        score = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: score {value!r} is not a number") from None
    if not math.isfinite(score):
        raise DataError(f"{where}: score {value!r} is not a finite number")
    return score


def read_qrels(path: Path, digest: Any = None) -> list[tuple[int, str, str, float]]:
    """(line number, query id, corpus id, score) for every judgment in a BEIR qrels TSV.

    Scores are kept as floats (graded qrels such as 0.5 stay 0.5); a score that is not a finite
    number names its line. CRLF line endings (as in BEIR's originals), a UTF-8 BOM and a
    ``query-id`` header line are accepted.
    """
    out = []
    for lineno, line in read_lines(path, digest):
        if not line.strip():
            continue
        cols = line.split("\t")
        if lineno == 1 and cols[0].strip().lower() in {"query-id", "query_id", "qid"}:
            continue
        if len(cols) != 3:
            raise DataError(f"{path}:{lineno}: expected 3 tab-separated columns, got {len(cols)}")
        out.append((lineno, cols[0].strip(), cols[1].strip(), parse_score(cols[2], f"{path}:{lineno}")))
    return out


def check_relevance_threshold(relevance_threshold: Any) -> float:
    """``relevance_threshold`` as a float, or an :class:`~st_hardneg.data.OptionError` naming it."""
    if isinstance(relevance_threshold, bool) or not isinstance(relevance_threshold, (int, float)) \
            or not math.isfinite(relevance_threshold):
        raise OptionError(f"relevance_threshold must be a finite number, got {relevance_threshold!r}")
    return float(relevance_threshold)


def load_beir(
    source: str | os.PathLike,
    split: str = "train",
    *,
    include_title: bool = True,
    missing_positives: MissingPositives = "skip",
    relevance_threshold: float = 0.0,
    token: str | None = None,
) -> MiningData:
    """Load BEIR data from a local folder or a Hub dataset name.

    Judgments scoring above ``relevance_threshold`` are positives; scores are read as numbers, so
    graded qrels (0.5, 1, 2) keep their grade. Every qrels id must exist in the corpus and queries.
    The source recorded for provenance is a Hub id as given, or a local folder's name with a short
    hash of the files read (never the machine's path).

    Args:
        source (str | PathLike): A folder with ``corpus.jsonl``, ``queries.jsonl`` and
            ``qrels/{split}.tsv``, or a Hub dataset such as ``"mteb/scifact"`` or ``"BeIR/scifact"``.
        split (str): Which qrels split to read. Defaults to "train".
        include_title (bool): Prefix each document with its title, as BEIR's evaluation does.
            Defaults to True.
        missing_positives (str): A query with no judgment above ``relevance_threshold`` is
            ``"skip"``-ped (and counted) or an ``"error"``. Defaults to "skip".
        relevance_threshold (float): A judgment is a positive when its score is strictly above
            this. Defaults to 0 (any positive grade, BEIR's convention); with TREC-style grades
            0/1/2, ``1`` keeps only the highly relevant ones.
        token (str | None): Hub token for a private dataset (default: huggingface_hub's lookup).

    Example::

        from st_hardneg import load_beir

        data = load_beir("../shared/data/scifact", split="train")   # or load_beir("mteb/scifact")
    """
    if missing_positives not in ("skip", "error"):
        raise OptionError(f"unknown missing_positives {missing_positives!r}; use 'skip' or 'error'")
    threshold = check_relevance_threshold(relevance_threshold)
    folder = Path(source).expanduser()
    if folder.is_dir() or str(source).startswith((".", "/", "~")):
        qrels_path = folder / "qrels" / f"{split}.tsv"
        if not qrels_path.is_file():
            found = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
            raise DataError(f"{qrels_path}: file not found (splits available in {folder}: {found or 'none'})")
        digest = hashlib.sha256()
        digest.update(b"corpus.jsonl\0")
        corpus = id_text_records(_jsonl_records(folder / "corpus.jsonl", digest), include_title)
        digest.update(b"\0queries.jsonl\0")
        queries = id_text_records(_jsonl_records(folder / "queries.jsonl", digest), include_title=False)
        digest.update(f"\0qrels/{split}.tsv\0".encode())
        judgments = [(f"{qrels_path}:{lineno}", q, d, s) for lineno, q, d, s in read_qrels(qrels_path, digest)]
        # The folder's name and a hash of what was read: traceable, and no local path in the output.
        name = f"beir:{folder.resolve().name}@{short_hash(digest)}#{split}"
        return from_judgments(corpus, queries, judgments, name, missing_positives,
                              corpus_name=str(folder / "corpus.jsonl"), queries_name=str(folder / "queries.jsonl"),
                              relevance_threshold=threshold)
    return _load_hub_beir(str(source), split, include_title, missing_positives, token, threshold)


def _load_hub_beir(name: str, split: str, include_title: bool, missing_positives: MissingPositives,
                   token: str | None, relevance_threshold: float = 0.0) -> MiningData:
    import datasets

    def table(repo: str, config: str | None, want_split: str | None) -> Any:
        loaded = datasets.load_dataset(repo, config, token=token)
        if want_split is None:  # corpus / queries configs name their one split "corpus", "queries" or "train"
            if len(loaded) != 1:
                raise DataError(f"hub:{repo} (config {config}): expected one split, found {sorted(loaded)}")
            return next(iter(loaded.values()))
        if want_split not in loaded:
            raise DataError(f"hub:{repo} (config {config}): no split {want_split!r}; splits are {sorted(loaded)}")
        return loaded[want_split]

    configs = datasets.get_dataset_config_names(name, token=token)
    missing = [c for c in ("corpus", "queries") if c not in configs]
    if missing:
        raise DataError(f"hub:{name}: not a BEIR dataset: no {' or '.join(missing)} config (configs: {configs})")
    def rows(config: str):
        return ((f"hub:{name} (config {config}) row {i}", r) for i, r in enumerate(table(name, config, None)))

    corpus = id_text_records(rows("corpus"), include_title)
    queries = id_text_records(rows("queries"), include_title=False)
    qrels_repo, qrels_config = (name, "default") if "default" in configs else (f"{name}-qrels", None)
    qrels = table(qrels_repo, qrels_config, split)
    for column in ("query-id", "corpus-id", "score"):
        if column not in qrels.column_names:
            raise DataError(f"hub:{qrels_repo}: the qrels have no column {column!r}; columns are {qrels.column_names}")
    judgments = []
    for i, (q, d, s) in enumerate(zip(qrels["query-id"], qrels["corpus-id"], qrels["score"])):
        where = f"hub:{qrels_repo} (split {split}) row {i}"
        judgments.append((where, str(q), str(d), parse_score(s, where)))
    return from_judgments(corpus, queries, judgments, f"hub-beir:{name}#{split}", missing_positives,
                          corpus_name=f"hub:{name} (config corpus)", queries_name=f"hub:{name} (config queries)",
                          relevance_threshold=relevance_threshold)


def from_judgments(
    corpus: tuple[list[str], list[str]],
    queries: tuple[list[str], list[str]],
    judgments: list[tuple[str, str, str, float]],
    source: str,
    missing_positives: MissingPositives = "skip",
    *,
    corpus_name: str = "the corpus",
    queries_name: str = "the queries",
    relevance_threshold: float = 0.0,
) -> MiningData:
    """:class:`MiningData` from (ids, texts) of corpus and queries and (place, query id, corpus id, score) judgments.

    A judgment scoring strictly above ``relevance_threshold`` makes its document a positive.
    """
    corpus_ids, corpus_texts = corpus
    corpus_pos = {d: i for i, d in enumerate(corpus_ids)}
    query_pos = {q: i for i, q in enumerate(queries[0])}
    judged: dict[str, list[tuple[str, str, float]]] = {}
    for where, qid, did, score in judgments:
        if qid not in query_pos:
            raise DataError(f"{where}: query id {qid!r} is not in {queries_name}")
        if did not in corpus_pos:
            raise DataError(f"{where}: corpus id {did!r} is not in {corpus_name}")
        judged.setdefault(qid, []).append((where, did, score))
    query_ids: list[str] = []
    query_texts: list[str] = []
    pairs: list[tuple[int, int]] = []
    no_positive = 0
    for qid, rows in judged.items():
        positives = [did for _, did, score in rows if score > relevance_threshold]
        if not positives:
            if missing_positives == "error":
                raise DataError(f"{rows[0][0]}: query {qid!r} has no judgment with score > {relevance_threshold:g}")
            no_positive += 1
            continue
        q = len(query_ids)
        query_ids.append(qid)
        query_texts.append(queries[1][query_pos[qid]])
        pairs.extend((q, corpus_pos[did]) for did in dict.fromkeys(positives))
    if no_positive:
        logger.warning("%s: skipped %d queries without a judgment scoring above %g", source, no_positive,
                       relevance_threshold)
    skipped = {"queries_without_positives": no_positive} if no_positive else {}
    return MiningData(corpus_ids, corpus_texts, query_ids, query_texts, pairs, source, skipped)
