"""The embedding cache keys on weights, prompts and max length, unlike sentence-transformers'."""

import numpy as np
import pytest
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


def test_module_configuration_is_part_of_the_key(model):
    """The same weights pooled another way are another model (Pooling's mode is not in state_dict)."""
    import copy

    cls = copy.deepcopy(model)
    cls[1].pooling_mode = "cls"
    assert cls[1].get_config_dict()["pooling_mode"] == "cls"
    assert model_fingerprint(cls) != model_fingerprint(model)
    assert model_fingerprint(copy.deepcopy(model)) == model_fingerprint(model)


def test_the_prompt_recorded_is_the_one_encode_document_and_encode_query_choose(model):
    import copy

    prompted = copy.deepcopy(model)
    prompted.prompts = {"query": "q: ", "passage": "p: "}
    embedder = Embedder(prompted, show_progress=False)
    assert (embedder.resolved_prompt("query"), embedder.resolved_prompt("document")) == ("q: ", "p: ")
    prompted.prompts, prompted.default_prompt_name = {"classification": "c: "}, "classification"
    assert (embedder.resolved_prompt("query"), embedder.resolved_prompt("document")) == ("c: ", "c: ")
    assert Embedder(prompted, document_prompt_name="classification").resolved_prompt("document") == "c: "


def test_a_corrupt_cache_file_is_encoded_again(model, tmp_path):
    expected = Embedder(model, cache_dir=tmp_path, show_progress=False).encode(TEXTS, "document")
    (cached,) = tmp_path.glob("*.npy")
    cached.write_bytes(cached.read_bytes()[:40])  # cut short, as a full disk leaves it
    again = Embedder(model, cache_dir=tmp_path, show_progress=False)
    assert np.allclose(again.encode(TEXTS, "document"), expected, atol=1e-6) and again.stats["encoded"] == 3
    assert np.load(cached).shape == expected.shape  # replaced by a whole file


def test_subsets_are_served_from_memory(model):
    embedder = Embedder(model, show_progress=False)
    full = embedder.encode(TEXTS, "document")
    part = embedder.encode([TEXTS[2], TEXTS[0]], "document")
    assert embedder.stats["from_memory"] == 2
    assert np.array_equal(part, full[[2, 0]])


def test_duplicates_are_encoded_once_and_share_the_cache_of_the_deduplicated_list(model, tmp_path):
    doubled = [TEXTS[0], TEXTS[1], TEXTS[0], TEXTS[2], TEXTS[1]]
    first = Embedder(model, cache_dir=tmp_path, show_progress=False)
    out = first.encode(doubled, "document")
    assert first.stats["encoded"] == 3 and np.array_equal(out[2], out[0]) and np.array_equal(out[4], out[1])
    second = Embedder(model, cache_dir=tmp_path, show_progress=False)  # e.g. a teacher primed on dict.fromkeys
    assert np.array_equal(second.encode(TEXTS, "document"), out[[0, 1, 3]])
    assert second.stats == {"encoded": 0, "from_cache": 3, "from_memory": 0}
    assert len(list(tmp_path.glob("*.npy"))) == 1


def test_auto_cache_dir_is_the_user_cache_not_a_folder_named_auto(model, tmp_path, monkeypatch):
    monkeypatch.setenv("ST_HARDNEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    Embedder(model, cache_dir="auto", show_progress=False).encode(TEXTS, "document")
    assert not (tmp_path / "auto").exists()
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npy"))) == 1


class InterruptedAfter:
    """The model, except that encoding documents raises KeyboardInterrupt (Ctrl-C) after ``calls`` calls."""

    def __init__(self, model, calls):
        self._model, self.calls, self.encoded = model, calls, []

    def __getattr__(self, name):
        return getattr(self._model, name)

    def encode_document(self, texts, **kwargs):
        if len(self.encoded) == self.calls:
            raise KeyboardInterrupt
        self.encoded.append(list(texts))
        return self._model.encode_document(texts, **kwargs)


def test_an_interrupted_encoding_resumes_at_the_first_missing_chunk(model, tmp_path):
    texts = [f"document number {i} about hard negatives" for i in range(7)]  # chunks of 3: 3 + 3 + 1
    full = Embedder(model, cache_dir=tmp_path / "uninterrupted", chunk_size=3, show_progress=False).encode(
        texts, "document")

    first = InterruptedAfter(model, calls=1)
    with pytest.raises(KeyboardInterrupt):
        Embedder(first, cache_dir=tmp_path / "cache", chunk_size=3, show_progress=False).encode(texts, "document")
    assert first.encoded == [texts[:3]]

    again = InterruptedAfter(model, calls=99)
    resumed = Embedder(again, cache_dir=tmp_path / "cache", chunk_size=3, show_progress=False)
    array = resumed.encode(texts, "document")
    assert again.encoded == [texts[3:6], texts[6:]]  # only the chunks the first run did not finish
    assert resumed.stats == {"encoded": 4, "from_cache": 3, "from_memory": 0}
    assert np.array_equal(array, full)
    # The finished collection is one cache file under the usual key; the chunks are gone.
    assert [p.name for p in (tmp_path / "cache").glob("*.npy")] == [p.name for p in
                                                                   (tmp_path / "uninterrupted").glob("*.npy")]
    assert not any((tmp_path / "cache" / "partial").iterdir())


def test_a_local_model_is_named_by_its_folder_and_weights_never_its_path():
    from sentence_transformers import SentenceTransformer

    from st_hardneg.models import default_model_path

    local = SentenceTransformer(default_model_path())
    name = Embedder(local, show_progress=False).name
    assert name == f"model@{model_fingerprint(local)[:12]}" and default_model_path() not in name
