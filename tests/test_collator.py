"""MiningDataCollator inside a real SentenceTransformerTrainer run on SciFact rows, wired in plain sight."""

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
def pairs(scifact):
    data = slice_data(scifact, 40, 450)
    return datasets.Dataset.from_dict({
        "anchor": [data.query_texts[q] for q, _ in data.pairs],
        "positive": [data.corpus_texts[d] for _, d in data.pairs],
    }), data


@pytest.fixture()
def student(model):
    fresh = copy.deepcopy(model)  # training must not leak into the session-wide model
    fresh.max_seq_length = 64
    return fresh


def training_args(tmp_path, **args):
    defaults = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, max_steps=2, learning_rate=2e-5,
                    report_to=[], save_strategy="no", logging_steps=1, seed=0, use_cpu=True)
    defaults.update(args)
    return SentenceTransformerTrainingArguments(**defaults)


def make_trainer(model, dataset, collator, tmp_path, loss=None, callbacks=None, **args):
    return SentenceTransformerTrainer(model=model, args=training_args(tmp_path, **args), train_dataset=dataset,
                                      loss=loss or losses.MultipleNegativesRankingLoss(model), data_collator=collator,
                                      callbacks=callbacks)


def collator_for(student, dataset, data, cache_dir, **kwargs):
    return MiningDataCollator(student, dataset, corpus=data.corpus_texts, cache_folder=cache_dir, verbose=False,
                              **kwargs)


def positives_of(data):
    out = {}
    for q, d in data.pairs:
        out.setdefault(q, set()).add(d)
    return out


def test_training_run_attaches_negatives_and_guards_the_batch(pairs, student, cache_dir, tmp_path):
    dataset, data = pairs
    collator = collator_for(student, dataset, data, cache_dir, num_negatives=3)
    trainer = make_trainer(student, dataset, collator, tmp_path, max_steps=3)
    trainer.train()
    assert collator.batch_stats["batches"] >= 3
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
    collator = MiningDataCollator(student, dataset.select(range(6)), num_negatives=2, verbose=False)
    with pytest.raises(ValueError, match="could not find 2 safe negatives .* pass a larger corpus="):
        collator([dataset[i] for i in range(6)])  # corpus = the 6 positives, all in this batch


def test_in_batch_guard_on_a_crafted_batch(pairs, student, cache_dir):
    dataset, data = pairs
    collator = collator_for(student, dataset, data, cache_dir, num_negatives=2, sampling_strategy="top")
    state = collator._state
    # Find two queries where one's pool contains the other's positive: a real in-batch false negative.
    positives = positives_of(collator.data)
    pool = {q: set(state["docs"][i].tolist()) for i, q in enumerate(state["pools"].query_order)}
    clash = next(((a, b) for a in pool for b in positives if a != b and pool[a] & positives[b]), None)
    assert clash, "the slice should contain a pool holding another query's positive"
    a, b = clash
    rows = [next(i for i, (q, _) in enumerate(collator.data.pairs) if q == x) for x in (a, b)]
    counts = {"guarded": 0, "random_fill": 0}
    negatives, _, _ = collator.draw(rows, 0, counts)
    assert not set(negatives[0]) & positives[b] and not set(negatives[1]) & positives[a]
    assert counts["guarded"] > 0


def test_prompts_from_training_args_reach_every_column(pairs, student, cache_dir, tmp_path):
    dataset, data = pairs
    args = training_args(tmp_path, prompts={"anchor": "query: ", "positive": "passage: "})
    collator = collator_for(student, dataset, data, cache_dir, num_negatives=2, args=args)
    trainer = SentenceTransformerTrainer(model=student, args=args, train_dataset=dataset, data_collator=collator,
                                         loss=losses.MultipleNegativesRankingLoss(student))
    batch = next(iter(trainer.get_train_dataloader()))
    decode = student.tokenizer.decode
    assert decode(batch["anchor_input_ids"][0], skip_special_tokens=True).startswith("query :")
    for column in ("positive", "negative_1", "negative_2"):
        assert decode(batch[f"{column}_input_ids"][0], skip_special_tokens=True).startswith("passage :"), column


