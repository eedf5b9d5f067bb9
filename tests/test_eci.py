"""ECI components on hand-made scores (exact values), layouts, and the ranking of real mined sets."""

import json
import math
import re
from pathlib import Path

import datasets
import numpy as np
import pytest

from st_hardneg.eci import eci_components, eci_from_scores, eci_score, rows_of


def test_all_safe_exact_values():
    c = eci_components(0.8, [0.5, 0.6])  # safe below 0.76; delta 0.04
    assert c.num_safe == 2 and c.safe_fraction == 1.0
    assert c.safety == 1.0
    assert c.hardness == pytest.approx((0.5 / 0.8 + 0.6 / 0.8) / 2)
    assert c.efficiency == pytest.approx(2 * 0.6875 / 1.6875)
    assert c.capacity == pytest.approx(math.log(3))
    assert c.eci == pytest.approx(math.log(3) * 2 * 0.6875 / 1.6875)


def test_one_unsafe_negative_zeroes_safety():
    c = eci_components(0.8, [0.5, 0.85])
    assert c.safety == 0.0 and c.eci == 0.0
    assert c.safe_fraction == 0.5 and c.hardness == pytest.approx(0.625)


def test_safety_is_linear_inside_the_margin():
    c = eci_components(0.8, [0.5, 0.78])  # 0.78 is unsafe (>= 0.76) but below the positive
    assert c.safety == pytest.approx(0.5) and c.num_safe == 1


def test_more_safe_negatives_raise_capacity_and_harder_ones_raise_hardness():
    one, three = eci_components(0.8, [0.5]), eci_components(0.8, [0.5, 0.5, 0.5])
    assert three.capacity > one.capacity and three.eci > one.eci
    assert one.hardness == three.hardness
    easy, hard = eci_components(0.8, [0.3, 0.3]), eci_components(0.8, [0.6, 0.6])
    assert hard.hardness == pytest.approx(0.75) and easy.hardness == pytest.approx(0.375)
    assert hard.eci > easy.eci


def test_degenerate_inputs():
    assert eci_components(0.0, [0.0]).eci == 0.0
    assert eci_components(0.5, []).eci == 0.0
    assert eci_components(0.5, [0.1], delta=0.1).safety == 1.0
    with pytest.raises(ValueError, match="NaN"):
        eci_components(0.5, [np.nan])
    with pytest.raises(ValueError, match="alpha"):
        eci_components(0.5, [0.1], alpha=0)


def test_dataset_score_is_the_mean_over_queries():
    result = eci_from_scores(["a", "a", "b"], [0.8, 0.8, 0.8], [[0.5], [0.9], [0.5]])
    row_safe = eci_components(0.8, [0.5]).eci
    # query a: mean of one safe row and one unsafe row; query b: the safe row.
    assert result.eci == pytest.approx(((row_safe + 0.0) / 2 + row_safe) / 2)
    assert result.query_ids == ["a", "b"] and result.unsafe_share == 0.0
    assert "ECI" in result.table() and set(result.to_dict()) >= {"eci", "hardness", "safety", "capacity"}


