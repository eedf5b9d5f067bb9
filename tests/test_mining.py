"""The mining pipeline on real SciFact rows: correctness by id, widening, determinism, layouts, argument checks."""

import filecmp
from pathlib import Path

import numpy as np
import pytest
import torch

from st_hardneg import DataError, PositiveAwareFilter, load_mined, mine, resolve_ids
from st_hardneg.beir import read_qrels
from st_hardneg.data import MiningData
from st_hardneg.embeddings import Embedder
from st_hardneg.filters import normalize_text

from conftest import slice_data

PERCPOS = PositiveAwareFilter(relative_margin=0.05)


def all_positive_ids(sample_dir):
    """Every (query id -> corpus ids) judged relevant in the sample's qrels."""
    out = {}
    for _, q, d, score in read_qrels(sample_dir / "qrels" / "train.tsv"):
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
def test_no_positive_or_near_duplicate_is_ever_a_negative(retriever, scifact, sample_dir, model, cache_dir):
    data, planted = with_planted_duplicates(scifact)
    result = mine(data, model, retriever=retriever, num_negatives=4, cache_folder=cache_dir, verbose=False,
                  filter=PositiveAwareFilter(relative_margin=0.05, duplicate_threshold=0.98))
    judged = all_positive_ids(sample_dir)
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


def test_relative_margin_holds_for_every_row_against_the_lowest_positive(scifact, model, cache_dir):
    result = mine(scifact, model, num_negatives=4, cache_folder=cache_dir, verbose=False)
    assert result.config["filter"]["relative_margin"] == 0.05  # TopK-PercPos 95% by default
    ids = result.to_dataset("ids")
    lowest = {}
    for row in ids:
        lowest[row["query_id"]] = min(lowest.get(row["query_id"], np.inf), row["positive_score"])
    multi = [q for q in lowest if sum(r == q for r in ids["query_id"]) > 1]
    assert multi, "the sample should contain queries with several positives"
    for row in ids:
        assert len(row["negative_ids"]) == 4
        assert max(row["negative_scores"]) <= 0.95 * lowest[row["query_id"]] + 1e-6
    assert result.stats.short_rows == 0


def test_own_positive_reference_gives_each_row_its_own_threshold(scifact, model, cache_dir):
    own = PositiveAwareFilter(relative_margin=0.05, positive_reference="own")
    result = mine(scifact, model, filter=own, num_negatives=4, cache_folder=cache_dir, verbose=False)
    lowest = mine(scifact, model, filter=PERCPOS, num_negatives=4, cache_folder=cache_dir, verbose=False)
    assert result.config["filter"]["positive_reference"] == "own"
    assert result.config["filter"]["rule"] == "TopK-PercPos(0.95) + own positive"
    positives = all_positive_ids_of(scifact)
    rows, low = result.to_dataset("ids"), lowest.to_dataset("ids")
    by_query = {}
    for row in low:
        by_query[row["query_id"]] = min(by_query.get(row["query_id"], np.inf), row["positive_score"])
    above_lowest = 0
    for row, base in zip(rows, low):
        assert (row["query_id"], row["positive_id"]) == (base["query_id"], base["positive_id"])
        assert len(row["negative_ids"]) == 4
        assert not set(row["negative_ids"]) & positives[row["query_id"]]  # other positives: still excluded
        assert max(row["negative_scores"]) <= 0.95 * row["positive_score"] + 1e-6
        above_lowest += max(row["negative_scores"]) > 0.95 * by_query[row["query_id"]] + 1e-6
    # A query's higher positives get negatives the lowest-positive rule refuses; single-positive rows are unchanged.
    assert above_lowest > 0
    single = [i for i, row in enumerate(low) if sum(q == row["query_id"] for q in low["query_id"]) == 1]
    assert single and all(rows[i]["negative_ids"] == low[i]["negative_ids"] for i in single)
    # A narrow first window is widened until the row of each query's lowest positive is served too.
    narrow = mine(scifact, model, filter=own, num_negatives=4, range_max=4, cache_folder=cache_dir, verbose=False)
    assert narrow.stats.widened_queries > 0 and narrow.stats.short_rows == 0