def test_draws_are_seeded_and_fresh_per_step(pairs, student, cache_dir):
    dataset, data = pairs
    features = [dataset[i] for i in range(8)]

    def draws(seed, calls=2):
        c = collator_for(student, dataset, data, cache_dir, num_negatives=2, seed=seed)
        for _ in range(calls):
            c(features)
        return [b["negatives"] for b in c.history]

    first, again, other = draws(1), draws(1), draws(2)
    assert first == again
    assert first != other
    assert first[0] != first[1]  # a new batch of the same rows gets fresh negatives


def test_own_positive_reference_gives_each_row_its_own_threshold(pairs, student, cache_dir):
    from st_hardneg import PositiveAwareFilter

    dataset, data = pairs
    own = PositiveAwareFilter(relative_margin=0.05, positive_reference="own")
    c = collator_for(student, dataset, data, cache_dir, num_negatives=2, filter=own)
    c([dataset[0]])  # mines the pools
    positives, rows = positives_of(data), list(range(len(data.pairs)))
    stats = {"guarded": 0, "random_fill": 0}
    negatives, neg_scores, pos_scores = c.draw(rows, 1, stats)
    assert stats["random_fill"] == 0
    lowest = {}
    for r, score in zip(rows, pos_scores):
        q = data.pairs[r][0]
        lowest[q] = min(lowest.get(q, np.inf), score)
    above_lowest = 0
    for r, docs, scores, pos in zip(rows, negatives, neg_scores, pos_scores):
        q = data.pairs[r][0]
        assert not set(docs) & positives[q]
        assert max(scores) <= 0.95 * pos + 1e-6
        above_lowest += max(scores) > 0.95 * lowest[q] + 1e-6
    assert above_lowest > 0  # the lowest-positive rule would have refused these


def test_refresh_changes_negatives_when_the_model_changes(pairs, student, cache_dir, tmp_path):
    dataset, data = pairs
    collator = collator_for(student, dataset, data, cache_dir, num_negatives=2, sampling_strategy="top")
    rows = list(range(len(collator.data.pairs)))

    def draw_all():
        return [n for start in range(0, len(rows), 8) for n in collator.draw(rows[start:start + 8], 0)[0]]

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
    for row, negatives in zip(rows, after):
        i = state["pools"].pool_of[collator.data.pairs[row][0]]
        assert not set(negatives) & state["stale"][i]  # stale negatives are replaced, never drawn
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
    collator = collator_for(student, dataset, data, cache_dir, num_negatives=1 if loss_name == "gist" else 2,
                            scores="margins" if loss_name == "margin_mse" else None)
    trainer = make_trainer(student, dataset, collator, tmp_path, loss=loss, max_steps=1)
    if loss_name == "margin_mse":
        batch = next(iter(trainer.get_train_dataloader()))
        assert batch["label"].shape == (8, 2)
    output = trainer.train()
    assert np.isfinite(output.training_loss)


def test_refresh_runs_when_its_callback_is_wired_and_warns_when_not(pairs, student, cache_dir, tmp_path, caplog):
    dataset, data = pairs
    collator = collator_for(student, dataset, data, cache_dir, num_negatives=2, refresh="rescore", refresh_steps=1)
    make_trainer(student, dataset, collator, tmp_path, learning_rate=1e-3).train()
    assert collator.refreshes == [] and "refresh_callback is not among the trainer's callbacks" in caplog.text
    make_trainer(student, dataset, collator, tmp_path, learning_rate=1e-3,
                 callbacks=[collator.refresh_callback]).train()
    assert [r["step"] for r in collator.refreshes] == [1, 2]
    with pytest.raises(ValueError, match="refresh needs dataloader_num_workers=0"):
        collator_for(student, dataset, data, cache_dir, refresh="rescore", refresh_steps=1,
                     args=training_args(tmp_path, dataloader_num_workers=2))


