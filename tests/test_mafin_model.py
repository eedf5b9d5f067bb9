"""MafinModel: [black box ; λ · normalize(small)], trained with SentenceTransformerTrainer, saved and loaded."""

from __future__ import annotations

import numpy as np
import pytest

QUERIES = [f"question {i} about topic {i}" for i in range(8)]
DOCS = [f"answer text for topic {i}" for i in range(8)]


@pytest.fixture()
def parts():
    from st_hardneg import load_model
    from st_hardneg.mafin import PrecomputedBlackBox

    rng = np.random.default_rng(0)
    box = PrecomputedBlackBox({t: rng.normal(size=8) for t in QUERIES + DOCS}, name="fake-api")
    return load_model(None, max_seq_length=32), box


def test_the_embedding_is_the_black_box_then_the_weighted_small_model(parts):
    from st_hardneg.mafin import MafinModel, MissingVectorError

    small, box = parts
    reference = small.encode(DOCS)
    model = MafinModel.from_models(small, box, weight=0.5)
    out = model.encode(DOCS)
    assert out.shape == (8, 8 + reference.shape[1])
    assert np.allclose(out[:, :8], box.embed(DOCS), atol=1e-6)
    assert np.allclose(out[:, 8:], 0.5 * reference / np.linalg.norm(reference, axis=1, keepdims=True), atol=1e-5)
    # The cosine is the black box's, corrected by the small model with weight λ².
    cos = out @ out.T / (1 + 0.25)
    small_cos = reference @ reference.T / np.outer(*[np.linalg.norm(reference, axis=1)] * 2)
    assert np.allclose(cos, (box.embed(DOCS) @ box.embed(DOCS).T + 0.25 * small_cos) / 1.25, atol=1e-5)
    assert model.get_embedding_dimension() == 8 + reference.shape[1]  # learnt from the first vectors
    with pytest.raises(MissingVectorError, match="fake-api: no vector for 1 of 1 texts, e.g. 'unseen text'"):
        model.encode(["unseen text"])
    with pytest.raises(TypeError, match="a Mafin model embeds texts; got a tuple input"):
        model.preprocess([("a", "pair")])


def test_saved_model_loads_with_its_black_box_and_refuses_to_run_without_it(parts, tmp_path):
    from sentence_transformers import SentenceTransformer

    from st_hardneg.mafin import MafinModel

    small, box = parts
    model = MafinModel.from_models(small, box, weight=0.3)
    model.save(str(tmp_path / "mafin"))
    again = MafinModel(str(tmp_path / "mafin"), black_box=box)
    assert again.weight == pytest.approx(0.3) and np.allclose(again.encode(QUERIES), model.encode(QUERIES), atol=1e-6)
    with pytest.raises(ValueError, match="needs black_box=... \\(this model was built with 'fake-api'\\)"):
        MafinModel(str(tmp_path / "mafin"))
    assert again.get_embedding_dimension() == model.get_embedding_dimension()  # the black box's size was saved
    plain = SentenceTransformer(str(tmp_path / "mafin"), trust_remote_code=True)
    with pytest.raises(RuntimeError, match="needs the vectors of its black box \\('fake-api'\\)"):
        plain.encode(QUERIES)
    # Loading trusts our module class only: a folder that asks for remote code is still refused.
    import json

    config = tmp_path / "mafin" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()),
                                  "auto_map": {"AutoModel": "evil.EvilModel"}}))
    (tmp_path / "mafin" / "evil.py").write_text("raise SystemExit('remote code ran')\n")
    MafinModel(str(tmp_path / "mafin"), black_box=box)  # loads natively: evil.py never ran
    with pytest.raises(SystemExit, match="remote code ran"):  # what trust_remote_code=True would have done
        SentenceTransformer(str(tmp_path / "mafin"), trust_remote_code=True)
    with pytest.raises(TypeError, match="not a Mafin model"):
        MafinModel(modules=list(small), black_box=box)


def test_saved_card_loads_the_model_with_its_black_box_and_saving_warns_of_nothing(parts, tmp_path, caplog):
    import logging

    from st_hardneg.mafin import CallableBlackBox, MafinModel

    small, box = parts
    # A store without the card's example texts: the snippet has no scores, and saving logs no warning.
    with caplog.at_level(logging.WARNING):
        MafinModel.from_models(small, box, weight=0.3).save(str(tmp_path / "store"))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    card = (tmp_path / "store" / "README.md").read_text()
    assert "black_box = CallableBlackBox(my_client.embed, name='fake-api')" in card
    assert 'MafinModel("st_hardneg_mafin_model_id", black_box=black_box)' in card
    assert "# [3, black box + 384]" in card and "print(similarities.shape)" in card  # never encoded: size unknown
    assert 'SentenceTransformer("' not in card  # it cannot encode without the black box
    assert "pip install -U st-hardneg" in card and "pip install -U sentence-transformers" not in card
    # A black box that can embed anything: the snippet shows the combined size and the scores.
    rng = np.random.default_rng(1)
    api = CallableBlackBox(lambda texts: rng.normal(size=(len(texts), 8)), name="fake-api")
    MafinModel.from_models(small, api, weight=0.3).save(str(tmp_path / "api"))
    card = (tmp_path / "api" / "README.md").read_text()
    assert "# [3, 392]" in card and "print(similarities)\n# tensor([[ 1.0000," in card