def all_positive_ids_of(data: MiningData) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for q, d in data.pairs:
        out.setdefault(data.query_ids[q], set()).add(data.corpus_ids[d])
    return out


def test_window_is_widened_before_a_row_is_given_up(scifact, model, cache_dir):
    narrow = mine(scifact, model, filter=PERCPOS, num_negatives=4, range_max=4, max_candidates=None,
                  cache_folder=cache_dir, verbose=False, output_format="n-tuple")
    assert narrow.stats.short_rows > 0 and narrow.stats.widened_queries == 0
    assert narrow.stats.dropped_rows == narrow.stats.short_rows  # n-tuple cannot hold short rows: counted
    assert len(narrow.to_dataset("n-tuple")) == len(scifact.pairs) - narrow.stats.dropped_rows
    wide = mine(scifact, model, filter=PERCPOS, num_negatives=4, range_max=4, cache_folder=cache_dir, verbose=False)
    assert wide.stats.widened_queries > 0 and wide.stats.short_rows == 0
    assert len(wide.to_dataset("n-tuple")) == len(scifact.pairs)


def test_same_seed_same_bytes_other_seed_other_negatives(scifact, model, cache_dir, tmp_path):
    kwargs = dict(num_negatives=3, sampling_strategy="sampled", sample_pool=10, temperature=0.05,
                  cache_folder=cache_dir, verbose=False)
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        mine(scifact, model, seed=seed, **kwargs).save(tmp_path / name, "n-tuple")
    cmp = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    assert sorted(cmp.same_files) == sorted(p.name for p in (tmp_path / "a").iterdir())
    assert not cmp.diff_files
    import datasets

    a, c = datasets.load_from_disk(str(tmp_path / "a")), datasets.load_from_disk(str(tmp_path / "c"))
    assert a["negative_1"] != c["negative_1"] or a["negative_2"] != c["negative_2"]


def test_select_keeps_each_rows_draw_and_its_provenance_describes_the_rows_kept(scifact, model, cache_dir, tmp_path):
    full = mine(scifact, model, num_negatives=3, sampling_strategy="sampled", sample_pool=10, seed=3,
                cache_folder=cache_dir, verbose=False)
    keep = [i for i in range(len(full.rows.pairs)) if i % 3 == 0]
    part = full.select(keep)
    # A row keeps the negatives the full run drew for it (not those of its new position).
    assert part.rows.pairs == [full.rows.pairs[i] for i in keep]
    assert part.rows.negatives == [full.rows.negatives[i] for i in keep]
    assert part.to_dataset("ids").to_dict() == full.to_dataset("ids").select(keep).to_dict()
    stats = part.stats
    assert stats.input_rows == len(keep) and stats.positive_scores["count"] == len(keep)
    assert stats.negative_scores["count"] == sum(len(full.rows.negatives[i]) for i in keep)
    assert stats.candidates_scored == full.stats.candidates_scored  # the run's own count, kept
    assert part.config["selected"] == {"rows": len(keep), "of": len(full.rows.pairs)}
    assert part.select([0, 1]).config["selected"] == {"rows": 2, "of": len(full.rows.pairs)}
    assert "selected" not in full.config and full.stats.input_rows == len(full.rows.pairs)  # unchanged
    part.save(tmp_path / "part", "n-tuple")
    loaded, record = load_mined(tmp_path / "part")
    assert record["stats"]["output_rows"] == len(loaded) == sum(len(full.rows.negatives[i]) == 3 for i in keep)
    assert record["config"]["selected"]["rows"] == len(keep)
    with pytest.raises(IndexError, match=f"select: row {len(full.rows.pairs)} out of range for a result of "):
        full.select([0, len(full.rows.pairs)])


