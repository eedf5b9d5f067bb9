"""PositiveAwareFilter on hand-made scores: every rule, exact expected picks and counts."""

import numpy as np
import pytest

from st_hardneg.filters import PositiveAwareFilter, normalize_text, rowwise_isin, text_keys

SCORES = np.array([0.90, 0.85, 0.80, 0.60, 0.30])


def keep(flt, scores=SCORES, pos=0.88, **kw):
    return flt(scores, pos, **kw).keep.tolist()


def test_relative_margin_keeps_at_most_95_percent_of_positive():
    result = PositiveAwareFilter(relative_margin=0.05)(SCORES, 0.88)  # threshold 0.836
    assert result.keep.tolist() == [False, False, True, True, True]
    assert result.removed == {"relative_margin": 2}


def test_threshold_itself_is_kept_as_in_sentence_transformers():
    # sentence-transformers removes scores *above* positive - |positive| * margin (and - absolute margin).
    assert keep(PositiveAwareFilter(relative_margin=0.5), np.array([0.5, 0.5000001]), pos=1.0) == [True, False]
    assert keep(PositiveAwareFilter(relative_margin=None, absolute_margin=0.25), np.array([0.5, 0.51]),
                pos=0.75) == [True, False]


def test_absolute_margin():
    assert keep(PositiveAwareFilter(relative_margin=None, absolute_margin=0.1)) == [False, False, False, True, True]


def test_max_and_min_score():
    assert keep(PositiveAwareFilter(relative_margin=None, max_score=0.7)) == [False, False, False, True, True]
    result = PositiveAwareFilter(relative_margin=None, min_score=0.5)(SCORES, 0.88)
    assert result.keep.tolist() == [True, True, True, True, False]
    assert result.removed == {"min_score": 1}


def test_rules_combine():
    flt = PositiveAwareFilter(relative_margin=0.05, min_score=0.5)
    assert keep(flt) == [False, False, True, True, False]


def test_several_positives_use_the_lowest():
    # Lowest positive 0.70: PercPos threshold 0.665.
    assert keep(PositiveAwareFilter(relative_margin=0.05), pos=[0.88, 0.70]) == [False, False, False, True, True]


def test_own_positive_reference_takes_one_score_per_row_and_is_recorded():
    own = PositiveAwareFilter(relative_margin=0.05, positive_reference="own")
    scores = np.array([[0.90, 0.80, 0.70, 0.60], [0.90, 0.80, 0.70, 0.60]])
    assert own(scores, [0.88, 0.70]).keep.tolist() == [[False, True, True, True], [False, False, False, True]]
    with pytest.raises(ValueError, match="query row 1 has 2 positive scores.*one score per query row"):
        own(scores, [0.88, [0.88, 0.70]])
    assert own.to_dict()["positive_reference"] == "own" and own != PositiveAwareFilter(relative_margin=0.05)
    assert own.description == "TopK-PercPos(0.95) + own positive"
    assert PositiveAwareFilter(relative_margin=None, positive_reference="own").description == "positives-only"
    with pytest.raises(ValueError, match="positive_reference must be 'lowest' or 'own', got 'highest'"):
        PositiveAwareFilter(positive_reference="highest")


def test_negative_positive_score_stays_below_the_positive():
    # threshold = -0.2 - 0.2 * 0.05 = -0.21; (1 - margin) * pos would wrongly give -0.19.
    flt = PositiveAwareFilter(relative_margin=0.05)
    assert keep(flt, np.array([-0.1, -0.205, -0.3]), pos=-0.2) == [False, False, True]


def test_range_min_skips_the_best_survivors_of_the_other_rules():
    shuffled = np.array([0.60, 0.90, 0.30, 0.85, 0.80])
    assert keep(PositiveAwareFilter(relative_margin=None, range_min=2), shuffled) == [True, False, True, False, True]
    ids = np.array([13, 10, 14, 11, 12])
    result = PositiveAwareFilter(relative_margin=None, range_min=1)(shuffled, 0.88, candidate_ids=ids,
                                                                   positive_ids={10})
    assert result.keep.tolist() == [True, False, True, False, True]
    assert result.removed == {"positive_id": 1, "range_min": 1}
    # After the score rules, as in sentence-transformers: 0.90 and 0.85 go to PercPos, range_min skips 0.80.
    result = PositiveAwareFilter(relative_margin=0.05, range_min=1)(shuffled, 0.88)
    assert result.keep.tolist() == [True, False, True, False, False]
    assert result.removed == {"relative_margin": 2, "range_min": 1}


def test_positive_ids_removed_and_counted_first():
    flt = PositiveAwareFilter(relative_margin=0.05)
    result = flt(SCORES, 0.88, candidate_ids=[7, 8, 9, 10, 11], positive_ids=[7, 10])
    assert result.keep.tolist() == [False, False, True, False, True]
    # 0.90 is a positive *and* above the threshold: counted once, under the first rule.
    assert result.removed == {"positive_id": 2, "relative_margin": 1}


