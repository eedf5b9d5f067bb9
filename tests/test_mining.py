"""The mining pipeline on real SciFact slices: correctness by id, widening, determinism, layouts."""

import filecmp

import numpy as np
import pytest
import torch

from st_hardneg import DataError, PositiveAwareFilter, mine, resolve_ids
from st_hardneg.data import MiningData, read_qrels
from st_hardneg.filters import normalize_text

from conftest import slice_data


def all_positive_ids(shared_data):
    """Every (query id -> corpus ids) judged relevant in SciFact train and test qrels."""
    out = {}
    for split in ("train", "test"):
        for _, q, d, score in read_qrels(shared_data / "scifact" / "qrels" / f"{split}.tsv"):
            if score > 0:
                out.setdefault(q, set()).add(d)
    return out


def with_planted_duplicates(data: MiningData, n: int = 15) -> tuple[MiningData, dict[str, set[str]]]:
    """Add re-cased, re-punctuated copies of the first ``n`` positives; returns them per query id."""
    planted: dict[str, set[str]] = {}
    ids, texts = list(data.corpus_ids), list(data.corpus_texts)
    for q, d in data.pairs[:n]:
        ids.append(f"dup-{data.corpus_ids[d]}")
        texts.append(data.corpus_texts[d].upper().replace(".", " . "))
        planted.setdefault(data.query_ids[q], set()).add(ids[-1])
    return MiningData(ids, texts, data.query_ids, data.query_texts, data.pairs, data.source), planted


@pytest.mark.parametrize("retriever", ["dense", "hybrid"])
def test_no_positive_or_near_duplicate_is_ever_a_negative(retriever, scifact_slice, shared_data, model, cache_dir):
    data, planted = with_planted_duplicates(scifact_slice)
    result = mine(data, model, retriever=retriever, num_negatives=4, cache_dir=cache_dir, show_progress=False,
                  filter=PositiveAwareFilter(perc=0.95, duplicate_threshold=0.98))
    judged = all_positive_ids(shared_data)
    ids = result.to_dataset("ids")
    assert len(ids) == len(data.pairs)
    for row in ids:
        negatives = set(row["negative_ids"])
        assert not negatives & judged[row["query_id"]], row["query_id"]
        assert not negatives & planted.get(row["query_id"], set())
    # The planted copies score like their positives: they were in the pools and the text rule removed them.
    assert result.stats.removed_by_rule.get("duplicate_text", 0) >= sum(map(len, planted.values()))
    texts = dict(zip(data.corpus_ids, data.corpus_texts))
    for row in ids:
        keys = [normalize_text(texts[n]) for n in row["negative_ids"]]
        assert normalize_text(texts[row["positive_id"]]) not in keys
        assert len(set(keys)) == len(keys)  # no text twice in one row (a planted copy of another query's positive)


def test_perc_pos_holds_for_every_row_against_the_lowest_positive(scifact_slice, model, cache_dir):
    result = mine(scifact_slice, model, num_negatives=4, cache_dir=cache_dir, show_progress=False)
    ids = result.to_dataset("ids")
    lowest = {}
    for row in ids:
        lowest[row["query_id"]] = min(lowest.get(row["query_id"], np.inf), row["positive_score"])
    multi = [q for q in lowest if sum(r == q for r in ids["query_id"]) > 1]
    assert multi, "the slice should contain queries with several positives"
    for row in ids:
        assert len(row["negative_ids"]) == 4
        assert max(row["negative_scores"]) < 0.95 * lowest[row["query_id"]] + 1e-6
    assert result.stats.short_rows == 0 and result.stats.output_rows == len(ids)


def test_window_is_widened_before_a_row_is_given_up(scifact_slice, model, cache_dir):
    flt = PositiveAwareFilter(perc=0.95)
    narrow = mine(scifact_slice, model, filter=flt, num_negatives=4, candidates=4, max_candidates=4,
                  cache_dir=cache_dir, show_progress=False)
    assert narrow.stats.short_rows > 0
    assert narrow.stats.dropped_rows == narrow.stats.short_rows  # n-tuple cannot hold short rows: counted
    assert len(narrow.to_dataset("n-tuple")) == len(scifact_slice.pairs) - narrow.stats.dropped_rows
    wide = mine(scifact_slice, model, filter=flt, num_negatives=4, candidates=4, cache_dir=cache_dir,
                show_progress=False)
    assert wide.stats.widened_queries > 0 and wide.stats.short_rows == 0
    assert len(wide.to_dataset("n-tuple")) == len(scifact_slice.pairs)


def test_same_seed_same_bytes_other_seed_other_negatives(scifact_slice, model, cache_dir, tmp_path):
    kwargs = dict(num_negatives=3, sampling="sampled", sample_pool=10, temperature=0.05, cache_dir=cache_dir,
                  show_progress=False)
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        mine(scifact_slice, model, seed=seed, **kwargs).save(tmp_path / name, "n-tuple")
    cmp = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    assert sorted(cmp.same_files) == sorted(p.name for p in (tmp_path / "a").iterdir())
    assert not cmp.diff_files
    import datasets

    a, c = datasets.load_from_disk(str(tmp_path / "a")), datasets.load_from_disk(str(tmp_path / "c"))
    assert a["negative_1"] != c["negative_1"] or a["negative_2"] != c["negative_2"]