def test_layouts_and_their_row_counts(scifact, model, cache_dir, tmp_path):
    result = mine(slice_data(scifact, 10, 450), model, num_negatives=2, cache_folder=cache_dir, verbose=False)
    assert result.config["output_format"] == "triplet" and result.config["num_negatives"] == 2
    n = len(result.negatives)
    queries = {q for q, _ in result.rows.pairs}
    shapes = {
        "triplet": (["anchor", "positive", "negative"], 2 * n),
        "n-tuple": (["anchor", "positive", "negative_1", "negative_2"], n),
        "labeled-pair": (["anchor", "positive", "label"], n + 2 * len(queries)),  # top negatives: shared per query
        "labeled-list": (["anchor", "positive", "labels"], n),
        "n-tuple-margins": (["anchor", "positive", "negative_1", "negative_2", "label"], n),
        "ids": (["query_id", "positive_id", "negative_ids", "positive_score", "negative_scores", "negative_ranks"], n),
    }
    for fmt, (columns, rows) in shapes.items():
        ds = result.to_dataset(fmt)
        assert ds.column_names == columns and len(ds) == rows, fmt
        # The statistics travelling with a layout count that layout's rows.
        assert result.provenance(fmt)["st_hardneg"]["stats"]["output_rows"] == rows, fmt
    scored = result.to_dataset("n-tuple", output_scores=True)
    assert scored.column_names[-1] == "scores"
    margins = result.to_dataset("n-tuple-margins")[0]["label"]
    scores = scored[0]["scores"]
    assert margins == pytest.approx([scores[0] - scores[1], scores[0] - scores[2]])
    pair_scores = result.to_dataset("labeled-pair", output_scores=True)
    assert pair_scores.column_names == ["anchor", "positive", "score"]
    data = result.data
    resolved = resolve_ids(result.to_dataset("ids"), dict(zip(data.corpus_ids, data.corpus_texts)),
                           dict(zip(data.query_ids, data.query_texts)))
    assert resolved.to_dict() == result.to_dataset("n-tuple").to_dict()
    for file_format in ("arrow", "parquet", "jsonl"):
        result.save(tmp_path / file_format, "n-tuple", file_format, output_scores=True)
        loaded, record = load_mined(tmp_path / file_format)
        assert loaded.to_dict() == scored.to_dict(), file_format
        assert record["format"] == "n-tuple" and record["output_scores"] and record["stats"]["output_rows"] == n
    with pytest.raises(FileNotFoundError, match="not written by st-hardneg"):
        load_mined(tmp_path)


def test_the_users_column_names_are_kept(scifact, model, cache_dir):
    import datasets

    pairs = datasets.Dataset.from_dict({"question": [scifact.query_texts[q] for q, _ in scifact.pairs[:12]],
                                        "passage": [scifact.corpus_texts[d] for _, d in scifact.pairs[:12]]})
    result = mine(pairs, model, corpus=scifact.corpus_texts, num_negatives=2, cache_folder=cache_dir, verbose=False)
    assert result.to_dataset("n-tuple").column_names[:2] == ["question", "passage"]
    assert result.to_dataset("labeled-list").column_names == ["question", "passage", "labels"]


def test_bm25_can_be_its_own_teacher(scifact, model, cache_dir):
    from st_hardneg.candidates import BM25Retriever

    bm25 = BM25Retriever(show_progress=False)
    result = mine(scifact, model, retriever=bm25, teacher=bm25, filter=PositiveAwareFilter(relative_margin=None),
                  num_negatives=3, range_max=10, cache_folder=cache_dir, verbose=False)
    assert result.config["teachers"] == ["bm25[bm25s]"]
    indices, _ = bm25.search(scifact.query_texts, 40)
    positives = scifact.positives_by_query()
    for (q, _), negatives in zip(result.rows.pairs, result.negatives):
        expected = [int(d) for d in indices[q] if d >= 0 and d not in positives[q]][:3]
        assert negatives == expected  # BM25's own top-3 non-positive documents, in its order


def test_include_positives_lets_positives_be_candidates(scifact, model, cache_dir):
    result = mine(scifact, model, filter=PositiveAwareFilter(relative_margin=None), include_positives=True,
                  num_negatives=3, cache_folder=cache_dir, verbose=False)
    hits = sum(d in negs for (_, d), negs in zip(result.rows.pairs, result.negatives))
    assert hits > len(scifact.pairs) / 2  # a query's own positive usually ranks among its top 3


