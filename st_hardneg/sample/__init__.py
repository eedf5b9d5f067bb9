"""The embedded default dataset: a small real slice of SciFact (see ``scifact_sample/README.md``)."""

from __future__ import annotations

from pathlib import Path


def sample_data_path() -> str:
    """Path of the embedded SciFact sample, a BEIR folder usable wherever a data path is accepted."""
    return str(Path(__file__).parent / "scifact_sample")
