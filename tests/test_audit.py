"""The label audit: evidence layout, rules, calibration, the report's files and corrections, relabelled mining."""

import csv
import json

import numpy as np
import pytest

from st_hardneg import DataError, OptionError, mine
from st_hardneg.audit import LabelAudit, audit_labels, judge
from st_hardneg.audit.calibration import labelled_probability, relevance_probability
from st_hardneg.audit.detectors import embedding_outliers, missing_label_votes, wrong_label_votes
from st_hardneg.audit.evidence import lay_out
from st_hardneg.beir import read_qrels
from st_hardneg.data import MiningData


def tiny_evidence():
    """Two queries; q0 has positives d0, d1, d2, candidates d3, d4; q1 has positive d5, candidates d0, d6."""
    data = MiningData([f"d{i}" for i in range(7)], [f"text {i}" for i in range(7)], ["q0", "q1"], ["a", "b"],
                      [(0, 0), (0, 1), (0, 2), (1, 5)])
    indices = np.array([[3, 0, 4, -1], [6, 5, 0, -1]])
    student = np.array([[0.95, 0.9, 0.5, -np.inf], [0.2, 0.7, 0.69, -np.inf]])
    teacher = np.array([[0.7, 0.9, 0.1, -np.inf], [0.1, 0.6, 0.8, -np.inf]])
    positive_scores = [[np.array([0.9, 0.8, 0.3]), np.array([0.7])], [np.array([0.9, 0.85, 0.2]), np.array([0.6])]]
    emb = np.eye(7)
    emb[1] = emb[0]  # d0 and d1 identical; d2 orthogonal to both
    return lay_out(data, ["student", "teacher"], [0, 1], indices, [student, teacher], positive_scores, emb, k=4)


def test_evidence_lists_every_positive_and_each_unlabelled_candidate_once():
    ev = tiny_evidence()
    assert [(int(q), int(d), bool(lab)) for q, d, lab in zip(ev.query, ev.doc, ev.labelled)] == [
        (0, 0, True), (0, 1, True), (0, 2, True), (0, 3, False), (0, 4, False),
        (1, 5, True), (1, 6, False), (1, 0, False)]
    # Positives keep their own scores, not the candidate copy's; ranks are among the query's items.
    assert ev.scores[0].tolist() == [0.9, 0.8, 0.3, 0.95, 0.5, 0.7, 0.2, 0.69]
    assert ev.ranks[0].tolist() == [2, 3, 5, 1, 4, 1, 3, 2]
    assert ev.above[0].tolist() == [1, 1, 2, 0, 1, 0, 1, 0]  # unlabelled candidates scoring higher
    assert ev.retrieved.tolist() == [True, False, False, True, True, True, True, True]
    # A positive is compared with its query's other positives; a candidate with all of them.
    assert ev.ref_low[0, :5].tolist() == [0.3, 0.3, 0.8, 0.3, 0.3]
    assert ev.ref_median[0, 2] == pytest.approx(0.85)
    assert np.isnan(ev.ref_low[0, 5]) and ev.ref_low[0, 6] == 0.7
    assert ev.positive_cosine[:3].tolist() == [0.5, 0.5, 0.0]
    assert np.isnan(ev.positive_cosine[5])  # q1's only positive has no other to compare with


def test_rules_count_the_models_that_agree():
    ev = tiny_evidence()
    within, above = missing_label_votes(ev, margin=0.05)
    # d3 beats q0's median positive under the student only; q1's d0 is within 5% of q1's positive
    # under the student and above it under the teacher.
    assert within.tolist() == [0, 0, 0, 1, 0, 0, 0, 2] and above.tolist() == [0, 0, 0, 1, 0, 0, 0, 1]
    within_student, _ = missing_label_votes(ev, margin=0.0, models=[0])
    assert within_student.tolist() == [0, 0, 0, 1, 0, 0, 0, 0]
    # d2: outscored by 2 candidates (student) and 1 (teacher), far under the median of d0, d1;
    # d5 (no other positive): outscored by q1's d0 under the teacher.
    assert wrong_label_votes(ev, rank=1, far=0.2).tolist() == [0, 0, 2, 0, 0, 1, 0, 0]
    assert wrong_label_votes(ev, rank=2, far=0.2).tolist() == [0, 0, 1, 0, 0, 0, 0, 0]
    assert wrong_label_votes(ev, rank=3, far=0.2).tolist() == [0] * 8