def test_a_query_is_never_its_own_negative(model, cache_dir):
    """Symmetric data (paraphrase pairs listed both ways): each query's own text is in the corpus, and is the
    closest document there is to it; unfiltered top-k would take it as the first negative."""
    from st_hardneg.data import from_pairs

    texts = ["how do cats purr", "why do cats purr", "what is faiss", "what does faiss do", "how tall is everest",
             "the height of mount everest", "is rain wet", "does rain make things wet"]
    queries = texts[0::2] + texts[1::2]
    data = from_pairs(queries, texts[1::2] + texts[0::2], corpus=texts)
    result = mine(data, model, filter=PositiveAwareFilter(relative_margin=None), num_negatives=3,
                  cache_folder=cache_dir, verbose=False)
    for (q, _), negatives in zip(result.rows.pairs, result.negatives):
        assert data.query_texts[q] not in {data.corpus_texts[d] for d in negatives}
    assert all(len(n) == 3 for n in result.negatives)  # the next documents take its place


def test_cross_encoder_teacher_is_always_used_and_sigmoid_normalised(scifact, model, cache_dir):
    # No cross-encoder ships offline: this one is built from the MiniLM weights with a seeded,
    # untrained head. It tests the code path, not the quality of the teacher.
    from sentence_transformers import CrossEncoder

    from st_hardneg.models import default_model_path

    torch.manual_seed(0)
    teacher = CrossEncoder(default_model_path(), num_labels=1, max_length=128)
    small = slice_data(scifact, 8, 450)
    # The untrained head scores everything near 0.5, so PercPos 95% would keep nothing; "strictly
    # below the positive" (a tiny absolute margin) exercises the same path with rows that get negatives.
    below_positive = PositiveAwareFilter(relative_margin=None, absolute_margin=1e-6)
    result = mine(small, model, teacher=teacher, filter=below_positive, num_negatives=2, range_max=10,
                  max_candidates=20, cache_folder=cache_dir, verbose=False)
    assert result.config["teachers"][0].startswith("cross-encoder")
    ids = result.to_dataset("ids")
    assert result.stats.short_rows <= 2  # a random head may score a positive below everything
    scores = [s for row in ids["negative_scores"] for s in row] + list(ids["positive_score"])
    assert all(0 < s < 1 for s in scores)
    dense_only = mine(small, model, num_negatives=2, range_max=10, cache_folder=cache_dir, verbose=False)
    assert list(ids["positive_score"]) != list(dense_only.to_dataset("ids")["positive_score"])  # rescored
    for row in ids:
        assert max(row["negative_scores"], default=0) < row["positive_score"]

    union = mine(small, model, teacher=[model, teacher], ensemble="union", filter=below_positive, num_negatives=4,
                 range_max=10, max_candidates=20, cache_folder=cache_dir, verbose=False)
    assert len(union.config["teachers"]) == 2
    # Round-robin, no de-duplication across teachers: slots 1 and 3 are the bi-encoder's own top-2.
    alone = mine(small, model, filter=below_positive, num_negatives=2, range_max=10, max_candidates=20,
                 cache_folder=cache_dir, verbose=False)
    full = [r for r, n in enumerate(union.negatives) if len(n) == 4]
    assert len(full) >= len(small.pairs) - 2
    for r in full:
        assert union.negatives[r][0::2] == alone.negatives[r]
        # One scale per row: the positive is the teachers' mean, and each negative keeps the margin it has
        # under the teacher that picked it (a sigmoid and a cosine are not comparable as they are).
        margins = [union.rows.positive_scores[r] - s for s in union.rows.negative_scores[r][0::2]]
        assert margins == pytest.approx([alone.rows.positive_scores[r] - s for s in alone.rows.negative_scores[r]],
                                        abs=1e-5)


class NaNTeacher:
    name = "broken-teacher"

    def score(self, queries, documents):
        return [np.full(len(d), np.nan, dtype=np.float32) for d in documents]


def test_bad_inputs_to_mine(scifact, model, cache_dir):
    from st_hardneg.teachers import _check_finite

    with pytest.raises(ValueError, match="NaN"):
        mine(slice_data(scifact, 3, 50), model, teacher=NaNTeacher(), cache_folder=cache_dir, verbose=False)
    with pytest.raises(ValueError, match="'t' returned a non-finite score for query #1"):
        _check_finite([np.zeros(2), np.array([np.nan])], "t", ["a", "b"])
    tiny = MiningData(["d1", "d2", "d3"], ["a", "b", "c"], ["q"], ["query"], [(0, 0)], "tiny")
    with pytest.raises(DataError, match="tiny: the corpus has 3 documents, too few to find 4 negatives"):
        mine(tiny, model, num_negatives=4, verbose=False)


