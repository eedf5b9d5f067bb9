"""BEIR-layout data: corpus, queries and qrels, from a local folder or a dataset on the Hub.

A local folder holds ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``. On the Hub the
same data is spread over configs: ``corpus`` and ``queries`` (with ``_id``, ``title``, ``text``) and
the qrels (``query-id``, ``corpus-id``, ``score``) either in the repository's default config (as
``mteb/scifact``) or in a sibling ``<name>-qrels`` repository (as ``BeIR/scifact``). Both become
one :class:`~st_hardneg.data.MiningData`; every bad record names its file and line, or its
repository, config and row.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .data import DataError, MiningData, MissingPositives, check_text

logger = logging.getLogger(__name__)


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
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


def _jsonl_records(path: Path) -> list[tuple[str, dict]]:
    return [(f"{path}:{lineno}", obj) for lineno, obj in read_jsonl(path)]


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
    source: str | os.PathLike,
    split: str = "train",
    *,
    include_title: bool = True,
    missing_positives: MissingPositives = "skip",
    token: str | None = None,
) -> MiningData:
    """Load BEIR data from a local folder or a Hub dataset name.

    Judgments with a score > 0 are positives. Every qrels id must exist in the corpus and queries.

    Args:
        source (str | PathLike): A folder with ``corpus.jsonl``, ``queries.jsonl`` and
            ``qrels/{split}.tsv``, or a Hub dataset such as ``"mteb/scifact"`` or ``"BeIR/scifact"``.
        split (str): Which qrels split to read. Defaults to "train".
        include_title (bool): Prefix each document with its title, as BEIR's evaluation does.
            Defaults to True.
        missing_positives (str): A query whose judgments are all 0 is ``"skip"``-ped (and counted)
            or an ``"error"``. Defaults to "skip".
        token (str | None): Hub token for a private dataset (default: huggingface_hub's lookup).

    Example::

        from st_hardneg import load_beir

        data = load_beir("../shared/data/scifact", split="train")   # or load_beir("mteb/scifact")
    """
    folder = Path(source).expanduser()
    if folder.is_dir() or str(source).startswith((".", "/", "~")):
        qrels_path = folder / "qrels" / f"{split}.tsv"
        if not qrels_path.is_file():
            found = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
            raise DataError(f"{qrels_path}: file not found (splits available in {folder}: {found or 'none'})")
        corpus = id_text_records(_jsonl_records(folder / "corpus.jsonl"), include_title)
        queries = id_text_records(_jsonl_records(folder / "queries.jsonl"), include_title=False)
        judgments = [(f"{qrels_path}:{lineno}", q, d, s) for lineno, q, d, s in read_qrels(qrels_path)]
        return from_judgments(corpus, queries, judgments, f"beir:{folder}#{split}", missing_positives,
                              corpus_name=str(folder / "corpus.jsonl"), queries_name=str(folder / "queries.jsonl"))
    return _load_hub_beir(str(source), split, include_title, missing_positives, token)


def _load_hub_beir(name: str, split: str, include_title: bool, missing_positives: MissingPositives,
                   token: str | None) -> MiningData:
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
        try:
            judgments.append((where, str(q), str(d), int(float(s))))
        except (TypeError, ValueError):
            raise DataError(f"{where}: score {s!r} is not a number") from None
    return from_judgments(corpus, queries, judgments, f"hub-beir:{name}#{split}", missing_positives,
                          corpus_name=f"hub:{name} (config corpus)", queries_name=f"hub:{name} (config queries)")


def from_judgments(
    corpus: tuple[list[str], list[str]],
    queries: tuple[list[str], list[str]],
    judgments: list[tuple[str, str, str, int]],
    source: str,
    missing_positives: MissingPositives = "skip",
    *,
    corpus_name: str = "the corpus",
    queries_name: str = "the queries",
) -> MiningData:
    """:class:`MiningData` from (ids, texts) of corpus and queries and (place, query id, corpus id, score) judgments."""
    corpus_ids, corpus_texts = corpus
    corpus_pos = {d: i for i, d in enumerate(corpus_ids)}
    query_pos = {q: i for i, q in enumerate(queries[0])}
    judged: dict[str, list[tuple[str, str, int]]] = {}
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
        positives = [did for _, did, score in rows if score > 0]
        if not positives:
            if missing_positives == "error":
                raise DataError(f"{rows[0][0]}: query {qid!r} has no judgment with score > 0")
            no_positive += 1
            continue
        q = len(query_ids)
        query_ids.append(qid)
        query_texts.append(queries[1][query_pos[qid]])
        pairs.extend((q, corpus_pos[did]) for did in dict.fromkeys(positives))
    if no_positive:
        logger.warning("%s: skipped %d queries without a positive judgment", source, no_positive)
    skipped = {"queries_without_positives": no_positive} if no_positive else {}
    return MiningData(corpus_ids, corpus_texts, query_ids, query_texts, pairs, source, skipped)
