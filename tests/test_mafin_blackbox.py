"""Black-box vector sources for Mafin: batching, lookup by text hash, no silent zeros, fetch once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from st_hardneg.mafin import (
    CallableBlackBox,
    MissingVectorError,
    ModelBlackBox,
    PrecomputedBlackBox,
    VectorCache,
    text_hash,
)


def fake_api(calls: list):
    """A deterministic 'API': a 4-d vector from the text's hash; records each call's texts."""

    def embed(texts):
        calls.append(list(texts))
        return [np.frombuffer(bytes.fromhex(text_hash(t))[:16], dtype=np.uint8)[:4].astype(np.float32) + 1 for t in texts]

    return embed


def test_callable_black_box_batches_and_normalises():
    calls: list = []
    box = CallableBlackBox(fake_api(calls), name="api", batch_size=2)
    texts = [f"text {i}" for i in range(5)]
    vectors = box.embed(texts)
    assert [len(c) for c in calls] == [2, 2, 1] and [t for c in calls for t in c] == texts
    assert vectors.shape == (5, 4) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)


def test_callable_black_box_refuses_wrong_counts_and_zero_vectors():
    with pytest.raises(ValueError, match=r"api: expected 2 vectors"):
        CallableBlackBox(lambda texts: [[1.0, 0.0]], name="api").embed(["a", "b"])
    with pytest.raises(ValueError, match=r"api: 1 vector\(s\) are zero or not finite, e.g. for text 'b'"):
        CallableBlackBox(lambda texts: [[1.0, 0.0], [0.0, 0.0]], name="api").embed(["a", "b"])


def test_any_black_box_is_checked_no_silent_zeros_wrong_counts_or_scales(tmp_path):
    """A black box of the user's own (any object with name and embed) goes through the same checks."""

    class Custom:
        name = "custom"

        def __init__(self, vectors):
            self.vectors = vectors

        def embed(self, texts):
            return np.asarray(self.vectors[: len(texts)], dtype=np.float32)

    assert np.allclose(VectorCache(Custom([[3.0, 4.0]])).embed(["a"]), [[0.6, 0.8]])  # unit length, as the others
    with pytest.raises(ValueError, match=r"custom: 1 vector\(s\) are zero or not finite, e.g. for text 'b'"):
        VectorCache(Custom([[1.0, 0.0], [0.0, 0.0]]), folder=tmp_path).embed(["a", "b"])
    assert not list(tmp_path.rglob("*.parquet"))  # nothing bad was cached
    with pytest.raises(ValueError, match=r"custom: expected 2 vectors"):
        VectorCache(Custom([[1.0, 0.0]])).embed(["a", "b"])
    store = PrecomputedBlackBox({"a": [1.0, 0.0]}, name="store", fallback=Custom([[0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"custom: 1 vector\(s\) are zero"):
        store.embed(["a", "b"])


def test_precomputed_vectors_are_found_by_text_from_a_dict_a_dataset_or_parquet(tmp_path):
    import datasets

    texts = ["alpha", "beta", "gamma"]
    vectors = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    expected = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    from_dict = PrecomputedBlackBox(dict(zip(texts, vectors)), name="d")
    dataset = datasets.Dataset.from_dict({"text": texts, "embedding": vectors.tolist()})
    path = tmp_path / "vectors.parquet"
    datasets.Dataset.from_dict({"text_sha256": [text_hash(t) for t in texts], "embedding": vectors.tolist()}
                               ).to_parquet(str(path))
    for box in (from_dict, PrecomputedBlackBox(dataset, name="ds"), PrecomputedBlackBox(path, name="p")):
        assert len(box) == 3
        assert np.allclose(box.embed(["gamma", "alpha", "gamma"]), expected[[2, 0, 2]])
    with pytest.raises(ValueError, match="needs the black box's name"):
        PrecomputedBlackBox(path, name="")


def test_a_missing_vector_is_an_error_or_goes_to_the_fallback(tmp_path):
    import datasets

    box = PrecomputedBlackBox({"alpha": [1.0, 0.0]}, name="store")
    with pytest.raises(MissingVectorError, match=r"store: no vector for 2 of 3 texts, e.g. 'beta'"):
        box.embed(["alpha", "beta", "delta"])
    calls: list = []
    with_fallback = PrecomputedBlackBox({"alpha": [1.0, 0.0, 0.0, 0.0]}, name="store",
                                        fallback=CallableBlackBox(fake_api(calls), name="api"))
    out = with_fallback.embed(["alpha", "beta", "delta"])
    assert calls == [["beta", "delta"]] and np.allclose(out[0], [1, 0, 0, 0])
    assert np.allclose(out[1:], CallableBlackBox(fake_api([]), name="api").embed(["beta", "delta"]))
    narrow = PrecomputedBlackBox({"alpha": [1.0, 0.0]}, name="store", fallback=CallableBlackBox(fake_api([]), "api"))
    with pytest.raises(ValueError, match="the fallback api gives 4-d vectors, the store 2-d"):
        narrow.embed(["beta"])
    bad = tmp_path / "bad.parquet"
    datasets.Dataset.from_dict({"sentence": ["a"], "embedding": [[1.0]]}).to_parquet(str(bad))
    with pytest.raises(ValueError, match=r"bad.parquet: needs a 'text' or 'text_sha256' column"):
        PrecomputedBlackBox(bad, name="b")
    with pytest.raises(FileNotFoundError, match="nowhere.parquet: no such file"):
        PrecomputedBlackBox(tmp_path / "nowhere.parquet", name="n")


def test_vector_cache_fetches_each_text_once_across_runs(tmp_path):
    calls: list = []
    box = CallableBlackBox(fake_api(calls), name="api", batch_size=8)
    first = VectorCache(box, folder=tmp_path, chunk_size=2)
    a = first.embed(["x", "y", "x"])
    b = first.embed(["y", "z"])
    assert calls == [["x", "y"], ["z"]] and first.stats == {"fetched": 3, "from_cache": 1}  # "y", the 2nd time
    # A stray temporary file (a run killed mid-write) is not read; a new run fetches nothing.
    folder = next(tmp_path.iterdir())
    (folder / ".deadbeef.tmp").write_bytes(b"half a parquet file")
    again = VectorCache(CallableBlackBox(fake_api(calls), name="api"), folder=tmp_path)
    assert len(again) == 3 and np.allclose(again.embed(["x", "y", "z"]), np.vstack([a[:2], b[1:]]))
    assert len(calls) == 2 and again.stats["fetched"] == 0
    # An unreadable shard costs its texts a refetch, not the cache.
    (folder / "0000broken.parquet").write_bytes(b"not parquet")
    assert len(VectorCache(CallableBlackBox(fake_api(calls), name="api"), folder=tmp_path)) == 3
    # Another black box's vectors are kept apart.
    other = VectorCache(CallableBlackBox(fake_api(calls), name="another api"), folder=tmp_path)
    assert len(other) == 0 and len(list(tmp_path.iterdir())) == 1  # nothing written until it fetches
    with pytest.raises(TypeError, match="must have a name and an embed"):
        VectorCache(lambda texts: texts)


def test_model_black_box_is_frozen_and_gives_the_models_unit_vectors():
    from st_hardneg import load_model

    model = load_model(None, max_seq_length=64)  # its own copy: the black box freezes the model it is given
    box = ModelBlackBox(model, name="minilm")
    assert box.name == "minilm" and not any(p.requires_grad for p in model.parameters())
    texts = ["a frozen model", "as a black box"]
    expected = model.encode(texts, convert_to_numpy=True)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(box.embed(texts), expected, atol=1e-5)


def test_a_model_black_box_loaded_from_a_folder_is_named_without_its_path():
    from st_hardneg.models import default_model_path

    folder = default_model_path()
    name = ModelBlackBox(folder).name
    assert "/" not in name and name.startswith(f"{Path(folder).resolve().name}@")  # cards publish this name


def test_vector_cache_saves_chunk_by_chunk_and_refuses_two_sizes_under_one_name(tmp_path):
    calls: list = []

    def dies_on_third_call(texts):
        if len(calls) == 2:
            raise ConnectionError("API down")
        return fake_api(calls)(texts)

    cache = VectorCache(CallableBlackBox(dies_on_third_call, name="api"), folder=tmp_path, chunk_size=2)
    with pytest.raises(ConnectionError):
        cache.embed([f"t{i}" for i in range(6)])
    resumed = VectorCache(CallableBlackBox(fake_api([]), name="api"), folder=tmp_path)
    assert len(resumed) == 4  # the two chunks fetched before the failure were kept
    wider = VectorCache(CallableBlackBox(lambda texts: np.ones((len(texts), 6)), name="api"), folder=tmp_path)
    with pytest.raises(ValueError, match="api: got 6-d vectors, but the cache holds 4-d ones under this name"):
        wider.embed(["new text"])
