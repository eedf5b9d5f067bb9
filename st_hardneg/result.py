"""A mining run's result, rendered as a ``datasets.Dataset`` in any layout, saved and loaded with its provenance.

The mining configuration and statistics travel inside ``Dataset.info.description`` (JSON) and, on
disk, in an ``st_hardneg.json`` sidecar, so every row can be traced back to how it was mined.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import MiningData
from .formats import check_format, columns, count_rows
from .pools import MinedRows
from .stats import MiningStats

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
             output_scores: bool | None = None) -> Any:
        """Write the dataset (``arrow`` via ``save_to_disk``, ``parquet`` or ``jsonl``) and a JSON sidecar.

        The folder is written beside ``path`` and moved into place when complete, so an interrupted
        save never leaves a half-written folder (nor destroys an earlier one). Returns the
        ``datasets.Dataset`` written. The same inputs and seed give a byte-identical folder.
        """
        if file_format not in FILE_FORMATS:
            raise ValueError(f"unknown file format {file_format!r}; use one of {list(FILE_FORMATS)}")
        layout, scores = self._layout(output_format, output_scores)
        dataset = self.to_dataset(layout, scores)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.parent / f".{path.name}.partial-{os.getpid()}"
        try:
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
            (partial / SIDECAR).write_text(json.dumps(sidecar, indent=2, sort_keys=True), encoding="utf-8")
            _replace_folder(partial, path)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        logger.info("saved %d rows (%s, %s) to %s", len(dataset), layout, file_format, path)
        return dataset

    def __str__(self) -> str:
        timing = "  ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
        return f"{self.stats.table()}\n\ntime: {timing}" if timing else self.stats.table()


def _replace_folder(new: Path, path: Path) -> None:
    """Move the complete folder ``new`` to ``path``; an earlier folder there goes only once ``new`` is in place."""
    if not path.exists():
        new.rename(path)
        return
    old = path.parent / f".{path.name}.old-{os.getpid()}"
    path.rename(old)
    new.rename(path)
    shutil.rmtree(old)


def load_mined(path: str | os.PathLike) -> tuple[Any, dict]:
    """Load a dataset written by :meth:`MiningResult.save` (any file format) and its provenance record.

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
    record = json.loads(sidecar.read_text(encoding="utf-8"))["st_hardneg"]
    if (path / "dataset_info.json").is_file():
        dataset = datasets.load_from_disk(str(path))
    elif (path / "data.parquet").is_file():
        dataset = datasets.load_dataset("parquet", data_files=str(path / "data.parquet"), split="train")
    else:
        dataset = datasets.load_dataset("json", data_files=str(path / "data.jsonl"), split="train")
    return dataset, record