def test_reused_retrieval_scores_are_checked_like_a_teachers(scifact, model, cache_dir, monkeypatch):
    """Without a teacher the exact index's scores are used as they are; a NaN among them is still an error."""
    from st_hardneg.candidates import DenseRetriever

    real = DenseRetriever.search

    def nan_search(self, queries, k):
        indices, scores = real(self, queries, k)
        scores[:, 1] = np.nan
        return indices, scores

    monkeypatch.setattr(DenseRetriever, "search", nan_search)
    with pytest.raises(ValueError, match="returned a non-finite score for query"):
        mine(slice_data(scifact, 3, 50), model, cache_folder=cache_dir, verbose=False)


@pytest.mark.parametrize("kwargs, message", [
    ({"output_format": "quadruplet"}, "unknown output_format 'quadruplet'"),
    ({"sampling_strategy": "best"}, "unknown sampling strategy 'best'"),
    ({"num_negatives": 0}, "num_negatives must be at least 1"),
    ({"range_max": 5, "filter": PositiveAwareFilter(range_min=5)}, "range_min must be smaller than range_max"),
    ({"range_max": 6, "num_negatives": 4, "filter": PositiveAwareFilter(range_min=3)}, "only 3 candidates remain"),
    ({"retriever": "sparse"}, "unknown retriever 'sparse'"),
    ({"index": "annoy"}, "unknown index 'annoy'"),
    ({"query_prompt_name": "nope"}, "prompt name 'nope' is not among the model's prompts"),
    ({"temperature": 0, "sampling_strategy": "sampled"}, "temperature must be > 0"),
])
def test_every_argument_is_checked_before_anything_is_encoded(kwargs, message, scifact, model, monkeypatch):
    def no_encoding(*args, **kw):
        raise AssertionError("encoded before the arguments were checked")

    monkeypatch.setattr(Embedder, "encode", no_encoding)
    with pytest.raises(ValueError, match=message):
        mine(scifact, model, verbose=False, **kwargs)


def test_old_argument_names_still_work_with_a_warning(scifact, model, cache_dir):
    small = slice_data(scifact, 6, 450)
    with pytest.warns(FutureWarning) as caught:
        old = mine(data=small, model=model, candidates=20, sampling="top", cache_dir=cache_dir, show_progress=False,
                   num_negatives=2)
    assert sorted(str(w.message).split("(")[1].split("=")[0] for w in caught) == [
        "cache_dir", "candidates", "data", "sampling", "show_progress"]
    assert "use cache_folder=... (sentence-transformers' name)" in " ".join(str(w.message) for w in caught)
    new = mine(small, model, range_max=20, sampling_strategy="top", cache_folder=cache_dir, verbose=False,
               num_negatives=2)
    assert old.negatives == new.negatives
    with pytest.raises(TypeError, match="unexpected keyword argument 'nonsense'"):
        mine(small, model, nonsense=1)
    with pytest.raises(TypeError, match=r"got both candidates= \(deprecated\) and range_max="):
        mine(small, model, candidates=20, range_max=30)


def test_seed_is_checked_and_none_draws_afresh(scifact, model, cache_dir, monkeypatch):
    with pytest.raises(ValueError, match="seed must be a non-negative integer or None"):
        mine(scifact, model, seed=-1, verbose=False)
    small = slice_data(scifact, 10, 450)
    kwargs = dict(num_negatives=3, sampling_strategy="sampled", cache_folder=cache_dir, verbose=False)
    draws = {tuple(map(tuple, mine(small, model, seed=None, **kwargs).negatives)) for _ in range(3)}
    assert len(draws) > 1 and mine(small, model, **kwargs).config["seed"] == 42