def test_training_moves_the_small_model_only(parts, tmp_path):
    import datasets
    import torch
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer import losses

    from st_hardneg.mafin import MafinModel

    small, box = parts
    model = MafinModel.from_models(small, box, weight=0.5)
    before = {k: v.clone() for k, v in small.state_dict().items()}
    args = SentenceTransformerTrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4,
                                                learning_rate=1e-4, save_strategy="no", report_to=[], use_cpu=True,
                                                disable_tqdm=True)
    SentenceTransformerTrainer(model=model, args=args, loss=losses.MultipleNegativesRankingLoss(model),
                               train_dataset=datasets.Dataset.from_dict({"anchor": QUERIES, "positive": DOCS})).train()
    assert any(not torch.equal(before[k], v) for k, v in small.state_dict().items())
    assert not list(model[-1].parameters())  # nothing but the small model has weights to train
    assert model.black_box.stats["fetched"] == 16  # every text asked of the black box once, however often used


def test_mafin_trains_through_the_mining_collator_and_caches_apart_from_its_small_model(parts, tmp_path):
    import datasets
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer import losses

    from st_hardneg import MiningDataCollator, PositiveAwareFilter
    from st_hardneg.embeddings import Embedder
    from st_hardneg.mafin import MafinModel

    small, box = parts
    model = MafinModel.from_models(small, box, weight=0.5)
    # The cache tells the combined model from its small part (whose key is as before), and one λ from another.
    assert "extra" not in Embedder(small, cache_dir=tmp_path).config_key("document")
    assert Embedder(model, cache_dir=tmp_path).config_key("document")["extra"] == {"black_box": "fake-api",
                                                                                    "weight": 0.5}
    args = SentenceTransformerTrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4,
                                                learning_rate=1e-4, save_strategy="no", report_to=[], use_cpu=True,
                                                disable_tqdm=True)
    pairs = datasets.Dataset.from_dict({"anchor": QUERIES, "positive": DOCS})
    collator = MiningDataCollator(model, pairs, args=args, corpus=DOCS, filter=PositiveAwareFilter(relative_margin=None),
                                  num_negatives=1, range_max=4, verbose=False)
    SentenceTransformerTrainer(model=model, args=args, train_dataset=pairs, data_collator=collator,
                               loss=losses.MultipleNegativesRankingLoss(model)).train()
    assert collator.batch_stats["batches"] == 2 and collator.batch_stats["passthrough"] == 0  # negatives attached


def test_mining_under_the_black_box_equals_mining_with_that_model(scifact, model):
    """black_box_miner: candidates and PercPos under the black box's scores, through the one engine."""
    from st_hardneg import PositiveAwareFilter, load_model, mine
    from st_hardneg.mafin import ModelBlackBox, black_box_miner

    common = {"filter": PositiveAwareFilter(relative_margin=0.05), "num_negatives": 3, "range_max": 20,
              "verbose": False}
    direct = mine(scifact, model, retriever="dense", **common)
    box = ModelBlackBox(load_model(None, max_seq_length=128), name="minilm-as-black-box")  # its own frozen copy
    miner = black_box_miner(box)
    through_box = mine(scifact, model, **miner, **common)
    assert through_box.config["teachers"] == ["bi-encoder[black-box[minilm-as-black-box]]"]
    ours, theirs = direct.to_dataset("n-tuple"), through_box.to_dataset("n-tuple")
    assert len(ours) == len(theirs) > 0
    same = sum(a == b for a, b in zip(ours.to_list(), theirs.to_list()))
    assert same >= 0.95 * len(ours)  # the same cosines, up to float noise at near-ties
    assert miner["teacher"].embedder.stats["fetched"] <= len(set(scifact.corpus_texts) | set(scifact.query_texts))
    # Hybrid: BM25 fused with the black box's candidates, still scored (and filtered) by the black box,
    # the same as the engine's own hybrid retriever over that model.
    hybrid = mine(scifact, model, **black_box_miner(box, "hybrid"), **common)
    assert hybrid.config["retriever"].startswith("hybrid[rrf: bm25")
    assert hybrid.config["teachers"] == ["bi-encoder[black-box[minilm-as-black-box]]"]
    direct_hybrid = mine(scifact, model, retriever="hybrid", **common).to_dataset("n-tuple")
    ours = hybrid.to_dataset("n-tuple")
    assert len(ours) == len(direct_hybrid) > 0
    assert sum(a == b for a, b in zip(ours.to_list(), direct_hybrid.to_list())) >= 0.95 * len(ours)
    with pytest.raises(ValueError, match="unknown retriever"):
        black_box_miner(box, "sparse")
