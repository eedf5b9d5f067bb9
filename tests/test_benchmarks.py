"""The quality benchmark's compute accounting (benchmarks/bench_quality.py): what each row is charged."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_total_compute_charges_cold_mining_and_training_at_the_measured_rate():
    import bench_quality

    def row(strategy, mining_cpu, rows):
        return {"strategy": strategy, "dataset": "d", "mining_cpu_seconds": mining_cpu,
                "runs": {1: {"train_rows": rows}, 2: {"train_rows": rows}}}

    table = {"2": row("in-batch", None, 100), "3": row("st-percpos", 50.0, 80), "5": row("hybrid-teacher", 900.0, 90),
             "7": row("hybrid-teacher", 2.0, 90), "12": row("st-percpos", None, 80), "18": row("hybrid-teacher", 1.0, 90),
             "21": row("collator-dense", None, 100), "4": row("dense-percpos", 40.0, 70),
             "26": row("dense-percpos", 1.0, 70), "27": row("dense-percpos", 1.0, 150),
             "28": row("dense-percpos", 1.0, 70), "29": row("dense-percpos", 1.0, 70),
             "30": row("st-percpos", 1.0, 80)}
    compute = {"datasets": {"d": [{"width": 2, "cpu_per_row": 1.0}, {"width": 3, "cpu_per_row": 2.0},
                                  {"width": 6, "cpu_per_row": 5.0}]}}
    args = argparse.Namespace(num_negatives=4, epochs=1.0)
    extras = {r[0]: r[4] for r in bench_quality.ROWS}

    def total(number):
        return bench_quality.total_compute(number, table, extras[number], compute, args)

    assert total("2") == pytest.approx(100 * 1.0)  # in-batch: no mining, 2 texts a row
    assert total("3") == pytest.approx(50 + 80 * 5.0)
    assert total("7") == pytest.approx(900 + 90 * 2.0)  # row 5's cold mining (the teacher's encode), 3 texts a row
    assert total("12") == pytest.approx(50 + 2 * 80 * 5.0)  # row 3's mining, two epochs
    assert total("26") == pytest.approx(40 + 2.5 * 70 * 2.0)  # row 4's cold mining, 2.5 epochs of 3 texts
    assert total("27") == pytest.approx(40 + 2 * 150 * 2.0)  # its own rows, row 4's cold mining (the same encode)
    assert total("28") == pytest.approx(40 + 4 * 70 * 2.0)  # row 25's set, four epochs of 3 texts
    assert total("29") == pytest.approx(40 + 8 * 70 * 2.0)
    assert total("30") == pytest.approx(50 + 80 * 5.0)  # row 3's set and mining, trained on another device
    assert total("18") is None and total("21") is None  # the guide's encoding / mining on the training device
    del table["5"]
    assert total("7") is None  # without row 5's cold mining there is no honest figure
    assert bench_quality.total_compute("3", table, [], {}, args) is None  # no measured rate


def test_report_compares_rows_trained_here_with_row_3_trained_here(tmp_path):
    """Row 30 (row 3 on this CPU) is the reference of the rows trained on this CPU; rows trained elsewhere get none."""
    import bench_quality

    work = tmp_path / "work"
    args = bench_quality.parse_args(["report", "--datasets", "scifact", "--data", str(tmp_path), "--work", str(work),
                                     "--output", str(tmp_path / "q.md"), "--seeds", "1", "2", "3"])
    bench_quality.check_settings(args, "scifact")
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.9, size=40)

    def runs(folder, device, shift):
        for seed in (1, 2, 3):
            per_query = (base + shift + rng.normal(0, 0.01, size=base.size)).tolist()
            out = work / "scifact" / folder / f"seed-{seed}"
            out.mkdir(parents=True)
            (out / "results.json").write_text(json.dumps({
                "device": device, "settings": {"model": None}, "train_rows": 10, "train_seconds": 1.0,
                "train_cpu_seconds": 2.0 * seed,
                "eval": {"scifact-test": {"ndcg@10": float(sum(per_query) / len(per_query)), "recall@100": 0.9,
                                          "per_query": {"ndcg@10": per_query}}}}))

    runs("st-percpos", "cuda:0", 0.0)  # row 3, elsewhere
    runs("st-percpos-cpu", "cpu", -0.05)  # row 30
    runs("dense-percpos-1neg-2p5ep", "cpu", 0.0)  # row 26, here: 0.05 above row 30
    runs("dense-percpos", "cuda:0", 0.0)  # row 4, elsewhere
    table = bench_quality.summarise(args)["scifact"]
    assert table["26"]["vs_30"]["delta"] == pytest.approx(0.05, abs=0.01)
    assert table["26"]["vs_30"]["p_queries"] < 0.01
    assert table["4"]["vs_30"] is None and table["30"]["vs_30"] is None and table["3"]["vs_30"] is None
    report = bench_quality.render({"scifact": table}, args)
    same = report.split("against row 30")[1]
    assert "\n| 26 |" in same and "\n| 4 |" not in same and "\n| 30 |" not in same
    assert "| 1, 2, 3 | 4 | – |" in same  # the recorded train CPU s (mean of 2, 4, 6); no compute rates here


def test_the_query_test_counts_each_query_once_however_many_seeds():
    """A query's difference repeats over seeds: its seeds are flipped together, not as new queries."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
    import seeded

    def run(per_query, queries="q"):
        return {"ndcg10": float(np.mean(per_query)), "per_query": per_query, "queries": queries}

    ours = {seed: run([0.6 + 0.01 * seed, 0.5, 0.7, 0.4]) for seed in range(1, 6)}
    theirs = {seed: run([0.5, 0.4, 0.6, 0.3]) for seed in range(1, 6)}
    c = seeded.compare(ours, theirs)
    assert c["delta"] == pytest.approx(0.1075) and c["seeds"] == [1, 2, 3, 4, 5]
    # 4 queries, all better: no sign-flip test on them goes below 2/16, whatever the 5 seeds would add as pairs.
    assert c["p_queries"] == pytest.approx(0.125, abs=0.02)
    theirs[3] = run([0.5, 0.4, 0.6, 0.3], queries="another order")
    with pytest.raises(ValueError, match="other queries or another order"):
        seeded.compare(ours, theirs)


