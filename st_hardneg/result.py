"""A mining run's result, rendered as a ``datasets.Dataset`` in any layout, saved and loaded with its provenance.

The mining configuration and statistics travel inside ``Dataset.info.description`` (JSON) and, on
disk, in an ``st_hardneg.json`` sidecar, so every row can be traced back to how it was mined. The
sidecar also records the row count and a SHA-256 of the data files: :func:`load_mined` refuses a
folder whose rows no longer match it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import DataError, MiningData, OptionError
from .formats import check_format, columns, count_rows
from .pools import MinedRows
from .stats import MiningStats, row_stats

logger = logging.getLogger(__name__)

SIDECAR = "st_hardneg.json"
FILE_FORMATS = ("arrow", "parquet", "jsonl")


@dataclass
class MiningResult:
    """Everything a mining run produced, in id form; render layouts with :meth:`to_dataset`.

    Attributes:
        data: The validated input (corpus, queries, pairs).
        rows: The rows: (query, positive) pairs with their negatives, scores and ranks.
        stats: :class:`~st_hardneg.stats.MiningStats`, its row counts for ``config["output_format"]``.
        config: The full mining configuration (provenance).
        timings: Seconds spent per stage (not part of the saved, reproducible output).
    """

    data: MiningData
    rows: MinedRows
    stats: MiningStats
    config: dict
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def negatives(self) -> list[list[int]]:
        """Corpus positions of each row's negatives, best first."""
        return self.rows.negatives

    def _layout(self, output_format: str | None, output_scores: bool | None) -> tuple[str, bool]:
        scores = self.config.get("output_scores", False) if output_scores is None else output_scores
        layout, scores = check_format(output_format or self.config["output_format"], scores)
        if self.config.get("include_positives") and layout not in ("n-tuple", "ids"):
            raise ValueError(f"mined with include_positives=True, so a positive may sit among the negatives: only "
                             f"the n-tuple and ids layouts keep that ranking, not {layout!r}")
        return layout, scores

    def provenance(self, output_format: str | None = None, output_scores: bool | None = None) -> dict:
        """The JSON-serialisable record stored with a dataset in this layout (row counts are the layout's)."""
        layout, scores = self._layout(output_format, output_scores)
        out_rows, dropped = count_rows(self.rows, layout, self.config["num_negatives"])
        stats = dataclasses.replace(self.stats, output_rows=out_rows, dropped_rows=dropped).to_dict()
        return {"st_hardneg": {"format": layout, "output_scores": scores, "config": self.config, "stats": stats}}

    def select(self, indices: Sequence[int]) -> MiningResult:
        """The result restricted to the rows at ``indices`` (positions in ``rows.pairs``), as ``Dataset.select``.

        Use it to keep the rows of some pairs only, e.g. a capped training set mined with every labelled
        positive of its queries in the data, so that none is drawn as a negative. Each row keeps the
        negatives the full run drew for it. The row statistics describe the selection, the run's own
        (candidates scored, removed by rule, widened queries) the run, and ``config["selected"]``
        records ``{"rows": len(indices), "of": <rows mined>}``, so the provenance says what was kept.

        Args:
            indices (Sequence[int]): Row positions, each in ``range(len(rows.pairs))``, in output order.

        Returns:
            MiningResult: A new result; this one is unchanged.
        """
        total = len(self.rows.pairs)
        indices = [int(i) for i in indices]
        bad = next((i for i in indices if not 0 <= i < total), None)
        if bad is not None:
            raise IndexError(f"select: row {bad} out of range for a result of {total} rows")
        rows = MinedRows(**{f.name: [getattr(self.rows, f.name)[i] for i in indices]
                            for f in dataclasses.fields(MinedRows)})
        n = self.config["num_negatives"]
        stats = dataclasses.replace(self.stats, input_rows=len(indices),
                                    **row_stats(rows.positive_scores, rows.negative_scores, n))
        stats.output_rows, stats.dropped_rows = count_rows(rows, self.config["output_format"], n)
        # A selection of a selection still counts against the rows the run mined.
        of = self.config.get("selected", {}).get("of", total)
        config = {**self.config, "selected": {"rows": len(indices), "of": of}}
        return MiningResult(self.data, rows, stats, config, dict(self.timings))

    def to_dataset(self, output_format: str | None = None, output_scores: bool | None = None) -> Any:
        """The rows as a ``datasets.Dataset`` in a sentence-transformers layout (see :mod:`st_hardneg.formats`).

        Args:
            output_format (str | None): The layout; defaults to the run's ``output_format``.
            output_scores (bool | None): Add the teacher's scores as sentence-transformers does;
                defaults to the run's ``output_scores``.
        """
        import datasets
        import pyarrow as pa

        layout, scores = self._layout(output_format, output_scores)
        cols = columns(self.data, self.rows, layout, self.config["num_negatives"], scores)
        table = pa.table(cols) if cols and len(next(iter(cols.values()))) else pa.table(
            {k: pa.array([], type=pa.string()) for k in cols})
        info = datasets.DatasetInfo(description=json.dumps(self.provenance(layout, scores), sort_keys=True))
        # A content-derived fingerprint (datasets draws a random one) keeps save_to_disk byte-identical.
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        fingerprint = hashlib.sha256(sink.getvalue().to_pybytes() + info.description.encode()).hexdigest()[:16]
        return datasets.Dataset(table, info=info, fingerprint=fingerprint)

    def save(self, path: str | os.PathLike, output_format: str | None = None, file_format: str = "arrow",
             output_scores: bool | None = None, *, overwrite: bool = False) -> Any:
        """Write the dataset (``arrow`` via ``save_to_disk``, ``parquet`` or ``jsonl``) and a JSON sidecar.

        The folder is written beside ``path`` and moved into place when complete, so an interrupted
        save never leaves a half-written folder (nor destroys an earlier one). The same inputs and
        seed give a byte-identical folder.

        Args:
            path (str | PathLike): The folder to write.
            output_format (str | None): The layout; defaults to the run's ``output_format``.
            file_format (str): ``"arrow"``, ``"parquet"`` or ``"jsonl"``. Defaults to "arrow".
            output_scores (bool | None): Add the teacher's scores; defaults to the run's setting.
            overwrite (bool): Replace a non-empty folder at ``path``; otherwise that is a
                ``FileExistsError``. Defaults to False.

        Returns:
            datasets.Dataset: The dataset written.
        """
        if file_format not in FILE_FORMATS:
            raise OptionError(f"unknown file format {file_format!r}; use one of {list(FILE_FORMATS)}")
        layout, scores = self._layout(output_format, output_scores)
        path = check_output(path, overwrite=overwrite)
        dataset = self.to_dataset(layout, scores)
        with written_in_place(path) as partial:
            if file_format == "arrow":
                dataset.save_to_disk(str(partial))
            else:
                partial.mkdir()
                target = partial / f"data.{file_format}"
                if file_format == "parquet":
                    dataset.to_parquet(str(target))
                else:  # json.dumps round-trips floats exactly; Dataset.to_json keeps only 10 digits
                    with target.open("w", encoding="utf-8") as handle:
                        for row in dataset:
                            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            # No timings here: the same inputs and seed must give a byte-identical folder.
            sidecar = self.provenance(layout, scores)
            sidecar["st_hardneg"]["content"] = _content_record(partial, file_format, len(dataset))
            (partial / SIDECAR).write_text(json.dumps(sidecar, indent=2, sort_keys=True), encoding="utf-8")
        logger.info("saved %d rows (%s, %s) to %s", len(dataset), layout, file_format, path)
        return dataset

    def __str__(self) -> str:
        timing = "  ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
        return f"{self.stats.table()}\n\ntime: {timing}" if timing else self.stats.table()


