"""Loading inputs: real BEIR data, pairs, datasets; every bad input names its file and line or field."""

import json

import datasets
import pytest

from st_hardneg.beir import load_beir
from st_hardneg.data import DataError, from_dataset, from_pairs
from st_hardneg.sources import load_data


def test_scifact_sample_loads_with_crlf_qrels(scifact, sample_dir):
    raw = (sample_dir / "qrels" / "train.tsv").read_bytes()
    assert b"\r\n" in raw  # the test is meaningful only on CRLF input
    assert len(scifact.corpus_ids) == 450
    assert len(scifact.query_ids) == 60 and len(scifact.pairs) == 70
    assert not any(d.endswith("\r") for d in scifact.corpus_ids + scifact.query_ids)
    by_query = scifact.positives_by_query()
    assert max(len(v) for v in by_query.values()) > 1  # several positives per query exist


def write_beir(tmp_path, corpus, queries, qrels):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text("\n".join(corpus) + "\n")
    (tmp_path / "queries.jsonl").write_text("\n".join(queries) + "\n")
    (tmp_path / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\r\n" + "".join(q + "\r\n" for q in qrels))
    return tmp_path


GOOD_CORPUS = ['{"_id": "d1", "title": "T", "text": "one"}', '{"_id": "d2", "text": "two"}', '{"_id": "d3", "text": "three"}']
GOOD_QUERIES = ['{"_id": "q1", "text": "first"}', '{"_id": "q2", "text": "second"}']


def test_small_beir_folder(tmp_path):
    data = load_beir(write_beir(tmp_path, GOOD_CORPUS, GOOD_QUERIES, ["q1\td1\t1", "q1\td2\t1", "q2\td3\t0"]))
    assert data.corpus_texts[0] == "T one"
    assert data.query_ids == ["q1"] and data.pairs == [(0, 0), (0, 1)]
    assert data.skipped == {"queries_without_positives": 1}


@pytest.mark.parametrize(
    "corpus, queries, qrels, message",
    [
        (GOOD_CORPUS[:1] + ['{"_id": "d2", "text": '], GOOD_QUERIES, ["q1\td1\t1"], r"corpus.jsonl:2: malformed JSON"),
        (GOOD_CORPUS + ['{"text": "no id"}'], GOOD_QUERIES, ["q1\td1\t1"], r"corpus.jsonl:4: missing field '_id'"),
        (GOOD_CORPUS + ['{"_id": "d1", "text": "again"}'], GOOD_QUERIES, ["q1\td1\t1"], r"corpus.jsonl:4: duplicate id 'd1' \(first seen on line 1\)"),
        (GOOD_CORPUS + ['{"_id": "d9", "text": "  "}'], GOOD_QUERIES, ["q1\td1\t1"], r"corpus.jsonl:4: field 'text': the text is empty"),
        (GOOD_CORPUS, GOOD_QUERIES + ['{"_id": "q3", "text": 5}'], ["q1\td1\t1"], r"queries.jsonl:3: field 'text' must be a string"),
        (GOOD_CORPUS, GOOD_QUERIES, ["q1\td1\t1", "q1\tnope\t1"], r"train.tsv:3: corpus id 'nope' is not in"),
        (GOOD_CORPUS, GOOD_QUERIES, ["q9\td1\t1"], r"train.tsv:2: query id 'q9' is not in"),
        (GOOD_CORPUS, GOOD_QUERIES, ["q1\td1"], r"train.tsv:2: expected 3 tab-separated columns"),
        (GOOD_CORPUS, GOOD_QUERIES, ["q1\td1\thigh"], r"train.tsv:2: score 'high' is not a number"),
    ],
)
def test_bad_beir_input_names_file_and_line(tmp_path, corpus, queries, qrels, message):
    folder = write_beir(tmp_path, corpus, queries, qrels)
    with pytest.raises(DataError, match=message):
        load_beir(folder)


def test_query_without_positive_can_be_an_error(tmp_path):
    folder = write_beir(tmp_path, GOOD_CORPUS, GOOD_QUERIES, ["q1\td1\t1", "q2\td3\t0"])
    with pytest.raises(DataError, match=r"train.tsv:3: query 'q2' has no judgment with score > 0"):
        load_beir(folder, missing_positives="error")


def test_missing_split_lists_the_available_ones(tmp_path):
    folder = write_beir(tmp_path, GOOD_CORPUS, GOOD_QUERIES, ["q1\td1\t1"])
    with pytest.raises(DataError, match=r"test.tsv: file not found .*\['train'\]"):
        load_beir(folder, "test")


def test_pairs_share_ids_by_text_and_add_positives_to_corpus():
    data = from_pairs(["q", "q", "r"], ["p1", "p2", "p1"], corpus=["c1", "p1", "c1"])
    assert data.corpus_texts == ["c1", "p1", "p2"]  # de-duplicated, missing positive appended
    assert data.positives_by_query() == {0: [1, 2], 1: [1]}


def test_pairs_match_positives_by_id_not_text(caplog):
    data = from_pairs(["q"], ["P one (reformatted)"], corpus=["P one", "other"], corpus_ids=["a", "b"], positive_ids=["a"])
    assert data.pairs == [(0, 0)] and data.corpus_texts == ["P one", "other"]
    assert "1 corpus ids matched an entry with a different text" in caplog.text


def test_positive_by_id_only():
    data = from_pairs(["q"], [None], corpus=["P one", "other"], corpus_ids=["a", "b"], positive_ids=["a"])
    assert data.pairs == [(0, 0)]


@pytest.mark.parametrize(
    "queries, positives, kwargs, message",
    [
        (["q", 3], ["p", "p"], {}, r"row 1, query: expected a string, got int"),
        (["q", ""], ["p", "p"], {}, r"row 1, query: the text is empty"),
        (["q"], [["p"]], {}, r"row 0, positive: expected a string, got list"),
        (["q", "r"], ["p", None], {"missing_positives": "error"}, r"row 1: the positive is missing"),
        (["q"], ["p"], {"corpus": ["a", "a"], "corpus_ids": ["x", "x"]}, r"corpus\[1\]: duplicate corpus id 'x'"),
        (["q"], ["p", "p"], {}, r"1 queries but 2 positives"),
    ],
)
def test_bad_pairs(queries, positives, kwargs, message):
    with pytest.raises(DataError, match=message):
        from_pairs(queries, positives, **kwargs)


def test_pairs_without_positive_are_skipped_and_counted():
    data = from_pairs(["q", "r", "s"], ["p", None, " "])
    assert data.pairs == [(0, 0)] and data.skipped == {"pairs_without_positive": 2}


def test_dataset_columns_and_errors():
    ds = datasets.Dataset.from_dict({"query_id": ["1", "2"], "answer": ["x", "y"], "query": ["a", "b"]})
    data = from_dataset(ds)  # as sentence-transformers: the first two (text) columns, wherever their names
    assert data.query_ids == ["1", "2"] and data.query_texts == ["x", "y"] and data.corpus_texts == ["a", "b"]
    assert data.columns == ("answer", "query")
    named = from_dataset(ds, anchor_column_name="query", positive_column_name="answer")
    assert named.query_texts == ["a", "b"] and named.columns == ("query", "answer")
    with pytest.raises(DataError, match=r"no positive column 'missing'"):
        from_dataset(ds, positive_column_name="missing")
    with pytest.raises(DataError, match="the dataset is empty"):
        from_dataset(ds.select([]))


def test_load_data_from_jsonl_file(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps({"anchor": f"q{i}", "positive": f"p{i}"}) for i in range(3)))
    assert len(load_data(path).pairs) == 3
    with pytest.raises(DataError, match="unsupported file type"):
        load_data(tmp_path / "x.xml" if (tmp_path / "x.xml").write_text("<a/>") else None)
    with pytest.raises(DataError, match="not a BEIR folder"):
        load_data(tmp_path / "absent")