def test_embedding_outliers_use_the_modified_z_score():
    data = MiningData([f"d{i}" for i in range(6)], ["t"] * 6, ["q"], ["q"], [(0, d) for d in range(5)])
    rng = np.random.default_rng(0)
    base = rng.normal(size=16)
    emb = np.stack([base + 0.1 * rng.normal(size=16) for _ in range(4)] + [rng.normal(size=16), base])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ev = lay_out(data, ["student"], [0], np.array([[5]]), [np.array([[0.1]])], [[np.linspace(0.9, 0.5, 5)]], emb, 1)
    z = embedding_outliers(ev)
    assert np.argmin(np.nan_to_num(z[:5], nan=0)) == 4 and z[4] < -3.5
    assert (z[:4] > -3.5).all() and np.isnan(z[5])


def test_calibrated_probability_separates_and_is_out_of_fold():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(200), 11)
    relevant = np.tile([True] * 3 + [False] * 8, 200)
    labelled = relevant & (rng.random(len(groups)) < 0.6)  # 60% of relevant documents carry a label
    x = rng.normal(size=(len(groups), 2)) + np.where(relevant, 2.5, 0.0)[:, None]
    g, c = labelled_probability(x, labelled, groups)
    _, unlabelled_relevant = relevance_probability(g, c)
    assert 0.4 < c < 0.8  # P(labelled | relevant) is 0.6 by construction
    hidden = relevant & ~labelled
    # Among unlabelled rows, the posterior is calibrated: about right on average for either class.
    assert unlabelled_relevant[hidden].mean() > 0.6 and unlabelled_relevant[~relevant].mean() < 0.15
    expected = hidden.sum() / (~labelled).sum()
    assert abs(unlabelled_relevant[~labelled].mean() - expected) < 0.05
    with pytest.raises(ValueError, match="needs both labelled positives and unlabelled"):
        labelled_probability(x[:5], np.ones(5, bool), groups[:5])


@pytest.fixture(scope="module")
def planted(scifact, model):
    """The sample with a planted missing label (an unlabelled near-copy of the positive the model finds
    most clearly relevant) and a planted wrong label (an unrelated abstract labelled for a query)."""
    ids, texts = list(scifact.corpus_ids), list(scifact.corpus_texts)
    q_emb = model.encode([scifact.query_texts[q] for q, _ in scifact.pairs], normalize_embeddings=True)
    d_emb = model.encode([scifact.corpus_texts[d] for _, d in scifact.pairs], normalize_embeddings=True)
    q_copy, d_copy = scifact.pairs[int(np.argmax((q_emb * d_emb).sum(axis=1)))]
    ids.append("copy-of-" + scifact.corpus_ids[d_copy])
    texts.append(scifact.corpus_texts[d_copy].replace(". ", "; ", 3).upper())
    q_wrong = scifact.pairs[5][0]
    positives = {d for q, d in scifact.pairs if q == q_wrong}
    d_wrong = next(d for d in range(len(ids) - 1, 0, -7) if d not in positives and d < len(scifact.corpus_ids))
    pairs = list(scifact.pairs) + [(q_wrong, d_wrong)]
    data = MiningData(ids, texts, scifact.query_ids, scifact.query_texts, pairs, "planted")
    return data, (scifact.query_ids[q_copy], ids[-1]), (scifact.query_ids[q_wrong], ids[d_wrong])


@pytest.fixture(scope="module")
def audit(planted, model, cache_dir):
    data, _, _ = planted
    return audit_labels(data, model, teacher=model, k=30, cache_folder=cache_dir, verbose=False)