def test_include_positives_keeps_to_the_n_tuple_layout(scifact, model, cache_dir):
    small = slice_data(scifact, 6, 450)
    result = mine(small, model, include_positives=True, num_negatives=2, cache_folder=cache_dir, verbose=False)
    assert result.config["output_format"] == "n-tuple"  # from the default triplet, as sentence-transformers does
    assert len(result.to_dataset()) == len(small.pairs)
    with pytest.raises(ValueError, match="only the n-tuple and ids layouts keep that ranking"):
        result.to_dataset("labeled-pair")


def test_a_bm25_teacher_of_its_own_is_indexed(scifact, model, cache_dir):
    from st_hardneg.candidates import BM25Retriever

    result = mine(slice_data(scifact, 8, 450), model, teacher=BM25Retriever(show_progress=False),
                  filter=PositiveAwareFilter(relative_margin=None), num_negatives=2, cache_folder=cache_dir,
                  verbose=False)
    assert result.config["teachers"] == ["bm25[bm25s]"] and result.stats.short_rows == 0


def test_eci_of_a_mining_result_under_a_scorer(scifact, model, cache_dir):
    from st_hardneg import eci_score

    result = mine(slice_data(scifact, 8, 450), model, num_negatives=2, cache_folder=cache_dir, verbose=False)
    stored, rescored = eci_score(result), eci_score(result, model)
    assert rescored.scorer.startswith("bi-encoder") and len(rescored.query_ids) == len(stored.query_ids)
    assert rescored.eci == pytest.approx(stored.eci, rel=1e-3)  # the same model scored the same negatives


def test_an_interrupted_save_keeps_the_earlier_folder(scifact, model, cache_dir, tmp_path, monkeypatch):
    result = mine(slice_data(scifact, 6, 450), model, num_negatives=2, cache_folder=cache_dir, verbose=False)
    result.save(tmp_path / "out", "n-tuple")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    import datasets

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        result.save(tmp_path / "out", "triplet", overwrite=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no partial folder left behind


def test_an_existing_output_is_kept_unless_overwrite_and_the_sidecar_must_match_the_rows(scifact, model, cache_dir,
                                                                                           tmp_path):
    import datasets

    result = mine(slice_data(scifact, 6, 450), model, num_negatives=4, cache_folder=cache_dir, verbose=False)
    result.save(tmp_path / "out", "n-tuple")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    with pytest.raises(FileExistsError, match=r"out: already exists and is not empty; pass --overwrite"):
        result.save(tmp_path / "out", "triplet")
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    result.save(tmp_path / "out", "triplet", overwrite=True)
    assert load_mined(tmp_path / "out")[1]["format"] == "triplet"

    # Rows with 2 negatives next to a sidecar saying 4: rewritten after mining, or half of a failed write.
    result.save(tmp_path / "four", "n-tuple")
    sidecar = (tmp_path / "four" / "st_hardneg.json").read_text()
    two = datasets.load_from_disk(str(tmp_path / "four")).remove_columns(["negative_3", "negative_4"])
    two.save_to_disk(str(tmp_path / "two"))
    for path in (tmp_path / "two").iterdir():
        if path.suffix == ".arrow":
            (tmp_path / "four" / path.name).write_bytes(path.read_bytes())
    assert (tmp_path / "four" / "st_hardneg.json").read_text() == sidecar
    with pytest.raises(DataError, match=r"st_hardneg.json: the data files do not match the sidecar"):
        load_mined(tmp_path / "four")


def test_provenance_records_no_local_path(scifact, cache_dir, tmp_path):
    import json
    import re
    import sys

    from sentence_transformers import SentenceTransformer

    from st_hardneg.embeddings import model_fingerprint
    from st_hardneg.models import default_model_path

    local = SentenceTransformer(default_model_path())  # loaded from a folder: it knows only its path
    local.max_seq_length = 64
    result = mine(slice_data(scifact, 4, 100), local, num_negatives=2, cache_folder=cache_dir, verbose=False)
    assert result.config["model"]["name"] == f"model@{model_fingerprint(local)[:12]}"
    assert re.fullmatch(r"beir:scifact_sample@[0-9a-f]{12}#train\[slice\]", result.config["data"]["source"])
    recorded = json.dumps(result.provenance())
    assert default_model_path() not in recorded and sys.prefix not in recorded
    assert str(Path(__file__).resolve().parents[1]) not in recorded