def test_a_label_or_score_column_is_a_judgment_and_non_relevant_rows_are_not_positives():
    labeled = datasets.Dataset.from_dict({"query": ["q1", "q1", "q2"], "document": ["relevant", "NOT relevant", "two"],
                                          "label": [1, 0, 1]})
    data = load_data(labeled)
    assert [(data.query_texts[q], data.corpus_texts[d]) for q, d in data.pairs] == [("q1", "relevant"), ("q2", "two")]
    assert data.skipped == {"pairs_with_label_at_most_0": 1}
    graded = datasets.Dataset.from_dict({"query": ["q1", "q1", "q2"], "document": ["a", "b", "c"],
                                         "score": [2.0, 1.0, 2.0]})
    assert len(load_data(graded).pairs) == 3
    strict = load_data(graded, relevance_threshold=1)
    assert [strict.corpus_texts[d] for _, d in strict.pairs] == ["a", "c"]
    with pytest.raises(DataError, match="no row has score > 2, so there is no positive"):
        load_data(graded, relevance_threshold=2)


def test_tsv_and_csv_files_keep_every_text_as_written(tmp_path):
    """A TSV is not CSV-quoted (a leading quote is text), and "NA" or "null" are texts, not missing values."""
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text('query\tpositive\nq1\t"quoted" start\nq2\t"unbalanced start\nq3\tNA\nq4\tplain\n')
    data = load_data(tsv)
    assert [data.corpus_texts[d] for _, d in data.pairs] == ['"quoted" start', '"unbalanced start', "NA", "plain"]
    assert not data.skipped
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text('query,positive\nq1,null\nq2,"a, b"\n')
    data = load_data(csv_file)
    assert [data.corpus_texts[d] for _, d in data.pairs] == ["null", "a, b"]  # CSV quoting still applies


