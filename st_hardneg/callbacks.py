"""ECICallback: log the quality of the negatives a trainer is using, while it trains.

At each evaluation (and/or every ``every_n_steps``) it scores the negatives in use under the
*live* model and, optionally, under a fixed teacher: a fixed sample of the rows of a pre-mined
training dataset, or what a :class:`~st_hardneg.collator.MiningDataCollator` serves (its latest
batches, or a fresh draw from its pools when batches are built in dataloader workers). It logs ECI,
its components and the positive/negative similarity distributions as ``eci/...`` keys. See
:mod:`st_hardneg.eci` for the formulation (Sinha et al., arXiv 2603.20990).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from transformers import TrainerCallback

from .eci import eci_from_scores, rows_of

logger = logging.getLogger(__name__)


class ECICallback(TrainerCallback):
    """Logs ``eci/*`` metrics of the negatives in use during training.

    Everything it needs comes through the callback events (the model, the train dataloader and its
    collator) or its arguments. Its metrics go into the ``logs`` dict of the next log event (and
    that event's ``state.log_history`` entry), where the progress printer and later callbacks see
    them. The ``report_to`` integrations (TensorBoard, W&B) run before user callbacks; to reach
    them, give the trainer (``trainer=``), and the callback logs through ``trainer.log``, as
    transformers' own examples of trainer-aware callbacks do.

    Args:
        teacher (Any): Optional fixed scorer (SentenceTransformer, CrossEncoder or Scorer) whose
            view of the same negatives is logged as ``eci/teacher*``.
        collator (MiningDataCollator | None): The collator whose negatives to score (default: the
            train dataloader's collator when it is one).
        trainer (Trainer | None): Log through ``trainer.log`` (reaches every integration).
        every_n_steps (int | None): Also measure every this many optimiser steps (``None``:
            evaluations only).
        on_evaluate (bool): Measure at each evaluation. Defaults to True.
        max_rows (int): Rows scored per measurement. Defaults to 256.
        alpha (float): ECI's safety threshold. Defaults to 0.95.
        unsafe_warning (float): Warn when the share of queries with safety 0 under the live model
            exceeds this, or rises by more than this since the first measurement. Defaults to 0.3.
        seed (int): Seed of the row sample. Defaults to 0.

    References:
        Sinha, Seetharaman and Bansal, "ECI: Effective Contrastive Information to Evaluate
        Hard-Negatives", arXiv 2603.20990 (our formulation of its abstract; see ``st_hardneg.eci``).

    Example::

        trainer = SentenceTransformerTrainer(..., callbacks=[ECICallback(teacher=teacher, every_n_steps=50)])
        # or, to reach TensorBoard / W&B as well:
        trainer.add_callback(ECICallback(teacher=teacher, every_n_steps=50, trainer=trainer))
    """

    def __init__(self, teacher: Any = None, *, collator: Any = None, trainer: Any = None,
                 every_n_steps: int | None = None, on_evaluate: bool = True, max_rows: int = 256,
                 alpha: float = 0.95, unsafe_warning: float = 0.3, seed: int = 0) -> None:
        self.teacher, self.collator, self.trainer = teacher, collator, trainer
        self.every_n_steps, self.measure_on_evaluate = every_n_steps, on_evaluate
        self.max_rows, self.alpha, self.unsafe_warning, self.seed = max_rows, alpha, unsafe_warning, seed
        self.history: list[dict[str, float]] = []
        self._teacher_scorer = None
        self._rows: tuple | None = None
        self._pending: dict[str, float] | None = None

    def on_step_end(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        if self.every_n_steps and state.global_step % self.every_n_steps == 0:
            self._record(self.measure(model, train_dataloader, state.global_step), control)
        return control

    def on_evaluate(self, args, state, control, model=None, train_dataloader=None, metrics=None, **kwargs):
        if self.measure_on_evaluate:
            logs = self.measure(model, train_dataloader, state.global_step)
            if metrics is not None:
                metrics.update(logs)
            entry = state.log_history[-1] if state.log_history else {}
            if logs and self.trainer is None and entry.get("step") == state.global_step:
                # Trainer.evaluate logs its metrics just before this event: join that entry, at this step,
                # rather than wait for the next log event (steps later, or never if training ends).
                entry.update(logs)
            else:
                self._record(logs, control)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._pending and logs is not None:
            logs.update(self._pending)
            if state.log_history:  # the entry the trainer appended for this very log event
                state.log_history[-1].update(self._pending)
            self._pending = None

    def _record(self, logs: dict[str, float], control: Any) -> None:
        if not logs:
            return
        if self.trainer is not None:
            # trainer.log ends in on_log, which clears should_log: keep the trainer's own log of this step (loss).
            should_log = control.should_log
            self.trainer.log(dict(logs))
            control.should_log = should_log
        else:
            self._pending = logs
            control.should_log = True

    def _negatives_in_use(self, train_dataloader: Any, step: int) -> tuple[list[str], list[str], list[list[str]]]:
        from .collator import MiningDataCollator

        collator = self.collator or getattr(train_dataloader, "collate_fn", None)
        if isinstance(collator, MiningDataCollator):
            data = collator.data
            if collator.history:  # batches built in this process: score exactly those
                pairs, negatives = [], []
                for batch in reversed(collator.history):
                    pairs += batch["pairs"]
                    negatives += batch["negatives"]
                    if len(pairs) >= self.max_rows:
                        break
            else:  # built in dataloader workers: draw what the pools serve now
                rng = np.random.default_rng(self.seed)
                n = len(data.pairs)
                pairs = sorted(rng.choice(n, size=min(self.max_rows, n), replace=False).tolist())
                negatives = collator.draw(pairs, step)[0]
            pairs, negatives = pairs[: self.max_rows], negatives[: self.max_rows]
            return ([data.query_texts[data.pairs[p][0]] for p in pairs],
                    [data.corpus_texts[data.pairs[p][1]] for p in pairs],
                    [[data.corpus_texts[d] for d in negs] for negs in negatives])
        if self._rows is None:  # a pre-mined dataset: one fixed sample, so measurements are comparable
            dataset = getattr(train_dataloader, "dataset", None)
            if dataset is not None and not hasattr(dataset, "column_names") and hasattr(dataset, "datasets"):
                dataset = dataset.datasets[0]  # several training datasets: the first
            if dataset is None or not hasattr(dataset, "select"):
                raise ValueError("ECICallback needs a train dataloader over a datasets.Dataset, or collator=")
            rng = np.random.default_rng(self.seed)
            pick = np.sort(rng.choice(len(dataset), size=min(self.max_rows, len(dataset)), replace=False))
            self._rows = rows_of(dataset.select(pick.tolist()))
        return self._rows

    def measure(self, model: Any, train_dataloader: Any = None, step: int | None = None) -> dict[str, float]:
        """Score the negatives in use now under ``model`` (and the teacher); return the ``eci/*`` metrics."""
        from .embeddings import Embedder
        from .teachers import BiEncoderScorer, make_scorer

        if model is None:
            raise ValueError("ECICallback.measure needs the model being trained")
        queries, positives, negatives = self._negatives_in_use(train_dataloader, step or 0)
        if not any(negatives):
            return {}
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