def test_planted_errors_are_flagged_with_evidence_near_the_top(audit, planted):
    _, copy, wrong = planted
    missing = [f for f in audit.flags if f["kind"] == "missing"]
    wrongs = [f for f in audit.flags if f["kind"] == "wrong"]
    found = {(f["query_id"], f["doc_id"]): f for f in audit.flags}
    assert found[copy]["kind"] == "missing" and found[copy]["votes"] == 2
    assert found[copy]["reason"] in ("at or above the positive", "within 5% of the positive")
    # Confidence ranks it with the most likely missing labels (a copy of a clearly relevant document).
    assert found[copy]["confidence"] >= 0.5
    assert [(f["query_id"], f["doc_id"]) for f in missing].index(copy) < len(missing) // 10
    assert found[wrong]["kind"] == "wrong" and "10+ candidates above" in found[wrong]["reason"]
    assert [(f["query_id"], f["doc_id"]) for f in wrongs[:3]].count(wrong) == 1
    assert found[wrong]["ranks"][0] > 10 and len(found[wrong]["scores"]) == 2
    confidences = [f["confidence"] for f in audit.flags]
    assert confidences == sorted(confidences, reverse=True) and all(0 <= c <= 1 for c in confidences)
    assert audit.models["student"] == "sentence-transformers/all-MiniLM-L6-v2" and "teacher" in audit.models


def test_judge_on_a_subset_of_models_counts_only_their_votes():
    ev = tiny_evidence()
    missing = lambda audit: {f["doc_id"] for f in audit.flags if f["kind"] == "missing"}
    assert missing(judge(ev, models=[0], margin=0.0)) == {"d3"}
    assert missing(judge(ev, margin=0.0)) == set()  # both models must agree by default
    assert missing(judge(ev, margin=0.0, min_votes=1)) == {"d3", "d0"}
    both = judge(ev, margin=0.05, wrong_rank=1)
    assert [f["doc_id"] for f in both.flags if f["kind"] == "wrong"] == ["d2"]
    assert both.settings["min_votes"] == 2 and judge(ev, models=[1]).settings["min_votes"] == 1
    with pytest.raises(OptionError, match="min_votes must be between 1 and the number of models"):
        judge(ev, min_votes=3)


