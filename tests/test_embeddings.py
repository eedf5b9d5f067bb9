"""The embedding cache keys on weights, prompts and max length, unlike sentence-transformers'."""

import numpy as np
import torch

from st_hardneg.embeddings import Embedder, model_fingerprint

TEXTS = ["hard negatives", "a second document", "and a third one"]


def test_cache_hit_then_miss_after_the_weights_change(model, tmp_path):
    first = Embedder(model, cache_dir=tmp_path, show_progress=False)
    a = first.encode(TEXTS, "document")
    assert first.stats["encoded"] == 3 and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    second = Embedder(model, cache_dir=tmp_path, show_progress=False)
    assert np.array_equal(second.encode(TEXTS, "document"), a)
    assert second.stats == {"encoded": 0, "from_cache": 3, "from_memory": 0}

    # "Fine-tune" in place, as an optimiser step does: same object, same name, new weights.
    before = model_fingerprint(model)
    param = next(model.parameters())
    saved = param.detach().clone()
    with torch.no_grad():
        param.add_(0.05)
    try:
        assert model_fingerprint(model) != before
        b = second.encode(TEXTS, "document")  # the in-memory copy must not be reused either
        assert second.stats["encoded"] == 3
        assert not np.allclose(a, b)
    finally:
        with torch.no_grad():
            param.copy_(saved)
    assert model_fingerprint(model) == before


def test_prompt_and_max_length_are_part_of_the_key(model, tmp_path):
    base = Embedder(model, cache_dir=tmp_path, show_progress=False)
    base.encode(TEXTS, "query")
    prompted = Embedder(model, cache_dir=tmp_path, query_prompt="query: ", show_progress=False)
    prompted.encode(TEXTS, "query")
    assert prompted.stats["encoded"] == 3
    original = model.max_seq_length
    model.max_seq_length = 16
    try:
        shorter = Embedder(model, cache_dir=tmp_path, show_progress=False)
        shorter.encode(TEXTS, "query")
        assert shorter.stats["encoded"] == 3
    finally:
        model.max_seq_length = original
    assert len(list(tmp_path.glob("*.npy"))) == 3


def test_subsets_are_served_from_memory(model):
    embedder = Embedder(model, show_progress=False)
    full = embedder.encode(TEXTS, "document")
    part = embedder.encode([TEXTS[2], TEXTS[0]], "document")
    assert embedder.stats["from_memory"] == 2
    assert np.array_equal(part, full[[2, 0]])


def test_auto_cache_dir_is_the_user_cache_not_a_folder_named_auto(model, tmp_path, monkeypatch):
    monkeypatch.setenv("ST_HARDNEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    Embedder(model, cache_dir="auto", show_progress=False).encode(TEXTS, "document")
    assert not (tmp_path / "auto").exists()
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npy"))) == 1
