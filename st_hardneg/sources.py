"""Where mining input comes from: one entry point, :func:`load_data`, for every form a user passes.

A :class:`~st_hardneg.data.MiningData`, a ``datasets.Dataset`` of pairs, a BEIR folder or Hub
dataset (:mod:`st_hardneg.beir`), a data file, a ``save_to_disk`` folder, or a Hub dataset of pairs.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .beir import check_relevance_threshold, id_text_records, load_beir, read_jsonl, read_lines, short_hash
from .data import DataError, MiningData, MissingPositives, OptionError, from_dataset

_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".tsv": "csv"}


def load_corpus(corpus: str | os.PathLike | Sequence[str]) -> tuple[list[str] | None, list[str]]:
    """(ids or None, texts) of a corpus: a list of texts, a BEIR ``corpus.jsonl`` or a one-document-a-line text file."""
    if not isinstance(corpus, (str, os.PathLike)):
        return None, list(corpus)
    path = Path(corpus)
    if path.suffix == ".jsonl":
        return id_text_records(((f"{path}:{n}", obj) for n, obj in read_jsonl(path)), include_title=True)
    return None, [line for _, line in read_lines(path) if line.strip()]


def local_name(path: Path, digest: Any = None) -> str:
    """A local file's or folder's name with a short hash of its content, never the machine's path.

    A folder written by ``save_to_disk`` is hashed over its ``.arrow`` files and ``dataset_info.json``
    (``state.json`` holds a fingerprint that may differ between identical saves). ``digest``: a
    ``hashlib`` object already fed the file's bytes (saves reading a large file again).
    """
    if digest is None:
        digest = hashlib.sha256()
        if path.is_file():
            files = [(b"", path)]
        else:
            files = [(p.relative_to(path).as_posix().encode() + b"\0", p) for p in sorted(path.rglob("*"))
                     if p.is_file() and (p.suffix == ".arrow" or p.name == "dataset_info.json")]
        for label, file in files:
            digest.update(label)
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return f"{path.resolve().name}@{short_hash(digest)}"


def _named(data: MiningData, path: Path, digest: Any = None) -> MiningData:
    """``data`` with its provenance source set to the local name of ``path`` (errors above named the full path)."""
    data.source = local_name(path, digest)
    return data


def load_data(
    source: str | os.PathLike | Any,
    *,
    split: str = "train",
    corpus: str | os.PathLike | Sequence[str] | None = None,
    anchor_column_name: str | None = None,
    positive_column_name: str | None = None,
    missing_positives: MissingPositives = "skip",
    relevance_threshold: float = 0.0,
) -> MiningData:
    """Load mining input from anything the CLI or ``mine`` accepts.

    ``source`` may be a :class:`MiningData`, a ``datasets.Dataset``, a BEIR folder, a data file
    (``.jsonl``/``.json``/``.csv``/``.parquet``/``.tsv``), a folder saved with ``save_to_disk``, or a
    Hub dataset name: a BEIR dataset (``corpus`` and ``queries`` configs, see
    :func:`~st_hardneg.beir.load_beir`) or pairs (loaded with ``datasets.load_dataset``). ``corpus``
    may be a list of texts, a BEIR ``corpus.jsonl`` or a text file with one document per line.
    ``relevance_threshold`` applies to judgments (BEIR qrels, a dataset's ``label`` or ``score``
    column): those scoring above it are positives.

    The source recorded in :attr:`MiningData.source` (and so in provenance) is a Hub id as given,
    or a local file's or folder's name with a short content hash, never a local path.
    """
    if isinstance(source, MiningData):
        return source
    if missing_positives not in ("skip", "error"):
        raise OptionError(f"unknown missing_positives {missing_positives!r}; use 'skip' or 'error'")
    threshold = check_relevance_threshold(relevance_threshold)
    corpus_ids, corpus_texts = load_corpus(corpus) if corpus is not None else (None, None)
    common = dict(anchor_column_name=anchor_column_name, positive_column_name=positive_column_name,
                  corpus=corpus_texts, corpus_ids=corpus_ids, missing_positives=missing_positives,
                  relevance_threshold=threshold)
    if not isinstance(source, (str, os.PathLike)):
        return from_dataset(source, **common)  # a datasets.Dataset

    import datasets

    path = Path(source).expanduser()
    if path.is_dir() and (path / "corpus.jsonl").is_file():
        if corpus is not None:
            raise DataError(f"{path}: a BEIR folder brings its own corpus; do not pass corpus as well")
        return load_beir(path, split, missing_positives=missing_positives, relevance_threshold=threshold)
    if path.is_dir() and ((path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DataError(f"{path}: no split {split!r}; splits are {sorted(loaded)}")
            loaded = loaded[split]
        return _named(from_dataset(loaded, source=str(path), **common), path)
    if path.is_file():
        builder = _FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise DataError(f"{path}: unsupported file type {path.suffix!r} (use {sorted(_FILE_BUILDERS)})")
        # Texts are data: pandas would read "NA" or "null" as missing and, in a TSV, a leading quote as quoting.
        kwargs: dict[str, Any] = {"na_filter": False} if builder == "csv" else {}
        if path.suffix.lower() == ".tsv":
            kwargs.update(delimiter="\t", quoting=csv.QUOTE_NONE)
        digest = None
        if builder in ("json", "csv"):
            # datasets reports bad bytes without a line and keeps a BOM in the first column name; one
            # pass checks the bytes line by line and hashes them for the provenance name.
            digest = hashlib.sha256()
            for _ in read_lines(path, digest):
                pass
            with path.open("rb") as handle:
                if handle.read(3) == b"\xef\xbb\xbf":
                    kwargs["encoding"] = "utf-8-sig"
        try:
            loaded = datasets.load_dataset(builder, data_files=str(path), split="train", **kwargs)
        except Exception as exc:  # datasets wraps parse errors in several types
            raise DataError(f"{path}: could not be read as {builder}: {exc}") from exc
        return _named(from_dataset(loaded, source=str(path), **common), path, digest)
    if path.exists() or str(source).startswith((".", "/", "~")):
        raise DataError(f"{path}: not a BEIR folder, a saved dataset or a data file")
    if {"corpus", "queries"} <= set(datasets.get_dataset_config_names(str(source))):
        if corpus is not None:
            raise DataError(f"hub:{source}: a BEIR dataset brings its own corpus; do not pass corpus as well")
        return load_beir(str(source), split, missing_positives=missing_positives, relevance_threshold=threshold)
    loaded = datasets.load_dataset(str(source), split=split)
    return from_dataset(loaded, source=f"hub:{source}#{split}", **common)
