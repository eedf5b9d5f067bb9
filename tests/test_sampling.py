"""Negative selection strategies: exact top-k, seeded draws inside their pools."""

import numpy as np
import pytest

from st_hardneg.sampling import choose, row_rng

SCORES = np.linspace(0.9, 0.1, 30)  # sorted, descending


def test_top_takes_the_highest():
    assert choose(SCORES, 4, "top").tolist() == [0, 1, 2, 3]


def test_fewer_candidates_than_asked_returns_all():
    assert choose(SCORES[:2], 4, "sampled", rng=row_rng(0, 0)).tolist() == [0, 1]


@pytest.mark.parametrize("strategy", ["sampled", "top1_sampled"])
def test_sampling_is_seeded_and_stays_in_the_pool(strategy):
    draws = [tuple(choose(SCORES, 4, strategy, pool=10, rng=row_rng(7, row))) for row in range(50)]
    again = [tuple(choose(SCORES, 4, strategy, pool=10, rng=row_rng(7, row))) for row in range(50)]
    assert draws == again
    assert all(len(set(d)) == 4 and max(d) < 10 for d in draws)
    assert len(set(draws)) > 5  # not one frozen choice
    if strategy == "top1_sampled":
        assert all(d[0] == 0 for d in draws)


def test_random_draws_uniformly_from_every_kept_candidate():
    draws = np.concatenate([choose(SCORES, 4, "random", rng=row_rng(7, row)) for row in range(400)])
    assert draws.max() >= 25 and len(set(draws.tolist())) == 30  # not limited to a top window
    counts = np.bincount(draws, minlength=30)
    assert counts.min() > 20  # about 53 each


def test_random_with_pythons_random_draws_as_sentence_transformers():
    import random

    # sentence-transformers: random.sample(range(max(options, n)), n), then sorted by score.
    expected = sorted(random.Random(3).sample(range(30), 4))
    assert choose(SCORES, 4, "random", rng=random.Random(3)).tolist() == expected
    # Fewer candidates than asked: the same draw is made (keeping the stream in step), all candidates returned.
    stream, reference = random.Random(5), random.Random(5)
    assert choose(SCORES[:2], 4, "random", rng=stream).tolist() == [0, 1]
    reference.sample(range(4), 4)
    assert stream.random() == reference.random()


def test_uniform_is_the_deprecated_name_of_random():
    with pytest.warns(FutureWarning, match="uniform"):
        assert choose(SCORES, 3, "uniform", rng=row_rng(1, 1)).tolist() == choose(SCORES, 3, "random",
                                                                                 rng=row_rng(1, 1)).tolist()


def test_low_temperature_concentrates_on_the_top():
    picks = np.concatenate([choose(SCORES, 2, "sampled", pool=10, temperature=0.001, rng=row_rng(1, r)) for r in range(20)])
    assert set(picks.tolist()) == {0, 1}


def test_errors():
    with pytest.raises(ValueError, match="unknown sampling"):
        choose(SCORES, 2, "best")
    with pytest.raises(ValueError, match="rng"):
        choose(SCORES, 2, "sampled")
