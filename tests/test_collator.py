"""MiningDataCollator inside a real SentenceTransformerTrainer run on SciFact rows."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.sentence_transformer import losses

from st_hardneg import MiningDataCollator

from conftest import slice_data


@pytest.fixture(scope="module")
def pairs(scifact_slice):
    data = slice_data(scifact_slice, 40, 600)
    return datasets.Dataset.from_dict({
        "anchor": [data.query_texts[q] for q, _ in data.pairs],
        "positive": [data.corpus_texts[d] for _, d in data.pairs],
    }), data


@pytest.fixture()
def student(model):
    fresh = copy.deepcopy(model)  # training must not leak into the session-wide model
    fresh.max_seq_length = 64
    return fresh


def make_trainer(model, dataset, collator, tmp_path, loss=None, **args):
    defaults = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, max_steps=2, learning_rate=2e-5,
                    report_to=[], save_strategy="no", logging_steps=1, seed=0, use_cpu=True)
    defaults.update(args)
    return SentenceTransformerTrainer(model=model, args=SentenceTransformerTrainingArguments(**defaults),
                                      train_dataset=dataset, loss=loss or losses.MultipleNegativesRankingLoss(model),
                                      data_collator=collator)


def positives_of(data):
    out = {}
    for q, d in data.pairs:
        out.setdefault(q, set()).add(d)
    return out


def test_training_run_attaches_negatives_and_guards_the_batch(pairs, student, cache_dir, tmp_path):
    dataset, data = pairs
    collator = MiningDataCollator(student, dataset, corpus=data.corpus_texts, num_negatives=3, cache_dir=cache_dir, show_progress=False)
    trainer = make_trainer(student, dataset, collator, tmp_path, max_steps=3)
    trainer.train()
    assert collator._trainer is trainer and collator.batch_stats["batches"] >= 3
    positives = positives_of(collator.data)
    for batch in collator.history:
        queries = {collator.data.pairs[r][0] for r in batch["pairs"]}
        batch_positives = set().union(*(positives[q] for q in queries))
        for negatives in batch["negatives"]:
            assert len(negatives) == 3
            assert not set(negatives) & batch_positives  # no in-batch false negative, by id
    # The card records the mining.
    student.save(str(tmp_path / "model"))
    card = (tmp_path / "model" / "README.md").read_text()
    assert "### Hard Negatives" in card and "MiningDataCollator" in card and "hard-negatives" in card


def test_a_batch_that_cannot_be_filled_is_a_clear_error(pairs, student):
    dataset, _ = pairs
    collator = MiningDataCollator(student, dataset.select(range(6)), num_negatives=2, show_progress=False)
    with pytest.raises(ValueError, match="could not find 2 safe negatives .* pass a larger corpus="):
        collator([dataset[i] for i in range(6)])  # corpus = the 6 positives, all in this batch


def test_in_batch_guard_on_a_crafted_batch(pairs, student, cache_dir):
    dataset, data = pairs
    collator = MiningDataCollator(student, dataset, corpus=data.corpus_texts, num_negatives=2, cache_dir=cache_dir, show_progress=False,
                                  sampling="top")
    collator._ensure_pools()
    state = collator._state
    # Find two queries where one's pool contains the other's positive: a real in-batch false negative.
    positives = positives_of(collator.data)
    pool = {q: set(state["docs"][i].tolist()) for i, q in enumerate(state["query_order"])}
    clash = next(((a, b) for a in pool for b in positives if a != b and pool[a] & positives[b]), None)
    assert clash, "the slice should contain a pool holding another query's positive"
    a, b = clash
    rows = [next(i for i, (q, _) in enumerate(collator.data.pairs) if q == x) for x in (a, b)]
    negatives, _, _ = collator._draw(rows)
    assert not set(negatives[0]) & positives[b] and not set(negatives[1]) & positives[a]
    assert collator.batch_stats["guarded"] > 0


def test_prompts_from_training_args_reach_every_column(pairs, student, cache_dir, tmp_path):
    dataset, data = pairs
    collator = MiningDataCollator(student, dataset, corpus=data.corpus_texts, num_negatives=2, cache_dir=cache_dir, show_progress=False)
    trainer = make_trainer(student, dataset, collator, tmp_path, prompts={"anchor": "query: ", "positive": "passage: "})
    batch = next(iter(trainer.get_train_dataloader()))
    decode = student.tokenizer.decode
    assert decode(batch["anchor_input_ids"][0], skip_special_tokens=True).startswith("query :")
    for column in ("positive", "negative_1", "negative_2"):
        assert decode(batch[f"{column}_input_ids"][0], skip_special_tokens=True).startswith("passage :"), column


def test_draws_are_seeded_and_fresh_per_step(pairs, student, cache_dir):
    dataset, data = pairs
    features = [dataset[i] for i in range(8)]

    def draws(seed, calls=2):
        c = MiningDataCollator(student, dataset, corpus=data.corpus_texts, num_negatives=2, seed=seed, cache_dir=cache_dir, show_progress=False)
        for _ in range(calls):
            c(features)
        return [b["negatives"] for b in c.history]

    first, again, other = draws(1), draws(1), draws(2)
    assert first == again
    assert first != other
    assert first[0] != first[1]  # a new batch of the same rows gets fresh negatives


def test_refresh_changes_negatives_when_the_model_changes(pairs, student, cache_dir, tmp_path):
    dataset, data = pairs
    collator = MiningDataCollator(student, dataset, corpus=data.corpus_texts, num_negatives=2, sampling="top", cache_dir=cache_dir,
                                  show_progress=False)
    rows = list(range(len(collator.data.pairs)))

    def draw_all():
        return [n for start in range(0, len(rows), 8) for n in collator._draw(rows[start:start + 8])[0]]

    before = draw_all()
    same = collator.refresh("rescore")
    assert same["stale"] == 0 and same["queries_changed"] == 0  # unchanged model: nothing is stale
    # Change the model for real: two optimiser steps at a high learning rate, no scheduled refresh.
    make_trainer(student, dataset, collator, tmp_path, learning_rate=1e-3, max_steps=2).train()
    student.train()
    record = collator.refresh("rescore")
    assert student.training  # encode() switches to eval; the refresh restores the training mode
    assert record["stale"] > 0 and record["queries_changed"] > 0 and record["seconds"] > 0
    after = draw_all()
    assert after != before
    state = collator._state
    pool_of = {q: i for i, q in enumerate(state["query_order"])}
    for row, negatives in zip(rows, after):
        i = pool_of[collator.data.pairs[row][0]]
        alive = dict(zip(state["docs"][i].tolist(), state["alive"][i].tolist()))
        assert all(alive[d] for d in negatives)  # stale negatives are replaced, never drawn
    docs_before = [d.copy() for d in collator._state["docs"]]
    remined = collator.refresh("remine")
    assert remined["queries_changed"] > 0
    assert any(not np.array_equal(a, b) for a, b in zip(docs_before, collator._state["docs"]))


@pytest.mark.parametrize("loss_name", ["mnrl", "cached_mnrl", "gist", "cached_gist", "margin_mse"])
def test_losses(loss_name, pairs, student, cache_dir, tmp_path):
    dataset, data = pairs
    guide = copy.deepcopy(student)
    loss = {
        "mnrl": lambda: losses.MultipleNegativesRankingLoss(student),
        "cached_mnrl": lambda: losses.CachedMultipleNegativesRankingLoss(student, mini_batch_size=4),
        "gist": lambda: losses.GISTEmbedLoss(student, guide),
        "cached_gist": lambda: losses.CachedGISTEmbedLoss(student, guide, mini_batch_size=4),
        "margin_mse": lambda: losses.MarginMSELoss(student),
    }[loss_name]()
    # GISTEmbedLoss accepts (anchor, positive[, negative]) only.
    collator = MiningDataCollator(student, dataset, corpus=data.corpus_texts, num_negatives=1 if loss_name == "gist" else 2,
                                  cache_dir=cache_dir, show_progress=False,
                                  scores="margins" if loss_name == "margin_mse" else None)
    trainer = make_trainer(student, dataset, collator, tmp_path, loss=loss, max_steps=1)
    if loss_name == "margin_mse":
        batch = next(iter(trainer.get_train_dataloader()))
        assert batch["label"].shape == (8, 2)
    output = trainer.train()
    assert np.isfinite(output.training_loss)


def test_two_process_accelerate_launch(tmp_path, shared_data):
    script = Path(__file__).parent / "scripts" / "ddp_train.py"
    env = dict(os.environ, OMP_NUM_THREADS="1", ST_HARDNEG_TEST_OUT=str(tmp_path))
    # `accelerate launch --cpu` uses its single-process launcher (several only through mpirun);
    # --multi_gpu selects the torchrun launcher, and use_cpu=True in the script makes it gloo on CPU.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = sorted((tmp_path).glob("rank*.json"))
    assert len(results) == 2
    import json

    ranks = [json.loads(p.read_text()) for p in results]
    assert ranks[0]["pools"] == ranks[1]["pools"]  # every rank sees the same pools
    assert ranks[0]["after_refresh"] == ranks[1]["after_refresh"]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    assert ranks[0]["refreshes"] == ranks[1]["refreshes"] == 2  # refresh_steps=1, 2 steps, in step on every rank


def test_eci_callback_scores_the_batches_the_collator_just_built(pairs, student, cache_dir, tmp_path, caplog):
    from st_hardneg import ECICallback

    dataset, data = pairs
    collator = MiningDataCollator(student, dataset, corpus=data.corpus_texts, num_negatives=3, cache_dir=cache_dir,
                                  show_progress=False)
    callback = ECICallback(every_n_steps=1, max_rows=8)  # one batch of 8 rows: exactly the latest
    trainer = make_trainer(student, dataset, collator, tmp_path)
    trainer.add_callback(callback)
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "eci/score" in entry]
    assert len(logged) == 2 and len(callback.history) == 2
    queries, positives, negatives = callback._negatives_in_use()
    last = collator.history[-1]
    assert queries == [data.query_texts[data.pairs[r][0]] for r in last["pairs"]]
    assert negatives == [[data.corpus_texts[n] for n in negs] for negs in last["negatives"]]
    assert all(0 <= entry["eci/safety"] <= 1 for entry in logged)
    # A jump in the share of unsafe queries since the first measurement is reported.
    caplog.clear()
    callback.history = [{"eci/unsafe_share": 0.05}]
    callback._warn({"eci/unsafe_share": 0.4})
    assert "safety is collapsing" in caplog.text
    caplog.clear()
    callback._warn({"eci/unsafe_share": 0.1})
    assert "safety is collapsing" not in caplog.text
