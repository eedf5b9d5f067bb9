"""The ``st-hardneg`` command end to end on the embedded SciFact sample."""

import json
import re
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

from st_hardneg.cli import build_parser, main


def test_mine_end_to_end_on_the_embedded_sample(tmp_path):
    out = tmp_path / "mined"
    cmd = [sys.executable, "-m", "st_hardneg.cli", "mine", "--output", str(out), "--max-seq-length", "64",
           "--cache-folder", str(tmp_path / "cache"), "--quiet", "--stats-json", str(tmp_path / "stats.json"),
           "--output-format", "n-tuple", "--num-negatives", "4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "rows in / out" in proc.stdout and "removed by relative_margin" in proc.stdout
    ds = datasets.load_from_disk(str(out))
    assert ds.column_names == ["anchor", "positive", "negative_1", "negative_2", "negative_3", "negative_4"]
    sidecar = json.loads((out / "st_hardneg.json").read_text())["st_hardneg"]
    assert sidecar["config"]["filter"]["rule"] == "TopK-PercPos(0.95)"
    assert re.fullmatch(r"beir:scifact_sample@[0-9a-f]{12}#train", sidecar["config"]["data"]["source"])
    assert sidecar["config"]["model"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    recorded = (out / "st_hardneg.json").read_text()
    assert str(Path(__file__).resolve().parents[1]) not in recorded and sys.prefix not in recorded  # no local path
    assert len(ds) == sidecar["stats"]["output_rows"] == json.loads((tmp_path / "stats.json").read_text())["output_rows"]
    assert json.loads(ds.info.description)["st_hardneg"]["config"]["seed"] == 42  # provenance inside the dataset
    # The folder exists now: refused (before any work) unless --overwrite, which replaces it whole.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 2 and again.stderr.strip().splitlines() == [
        (f"st-hardneg: error: {out}: already exists and is not empty; pass --overwrite (overwrite=True) to replace "
         "it, or choose another output")]
    replaced = subprocess.run([*cmd[:-4], "--output-format", "triplet", "--overwrite", "--positive-reference", "own"],
                              capture_output=True, text=True, timeout=600, check=False)
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert datasets.load_from_disk(str(out)).column_names == ["anchor", "positive", "negative"]
    sidecar = json.loads((out / "st_hardneg.json").read_text())["st_hardneg"]
    assert sidecar["config"]["filter"]["rule"] == "TopK-PercPos(0.95) + own positive"


def test_defaults_follow_sentence_transformers(tmp_path):
    args = build_parser().parse_args(["mine"])
    assert (args.num_negatives, args.output_format, args.sampling_strategy, args.range_min) == (3, "triplet", "top", 0)
    assert args.relative_margin == 0.05  # our one different default: PercPos 95%, not naive top-k
    assert build_parser().parse_args(["mine", "--relative-margin", "none"]).relative_margin is None
    assert build_parser().parse_args(["mine"]).positive_reference == "lowest"
    assert build_parser().parse_args(["mine", "--positive-reference", "own"]).positive_reference == "own"


def test_old_flags_still_work_with_a_warning(capsys):
    args = build_parser().parse_args(["mine", "--perc", "0.9", "--skip-top", "2", "--candidates", "80",
                                      "--sampling", "uniform", "--format", "n-tuple", "--cache-dir", "c"])
    assert args.relative_margin == pytest.approx(0.1) and args.range_min == 2 and args.range_max == 80
    assert (args.sampling_strategy, args.output_format, args.cache_folder) == ("random", "n-tuple", "c")
    err = capsys.readouterr().err
    assert "--perc is deprecated" in err and "use --relative-margin" in err and "--skip-top is deprecated" in err
    assert build_parser().parse_args(["mine", "--no-perc"]).relative_margin is None


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "1", "text": "a"}\n{"_id": "2", "text": "b"\n')
    (folder / "queries.jsonl").write_text('{"_id": "q", "text": "x"}\n')
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq\t1\t1\n")
    assert main(["mine", "--data", str(folder), "--output", str(tmp_path / "o"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"{folder / 'corpus.jsonl'}:2: malformed JSON" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_bad_setting_is_one_line_before_anything_loads(tmp_path, capsys):
    assert main(["mine", "--range-min", "5", "--range-max", "5", "--output", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("st-hardneg: error: range_min must be smaller than range_max")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_every_flag_is_explained():
    import argparse

    def check(parser, path):
        for action in parser._actions:
            assert action.help, f"{path} {action.option_strings or action.dest} has no help"
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    check(child, f"{path} {name}")

    check(build_parser(), "st-hardneg")
    with pytest.raises(SystemExit):
        main(["mine", "--sampling-strategy", "best"])