def test_old_names_still_work_for_one_release_with_a_warning():
    with pytest.warns(FutureWarning) as caught:
        old = PositiveAwareFilter(perc=0.95, margin=0.1, skip_top=2)
    assert [str(w.message).split("(")[1].split("=")[0] for w in caught] == ["perc", "margin", "skip_top"]
    assert "use relative_margin=1 - perc" in str(caught[0].message)
    assert old == PositiveAwareFilter(relative_margin=0.05, absolute_margin=0.1, range_min=2)
    with pytest.raises(TypeError):
        PositiveAwareFilter(0.05)  # keyword-only: a positional 0.95 meant perc before


def test_near_duplicates_by_text_and_by_similarity():
    flt = PositiveAwareFilter(relative_margin=None, duplicate_threshold=0.98)
    result = flt(
        np.array([0.5, 0.5, 0.5, 0.5]), 0.9,
        candidate_texts=["The Cat sat.", "the  cat sat", "A dog.", "Another dog"],
        positive_texts=["THE CAT SAT"],
        duplicate_similarity=np.array([0.1, 0.1, 0.99, 0.2]),
    )
    assert result.keep.tolist() == [False, False, False, True]
    assert result.removed == {"duplicate_text": 2, "duplicate_score": 1}
    assert normalize_text("Café, au-lait!") == normalize_text("cafe au lait")


def test_normalized_text_is_the_documented_definition():
    """The fast path (bytes for ASCII, one lookup per non-ASCII character) equals the plain definition."""
    import random
    import re
    import unicodedata

    def definition(text):
        text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
        return re.sub(r"[\W_]+", " ", text.lower()).strip()

    tricky = ["Α\u1715Σ", "ΑΣ\u1715Β", "ΟΔΟΣ.", "İstanbul ﬁne Ⅻ ℌ café_bar __x__", "a\u0301b ½ x² ǅ", "", " \t\n", "___", "ß straße ΣΑΣ",
              "\u00a0nbsp\u2003em", "١٢٣ digits", "tab\x0bv\x1cfs", "\u0301lead", "a\ud800b", "zero\u200bwidth"]
    rng = random.Random(0)
    alphabet = [*map(chr, range(32, 127)), *map(chr, range(0xC0, 0x250)), "\u0301", "\u0308", "\u00a0", "–", "µ",
                "²", "ﬁ", "Ⅻ", "ℌ", "İ", "\u200b", "。", "中", "\U0001d400", "Σ", "Α", "ς", "\u1715", "\u302e"]
    fuzz = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(25))) for _ in range(3000)]
    for text in tricky + fuzz:
        assert normalize_text(text) == definition(text), repr(text)


def test_text_keys_are_equal_exactly_when_the_normalised_texts_are():
    import random

    rng = random.Random(1)
    # Same letters split differently ("ab c" / "a bc") collide in the prefilter and must be told apart.
    words = ["ab", "a", "bc", "c", "Ab", "B C", "café", "cafe", "CAFÉ", "ΣΑΣ", "σας", "x²", "x2", "-", "1"]
    texts = ["".join(rng.choice(words) + rng.choice(["", " ", ".", "__", "\u00a0"]) for _ in range(rng.randrange(4)))
             for _ in range(2000)]
    texts += [None, "ab c", "a bc", "AB C.", "abc"]
    keys = text_keys(texts)
    assert keys[texts.index(None)] == -1
    norm = {i: normalize_text(t) for i, t in enumerate(texts) if t is not None}
    by_key: dict = {}
    for i, n in norm.items():
        by_key.setdefault(int(keys[i]), set()).add(n)
    assert all(len(v) == 1 for v in by_key.values())  # one key never covers two normalised texts
    assert len(by_key) == len(set(norm.values()))  # and one normalised text never gets two keys
    a, b, c = (texts.index(t) for t in ("ab c", "a bc", "AB C."))
    assert keys[a] != keys[b] and keys[a] == keys[c]


def test_rowwise_isin_matches_a_loop_and_never_matches_padding():
    rng = np.random.default_rng(0)
    values = rng.integers(-1, 30, size=(50, 12))
    allowed = [list(rng.choice(30, size=rng.integers(0, 5), replace=False)) for _ in range(50)]
    expected = np.array([[v in set(a) for v in row] for row, a in zip(values, allowed)])
    assert (rowwise_isin(values, allowed) == expected).all()
    assert not rowwise_isin(np.array([[-1, -1]]), [[0]]).any()
    with pytest.raises(ValueError, match="2 rows of ids for 1 rows"):
        rowwise_isin(np.array([[1]]), [[1], [2]])


