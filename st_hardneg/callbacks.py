"""ECICallback: log the quality of the negatives a trainer is using, while it trains.

At each evaluation (and/or every ``every_n_steps``) it scores the negatives in use (the rows of a
pre-mined training dataset, or the batches a :class:`~st_hardneg.collator.MiningDataCollator` just
produced) under the *live* model and, optionally, under a fixed teacher, and logs ECI, its
components and the positive/negative similarity distributions through ``trainer.log`` as
``eci/...`` keys, so they reach TensorBoard / W&B when those are enabled. See
:mod:`st_hardneg.eci` for the formulation (Sinha et al., arXiv 2603.20990).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import numpy as np
from transformers import TrainerCallback

from .eci import eci_from_scores, rows_of

logger = logging.getLogger(__name__)


class ECICallback(TrainerCallback):
    """Logs ``eci/*`` metrics of the negatives in use during training.

    Args:
        teacher: Optional fixed scorer (SentenceTransformer, CrossEncoder or Scorer) whose view of
            the same negatives is logged as ``eci/teacher*``.
        every_n_steps: Also measure every this many optimiser steps (``None``: evaluations only).
        on_evaluate: Measure at each evaluation.
        max_rows: Rows scored per measurement (a fixed, seeded sample of a pre-mined dataset, or the
            most recent collator batches).
        alpha: ECI's safety threshold.
        unsafe_warning: Warn when the share of queries with safety 0 under the live model exceeds
            this, or rises by more than this since the first measurement.
        seed: Seed of the row sample.

    Example::

        trainer = SentenceTransformerTrainer(..., callbacks=[ECICallback(every_n_steps=50)])
    """

    def __init__(self, teacher: Any = None, *, every_n_steps: int | None = None, on_evaluate: bool = True,
                 max_rows: int = 256, alpha: float = 0.95, unsafe_warning: float = 0.3, seed: int = 0) -> None:
        self.teacher = teacher
        self.every_n_steps, self.measure_on_evaluate = every_n_steps, on_evaluate
        self.max_rows, self.alpha, self.unsafe_warning, self.seed = max_rows, alpha, unsafe_warning, seed
        self.trainer = None
        self.history: list[dict[str, float]] = []
        self._teacher_scorer = None
        self._rows: tuple | None = None

    def _find_trainer(self) -> None:
        if self.trainer is not None:
            return
        from transformers import Trainer

        frame = sys._getframe(1)
        for _ in range(8):  # Trainer.__init__ / _inner_training_loop -> CallbackHandler -> this callback
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, Trainer) and self in candidate.callback_handler.callbacks:
                self.trainer = candidate
                return
            frame = frame.f_back
            if frame is None:
                return

    def on_init_end(self, args, state, control, **kwargs):
        self._find_trainer()

    def on_train_begin(self, args, state, control, **kwargs):
        self._find_trainer()

    def on_step_end(self, args, state, control, **kwargs):
        if self.every_n_steps and state.global_step % self.every_n_steps == 0:
            self.measure(state.global_step)

    def on_evaluate(self, args, state, control, **kwargs):
        if self.measure_on_evaluate:
            self.measure(state.global_step)

    def _negatives_in_use(self) -> tuple[list[str], list[str], list[list[str]]]:
        from .collator import MiningDataCollator

        collator = self.trainer.data_collator
        if isinstance(collator, MiningDataCollator) and collator.history:
            data, queries, positives, negatives = collator.data, [], [], []
            for batch in reversed(collator.history):
                for pair, negs in zip(batch["pairs"], batch["negatives"]):
                    q, d = data.pairs[pair]
                    queries.append(data.query_texts[q])
                    positives.append(data.corpus_texts[d])
                    negatives.append([data.corpus_texts[n] for n in negs])
                if len(queries) >= self.max_rows:
                    break
            return queries[: self.max_rows], positives[: self.max_rows], negatives[: self.max_rows]
        if self._rows is None:  # a pre-mined dataset: one fixed sample, so measurements are comparable
            dataset = self.trainer.train_dataset
            if hasattr(dataset, "values") and not hasattr(dataset, "column_names"):
                dataset = next(iter(dataset.values()))
            rng = np.random.default_rng(self.seed)
            pick = np.sort(rng.choice(len(dataset), size=min(self.max_rows, len(dataset)), replace=False))
            self._rows = rows_of(dataset.select(pick.tolist()))
        return self._rows

    def measure(self, step: int | None = None) -> dict[str, float]:
        """Score the negatives in use now; log and return the ``eci/*`` metrics."""
        from .embeddings import Embedder
        from .teachers import BiEncoderScorer, make_scorer

        if self.trainer is None:
            raise RuntimeError("ECICallback is not attached to a trainer")
        queries, positives, negatives = self._negatives_in_use()
        if not any(negatives):
            return {}
        model = self.trainer.model
        was_training = model.training
        try:
            live = BiEncoderScorer(Embedder(model, show_progress=False))
            logs = self._score("eci/", live, queries, positives, negatives)
            if self.teacher is not None:
                self._teacher_scorer = self._teacher_scorer or make_scorer(self.teacher, show_progress=False)
                teacher_logs = self._score("eci/teacher_", self._teacher_scorer, queries, positives, negatives)
                logs.update({k: v for k, v in teacher_logs.items() if "sim" not in k})
        finally:
            model.train(was_training)  # SentenceTransformer.encode leaves the model in eval mode
        self._warn(logs)
        self.history.append({"step": step, **logs})
        self.trainer.log(logs)
        return logs

    def _score(self, prefix: str, scorer: Any, queries, positives, negatives) -> dict[str, float]:
        pos = [float(s[0]) for s in scorer.score(queries, [[p] for p in positives])]
        neg = scorer.score(queries, negatives)
        result = eci_from_scores(queries, [max(p, 0.0) for p in pos], [np.clip(n, 0, None) for n in neg],
                                 alpha=self.alpha, scorer=scorer.name)
        flat_neg = np.concatenate([np.asarray(n) for n in neg]) if neg else np.zeros(0)
        return {
            f"{prefix}score": result.eci,
            **{f"{prefix}{k}": v for k, v in result.components.items()},
            f"{prefix}unsafe_share": result.unsafe_share,
            f"{prefix}pos_sim_mean": float(np.mean(pos)),
            f"{prefix}neg_sim_mean": float(flat_neg.mean()) if flat_neg.size else 0.0,
            f"{prefix}neg_sim_p90": float(np.quantile(flat_neg, 0.9)) if flat_neg.size else 0.0,
            f"{prefix}pos_neg_gap": float(np.mean(pos) - (flat_neg.mean() if flat_neg.size else 0.0)),
        }

    def _warn(self, logs: dict[str, float]) -> None:
        share = logs["eci/unsafe_share"]
        first = self.history[0]["eci/unsafe_share"] if self.history else share
        if share > self.unsafe_warning or share - first > self.unsafe_warning:
            logger.warning(
                "ECI safety is collapsing: %.0f%% of queries have a negative scoring at or above the positive "
                "under the model being trained (was %.0f%%); false negatives may be rising", 100 * share, 100 * first)