LAYOUTS = {  # sentence-transformers' layouts, under a user's own column names
    "n-tuple": {"question": ["q"], "answer": ["p"], "negative_1": ["n1"], "negative_2": ["n2"]},
    "n-tuple with scores": {"question": ["q"], "answer": ["p"], "negative_1": ["n1"], "negative_2": ["n2"],
                            "scores": [[0.9, 0.5, 0.4]]},
    "triplet": {"question": ["q", "q"], "answer": ["p", "p"], "negative": ["n1", "n2"]},
    "labeled-list": {"question": ["q"], "answer": [["p", "n1", "n2"]], "labels": [[1, 0, 0]]},
    "labeled-list with scores": {"question": ["q"], "answer": [["p", "n1", "n2"]], "scores": [[0.9, 0.5, 0.4]]},
    "labeled-pair": {"question": ["q", "q", "q"], "answer": ["p", "n1", "n2"], "label": [1, 0, 0]},
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_layout_yields_the_same_rows(layout):
    assert rows_of(datasets.Dataset.from_dict(LAYOUTS[layout])) == (["q"], ["p"], [["n1", "n2"]])


def test_a_labeled_list_takes_its_positives_from_the_labels_wherever_they_stand():
    rows = {"question": ["q"], "answer": [["n1", "p1", "p2"]], "labels": [[0, 1, 1]]}
    assert rows_of(datasets.Dataset.from_dict(rows)) == (["q", "q"], ["p1", "p2"], [["n1"], ["n1"]])
    with pytest.raises(ValueError, match="row 0: 3 documents in 'answer' but 2 labels"):
        rows_of(datasets.Dataset.from_dict({**rows, "labels": [[0, 1]]}))


def test_a_labeled_pair_layout_with_scores_cannot_tell_positives_apart():
    scored = {"question": ["q", "q"], "answer": ["p", "n1"], "score": [0.9, 0.5]}
    with pytest.raises(ValueError, match="labeled-pair layout \\(with labels, not scores\\)"):
        rows_of(datasets.Dataset.from_dict(scored))


def test_ids_layout_uses_stored_scores_and_text_layout_needs_a_scorer():
    ids = datasets.Dataset.from_dict({"query_id": ["q"], "positive_id": ["p"], "negative_ids": [["n"]],
                                      "positive_score": [0.8], "negative_scores": [[-0.2]]})
    result = eci_score(ids)
    assert result.scorer == "mined scores" and result.components["hardness"] == 0.0  # clipped at 0
    with pytest.raises(ValueError, match="a scorer is needed"):
        eci_score(datasets.Dataset.from_dict(LAYOUTS["n-tuple"]))


# --- on real SciFact data -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def mined_sets(scifact, model, cache_dir, tmp_path_factory):
    from st_hardneg import PositiveAwareFilter, mine

    out = tmp_path_factory.mktemp("mined")
    sets = {}
    for name, relative_margin in (("percpos", 0.05), ("naive", None)):
        result = mine(scifact, model, filter=PositiveAwareFilter(relative_margin=relative_margin), num_negatives=4,
                      cache_folder=cache_dir, verbose=False)
        result.save(out / name, "n-tuple")
        sets[name] = out / name
        if name == "percpos":  # the same rows as ids, as `st-hardneg mine --output-format ids` writes them
            result.save(out / "percpos-ids", "ids")
            sets["percpos-ids"] = out / "percpos-ids"
    return sets


def test_cli_ranks_percpos_above_naive_top_k_by_safety(mined_sets, capsys):
    from st_hardneg.cli import main

    assert main(["eci", str(mined_sets["naive"]), str(mined_sets["percpos"]), "--json",
                 str(mined_sets["naive"].parent / "eci.json")]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line[:1].isdigit()]
    assert "percpos" in lines[0] and "recommended" in lines[0] and "naive" in lines[1]
    import json

    ranked = json.loads((mined_sets["naive"].parent / "eci.json").read_text())
    assert ranked[0]["safety"] > ranked[1]["safety"]
    assert ranked[1]["unsafe_share"] > 0.2  # naive top-k: many queries have a negative above the positive


def test_callback_logs_eci_during_training(mined_sets, model, tmp_path):
    import copy

    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer import losses

    from st_hardneg import ECICallback

    student = copy.deepcopy(model)
    student.max_seq_length = 64
    train = datasets.load_from_disk(str(mined_sets["percpos"]))
    callback = ECICallback(teacher=model, every_n_steps=1, max_rows=32)
    args = SentenceTransformerTrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=2,
                                                report_to=[], save_strategy="no", use_cpu=True, logging_steps=1)
    trainer = SentenceTransformerTrainer(model=student, args=args, train_dataset=train,
                                         loss=losses.MultipleNegativesRankingLoss(student), callbacks=[callback])
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "eci/score" in entry]
    assert len(logged) == 2
    for key in ("eci/capacity", "eci/hardness", "eci/safety", "eci/unsafe_share", "eci/pos_sim_mean",
                "eci/neg_sim_mean", "eci/teacher_score"):
        assert key in logged[0], key
    assert student.training  # the measurement restored the training mode
    assert 0 <= logged[0]["eci/safety"] <= 1 and logged[0]["eci/score"] > 0


def test_cli_scores_the_ids_layout_mine_writes(mined_sets, capsys, tmp_path):
    from st_hardneg import sample_data_path
    from st_hardneg.cli import main

    report = tmp_path / "eci.json"
    # Mined from the embedded sample, so its ids resolve without --data; --data names it explicitly too.
    for extra in ([], ["--data", sample_data_path()]):
        assert main(["eci", str(mined_sets["percpos-ids"]), str(mined_sets["percpos"]), "--json", str(report),
                     "--max-rows", "24", *extra]) == 0
        scored = {Path(r["dataset"]).name: r for r in json.loads(report.read_text())}
        assert scored["percpos-ids"]["eci"] == pytest.approx(scored["percpos"]["eci"], rel=1e-6)
    capsys.readouterr()
    # Other data than it was mined from would give the ids other texts: refused, naming both.
    other = Path(__file__).parent / "data" / "bad_input" / "beir"
    assert main(["eci", str(mined_sets["percpos-ids"]), "--data", str(other)]) == 1
    assert re.search(r"mined from beir:scifact_sample@\w+#train, but the data given is beir:beir@\w+#train",
                     capsys.readouterr().err)


def test_an_ids_set_mined_with_relabelled_labels_resolves_against_the_data_it_was_mined_from():
    """`mine --relabel` records "<source> (audited: +N -M)": the same corpus and queries, other positives."""
    import argparse

    from st_hardneg import sample_data_path
    from st_hardneg.cli import _ids_source
    from st_hardneg.sources import load_data

    source = load_data(sample_data_path()).source
    record = {"config": {"data": {"source": f"{source} (audited: +3 -1)"}}}
    data = _ids_source("relabelled-ids", record, argparse.Namespace(split=None, data=None), {})
    assert data.source == source


def test_eci_measured_at_an_evaluation_joins_that_evaluations_log_entry():
    from transformers import TrainerControl, TrainerState

    from st_hardneg import ECICallback

    callback = ECICallback()
    callback.measure = lambda model, dataloader, step: {"eci/score": 1.25}  # the measurement itself is tested above
    state, control = TrainerState(), TrainerControl()
    state.global_step, state.log_history = 100, [{"loss": 0.9, "step": 95}, {"eval_loss": 0.5, "step": 100}]
    metrics = {"eval_loss": 0.5}
    callback.on_evaluate(None, state, control, model=object(), metrics=metrics)
    assert state.log_history == [{"loss": 0.9, "step": 95}, {"eval_loss": 0.5, "step": 100, "eci/score": 1.25}]
    assert not control.should_log and metrics["eci/score"] == 1.25
    later = {"loss": 0.8}
    callback.on_log(None, state, control, logs=later)  # nothing left over for the next log event
    assert later == {"loss": 0.8}
