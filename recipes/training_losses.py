"""The training losses the recipe can use on a mined set (``--loss``).

- ``mnrl``: MultipleNegativesRankingLoss (in-batch + the row's hard negatives); the default.
- ``marginmse`` / ``distillkl``: teacher distillation alone, on the teacher's scores that the mined
  set carries (``scores`` = [s(pos), s(neg_1), ...], mined with ``output_scores=True``):
  MarginMSELoss (Hofstätter et al., arXiv 2010.02666) regresses the student's margins
  s(pos) - s(neg_i) onto the teacher's; DistillKLDivLoss (Lin et al., arXiv 2010.11386) matches
  the softmax over (pos, negs) at ``--kd-temperature``.
- ``mnrl+marginmse`` / ``mnrl+distillkl``: MNRL plus ``--kd-weight`` times the distillation term,
  from one forward pass (:class:`ContrastiveWithDistillation`).
- ``cached-gist``: CachedGISTEmbedLoss (Solatorio, arXiv 2402.16829): MNRL whose in-batch
  negatives are masked when the ``--guide`` model scores them above the pair's positive.

Every loss here is sentence-transformers' own; only the sum of two of them is ours.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

LOSSES = ("mnrl", "marginmse", "distillkl", "mnrl+marginmse", "mnrl+distillkl", "cached-gist")
# Losses that read the teacher's scores from the mined set.
NEEDS_SCORES = ("marginmse", "distillkl", "mnrl+marginmse", "mnrl+distillkl")


class ContrastiveWithDistillation(nn.Module):
    """``contrastive(embeddings) + weight * distillation(embeddings, teacher scores)`` from one forward pass.

    Both terms are sentence-transformers losses that expose ``compute_loss_from_embeddings``; the
    texts of a batch are embedded once and both terms read the same embeddings.

    Args:
        model (SentenceTransformer): The student.
        contrastive (nn.Module): E.g. ``MultipleNegativesRankingLoss(model)``; it ignores the labels.
        distillation (nn.Module): ``MarginMSELoss(model)`` or ``DistillKLDivLoss(model, ...)``; it
            reads the labels (the teacher's [s(pos), s(neg_1), ...] per row).
        weight (float): Weight of the distillation term.

    Example::

        from sentence_transformers.sentence_transformer import losses
        loss = ContrastiveWithDistillation(model, losses.MultipleNegativesRankingLoss(model),
                                           losses.MarginMSELoss(model), weight=1.0)
    """

    def __init__(self, model: Any, contrastive: nn.Module, distillation: nn.Module, weight: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.contrastive = contrastive
        self.distillation = distillation
        self.weight = weight

    def forward(self, sentence_features, labels: Tensor) -> Tensor:
        from sentence_transformers.base.losses.merged_forward import embed_columns

        embeddings = embed_columns(self.model, sentence_features)
        return (self.contrastive.compute_loss_from_embeddings(embeddings, labels)
                + self.weight * self.distillation.compute_loss_from_embeddings(embeddings, labels))

    def get_config_dict(self) -> dict[str, Any]:
        return {"contrastive": type(self.contrastive).__name__, "distillation": type(self.distillation).__name__,
                "weight": self.weight}


def make_loss(name: str, model: Any, *, kd_temperature: float = 0.05, kd_weight: float = 1.0,
              guide: Any = None, mini_batch_size: int = 32) -> nn.Module:
    """The loss called ``name`` (one of :data:`LOSSES`) for ``model``.

    Args:
        name (str): One of :data:`LOSSES`.
        model (SentenceTransformer): The student.
        kd_temperature (float): DistillKLDivLoss's temperature on both sides. Our scores are cosines
            (in [-1, 1]): at 1.0 their softmax is nearly flat, so the default is MNRL's 1/20.
        kd_weight (float): Weight of the distillation term beside MNRL.
        guide (SentenceTransformer | None): The guide of ``cached-gist`` (required there).
        mini_batch_size (int): ``cached-gist``'s mini-batch (memory only; the result is the same).
    """
    from sentence_transformers.sentence_transformer import losses

    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; use one of {list(LOSSES)}")
    if name == "cached-gist":
        if guide is None:
            raise ValueError("loss 'cached-gist' needs a guide model")
        return losses.CachedGISTEmbedLoss(model, guide, mini_batch_size=mini_batch_size)
    mnrl = losses.MultipleNegativesRankingLoss(model)
    if name == "mnrl":
        return mnrl
    distill = (losses.MarginMSELoss(model) if name.endswith("marginmse")
               else losses.DistillKLDivLoss(model, temperature=kd_temperature))
    return distill if "+" not in name else ContrastiveWithDistillation(model, mnrl, distill, kd_weight)


def check_scores(dataset: Any, name: str, source: str) -> None:
    """Raise a clear error when loss ``name`` needs teacher scores that ``dataset`` (read from ``source``) lacks.

    DistillKLDivLoss needs ``scores`` ([s(pos), s(neg_1), ...]); MarginMSELoss also takes the
    margins of the ``n-tuple-margins`` layout (``label``).
    """
    if name not in NEEDS_SCORES or "scores" in dataset.column_names:
        return
    if name.endswith("marginmse") and "label" in dataset.column_names:
        return
    raise ValueError(f"{source}: loss {name!r} needs the teacher's scores, but the mined set has no 'scores' column "
                     f"(columns: {', '.join(dataset.column_names)}); mine it with --output-scores")