def test_text_keys_and_ids_decide_like_texts_and_sets():
    """The engine passes integer keys and positions; the result equals the texts-and-sets path."""
    rng = np.random.default_rng(3)
    corpus = [f"Doc {i % 17}." if i % 3 else f"doc  {i % 17}" for i in range(60)]
    ids = rng.integers(0, 60, size=(20, 9))
    ids[:, -2:] = -1  # padding
    valid = ids >= 0
    positives = [list(rng.choice(60, size=rng.integers(1, 4), replace=False)) for _ in range(20)]
    scores = np.where(valid, rng.random((20, 9)), -np.inf)
    flt = PositiveAwareFilter(relative_margin=0.05)
    by_text = flt(scores, [0.9] * 20, valid=valid, positive_ids=[set(p) for p in positives],
                  candidate_ids=[list(r) for r in ids],
                  candidate_texts=[[corpus[d] if d >= 0 else None for d in r] for r in ids],
                  positive_texts=[[corpus[d] for d in p] for p in positives])
    keys = text_keys(corpus)
    by_key = flt(scores, [0.9] * 20, valid=valid, positive_ids=positives, candidate_ids=ids,
                 candidate_text_keys=np.where(valid, keys[np.maximum(ids, 0)], -1),
                 positive_text_keys=[keys[p] for p in positives])
    assert (by_text.reasons == by_key.reasons).all() and by_text.removed == by_key.removed
    assert by_key.removed.get("duplicate_text", 0) > 0 and by_key.removed.get("positive_id", 0) > 0


def test_batch_matches_rows_and_respects_padding():
    flt = PositiveAwareFilter(relative_margin=0.05, range_min=1)
    scores = np.array([[0.9, 0.5, 0.4, -np.inf], [0.2, 0.7, 0.1, 0.6]])
    valid = np.isfinite(scores)
    batch = flt(scores, [0.8, 0.75], valid=valid)
    for i, pos in enumerate([0.8, 0.75]):
        assert batch.keep[i].tolist() == flt(scores[i], pos, valid=valid[i]).keep.tolist()
    # Row 0: 0.9 is above 0.76 (PercPos), range_min skips 0.5; row 1: nothing above 0.7125, range_min skips 0.7.
    assert batch.keep.tolist() == [[False, False, True, False], [True, False, True, True]]
    assert batch.removed_in([0]) == {"relative_margin": 1, "range_min": 1}
    assert batch.removed_in([1]) == {"range_min": 1}


def test_nan_scores_are_an_error():
    with pytest.raises(ValueError, match="NaN"):
        PositiveAwareFilter()(np.array([0.1, np.nan]), 0.5)
    with pytest.raises(ValueError, match="NaN"):
        PositiveAwareFilter()(np.array([0.1, 0.2]), float("nan"))


@pytest.mark.parametrize("kwargs", [{"relative_margin": 2}, {"absolute_margin": -1},
                                    {"range_min": -1}, {"range_min": 1.5}, {"min_score": 0.9, "max_score": 0.1}])
def test_invalid_settings(kwargs):
    with pytest.raises(ValueError):
        PositiveAwareFilter(**kwargs)


def test_description_names_the_rules():
    assert PositiveAwareFilter(relative_margin=0.05, range_min=3).description == "TopK-PercPos(0.95) + shifted(3)"


def test_non_finite_scores_and_bare_string_ids_are_errors():
    # inf - inf is NaN: an infinite positive score used to keep every candidate.
    with pytest.raises(ValueError, match=r"positive score of query row 0 is NaN or infinite"):
        PositiveAwareFilter()(np.array([0.9, 0.1]), float("inf"))
    with pytest.raises(ValueError, match=r"scores contain NaN or an infinite value"):
        PositiveAwareFilter()(np.array([np.inf, 0.1]), 0.5)
    # set("d12") is {"d", "1", "2"}: the real positive d12 survived as a negative.
    with pytest.raises(TypeError, match=r"positive_ids of query row 0 must be a collection of ids, got str 'd12'"):
        PositiveAwareFilter(relative_margin=None)(np.array([0.5, 0.4]), 0.9, candidate_ids=["d12", "d"],
                                                  positive_ids="d12")
    with pytest.raises(ValueError, match=r"max_score must be a finite number or None, got nan"):
        PositiveAwareFilter(max_score=float("nan"))


def test_a_negative_relative_margin_is_allowed_with_a_warning():
    with pytest.warns(UserWarning, match=r"relative_margin=-0.1 is negative: negatives scoring up to 10% above"):
        flt = PositiveAwareFilter(relative_margin=-0.1)  # the old perc=1.1
    # Threshold 0.88 + 0.088 = 0.968: 0.95 scores above the positive and is kept.
    assert keep(flt, np.array([0.99, 0.95, 0.5]), pos=0.88) == [False, True, True]
    assert flt.description == "TopK-PercPos(1.1)"