def test_a_row_never_averages_runs_of_other_rows_students_or_devices(tmp_path):
    import bench_quality
    import seeded

    def results(folder, seed, sha, device="cpu"):
        out = folder / f"seed-{seed}"
        out.mkdir(parents=True)
        (out / "results.json").write_text(json.dumps({
            "device": device, "settings": {"model": None}, "mining": {"rows_sha256": sha},
            "eval": {"s-test": {"ndcg@10": 0.5, "recall@100": 0.9, "per_query": {"ndcg@10": [0.5]}}}}))

    work, cache = tmp_path / "work", tmp_path / "cache"
    args = bench_quality.parse_args(["train", "--datasets", "scifact", "--data", str(tmp_path), "--work", str(work),
                                     "--cache", str(cache), "--rows", "4", "--seeds", "2"])
    results(work / "scifact" / "dense-percpos", 1, "old-set")
    (cache / "scifact" / "dense-percpos" / "mined").mkdir(parents=True)
    (cache / "scifact" / "dense-percpos" / "results.json").write_text(json.dumps({"mining": {"rows_sha256": "new-set"}}))
    with pytest.raises(SystemExit, match=r"holds rows new-set, but seeds \[1\] .* trained on old-set"):
        bench_quality.train(args)  # a re-mined set differs: seed 2 must not train on it beside seed 1
    results(work / "scifact" / "dense-percpos", 2, "old-set", device="cuda:0")
    runs = seeded.load_runs(work / "scifact" / "dense-percpos", [1, 2])
    with pytest.raises(SystemExit, match=r"row 4: the runs differ in device \(seeds \[1\]: cpu; seeds \[2\]: cuda\)"):
        seeded.check_alike(runs, "row 4")


def test_query_overlap_counts_evaluation_queries_with_a_train_query_text(tmp_path):
    import probe_query_overlap

    (tmp_path / "qrels").mkdir()
    queries = [("q1", "Does X cause Y?"), ("q2", "unrelated"), ("q3", "  does x cause y?"), ("q4", "new claim")]
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in queries))
    (tmp_path / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    (tmp_path / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td1\t1\nq4\td3\t1\n")
    # q3 repeats q1's text up to case and spaces; q4 is new; q2 (train only) is not an evaluation query.
    assert probe_query_overlap.overlap(tmp_path, "dev") == (2, ["  does x cause y?"])


def test_mafin_explore_report_compares_each_run_with_in_batch_at_its_epochs(tmp_path):
    import report_mafin_explore as explore

    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.6, size=60)
    queries = [f"q{i}" for i in range(60)]

    def write(folder, shift, dev=0.33):
        per_query = np.clip(base + shift + rng.normal(0, 0.002, size=base.size), 0, 1).tolist()
        f = tmp_path / folder / "seed-1" / "results.json"
        f.parent.mkdir(parents=True)
        ev = {explore.HELDOUT: {"ndcg@10": float(np.mean(per_query)), "recall@100": 0.4, "query_ids": queries,
                                "per_query": {"ndcg@10": per_query}},
              explore.DEV: {"ndcg@10": dev, "recall@100": 0.3, "per_query": {"ndcg@10": [dev]}}}
        f.write_text(json.dumps({"device": "cpu", "settings": {}, "train_rows": 2000, "train_seconds": 10.0,
                                 "eval": ev}))

    folders = {(label, epochs): folder for label, folder, epochs in explore.RUNS}
    write(folders[("in-batch", 1)], 0.0)
    write(folders[("in-batch", 2)], 0.05)  # two epochs of in-batch: far above the 1-epoch runs
    write(explore.RUNS[1][1], 0.02)  # 1 epoch, mined: above 1-epoch in-batch, below 2-epoch in-batch
    write(explore.RUNS[-1][1], 0.05)  # 2 epochs, mined: level with 2-epoch in-batch
    entries = {(e["label"], e["epochs"]): e for e in explore.summarise(tmp_path)}

    assert len(entries) == 4  # runs not there are left out, not reported as zeros
    one = entries[(explore.RUNS[1][0], 1)]
    assert one["delta"] == pytest.approx(0.02, abs=0.002) and one["p_queries"] < 0.01
    two = entries[(explore.RUNS[-1][0], 2)]
    assert abs(two["delta"]) < 0.002 and two["p_queries"] > 0.05  # against 2-epoch in-batch, not 1-epoch
    assert entries[("in-batch", 1)]["delta"] is None
    table = explore.render(list(entries.values()))
    assert f"{one['heldout_ndcg10']:.4f}" in table and f"+{one['delta']:.4f}" in table
    with pytest.raises(SystemExit, match="none of the exploratory runs"):
        explore.main(["--results", str(tmp_path / "empty"), "--output", str(tmp_path / "out.md")])