def check_output(path: str | os.PathLike, *, overwrite: bool = False,
                 inputs: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Check, before any work, that a mined dataset can be written to the folder ``path``.

    Args:
        path (str | PathLike): The output folder.
        overwrite (bool): Allow replacing a non-empty folder. Defaults to False.
        inputs (tuple): Local input files or folders; the output may neither lie inside one (it
            would be mined again next time) nor contain one (replacing it would delete the input).

    Returns:
        Path: ``path`` with ``~`` expanded.

    Raises:
        FileExistsError: ``path`` is a non-empty folder and ``overwrite`` is False.
        OptionError: ``path`` is a file, overlaps an input, or cannot be created.
    """
    path = Path(path).expanduser()
    where = path.resolve()
    if path.exists() and not path.is_dir():
        raise OptionError(f"{path}: exists and is a file, not a folder; choose another output")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(f"{path}: already exists and is not empty; pass --overwrite (overwrite=True) to "
                              "replace it, or choose another output")
    for source in inputs:
        given = Path(source).expanduser()
        if not given.exists():
            continue  # a Hub name, not a local path
        source_path = given.resolve()
        if where == source_path or source_path in where.parents:
            raise OptionError(f"{path}: is inside the input {source}; write the output somewhere else")
        if where in source_path.parents:
            raise OptionError(f"{path}: contains the input {source}; replacing it would delete the input")
    ancestor = where.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OptionError(f"{path}: cannot be created, {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OptionError(f"{path}: cannot be created, {ancestor} is not writable")
    return path


def _data_files(folder: Path, file_format: str) -> list[Path]:
    if file_format == "arrow":
        return sorted(folder.glob("*.arrow"))
    return [folder / f"data.{file_format}"]


def _content_record(folder: Path, file_format: str, rows: int) -> dict:
    """Row count and SHA-256 of a saved folder's data files: what :func:`load_mined` checks the rows against."""
    digest = hashlib.sha256()
    files = _data_files(folder, file_format)
    for file in files:
        digest.update(file.name.encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return {"file_format": file_format, "files": [f.name for f in files], "rows": rows,
            "sha256": digest.hexdigest()}


@contextlib.contextmanager
def written_in_place(path: Path) -> Iterator[Path]:
    """A folder to write beside ``path`` (not yet created), moved to ``path`` once the block completes.

    An interrupted write never leaves a half-written folder at ``path``, nor destroys an earlier one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.parent / f".{path.name}.partial-{os.getpid()}"
    try:
        yield partial
        _replace_folder(partial, path)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _replace_folder(new: Path, path: Path) -> None:
    """Move the complete folder ``new`` to ``path``; an earlier folder there goes only once ``new`` is in place."""
    if not path.exists():
        new.rename(path)
        return
    old = path.parent / f".{path.name}.old-{os.getpid()}"
    path.rename(old)
    try:
        new.rename(path)
    except BaseException:
        old.rename(path)  # put the earlier folder back rather than leave nothing at path
        raise
    shutil.rmtree(old)


def load_mined(path: str | os.PathLike) -> tuple[Any, dict]:
    """Load a dataset written by :meth:`MiningResult.save` (any file format) and its provenance record.

    The rows are checked against the sidecar: its row count, and the SHA-256 of the data files
    recorded when they were written. A folder whose rows were changed, or only partly replaced,
    is a :class:`~st_hardneg.data.DataError` rather than a dataset with the wrong provenance.

    Example::

        from st_hardneg import load_mined

        dataset, record = load_mined("scifact-hn")
        record["config"]["filter"]
    """
    import datasets

    path = Path(path)
    sidecar = path / SIDECAR
    if not sidecar.is_file():
        raise FileNotFoundError(f"{sidecar}: not found; {path} was not written by st-hardneg")
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))["st_hardneg"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{sidecar}: not an st-hardneg sidecar ({type(exc).__name__}: {exc})") from None
    if (path / "dataset_info.json").is_file():
        file_format = "arrow"
    elif (path / "data.parquet").is_file():
        file_format = "parquet"
    elif (path / "data.jsonl").is_file():
        file_format = "jsonl"
    else:
        raise DataError(f"{path}: holds {SIDECAR} but no rows (no dataset_info.json, data.parquet or data.jsonl)")
    _verify_content(path, record, file_format)  # before reading: half-replaced files may not even load
    try:
        if file_format == "arrow":
            dataset = datasets.load_from_disk(str(path))
        else:
            dataset = datasets.load_dataset(file_format.replace("jsonl", "json"),
                                            data_files=str(path / f"data.{file_format}"), split="train")
    except Exception as exc:  # datasets raises several types for damaged files
        raise DataError(f"{path}: the rows cannot be read ({type(exc).__name__}: {exc})") from exc
    content = record.get("content")
    stated = (content or {}).get("rows", record.get("stats", {}).get("output_rows"))
    if stated is not None and stated != len(dataset):
        message = (f"{sidecar}: records {stated} rows but {path} holds {len(dataset)}; the rows were changed or only "
                   "partly written after mining")
        if content is not None:
            raise DataError(f"{message}: mine again")
        # A sidecar without a content record was written by hand or by an older st-hardneg: warn, still load.
        logger.warning("%s; its provenance may not describe these rows", message)
    return dataset, record


def _verify_content(path: Path, record: dict, file_format: str) -> None:
    """A :class:`DataError` unless the data files in ``path`` are those its sidecar recorded."""
    sidecar = path / SIDECAR
    content = record.get("content")
    if content is None:
        logger.warning("%s: has no content record (written by hand or by an older st-hardneg); the rows cannot be "
                       "verified against it", sidecar)
        return
    found = _content_record(path, file_format, 0)
    if (content.get("file_format"), content.get("sha256")) != (found["file_format"], found["sha256"]):
        raise DataError(f"{sidecar}: the data files do not match the sidecar (sha256 {content.get('sha256', '?')[:12]} "
                        f"recorded, {found['sha256'][:12]} found); the rows were changed or only partly written after "
                        "mining: mine again")
