"""st_hardneg.mine_hard_negatives against sentence_transformers.util.mine_hard_negatives on real SciFact rows.

Where the algorithms coincide, the rows are equal: same layout, same column names, same texts in
the same order, scores equal to float precision. Where st-hardneg differs on purpose, a test below
names the difference and shows it (the README's "What it does differently" lists them).
"""

from __future__ import annotations

import random

import datasets
import numpy as np
import pytest
from sentence_transformers.util import mine_hard_negatives as st_mine

from st_hardneg import mine_hard_negatives

SETTINGS = {
    "defaults (dense top-3, triplet)": {},
    "relative margin (PercPos 95%), n-tuple": dict(relative_margin=0.05, num_negatives=4, output_format="n-tuple"),
    "absolute margin, n-tuple with scores": dict(absolute_margin=0.02, num_negatives=2, output_format="n-tuple",
                                                 output_scores=True),
    "range_min / range_max, labeled-list": dict(range_min=5, range_max=30, num_negatives=3,
                                                output_format="labeled-list"),
    "max / min score, labeled-pair with scores": dict(max_score=0.7, min_score=0.2, num_negatives=3,
                                                      output_format="labeled-pair", output_scores=True),
    "labeled-pair": dict(relative_margin=0.05, num_negatives=2, output_format="labeled-pair"),
    "random sampling, n-tuple with scores": dict(relative_margin=0.05, sampling_strategy="random", num_negatives=3,
                                                 output_format="n-tuple", output_scores=True),
    "triplet with scores": dict(relative_margin=0.05, num_negatives=2, output_scores=True),
    "labeled-list with scores": dict(num_negatives=2, output_format="labeled-list", output_scores=True),
}


@pytest.fixture(scope="module")
def pairs(scifact):
    """The sample's (query, answer) pairs: the user's own column names, and one claim text twice."""
    return datasets.Dataset.from_dict({"query": [scifact.query_texts[q] for q, _ in scifact.pairs],
                                       "answer": [scifact.corpus_texts[d] for _, d in scifact.pairs]})


def both(pairs, corpus, model, tmp_path_factory, seed=7, ours_kwargs=None, **kwargs):
    caches = tmp_path_factory.getbasetemp() / "parity-st", tmp_path_factory.getbasetemp() / "parity-ours"
    random.seed(seed)
    theirs = st_mine(pairs, model, corpus=corpus, use_faiss=True, verbose=False, cache_folder=str(caches[0]), **kwargs)
    random.seed(seed)
    ours = mine_hard_negatives(pairs, model, corpus=corpus, verbose=False, cache_folder=str(caches[1]),
                               **kwargs, **(ours_kwargs or {}))
    return theirs, ours


def assert_same_rows(theirs, ours):
    assert ours.column_names == theirs.column_names
    a, b = theirs.to_dict(), ours.to_dict()
    for column in a:
        if column in ("scores", "score"):
            flat = lambda rows: np.array([v for row in rows for v in np.atleast_1d(row)], dtype=float)  # noqa: E731
            assert flat(b[column]) == pytest.approx(flat(a[column]), abs=1e-5), column
        else:
            assert b[column] == a[column], column
    assert len(ours) > 0


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_rows_equal_sentence_transformers(setting, pairs, scifact, model, tmp_path_factory):
    # max_candidates=None: no widening of short windows, the one thing the engine adds to these runs.
    theirs, ours = both(pairs, scifact.corpus_texts, model, tmp_path_factory, ours_kwargs={"max_candidates": None},
                        **SETTINGS[setting])
    assert_same_rows(theirs, ours)


def test_a_seed_argument_reproduces_the_seeded_random_stream(pairs, scifact, model, tmp_path_factory):
    kwargs = SETTINGS["random sampling, n-tuple with scores"]
    theirs, _ = both(pairs, scifact.corpus_texts, model, tmp_path_factory, seed=11, **kwargs)
    random.seed(999)  # the global state no longer matters
    ours = mine_hard_negatives(pairs, model, corpus=scifact.corpus_texts, verbose=False, seed=11, max_candidates=None,
                               cache_folder=str(tmp_path_factory.getbasetemp() / "parity-ours"), **kwargs)
    assert_same_rows(theirs, ours)
    other = mine_hard_negatives(pairs, model, corpus=scifact.corpus_texts, verbose=False, seed=12, max_candidates=None,
                                cache_folder=str(tmp_path_factory.getbasetemp() / "parity-ours"), **kwargs)
    assert other["negative_1"] != ours["negative_1"]


def test_cross_encoder_with_a_margin_rescores_as_sentence_transformers(pairs, scifact, model, tmp_path_factory):
    # No cross-encoder ships offline: this one is built from the MiniLM weights with a seeded, untrained
    # head. It checks that both rescore the same candidates the same way (sigmoid of the logit).
    import torch
    from sentence_transformers import CrossEncoder

    from st_hardneg.models import default_model_path

    torch.manual_seed(0)
    teacher = CrossEncoder(default_model_path(), num_labels=1, max_length=64)
    kwargs = dict(cross_encoder=teacher, absolute_margin=0.0, range_max=8, num_negatives=2, output_format="n-tuple",
                  output_scores=True)
    small = pairs.select(range(20))
    theirs, ours = both(small, scifact.corpus_texts[:120], model, tmp_path_factory,
                        ours_kwargs={"max_candidates": None}, **kwargs)
    assert_same_rows(theirs, ours)
    assert all(0 < s < 1 for row in ours["scores"] for s in row)


