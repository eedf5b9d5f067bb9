"""Inputs: corpus, queries and positives, loaded and validated.

Every input form (a BEIR folder, a ``datasets.Dataset`` of pairs, plain lists) becomes one
:class:`MiningData`: id'd corpus and queries plus the (query, positive) pairs in input order.
Positives are tracked by corpus *id*, so a negative that is a positive is recognised even when its
text was written differently. Bad input raises :class:`DataError` naming the file and line, or the
row and column, instead of producing a silently wrong dataset.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

logger = logging.getLogger(__name__)

MissingPositives = Literal["skip", "error"]


class DataError(ValueError):
    """Raised for malformed input; the message names the file and line, or the row and field."""


class OptionError(ValueError):
    """Raised for a bad option value (a usage error: the CLI exits with status 2); the message names the option."""


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
        source: A short description of where the data came from, recorded in provenance: a Hub id
            as given, or a local file's or folder's name with a short content hash
            (``beir:scifact@1a2b3c4d5e6f#train``), never a machine path.
        skipped: Counts of input rows or queries that were skipped, by reason.
        columns: Names of the (anchor, positive) columns the data came from; output layouts use
            them, as sentence-transformers does.
    """

    corpus_ids: list[str]
    corpus_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    pairs: list[tuple[int, int]]
    source: str = "python lists"
    skipped: dict[str, int] = field(default_factory=dict)
    columns: tuple[str, str] = ("anchor", "positive")

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



def check_text(value: Any, where: str) -> str:
    """``value`` when it is a non-empty string; otherwise a :class:`DataError` naming ``where``."""
    if not isinstance(value, str):
        raise DataError(f"{where}: expected a string, got {type(value).__name__} ({value!r:.60})")
    if not value.strip():
        raise DataError(f"{where}: the text is empty")
    return value


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
            check_text(text, where)
            doc_id = None if corpus_ids is None else str(corpus_ids[i])
            if doc_id is not None and doc_id in docs.by_id:
                raise DataError(f"{where}: duplicate corpus id {doc_id!r} (first at corpus[{docs.by_id[doc_id]}])")
            docs.add(text, doc_id, where)
    qs = _Interner("q", "query")
    pairs: list[tuple[int, int]] = []
    skipped = 0
    for row, (query, positive) in enumerate(zip(queries, positives)):
        where = f"{source}: row {row}"
        check_text(query, f"{where}, query")
        pos_id = None if positive_ids is None or positive_ids[row] is None else str(positive_ids[row])
        if (positive is None or (isinstance(positive, str) and not positive.strip())) and pos_id is None:
            if missing_positives == "error":
                raise DataError(f"{where}: the positive is missing")
            skipped += 1
            continue
        if positive is not None:
            check_text(positive, f"{where}, positive")
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


def _is_id_column(name: str) -> bool:
    """Columns holding ids, never texts to mine: ``id``, ``_id``, ``query_id``, ``corpus-id`` ..."""
    lowered = name.lower()
    return lowered in ("id", "_id", "idx", "index") or lowered.endswith(("_id", "-id", " id"))


def _is_text_column(dataset: Any, name: str) -> bool:
    feature = getattr(dataset, "features", {}).get(name)
    dtype = getattr(feature, "dtype", None)
    return dtype in (None, "string", "large_string")  # None: features unknown, so judge by the name only


def pick_columns(dataset: Any, anchor: str | None, positive: str | None, source: str) -> tuple[str, str]:
    """The (anchor, positive) columns: the named ones, the others guessed among the remaining text columns.

    Id columns and non-string columns are never guessed, nor is a column already taken by the other
    role (sentence-transformers' "second column" can be the anchor itself). A column literally
    named ``anchor`` or ``positive`` takes that role; the others are guessed only when exactly as
    many text columns remain as roles to fill, in column order. Otherwise the error lists the
    columns found.
    """
    columns = list(dataset.column_names)
    for label, col in (("anchor", anchor), ("positive", positive)):
        if col is not None and col not in columns:
            raise DataError(f"{source}: no {label} column {col!r}; columns are {columns}")
    if anchor is not None and anchor == positive:
        raise DataError(f"{source}: the anchor and positive columns are both {anchor!r}; they must differ")
    free = [c for c in columns if c not in (anchor, positive) and not _is_id_column(c)
            and _is_text_column(dataset, c)]
    needed = [label for label, col in (("anchor", anchor), ("positive", positive)) if col is None]
    guessed = {label: label for label in needed if label in free}  # a column literally named for its role
    free = [c for c in free if c not in guessed]
    rest = [label for label in needed if label not in guessed]
    if len(free) != len(rest) and rest:
        found = f"text columns left: {free}" if free else "no text column left"
        raise DataError(f"{source}: cannot tell which column is the {' and which the '.join(rest)}: columns are "
                        f"{columns} ({found}); name it with {' and '.join(f'{n}_column_name' for n in rest)}")
    guessed.update(zip(rest, free))
    return guessed.get("anchor", anchor), guessed.get("positive", positive)  # type: ignore[return-value]


