"""Where mining input comes from: one entry point, :func:`load_data`, for every form a user passes.

A :class:`~st_hardneg.data.MiningData`, a ``datasets.Dataset`` of pairs, a BEIR folder or Hub
dataset (:mod:`st_hardneg.beir`), a data file, a ``save_to_disk`` folder, or a Hub dataset of pairs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .beir import id_text_records, load_beir, read_jsonl
from .data import DataError, MiningData, MissingPositives, from_dataset

_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".tsv": "csv"}


def load_corpus(corpus: str | os.PathLike | Sequence[str]) -> tuple[list[str] | None, list[str]]:
    """(ids or None, texts) of a corpus: a list of texts, a BEIR ``corpus.jsonl`` or a one-document-a-line text file."""
    if not isinstance(corpus, (str, os.PathLike)):
        return None, list(corpus)
    path = Path(corpus)
    if path.suffix == ".jsonl":
        return id_text_records(((f"{path}:{n}", obj) for n, obj in read_jsonl(path)), include_title=True)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with path.open(encoding="utf-8") as handle:
        return None, [line.rstrip("\r\n") for line in handle if line.strip()]


def load_data(
    source: str | os.PathLike | Any,
    *,
    split: str = "train",
    corpus: str | os.PathLike | Sequence[str] | None = None,
    anchor_column_name: str | None = None,
    positive_column_name: str | None = None,
    missing_positives: MissingPositives = "skip",
) -> MiningData:
    """Load mining input from anything the CLI or ``mine`` accepts.

    ``source`` may be a :class:`MiningData`, a ``datasets.Dataset``, a BEIR folder, a data file
    (``.jsonl``/``.json``/``.csv``/``.parquet``/``.tsv``), a folder saved with ``save_to_disk``, or a
    Hub dataset name: a BEIR dataset (``corpus`` and ``queries`` configs, see
    :func:`~st_hardneg.beir.load_beir`) or pairs (loaded with ``datasets.load_dataset``). ``corpus``
    may be a list of texts, a BEIR ``corpus.jsonl`` or a text file with one document per line.
    """
    if isinstance(source, MiningData):
        return source
    corpus_ids, corpus_texts = load_corpus(corpus) if corpus is not None else (None, None)
    common = dict(anchor_column_name=anchor_column_name, positive_column_name=positive_column_name,
                  corpus=corpus_texts, corpus_ids=corpus_ids, missing_positives=missing_positives)
    if not isinstance(source, (str, os.PathLike)):
        return from_dataset(source, **common)  # a datasets.Dataset

    import datasets

    path = Path(source).expanduser()
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
    if path.exists() or str(source).startswith((".", "/", "~")):
        raise DataError(f"{path}: not a BEIR folder, a saved dataset or a data file")
    if {"corpus", "queries"} <= set(datasets.get_dataset_config_names(str(source))):
        if corpus is not None:
            raise DataError(f"hub:{source}: a BEIR dataset brings its own corpus; do not pass corpus as well")
        return load_beir(str(source), split, missing_positives=missing_positives)
    loaded = datasets.load_dataset(str(source), split=split)
    return from_dataset(loaded, source=f"hub:{source}#{split}", **common)