# --- issue 11, bad input: silently wrong data -------------------------------------------------------

BAD = __import__("pathlib").Path(__file__).parent / "data" / "bad_input"


def tiny_beir(tmp_path, qrels=None):
    import shutil

    folder = tmp_path / "beir"
    shutil.copytree(BAD / "beir", folder)
    if qrels:
        shutil.copyfile(BAD / qrels, folder / "qrels" / "train.tsv")
    return folder


def test_a_guessed_column_is_never_the_column_already_taken():
    # sentence-transformers' rule (positive = second column) made the positive the anchor itself here.
    ds = datasets.Dataset.from_dict({"id": [1, 2], "question": ["a", "b"], "context": ["x", "y"]})
    data = from_dataset(ds, anchor_column_name="question")
    assert data.columns == ("question", "context") and data.corpus_texts == ["x", "y"]
    assert from_dataset(ds).columns == ("question", "context")  # an id column is never a text to mine
    pairs = datasets.Dataset.from_dict({"query": ["a", "b"], "doc": ["x", "y"]})
    assert from_dataset(pairs, positive_column_name="query").columns == ("doc", "query")
    triplets = datasets.Dataset.from_dict({"positive": ["x"], "anchor": ["a"], "negative": ["n"]})
    assert from_dataset(triplets).columns == ("anchor", "positive")  # named for their roles, whatever the order


def test_graded_qrels_keep_their_score_and_the_threshold_is_explicit(tmp_path):
    folder = tiny_beir(tmp_path, "qrels_graded.tsv")  # q1: d1 1, d2 0.5, d4 0; q2: d3 0.5 only
    data = load_beir(folder)
    positives = {data.query_ids[q]: [data.corpus_ids[d] for d in docs] for q, docs in data.positives_by_query().items()}
    assert positives == {"q1": ["d1", "d2"], "q2": ["d3"]}  # 0.5 was truncated to 0: d2 became a negative
    strict = load_beir(folder, relevance_threshold=0.5)
    assert strict.query_ids == ["q1"] and strict.skipped == {"queries_without_positives": 1}
    with pytest.raises(DataError, match=r"train.tsv:5: query 'q2' has no judgment with score > 0.5"):
        load_beir(folder, relevance_threshold=0.5, missing_positives="error")
    assert load_data(folder, relevance_threshold=0.5).pairs == strict.pairs


def test_a_bom_on_a_qrels_file_is_accepted(tmp_path):
    folder = tiny_beir(tmp_path, "qrels_bom.tsv")
    assert (folder / "qrels" / "train.tsv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert len(load_beir(folder).pairs) == 2


def test_provenance_names_local_sources_without_their_path(tmp_path, scifact):
    import re

    assert re.fullmatch(r"beir:scifact_sample@[0-9a-f]{12}#train", scifact.source)
    pairs = load_data(BAD / "pairs_query_doc.jsonl")
    assert re.fullmatch(r"pairs_query_doc\.jsonl@[0-9a-f]{12}", pairs.source)
    # The hash is of the content: the same files elsewhere give the same name, other files another.
    assert load_beir(tiny_beir(tmp_path)).source == load_beir(BAD / "beir").source
    assert load_beir(tiny_beir(tmp_path / "2", "qrels_graded.tsv")).source != load_beir(BAD / "beir").source