@pytest.mark.parametrize("kwargs, message", [
    ({"refresh": "rescore"}, "needs refresh_steps or refresh_on_epoch"),
    ({"refresh": "rescore", "refresh_steps": 0}, "refresh_steps must be a positive integer"),
    ({"sampling_strategy": "sampled", "temperature": 0}, "temperature must be > 0"),
    ({"ensemble": "median"}, "unknown ensemble 'median'"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"pool_size": 2, "num_negatives": 3}, r"pool_size \(2\) must be at least num_negatives \(3\)"),
])
def test_collator_settings_are_checked_before_mining(kwargs, message, pairs, student, monkeypatch):
    from st_hardneg.embeddings import Embedder

    def no_encoding(*args, **kw):
        raise AssertionError("encoded before the arguments were checked")

    monkeypatch.setattr(Embedder, "encode", no_encoding)
    dataset, _ = pairs
    with pytest.raises(ValueError, match=message):
        MiningDataCollator(student, dataset, verbose=False, **kwargs)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_accelerate_launch(tmp_path):
    script = Path(__file__).parent / "scripts" / "ddp_train.py"
    env = dict(os.environ, OMP_NUM_THREADS="1", ST_HARDNEG_TEST_OUT=str(tmp_path))
    # `accelerate launch --cpu` uses its single-process launcher (several only through mpirun);
    # --multi_gpu selects the torchrun launcher, and use_cpu=True in the script makes it gloo on CPU.
    # A port of our own: accelerate's default 29500 is shared by every concurrent launch on the machine, and
    # its "in use, go standalone" check races with a launch that starts at the same moment.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--main_process_port", str(_free_port()), "--mixed_precision", "no",
           "--dynamo_backend", "no", str(script)]
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
    from types import SimpleNamespace

    from st_hardneg import ECICallback

    dataset, data = pairs
    collator = collator_for(student, dataset, data, cache_dir, num_negatives=3)
    callback = ECICallback(every_n_steps=1, max_rows=8)  # one batch of 8 rows: exactly the latest
    trainer = make_trainer(student, dataset, collator, tmp_path, callbacks=[callback])
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "eci/score" in entry]
    assert len(logged) == 2 and len(callback.history) == 2
    queries, positives, negatives = callback._negatives_in_use(SimpleNamespace(collate_fn=collator), 2)
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


@pytest.mark.parametrize("source", ["collator", "mined dataset"])
def test_eci_callback_works_with_dataloader_workers(source, pairs, student, cache_dir, tmp_path):
    """Batches built in worker processes never reach the main process: the callback scores what the
    collator serves now (a draw from its pools), or a fixed sample of the mined dataset."""
    from st_hardneg import ECICallback, mine

    dataset, data = pairs
    if source == "collator":
        collator, train = collator_for(student, dataset, data, cache_dir, num_negatives=2), dataset
    else:
        collator = None
        train = mine(data, student, num_negatives=2, cache_folder=cache_dir, verbose=False).to_dataset("n-tuple")
    callback = ECICallback(every_n_steps=1, max_rows=16)
    trainer = make_trainer(student, train, collator, tmp_path, callbacks=[callback], dataloader_num_workers=2)
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "eci/score" in entry]
    assert len(logged) == 2 and all(entry["eci/score"] > 0 for entry in logged)
    if collator is not None:
        assert not collator.history  # the main process built no batch itself


def test_eci_callback_given_the_trainer_logs_through_it(pairs, student, cache_dir, tmp_path):
    from transformers import TrainerCallback

    from st_hardneg import ECICallback

    class Reporter(TrainerCallback):  # stands for an integration: registered before the ECI callback
        seen: list = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            self.seen.append(dict(logs))

    dataset, data = pairs
    train = dataset.map(lambda row: {"negative": data.corpus_texts[0]})
    reporter = Reporter()
    trainer = make_trainer(student, train, None, tmp_path, callbacks=[reporter])
    trainer.add_callback(ECICallback(every_n_steps=1, max_rows=8, trainer=trainer))
    trainer.train()
    assert sum("eci/score" in logs for logs in reporter.seen) == 2
    # ... and the trainer's own log of each step (logging_steps=1) still happens.
    assert sum("loss" in logs for logs in reporter.seen) == 2
