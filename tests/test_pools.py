"""The engine's batched steps equal their one-query-at-a-time definitions; warm runs reuse what they can."""

import numpy as np
import pytest
from conftest import slice_data

from st_hardneg import PositiveAwareFilter, mine
from st_hardneg.candidates import DenseRetriever
from st_hardneg.filters import normalize_text
from st_hardneg.pools import _kept, corpus_text_keys


def kept_one_query(scores, keep, docs, corpus, keep_at_most):
    """The definition: best first, kept only, a text at most once, at most ``keep_at_most`` (0: no limit)."""
    order = np.argsort(-scores, kind="stable")
    seen, chosen, dupes = set(), [], 0
    for rank in order:
        if not keep[rank]:
            continue
        key = normalize_text(corpus[docs[rank]])
        if key in seen:
            dupes += 1
            continue
        seen.add(key)
        chosen.append(rank)
        if len(chosen) == keep_at_most:
            break
    ranks = {int(r): i for i, r in enumerate(order)}
    return [int(docs[r]) for r in chosen], [float(scores[r]) for r in chosen], [ranks[int(r)] for r in chosen], dupes


@pytest.mark.parametrize("keep_at_most", [0, 1, 3, 50])
def test_batched_pools_equal_the_one_query_definition(keep_at_most):
    rng = np.random.default_rng(keep_at_most)
    corpus = [f"Text {i % 11}" if i % 2 else f"text {i % 11}." for i in range(40)]  # many normalised twins
    from st_hardneg.filters import text_keys

    n, k = 30, 12
    docs = rng.integers(0, 40, size=(n, k))
    scores = np.round(rng.random((n, k)), 1).astype(np.float32)  # rounded: ties exercise the stable order
    keep = rng.random((n, k)) < 0.7
    docs[:, -1], scores[:, -1], keep[:, -1] = -1, -np.inf, False  # padding
    keys = text_keys(corpus)
    pools, dupes = _kept(scores, keep, docs, np.where(docs >= 0, keys[np.maximum(docs, 0)], -1), keep_at_most)
    for row in range(n):
        want = kept_one_query(scores[row], keep[row], docs[row], corpus, keep_at_most)
        got = pools[row]
        assert (got.docs.tolist(), got.scores.tolist(), got.ranks.tolist(), int(dupes[row])) == want, row
    assert dupes.sum() > 0 or keep_at_most == 1  # one pick stops before any twin


def test_widened_queries_get_the_candidates_a_fresh_search_gives(scifact, model, cache_dir, monkeypatch):
    """The exact index searches a widened query once and slices; a fresh search per window gives the same rows."""
    from st_hardneg import pools

    calls = []
    real_search = DenseRetriever.search

    def counted(self, queries, k):
        calls.append((len(queries), k))
        return real_search(self, queries, k)

    monkeypatch.setattr(DenseRetriever, "search", counted)
    data = slice_data(scifact, 40, 400)
    kwargs = {"filter": PositiveAwareFilter(relative_margin=0.05), "num_negatives": 4, "range_max": 4,
              "cache_folder": cache_dir, "verbose": False, "sampling_strategy": "sampled", "seed": 7}
    fast = mine(data, model, **kwargs)
    fast_calls, calls[:] = list(calls), []
    monkeypatch.setattr(pools, "_is_exact_dense", lambda source: False)
    # Keep reusing the index's scores, as the fast run does, so only the searching differs.
    monkeypatch.setattr(pools, "_retrieval_scores_are_the_scorers", lambda source, scorer: True)
    slow = mine(data, model, **kwargs)
    assert fast.stats.widened_queries > 0 and fast.stats.max_window > 8
    assert len(fast_calls) == 2 and len(calls) > 2  # the first window, then one deep search for the widened
    assert fast.to_dataset("ids").to_list() == slow.to_dataset("ids").to_list()
    assert fast.stats.to_dict() == slow.stats.to_dict()


def test_text_keys_are_cached_beside_the_embeddings_and_a_bad_file_is_redone(tmp_path, monkeypatch, caplog):
    from st_hardneg import pools

    corpus = ["A b.", "a  B", "c", "Ç", "d"]
    first = corpus_text_keys(corpus, tmp_path)
    [path] = tmp_path.glob("text-keys-*.npy")
    assert first[0] == first[1] and first[2] == first[3] and len(set(first.tolist())) == 3

    def no_keying(texts):
        raise AssertionError("keyed again although the keys were cached")

    monkeypatch.setattr(pools, "text_keys", no_keying)
    assert (corpus_text_keys(corpus, tmp_path) == first).all()
    monkeypatch.undo()
    path.write_bytes(b"not an npy file")
    with caplog.at_level("WARNING"):
        assert (corpus_text_keys(corpus, tmp_path) == first).all()
    assert "ignoring unreadable text-key cache" in caplog.text
    assert (np.load(path) == first).all()  # rewritten
    assert (corpus_text_keys(corpus, None) == first).all()  # no folder: computed, nothing written