def test_review_files_summary_and_corrected_labels(audit, planted, tmp_path):
    data, copy, wrong = planted
    audit.save(tmp_path / "audit")
    rows = [json.loads(line) for line in (tmp_path / "audit" / "review.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(audit.flags) and rows[0]["confidence"] >= rows[-1]["confidence"]
    assert {"query", "document", "student score", "teacher rank", "reason", "votes"} <= set(rows[0])
    assert all(len(r["document"]) <= 300 for r in rows)
    with open(tmp_path / "audit" / "review.csv", encoding="utf-8", newline="") as fh:
        assert [r["doc_id"] for r in csv.DictReader(fh)] == [r["doc_id"] for r in rows]
    assert "likely missing labels" in (tmp_path / "audit" / "summary.txt").read_text(encoding="utf-8")

    fixed = audit.corrected_data(threshold=0.0)
    added, removed = audit.corrections(threshold=0.0)
    assert copy in added and wrong in removed
    pair_ids = {(fixed.query_ids[q], fixed.corpus_ids[d]) for q, d in fixed.pairs}
    assert copy in pair_ids and wrong not in pair_ids
    assert len(fixed.pairs) == len(data.pairs) + len(added) - len(removed)
    qrels = {(q, d) for _, q, d, s in read_qrels(tmp_path / "audit" / "qrels" / "corrected.tsv")}
    at_default = audit.corrected_data()
    assert qrels == {(at_default.query_ids[q], at_default.corpus_ids[d]) for q, d in at_default.pairs}

    from st_hardneg import load_beir

    beir = load_beir(audit.write_beir(tmp_path / "beir", threshold=0.0), "train")
    assert {(beir.query_ids[q], beir.corpus_ids[d]) for q, d in beir.pairs} == pair_ids
    assert len(beir.corpus_ids) == len(data.corpus_ids)

    back = LabelAudit.load(tmp_path / "audit", data)
    assert back.flags == audit.flags and back.models == audit.models
    assert back.corrected_data(threshold=0.0).pairs == fixed.pairs
    with pytest.raises(OptionError, match="threshold must be a probability"):
        audit.corrections(threshold=1.5)


def test_a_broken_or_foreign_audit_file_is_named(tmp_path, scifact):
    bad = tmp_path / "audit.json"
    bad.write_text('{"format": "st-hardneg label audit",\n "flags": [', encoding="utf-8")
    with pytest.raises(DataError, match=r"audit.json: line 2: not valid JSON"):
        LabelAudit.load(tmp_path)
    with pytest.raises(DataError, match="no label audit here"):
        LabelAudit.load(tmp_path / "nowhere")
    flags = [{"kind": "missing", "query_id": "no-such-query", "doc_id": scifact.corpus_ids[0], "confidence": 0.9}]
    audit = LabelAudit(flags, {"student": "m"}, {}, {"c": 0.5}, {"queries": 1, "positives": 1, "candidates": 1})
    with pytest.raises(DataError, match="flags query id 'no-such-query', which this data does not have"):
        audit.corrected_data(scifact)


def test_mining_with_relabel_turns_a_false_negative_into_a_positive(audit, planted, model, cache_dir):
    data, copy, wrong = planted
    plain = mine(data, model, num_negatives=3, cache_folder=cache_dir, verbose=False)
    fixed = mine(data, model, num_negatives=3, cache_folder=cache_dir, verbose=False, relabel=audit,
                 relabel_threshold=0.0)
    rows = fixed.to_dataset("ids")
    assert copy in set(zip(rows["query_id"], rows["positive_id"]))
    assert wrong not in set(zip(rows["query_id"], rows["positive_id"]))
    assert wrong in set(zip(*plain.to_dataset("ids").select_columns(["query_id", "positive_id"]).to_dict().values()))
    for row in rows:
        if row["query_id"] == copy[0]:
            assert copy[1] not in row["negative_ids"]
    record = fixed.config["audit"]
    assert record["added_positives"] >= 1 and record["removed_positives"] >= 1 and record["threshold"] == 0.0
    assert "audit" not in plain.config


def test_bad_audit_options_are_named(scifact, model):
    with pytest.raises(OptionError, match="k must be a positive integer"):
        audit_labels(scifact, model, k=0)
    with pytest.raises(OptionError, match="margin must be between 0 and 1"):
        audit_labels(scifact, model, margin=2)


def test_the_card_of_a_relabelled_dataset_reports_the_audit(audit, planted, model, cache_dir):
    from huggingface_hub import DatasetCard

    from st_hardneg.cards import render_dataset_card

    data, _, _ = planted
    fixed = mine(data, model, num_negatives=2, cache_folder=cache_dir, verbose=False, relabel=audit,
                 relabel_threshold=0.9, output_format="n-tuple")
    record = fixed.provenance("n-tuple")["st_hardneg"]
    text = DatasetCard(str(render_dataset_card(record, "tester/hn", columns=["anchor", "positive"]))).text
    changes = audit.provenance(0.9, data=data)
    assert changes == record["config"]["audit"]
    assert "## Label audit" in text and "Flags with confidence ≥ 0.9 were applied" in text
    assert f"| {audit.summary()['missing']['flags']} | {changes['added_positives']} added as positives |" in text
    assert f"| {audit.summary()['wrong']['flags']} | {changes['removed_positives']} removed |" in text
    assert changes["added_positives"] >= 1 and changes["removed_positives"] >= 1
    if changes["kept_last_positive"]:
        assert "would have removed a query's last positive" in text
    plain = mine(data, model, num_negatives=2, cache_folder=cache_dir, verbose=False, output_format="n-tuple")
    plain_text = str(render_dataset_card(plain.provenance("n-tuple")["st_hardneg"], "tester/hn", columns=["a"]))
    assert "Label audit" not in plain_text


def test_cli_audit_writes_its_files_and_mine_relabels_from_them(tmp_path):
    import subprocess
    import sys

    base = [sys.executable, "-m", "st_hardneg.cli"]
    common = ["--max-seq-length", "64", "--cache-folder", str(tmp_path / "cache"), "--quiet"]
    proc = subprocess.run([*base, "audit", "--k", "20", "--output", str(tmp_path / "audit"), "--write-corrected",
                           str(tmp_path / "corrected"), *common],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "likely missing labels" in proc.stdout
    for name in ("audit.json", "review.jsonl", "review.csv", "summary.txt", "qrels/corrected.tsv"):
        assert (tmp_path / "audit" / name).is_file(), name
    corrected = (tmp_path / "corrected" / "qrels" / "train.tsv").read_text(encoding="utf-8")
    assert corrected == (tmp_path / "audit" / "qrels" / "corrected.tsv").read_text(encoding="utf-8")
    mined = subprocess.run([*base, "mine", "--relabel", str(tmp_path / "audit"), "--relabel-threshold", "0.5",
                            "--output", str(tmp_path / "mined"), *common], capture_output=True, text=True, timeout=600, check=False)
    assert mined.returncode == 0, mined.stderr[-2000:]
    sidecar = json.loads((tmp_path / "mined" / "st_hardneg.json").read_text())["st_hardneg"]
    assert sidecar["config"]["audit"]["threshold"] == 0.5 and "(audited: +" in sidecar["config"]["data"]["source"]
    again = subprocess.run([*base, "audit", "--output", str(tmp_path / "audit"), *common], capture_output=True,
                           text=True, timeout=600, check=False)
    assert again.returncode == 2 and "already exists" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    bad = subprocess.run([*base, "mine", "--relabel", str(tmp_path / "nowhere"), "--output", str(tmp_path / "m2"),
                          *common], capture_output=True, text=True, timeout=600, check=False)
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
        (f"st-hardneg: error: {tmp_path / 'nowhere'}: no label audit here (expected a folder with audit.json, "
         "written by `st-hardneg audit`)")]


def test_too_few_queries_to_calibrate_gives_no_confidence_and_changes_nothing(caplog):
    ev = tiny_evidence()
    one = lay_out(ev.data, ["student"], [0], np.array([[3, 0, 4, -1]]), [np.array([[0.95, 0.9, 0.5, -np.inf]])],
                  [[np.array([0.9, 0.8, 0.3])]], None, k=4)
    with caplog.at_level("WARNING"):
        audit = judge(one, margin=0.05, wrong_rank=1, min_votes=1)
    assert audit.flags and all(np.isnan(f["confidence"]) for f in audit.flags)
    assert "have no confidence" in caplog.text
    assert audit.corrections(threshold=0.0) == ([], [])


def test_a_query_keeps_its_last_positive_and_the_counts_are_the_real_changes(scifact):
    q, d = scifact.pairs[0]
    only = [p for p in scifact.pairs if p[0] == q]
    assert len(only) == 1, "the sample's first query has one positive"
    other = next(i for i in range(len(scifact.corpus_ids)) if i != d)
    flag = {"query_id": scifact.query_ids[q], "confidence": 0.99, "reason": "r", "votes": 1, "scores": [0.1],
            "ranks": [50], "positive_scores": [None]}
    wrong = {**flag, "kind": "wrong", "doc_id": scifact.corpus_ids[d]}
    audit = LabelAudit([wrong], {"student": "m"}, {}, {"c": 0.5}, {"queries": 1, "positives": 1, "candidates": 1},
                       data=scifact)
    fixed = audit.corrected_data()
    assert (q, d) in fixed.pairs and fixed.skipped["wrong-label flags not applied: the query's last positive"] == 1
    assert audit.provenance()["removed_positives"] == 0 and audit.provenance()["kept_last_positive"] == 1
    # With a missing label added to the same query, the wrong one can go; duplicates count once.
    missing = {**flag, "kind": "missing", "doc_id": scifact.corpus_ids[other]}
    audit.flags = [wrong, missing, dict(missing)]
    fixed = audit.corrected_data()
    assert (q, d) not in fixed.pairs and (q, other) in fixed.pairs
    record = audit.provenance()
    assert (record["added_positives"], record["removed_positives"], record["kept_last_positive"]) == (1, 1, 0)
    unknown = {**missing, "doc_id": "no-such-doc"}
    audit.flags = [unknown]
    with pytest.raises(DataError, match="flags document id 'no-such-doc', which this corpus does not have"):
        audit.corrected_data()


def test_empty_review_files_and_incomplete_records_are_clear(tmp_path, scifact):
    audit = LabelAudit([], {"student": "m", "teacher": "t"}, {}, {"c": 0.5},
                       {"queries": 1, "positives": 1, "candidates": 0}, data=scifact)
    audit.write_review(tmp_path / "r.csv")
    header = (tmp_path / "r.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert "teacher rank" in header and "student score" in header
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "audit.json").write_text(json.dumps({"format": "st-hardneg label audit", "flags": []}),
                                               encoding="utf-8")
    with pytest.raises(DataError, match=r"audit.json: the audit record lacks \['models'"):
        LabelAudit.load(tmp_path / "a")


def test_relabel_threshold_without_an_audit_is_a_usage_error(scifact, model):
    with pytest.raises(OptionError, match="relabel_threshold needs relabel"):
        mine(scifact, model, relabel_threshold=0.5, verbose=False)
