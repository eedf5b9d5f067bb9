"""The recipe's training losses (recipes/training_losses.py): the MNRL + distillation sum, and their refusals."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))


@pytest.fixture(scope="module")
def batch(model):
    """Features of 4 rows (anchor, positive, 2 negatives) and teacher scores [s(pos), s(neg_1), s(neg_2)]."""
    import torch

    texts = [[f"query about topic {i}" for i in range(4)],
             [f"a document that answers topic {i}" for i in range(4)],
             [f"an unrelated text number {i}" for i in range(4)],
             [f"a text close to topic {i} but wrong" for i in range(4)]]
    features = [model.preprocess(column) for column in texts]
    scores = torch.tensor([[0.9, 0.2, 0.6], [0.8, 0.1, 0.5], [0.7, 0.3, 0.65], [0.95, 0.0, 0.4]])
    return features, scores


@pytest.mark.parametrize("distillation", ["marginmse", "distillkl"])
def test_mnrl_plus_distillation_is_the_weighted_sum_of_both_losses(model, batch, distillation):
    import torch
    from training_losses import ContrastiveWithDistillation, make_loss

    features, scores = batch
    combined = make_loss(f"mnrl+{distillation}", model, kd_weight=0.5, kd_temperature=0.1)
    assert isinstance(combined, ContrastiveWithDistillation)
    with torch.no_grad():
        total = combined(features, scores)
        mnrl = make_loss("mnrl", model)(features, scores)
        alone = make_loss(distillation, model, kd_temperature=0.1)(features, scores)
    assert alone > 0 and mnrl > 0
    assert total.item() == pytest.approx(mnrl.item() + 0.5 * alone.item(), rel=1e-5)
    # The distillation term reads the teacher's scores: other scores, another loss.
    with torch.no_grad():
        other = combined(features, scores.flip(1))
    assert other.item() != pytest.approx(total.item(), rel=1e-4)


def test_unknown_loss_and_gist_without_guide_are_refused(model):
    from training_losses import make_loss

    with pytest.raises(ValueError, match="unknown loss 'mse'"):
        make_loss("mse", model)
    with pytest.raises(ValueError, match="needs a guide"):
        make_loss("cached-gist", model)


def test_distillation_on_a_set_without_scores_names_the_set():
    import datasets
    from training_losses import check_scores

    plain = datasets.Dataset.from_dict({"anchor": ["q"], "positive": ["p"], "negative_1": ["n"]})
    with pytest.raises(ValueError, match=r"runs/mined: loss 'distillkl' needs the teacher's scores.*--output-scores"):
        check_scores(plain, "distillkl", "runs/mined")
    check_scores(plain, "mnrl", "runs/mined")  # MNRL needs none
    margins = plain.add_column("label", [[0.3]])
    check_scores(margins, "marginmse", "runs/mined")  # n-tuple-margins serves MarginMSE
    with pytest.raises(ValueError):
        check_scores(margins, "mnrl+distillkl", "runs/mined")  # ... but not the softmax over (pos, negs)
