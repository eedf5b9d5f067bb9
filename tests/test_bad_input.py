"""The bad-input sweep (issue 11): every bad input is one typed error naming its file, line or field.

One table, :data:`CASES`. Each case builds its input from the tiny hand-written files in
``tests/data/bad_input/`` (or the embedded sample) and is checked through the Python API, the
command line, or both. The API must raise the given type with a message matching the pattern (the
pattern names the file and line, or the field); the command line must print exactly that one
line on stderr and exit with the given status (2: usage, 1: data), all before any model loads.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from st_hardneg import PositiveAwareFilter, load_mined
from st_hardneg.data import DataError, OptionError
from st_hardneg.result import check_output

FIXTURES = Path(__file__).parent / "data" / "bad_input"


def beir_with(tmp: Path, **files: str) -> Path:
    """A copy of the tiny BEIR folder in which each keyword (``qrels``, ``corpus``) is replaced by a fixture file."""
    folder = tmp / "beir"
    shutil.copytree(FIXTURES / "beir", folder)
    targets = {"qrels": folder / "qrels" / "train.tsv", "corpus": folder / "corpus.jsonl"}
    for name, fixture in files.items():
        shutil.copyfile(FIXTURES / fixture, targets[name])
    return folder


def beir_appended(tmp: Path, name: str, line: str) -> Path:
    """A copy of the tiny BEIR folder with ``line`` appended to its file ``name``."""
    folder = beir_with(tmp)
    with (folder / name).open("a", encoding="utf-8") as handle:
        handle.write(line)
    return folder


def saved_ids_set(tmp: Path) -> Path:
    """An ids-layout set written by plain ``save_to_disk``: nothing records which data its ids refer to."""
    import datasets

    datasets.Dataset.from_dict({"query_id": ["q1"], "positive_id": ["d1"], "negative_ids": [["d2"]],
                                "positive_score": [0.9], "negative_scores": [[0.1]]}).save_to_disk(str(tmp / "ids"))
    return tmp / "ids"


def tampered_mined_folder(tmp: Path) -> Path:
    """A folder whose sidecar records a content hash that its rows no longer have (rows rewritten after mining)."""
    import datasets

    folder = tmp / "mined"
    datasets.Dataset.from_dict({"anchor": ["q"], "positive": ["p"], "negative_1": ["n1"], "negative_2": ["n2"]}) \
        .save_to_disk(str(folder))
    record = {"format": "n-tuple", "output_scores": False, "config": {"num_negatives": 4},
              "stats": {"output_rows": 1},
              "content": {"file_format": "arrow", "files": ["data-00000-of-00001.arrow"], "rows": 1,
                          "sha256": "0" * 64}}
    (folder / "st_hardneg.json").write_text(json.dumps({"st_hardneg": record}))
    return folder


def existing_output(tmp: Path) -> Path:
    (tmp / "out").mkdir()
    (tmp / "out" / "keep.txt").write_text("an earlier dataset")
    return tmp / "out"


def load(path_of: Callable[[Path], Path], **kwargs) -> Callable[[Path], object]:
    from st_hardneg.sources import load_data

    return lambda tmp: load_data(path_of(tmp), **kwargs)


def mine_sample(**kwargs) -> Callable[[Path], object]:
    import warnings

    from st_hardneg import mine, sample_data_path

    def call(tmp: Path) -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # the deprecated names are part of the sweep
            return mine(sample_data_path(), None, verbose=False, **kwargs)

    return call


def filter_call(positive_scores, scores=(0.2, 0.1), **kwargs) -> Callable[[Path], object]:
    return lambda tmp: PositiveAwareFilter()(np.array(scores), positive_scores, **kwargs)


@dataclass
class Case:
    """One bad input: the API call and/or command line that must fail, and how.

    ``cli`` gets the temporary folder and returns the arguments after ``st-hardneg``; ``message``
    is a regular expression, formatted with ``tmp`` (the folder) before matching.
    """

    error: type[BaseException]
    message: str
    api: Callable[[Path], object] | None = None
    cli: Callable[[Path], list[str]] | None = None
    exit: int = 1


CASES: dict[str, Case] = {
    # --- data: every bad record names its file and line (exit 1) ---
    "malformed JSON": Case(DataError, r"corpus\.jsonl:6: malformed JSON",
                           api=load(lambda t: beir_appended(t, "corpus.jsonl", '{"_id": "d9", "text": \n')),
                           cli=lambda t: ["mine", "--data", str(beir_appended(t, "corpus.jsonl", '{"_id": "d9"\n')),
                                          "--output", str(t / "o")]),
    "non-UTF-8 bytes": Case(DataError, r"corpus\.jsonl:2: not valid UTF-8 \(byte 0xe9 at column \d+\)",
                            api=load(lambda t: beir_with(t, corpus="corpus_latin1.jsonl")),
                            cli=lambda t: ["mine", "--data", str(beir_with(t, corpus="corpus_latin1.jsonl")),
                                           "--output", str(t / "o")]),
    "infinite qrels score": Case(DataError, r"train\.tsv:3: score 'inf' is not a finite number",
                                 api=load(lambda t: beir_with(t, qrels="qrels_inf.tsv")),
                                 cli=lambda t: ["mine", "--data", str(beir_with(t, qrels="qrels_inf.tsv")),
                                                "--output", str(t / "o")]),
    "NaN qrels score": Case(DataError, r"train\.tsv:2: score 'nan' is not a finite number",
                            api=load(lambda t: beir_with(t, qrels="qrels_nan.tsv"))),
    "anchor and positive named the same": Case(
        DataError, r"pairs_query_doc\.jsonl: the anchor and positive columns are both 'query'",
        api=load(lambda t: FIXTURES / "pairs_query_doc.jsonl", anchor_column_name="query",
                 positive_column_name="query"),
        cli=lambda t: ["mine", "--data", str(FIXTURES / "pairs_query_doc.jsonl"), "--anchor-column-name", "query",
                       "--positive-column-name", "query", "--output", str(t / "o")]),
    "positive column ambiguous": Case(
        DataError, r"cannot tell which column is the positive: columns are \['id', 'question', 'context', 'title'\] "
                   r"\(text columns left: \['context', 'title'\]\); name it with positive_column_name",
        api=load(lambda t: FIXTURES / "pairs_id_question_context_title.jsonl", anchor_column_name="question"),
        cli=lambda t: ["mine", "--data", str(FIXTURES / "pairs_id_question_context_title.jsonl"),
                       "--anchor-column-name", "question", "--output", str(t / "o")]),
    "sidecar disagrees with the rows": Case(
        DataError, r"st_hardneg\.json: the data files do not match the sidecar",
        api=lambda t: load_mined(tampered_mined_folder(t)),
        cli=lambda t: ["eci", str(tampered_mined_folder(t))]),
    "ids layout without its data": Case(
        DataError, r"ids: the ids layout holds ids, not texts; pass --data",
        cli=lambda t: ["eci", str(saved_ids_set(t))]),
    # --- options: named, checked before any model loads (exit 2) ---
    "unknown sampling strategy": Case(OptionError, r"unknown sampling strategy 'foo'",
                                      api=mine_sample(sampling="foo")),
    "temperature 0": Case(OptionError, r"temperature must be > 0", api=mine_sample(temperature=0),
                          cli=lambda t: ["mine", "--temperature", "0", "--output", str(t / "o")], exit=2),
    "temperature NaN": Case(OptionError, r"temperature must be > 0 \(and finite\), got nan",
                            api=mine_sample(temperature=float("nan"), sampling_strategy="sampled"),
                            cli=lambda t: ["mine", "--temperature", "nan", "--output", str(t / "o")], exit=2),
    "negative range_max (candidates)": Case(OptionError, r"range_max must be at least 1 .*got -5",
                                            api=mine_sample(candidates=-5),
                                            cli=lambda t: ["mine", "--range-max", "-5", "--output", str(t / "o")],
                                            exit=2),
    "max_seq_length 0": Case(OptionError, r"max_seq_length must be at least 1", api=mine_sample(max_seq_length=0),
                             cli=lambda t: ["mine", "--max-seq-length", "0", "--output", str(t / "o")], exit=2),
    "fractional sample_pool": Case(OptionError, r"sample_pool must be at least 1 \(an integer\), got 1\.5",
                                   api=mine_sample(sample_pool=1.5)),
    "boolean seed": Case(OptionError, r"seed must be a non-negative integer or None, got True",
                         api=mine_sample(seed=True)),
    "range_min not below range_max": Case(OptionError, r"range_min must be smaller than range_max",
                                          cli=lambda t: ["mine", "--range-min", "5", "--range-max", "5",
                                                         "--output", str(t / "o")], exit=2),
    "infinite relevance threshold": Case(OptionError, r"relevance_threshold must be a finite number, got inf",
                                         api=mine_sample(relevance_threshold=float("inf")),
                                         cli=lambda t: ["mine", "--relevance-threshold", "inf", "--output",
                                                        str(t / "o")], exit=2),
    "NaN filter threshold": Case(OptionError, r"max_score must be a finite number or None, got nan",
                                 cli=lambda t: ["mine", "--max-score", "nan", "--output", str(t / "o")], exit=2),
    "unknown flag value": Case(SystemExit, r"argument --sampling-strategy: invalid choice: 'foo'",
                               cli=lambda t: ["mine", "--sampling-strategy", "foo"], exit=2),
    "not a number": Case(SystemExit, r"argument --relative-margin: invalid number or 'none' value: 'abc'",
                         cli=lambda t: ["mine", "--relative-margin", "abc"], exit=2),
    "eci alpha out of range": Case(OptionError, r"--alpha must be in \(0, 1\], got 1\.5",
                                   cli=lambda t: ["eci", str(t), "--alpha", "1.5"], exit=2),
    # --- outputs: checked before any work (exit 2) ---
    "output exists": Case(FileExistsError, r"{tmp}/out: already exists and is not empty; pass --overwrite",
                          api=lambda t: check_output(existing_output(t)),
                          cli=lambda t: ["mine", "--output", str(existing_output(t))], exit=2),
    "output inside the input": Case(OptionError, r"{tmp}/beir/mined: is inside the input",
                                    cli=lambda t: ["mine", "--data", str(beir_with(t)), "--output",
                                                   str(t / "beir" / "mined")], exit=2),
    "output contains the input": Case(OptionError, r"{tmp}: contains the input",
                                      cli=lambda t: ["mine", "--data", str(beir_with(t)), "--output", str(t),
                                                     "--overwrite"], exit=2),
    "stats-json is a folder": Case(OptionError, r"--stats-json {tmp}: is a folder",
                                   cli=lambda t: ["mine", "--stats-json", str(t), "--output", str(t / "o")], exit=2),
    # --- the filter's own inputs (API only: they come from a scorer, not a flag) ---
    "infinite positive score": Case(ValueError, r"positive score of query row 0 is NaN or infinite \(inf\)",
                                    api=filter_call(float("inf"))),
    "infinite candidate score": Case(ValueError, r"scores contain NaN or an infinite value \(inf in query row 0\)",
                                     api=filter_call(0.5, scores=(np.inf, 0.1))),
    "positive_ids as a bare string": Case(TypeError, r"positive_ids of query row 0 must be a collection of ids, "
                                                     r"got str 'd12'",
                                          api=filter_call(0.5, candidate_ids=["d1", "d12"], positive_ids="d12")),
}


@pytest.fixture
def no_model(monkeypatch):
    """Every case fails before a model loads: loading one is a test failure."""
    import st_hardneg.mining
    import st_hardneg.models

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the bad input was reported")

    for module, name in ((st_hardneg.mining, "load_model"), (st_hardneg.models, "load_model"),
                         (st_hardneg.models, "load_teacher")):
        monkeypatch.setattr(module, name, refuse)


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c.api is not None))
def test_api_raises_a_typed_error_naming_the_place(name, tmp_path, no_model):
    case = CASES[name]
    with pytest.raises(case.error, match=case.message.format(tmp=re.escape(str(tmp_path)))):
        case.api(tmp_path)


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c.cli is not None))
def test_cli_prints_one_line_and_exits_with_the_status(name, tmp_path, no_model, capsys):
    from st_hardneg.cli import main

    case = CASES[name]
    argv = case.cli(tmp_path)
    capsys.readouterr()  # building the input may log
    try:
        status = main([*argv, *(["--quiet"] if argv[0] == "mine" else [])])
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == case.exit, err
    assert len(lines) == 1 and lines[0].startswith("st-hardneg: error: "), err
    assert re.search(case.message.format(tmp=re.escape(str(tmp_path))), lines[0]), lines[0]
    assert not (tmp_path / "o").exists()