def test_layouts(scifact_slice, model, cache_dir, tmp_path):
    result = mine(slice_data(scifact_slice, 10, 600), model, num_negatives=2, cache_dir=cache_dir,
                  show_progress=False)
    n = len(result.negatives)
    shapes = {
        "triplet": (["anchor", "positive", "negative"], 2 * n),
        "n-tuple": (["anchor", "positive", "negative_1", "negative_2"], n),
        "n-tuple-scores": (["anchor", "positive", "negative_1", "negative_2", "label"], n),
        "labeled-pair": (["anchor", "text", "label"], 3 * n),
        "labeled-list": (["query", "docs", "labels"], n),
    }
    for fmt, (columns, rows) in shapes.items():
        ds = result.to_dataset(fmt)
        assert ds.column_names == columns and len(ds) == rows, fmt
    margins = result.to_dataset("n-tuple-margins")[0]["label"]
    scores = result.to_dataset("n-tuple-scores")[0]["label"]
    assert margins == pytest.approx([scores[0] - scores[1], scores[0] - scores[2]])
    data = result.data
    resolved = resolve_ids(result.to_dataset("ids"), dict(zip(data.corpus_ids, data.corpus_texts)),
                           dict(zip(data.query_ids, data.query_texts)))
    assert resolved.to_dict() == result.to_dataset("n-tuple").to_dict()
    from st_hardneg import load_mined

    for file_format in ("arrow", "parquet", "jsonl"):
        result.save(tmp_path / file_format, "n-tuple-scores", file_format)
        loaded, record = load_mined(tmp_path / file_format)
        assert loaded.to_dict() == result.to_dataset("n-tuple-scores").to_dict(), file_format
        assert record["config"]["num_negatives"] == 2 and record["format"] == "n-tuple-scores"
    with pytest.raises(FileNotFoundError, match="not written by st-hardneg"):
        load_mined(tmp_path)


def test_cross_encoder_teacher_is_always_used_and_sigmoid_normalised(scifact_slice, model, cache_dir):
    # No cross-encoder ships offline: this one is built from the MiniLM weights with a seeded,
    # untrained head. It tests the code path, not the quality of the teacher.
    from sentence_transformers import CrossEncoder

    from st_hardneg.mining import default_model_path

    torch.manual_seed(0)
    teacher = CrossEncoder(default_model_path(), num_labels=1, max_length=128)
    small = slice_data(scifact_slice, 8, 600)
    # The untrained head scores everything near 0.5, so PercPos(0.95) would keep nothing; "strictly
    # below the positive" (MarginPos 0) exercises the same path with rows that really get negatives.
    below_positive = PositiveAwareFilter(perc=None, margin=0.0)
    result = mine(small, model, teacher=teacher, filter=below_positive, num_negatives=2, candidates=10,
                  max_candidates=20, cache_dir=cache_dir, show_progress=False)
    assert result.config["teachers"][0].startswith("cross-encoder")
    ids = result.to_dataset("ids")
    assert result.stats.short_rows <= 2  # a random head may score a positive below everything
    scores = [s for row in ids["negative_scores"] for s in row] + list(ids["positive_score"])
    assert all(0 < s < 1 for s in scores)
    dense_only = mine(small, model, num_negatives=2, candidates=10, cache_dir=cache_dir, show_progress=False)
    assert list(ids["positive_score"]) != list(dense_only.to_dataset("ids")["positive_score"])  # rescored
    for row in ids:
        assert max(row["negative_scores"], default=0) < row["positive_score"]

    union = mine(small, model, teacher=[model, teacher], ensemble="union", filter=below_positive, num_negatives=4,
                 candidates=10, max_candidates=20, cache_dir=cache_dir, show_progress=False)
    assert len(union.config["teachers"]) == 2
    # Round-robin, no de-duplication across teachers: slots 1 and 3 are the bi-encoder's own top-2.
    alone = mine(small, model, filter=below_positive, num_negatives=2, candidates=10, max_candidates=20,
                 cache_dir=cache_dir, show_progress=False)
    full = [r for r, n in enumerate(union.negatives) if len(n) == 4]
    assert len(full) >= len(small.pairs) - 2
    for r in full:
        assert union.negatives[r][0::2] == alone.negatives[r]


class NaNTeacher:
    name = "broken-teacher"

    def score(self, queries, documents):
        return [np.full(len(d), np.nan, dtype=np.float32) for d in documents]


def test_bad_inputs_to_mine(scifact_slice, model, cache_dir):
    from st_hardneg.teachers import _check_finite

    with pytest.raises(ValueError, match="NaN"):
        mine(slice_data(scifact_slice, 3, 50), model, teacher=NaNTeacher(), cache_dir=cache_dir, show_progress=False)
    with pytest.raises(ValueError, match="'t' returned a non-finite score for query #1"):
        _check_finite([np.zeros(2), np.array([np.nan])], "t", ["a", "b"])
    tiny = MiningData(["d1", "d2", "d3"], ["a", "b", "c"], ["q"], ["query"], [(0, 0)], "tiny")
    with pytest.raises(DataError, match="tiny: the corpus has 3 documents, too few to find 4 negatives"):
        mine(tiny, model, num_negatives=4, show_progress=False)
    with pytest.raises(ValueError, match="unknown output_format"):
        mine(tiny, model, output_format="quadruplet")