def from_dataset(
    dataset: Any,
    *,
    anchor_column_name: str | None = None,
    positive_column_name: str | None = None,
    corpus: Sequence[str] | None = None,
    corpus_ids: Sequence[str] | None = None,
    missing_positives: MissingPositives = "skip",
    source: str | None = None,
    relevance_threshold: float = 0.0,
) -> MiningData:
    """Build :class:`MiningData` from a ``datasets.Dataset`` of (anchor, positive) pairs.

    Columns not named are guessed by :func:`pick_columns`: a dataset with exactly two text columns
    (id columns aside) needs no names, as in sentence-transformers; otherwise name them. A named
    column that does not exist is an error (sentence-transformers would silently fall back to the
    first two). Id columns named ``query_id``/``anchor_id`` and ``positive_id``/``corpus_id`` are
    used when present. A numeric ``label`` or ``score`` column (sentence-transformers' labeled-pair
    layout, graded relevance) is a judgment, as in BEIR qrels: only rows scoring above
    ``relevance_threshold`` are positives; the others are skipped and counted.

    Args:
        dataset (datasets.Dataset): The pairs.
        anchor_column_name (str | None): The anchor column; guessed when omitted.
        positive_column_name (str | None): The positive column; guessed when omitted.
        corpus (Sequence[str] | None): Extra documents to draw negatives from.
        corpus_ids (Sequence[str] | None): Ids of ``corpus``.
        missing_positives (str): Rows without a positive are ``"skip"``-ped or an ``"error"``.
        source (str | None): Description used in error messages and provenance.
        relevance_threshold (float): With a ``label`` or ``score`` column, rows scoring above this
            are positives. Defaults to 0.
    """
    columns = list(dataset.column_names)
    source = source or f"dataset({dataset.info.dataset_name or 'in memory'})"
    anchor, positive = pick_columns(dataset, anchor_column_name, positive_column_name, source)
    if len(dataset) == 0:
        raise DataError(f"{source}: the dataset is empty")
    judged = next((c for c in ("label", "score") if c in columns and _is_number_column(dataset, c)), None)
    not_relevant = 0
    if judged is not None:  # a score-0 row is a known non-relevant pair, never a positive
        keep = [i for i, value in enumerate(dataset[judged]) if value is not None and value > relevance_threshold]
        not_relevant = len(dataset) - len(keep)
        if not keep:
            raise DataError(f"{source}: no row has {judged} > {relevance_threshold:g}, so there is no positive")
        if not_relevant:
            logger.warning("%s: skipped %d pairs with %s <= %g (not relevant)", source, not_relevant, judged,
                           relevance_threshold)
            dataset = dataset.select(keep)
    qid_col = next((c for c in ("query_id", "anchor_id") if c in columns), None)
    pid_col = next((c for c in ("positive_id", "corpus_id") if c in columns), None)
    data = from_pairs(
        dataset[anchor],
        dataset[positive],
        corpus=corpus,
        query_ids=dataset[qid_col] if qid_col else None,
        positive_ids=dataset[pid_col] if pid_col else None,
        corpus_ids=corpus_ids,
        missing_positives=missing_positives,
        source=source,
    )
    data.columns = (anchor, positive)
    if not_relevant:
        data.skipped[f"pairs_with_{judged}_at_most_{relevance_threshold:g}"] = not_relevant
    return data


def _is_number_column(dataset: Any, name: str) -> bool:
    dtype = getattr(getattr(dataset, "features", {}).get(name), "dtype", None)
    return dtype is not None and dtype.startswith(("int", "uint", "float", "bool"))