# ---- where st-hardneg differs on purpose ---------------------------------------------------------


def test_difference_short_windows_are_widened_not_dropped(pairs, scifact, model, tmp_path_factory):
    kwargs = SETTINGS["relative margin (PercPos 95%), n-tuple"]
    theirs, ours = both(pairs, scifact.corpus_texts, model, tmp_path_factory, **kwargs)
    # Every row sentence-transformers keeps is ours too, in the same order ...
    keys = lambda ds: list(zip(ds["query"], ds["answer"], ds["negative_1"], ds["negative_4"]))  # noqa: E731
    ours_keys, theirs_keys = keys(ours), keys(theirs)
    it = iter(ours_keys)
    assert all(row in it for row in theirs_keys)
    # ... and the extra rows are those of queries it dropped for want of candidates in its window.
    extra = set(ours_keys) - set(theirs_keys)
    assert extra and not {q for q, *_ in extra} & set(theirs["query"])
    assert len(ours) > len(theirs)


def test_a_cross_encoder_is_used_without_a_margin(pairs, scifact, model, tmp_path_factory):
    import torch
    from sentence_transformers import CrossEncoder

    from st_hardneg.hard_negatives import _excludes_query_text
    from st_hardneg.models import default_model_path

    torch.manual_seed(0)
    teacher = CrossEncoder(default_model_path(), num_labels=1, max_length=64)
    small = pairs.select(range(10))
    kwargs = dict(cross_encoder=teacher, num_negatives=2, output_format="n-tuple", output_scores=True)
    theirs, ours = both(small, scifact.corpus_texts[:120], model, tmp_path_factory, **kwargs)
    cosine = mine_hard_negatives(small, model, corpus=scifact.corpus_texts[:120], num_negatives=2, verbose=False,
                                 output_format="n-tuple", output_scores=True)
    # st-hardneg ranks by the teacher it was given ...
    assert not np.allclose(ours["scores"], cosine["scores"], atol=1e-3)
    if _excludes_query_text():  # ... as sentence-transformers does from 6.3 on (the model's activation is a sigmoid)
        assert_same_rows(theirs, ours)
    else:  # ... where 6.2 keeps the bi-encoder's cosines (it rescored only with a margin or bound)
        assert np.allclose(theirs["scores"], cosine["scores"], atol=1e-5)


def test_a_query_is_never_its_own_negative_from_sentence_transformers_6_3_on(model, tmp_path_factory):
    from st_hardneg.hard_negatives import _excludes_query_text

    # The first query's text is a document of the corpus, the closest one there is to it.
    pairs = datasets.Dataset.from_dict({"q": ["what is bm25", "what is faiss"],
                                        "p": ["BM25 ranks documents by term statistics.", "faiss searches vectors."]})
    corpus = ["what is bm25", "A cat is a pet.", "Dogs bark.", "Rain falls.", "Vectors have lengths."]
    theirs, ours = both(pairs, corpus, model, tmp_path_factory, num_negatives=2, output_format="n-tuple")
    assert_same_rows(theirs, ours)
    first = [ours[c][0] for c in ("negative_1", "negative_2")]
    assert ("what is bm25" in first) != _excludes_query_text()


def test_a_tiny_corpus_gives_short_rows_as_in_sentence_transformers(model, tmp_path_factory):
    pairs = datasets.Dataset.from_dict({"q": ["what is bm25", "what is faiss", "what is a cat"],
                                        "p": ["BM25 ranks by terms.", "faiss searches vectors.", "A cat is a pet."]})
    theirs, ours = both(pairs, None, model, tmp_path_factory, num_negatives=3)
    assert_same_rows(theirs, ours)  # 2 negatives each: every other positive; no error
    assert len(ours) == 6


def test_seed_none_top_sampling_leaves_the_global_random_state_alone(pairs, scifact, model, tmp_path_factory):
    random.seed(5)
    expected = random.random()
    random.seed(5)
    mine_hard_negatives(pairs.select(range(6)), model, corpus=scifact.corpus_texts, verbose=False,
                        cache_folder=str(tmp_path_factory.getbasetemp() / "parity-ours"))
    assert random.random() == expected


def test_an_empty_column_name_means_the_default_and_a_wrong_one_is_an_error(pairs, scifact, model):
    from st_hardneg import DataError

    with pytest.raises(DataError, match=r"anchor_column_name='question' is not a column of the dataset"):
        mine_hard_negatives(pairs, model, anchor_column_name="question", verbose=False)


def test_difference_a_reformatted_copy_of_the_positive_is_no_negative(pairs, scifact, model, tmp_path_factory):
    positive = pairs[0]["answer"]
    copy = positive.upper().replace(".", " . ")
    corpus = scifact.corpus_texts + [copy]
    small = pairs.select(range(4))
    theirs, ours = both(small, corpus, model, tmp_path_factory, num_negatives=3, output_format="n-tuple")
    columns = ("negative_1", "negative_2", "negative_3")
    assert copy in [theirs[c][0] for c in columns]  # the same text, re-cased: sentence-transformers' top negative
    assert copy not in [ours[c][0] for c in columns]
