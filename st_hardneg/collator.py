"""MiningDataCollator: hard negatives attached per batch inside ``SentenceTransformerTrainer``.

A drop-in replacement for sentence-transformers' data collator on (anchor, positive) data::

    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=pairs, loss=MultipleNegativesRankingLoss(model),
        data_collator=MiningDataCollator(model, pairs, num_negatives=4),
    )

Per batch, every row gets ``num_negatives`` columns drawn (seeded) from candidate pools mined
once up front (the same engine as :func:`~st_hardneg.mine`, filtered by a PositiveAwareFilter).
Negatives that are a positive of *another* anchor in the batch, or share its text, are never
attached: MNRL-style losses use every column as a negative for every anchor.

Pools can be refreshed with the model being trained: ``refresh="rescore"`` applies
Conan-embedding's dynamic hard-negative rule (Li et al., arXiv 2408.15710: a negative whose
current score x 1.15 falls below its mined score is no longer hard and is replaced by the next
ones in its pool); ``refresh="remine"`` re-encodes the corpus and mines again (ANCE, Xiong et al.,
arXiv 2007.00808).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sentence_transformers.sentence_transformer.data_collator import SentenceTransformerDataCollator
from transformers import TrainerCallback

from .data import MiningData, load_data
from .embeddings import Embedder
from .filters import PositiveAwareFilter, normalize_text
from .pools import CandidatePools, build_pools, build_retriever, make_scorers
from .sampling import Strategy, choose
from .stats import MiningStats

logger = logging.getLogger(__name__)

Refresh = Literal["rescore", "remine"]


def _distributed() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torch.distributed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (identity outside torch.distributed)."""
    import torch.distributed as dist

    if _distributed()[1] == 1:
        return obj
    box = [obj if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class MiningDataCollator(SentenceTransformerDataCollator):
    """Data collator that attaches freshly sampled, filtered hard negatives to each batch.

    Tokenisation, prompts, router mapping and max length behave as in sentence-transformers' own
    collator. The trainer does not pass ``args.prompts`` / ``args.router_mapping`` to a custom
    collator; this one picks them up from the trainer itself when the trainer first builds its
    dataloader (explicit ``prompts=`` / ``router_mapping=`` take precedence). Negative columns take
    the positive column's prompt and route unless ``negative`` is mapped explicitly.

    Args:
        model: The SentenceTransformer being trained (used for mining and for refreshes).
        train_dataset: The (anchor, positive) training data; anything
            :func:`~st_hardneg.data.load_data` accepts.
        corpus: Extra documents to draw negatives from (default: the positives).
        num_negatives: Negative columns added to each row (GISTEmbedLoss in sentence-transformers
            6.2 takes one; CachedGISTEmbedLoss and the MNRL losses take any number).
        retriever: ``"dense"``, ``"bm25"``, ``"hybrid"`` or a Retriever.
        teacher: Scorer(s) for filtering (default: ``model`` itself, before training).
        filter: The false-negative filter (default TopK-PercPos 95%).
        pool_size: Filtered candidates kept per query to sample from.
        candidates / max_candidates: Initial and widest retrieval window.
        sampling / sample_pool / temperature: How each batch draws from a pool (see
            :func:`~st_hardneg.sampling.choose`); ``"sampled"`` gives fresh negatives every step.
        scores: Also add a ``label`` column with teacher ``"scores"`` ([pos, neg_1, ...], for
            DistillKLDivLoss) or ``"margins"`` ([pos - neg_i], for MarginMSELoss).
        refresh: ``None``, ``"rescore"`` (Conan rule) or ``"remine"`` (ANCE-style).
        refresh_steps: Refresh every this many optimiser steps.
        refresh_on_epoch: Refresh at the start of every epoch after the first.
        stale_factor: Conan's factor: stale when ``current * stale_factor < mined``.
        seed: Seed of every draw; draws depend on (seed, batch number, row).
        batch_size / cache_dir / show_progress: Encoding settings for mining.
        prompts / router_mapping / max_length / valid_label_columns: As in
            ``SentenceTransformerDataCollator``.

    Example::

        collator = MiningDataCollator(model, train_dataset, num_negatives=4, refresh="rescore", refresh_steps=100)
    """

    def __init__(
        self,
        model: Any,
        train_dataset: Any,
        *,
        corpus: Any = None,
        anchor_column: str | None = None,
        positive_column: str | None = None,
        num_negatives: int = 4,
        retriever: Any = "dense",
        teacher: Any = None,
        ensemble: Literal["mean", "union"] = "mean",
        filter: PositiveAwareFilter | None = None,
        pool_size: int = 20,
        candidates: int = 50,
        max_candidates: int = 1000,
        sampling: Strategy = "sampled",
        sample_pool: int = 10,
        temperature: float = 0.05,
        scores: Literal["scores", "margins"] | None = None,
        refresh: Refresh | None = None,
        refresh_steps: int | None = None,
        refresh_on_epoch: bool = False,
        stale_factor: float = 1.15,
        seed: int = 42,
        batch_size: int = 32,
        cache_dir: str | None = None,
        show_progress: bool = True,
        prompts: Any = None,
        router_mapping: Any = None,
        max_length: int | dict[str, int] | None = None,
        valid_label_columns: list[str] | None = None,
    ) -> None:
        kwargs = {} if valid_label_columns is None else {"valid_label_columns": valid_label_columns}
        super().__init__(preprocess_fn=model.preprocess, router_mapping=router_mapping or {}, prompts=prompts or {},
                         max_length=max_length, **kwargs)
        if refresh not in (None, "rescore", "remine"):
            raise ValueError(f"unknown refresh {refresh!r}; use None, 'rescore' or 'remine'")
        if scores not in (None, "scores", "margins"):
            raise ValueError(f"unknown scores {scores!r}; use None, 'scores' or 'margins'")
        if pool_size < num_negatives:
            raise ValueError(f"pool_size ({pool_size}) must be at least num_negatives ({num_negatives})")
        self.model = model
        self.data: MiningData = load_data(train_dataset, corpus=corpus, anchor_column=anchor_column,
                                          positive_column=positive_column)
        self.num_negatives, self.retriever, self.teacher, self.ensemble = num_negatives, retriever, teacher, ensemble
        self.filter = filter or PositiveAwareFilter()
        self.pool_size, self.candidates, self.max_candidates = pool_size, candidates, max_candidates
        self.sampling, self.sample_pool, self.temperature = sampling, sample_pool, temperature
        self.scores, self.refresh_mode, self.refresh_steps = scores, refresh, refresh_steps
        self.refresh_on_epoch, self.stale_factor, self.seed = refresh_on_epoch, stale_factor, seed
        self.encode_batch_size, self.cache_dir, self.show_progress = batch_size, cache_dir, show_progress
        self._explicit = {"prompts": prompts is not None, "router_mapping": router_mapping is not None}
        self._positives = self.data.positives_by_query()
        self._pair_of = {(self.data.query_texts[q], self.data.corpus_texts[d]): i for i, (q, d) in enumerate(self.data.pairs)}
        self._first_pair_of_query = {}
        for i, (q, _) in enumerate(self.data.pairs):
            self._first_pair_of_query.setdefault(self.data.query_texts[q], i)
        self._state: dict[str, Any] | None = None  # pools, per-candidate mined student scores, alive masks
        self._scorers: list | None = None
        self._trainer = None
        self._calls = 0
        self._warned_unknown = False
        self._positive_column = "positive"
        self.stats = MiningStats(num_negatives=num_negatives)
        self.batch_stats = {"batches": 0, "rows": 0, "guarded": 0, "random_fill": 0, "passthrough": 0}
        self.history: deque[dict] = deque(maxlen=256)
        self.refreshes: list[dict] = []

    # -- trainer binding ---------------------------------------------------------------------
    @property
    def valid_label_columns(self) -> list[str]:
        # The trainer reads this attribute from its own _get_dataloader, in the main process and before
        # any dataloader worker starts: the one place a custom collator can find its trainer.
        self._maybe_bind(sys._getframe(1).f_locals.get("self"))
        return self._valid_label_columns

    @valid_label_columns.setter
    def valid_label_columns(self, value: list[str]) -> None:
        self._valid_label_columns = value

    def _maybe_bind(self, trainer: Any) -> None:
        from transformers import Trainer

        if self._trainer is not None or not isinstance(trainer, Trainer) or trainer.data_collator is not self:
            return
        self.bind(trainer)

    def bind(self, trainer: Any) -> None:
        """Take prompts and router mapping from ``trainer.args`` and hook refreshes into its events.

        Called automatically when the trainer builds its dataloader; call it yourself only when you
        drive the collator outside ``SentenceTransformerTrainer.train``.
        """
        self._trainer = trainer
        args = trainer.args
        if not self._explicit["prompts"] and getattr(args, "prompts", None):
            self.prompts = args.prompts
        if not self._explicit["router_mapping"] and getattr(args, "router_mapping", None):
            self.router_mapping = args.router_mapping
        if self.refresh_mode and args.dataloader_num_workers:
            raise ValueError("refresh needs dataloader_num_workers=0: worker processes hold stale copies of the model")
        trainer.add_callback(_RefreshCallback(self))
        self._ensure_pools()

    def _get_prompt_for_column(self, prompts: Any, column_name: str) -> str | None:
        prompt = super()._get_prompt_for_column(prompts, column_name)
        if prompt is None and column_name.startswith("negative_") and isinstance(prompts, dict):
            prompt = prompts.get("negative", prompts.get(self._positive_column))
        return prompt

    def _get_task_for_column(self, column_name: str, column_position: int, router_mapping: dict) -> str | None:
        task = super()._get_task_for_column(column_name, column_position, router_mapping)
        if task is None and column_name.startswith("negative_"):
            task = router_mapping.get("negative", router_mapping.get(self._positive_column))
        return task

    # -- pools ------------------------------------------------------------------------------
    def _embedder(self, cache_dir: Any = None) -> Embedder:
        return Embedder(self.model, batch_size=self.encode_batch_size, cache_dir=cache_dir,
                        show_progress=self.show_progress)

    def _ensure_pools(self) -> None:
        if self._state is None:
            self._state = _broadcast(self._mine(self._embedder(self.cache_dir)) if _distributed()[0] == 0 else None)

    def _mine(self, embedder: Embedder) -> dict[str, Any]:
        """Build pools with the model as it is now; returns the state shared by all ranks."""
        was_training = self.model.training
        try:
            source = build_retriever(self.retriever, embedder, show_progress=self.show_progress)
            self._scorers = self._scorers or make_scorers(self.teacher, embedder, ensemble=self.ensemble,
                                                          batch_size=self.encode_batch_size, cache_dir=self.cache_dir,
                                                          show_progress=self.show_progress)
            source.index(self.data.corpus_texts)
            stats = MiningStats(num_negatives=self.num_negatives, queries=len(self._positives))
            pools = build_pools(self.data, source, self._scorers, self.filter, embedder,
                                want=[self.pool_size] * len(self._scorers), candidates=self.candidates,
                                max_candidates=self.max_candidates, stats=stats)
            docs, teacher_scores = self._merge(pools)
            mined = self._student_scores(embedder, pools.query_order, docs)
        finally:
            self.model.train(was_training)  # SentenceTransformer.encode leaves the model in eval mode
        self.stats = stats
        return {
            "query_order": pools.query_order,
            "pool_of": {q: i for i, q in enumerate(pools.query_order)},  # query index -> pool, for every batch
            "docs": docs,
            "teacher": teacher_scores,
            "positive_teacher": pools.positive_scores,
            "mined": mined,
            "alive": [np.ones(len(d), dtype=bool) for d in docs],
        }

    def _merge(self, pools: CandidatePools) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """One list per query: the scorers' kept candidates interleaved (round-robin), first occurrence kept."""
        docs_out, scores_out = [], []
        for per_scorer in pools.kept:
            seen: dict[int, float] = {}
            for j in range(max(len(k.docs) for k in per_scorer)):
                for k in per_scorer:
                    if j < len(k.docs) and int(k.docs[j]) not in seen:
                        seen[int(k.docs[j])] = float(k.scores[j])
            items = list(seen.items())[: self.pool_size * len(per_scorer)]
            docs_out.append(np.array([d for d, _ in items], dtype=np.int64))
            scores_out.append(np.array([s for _, s in items], dtype=np.float32))
        return docs_out, scores_out

    def _student_scores(self, embedder: Embedder, query_order: list[int], docs: list[np.ndarray]) -> list[np.ndarray]:
        """Cosine of the model being trained for every (query, pool document)."""
        unique = sorted({int(d) for row in docs for d in row})
        where = {d: i for i, d in enumerate(unique)}
        doc_emb = embedder.encode([self.data.corpus_texts[d] for d in unique], "document")
        q_emb = embedder.encode([self.data.query_texts[q] for q in query_order], "query")
        return [doc_emb[[where[int(d)] for d in row]] @ q_emb[i] if len(row) else np.zeros(0, np.float32)
                for i, row in enumerate(docs)]

    # -- refresh ----------------------------------------------------------------------------
    def refresh(self, mode: Refresh | None = None, step: int | None = None) -> dict:
        """Refresh the pools with the model as it is now; returns (and logs) what it did and cost.

        ``"rescore"`` marks a candidate stale when ``current x stale_factor < mined`` (Conan) and
        draws from the rest of its pool (at least ``num_negatives`` stay, the hardest by current
        score); ``"remine"`` rebuilds the pools with the live model. All ranks get rank 0's result.
        """
        mode = mode or self.refresh_mode or "rescore"
        self._ensure_pools()
        start = time.perf_counter()
        before = [a.copy() for a in self._state["alive"]]
        old_docs = [d.copy() for d in self._state["docs"]]
        if _distributed()[0] == 0:
            was_training = self.model.training
            try:
                if mode == "remine":
                    self._scorers = None if self.teacher is None else self._scorers  # the student scores itself
                    state = self._mine(self._embedder())
                else:
                    state = dict(self._state)
                    current = self._student_scores(self._embedder(), state["query_order"], state["docs"])
                    state["alive"] = [self._alive(cur, mined) for cur, mined in zip(current, state["mined"])]
            finally:
                self.model.train(was_training)
        else:
            state = None
        self._state = _broadcast(state)
        if mode == "remine":
            changed = sum(not np.array_equal(a, b) for a, b in zip(old_docs, self._state["docs"]))
        else:
            changed = sum(not np.array_equal(a, b) for a, b in zip(before, self._state["alive"]))
        record = {"step": step, "mode": mode, "seconds": round(time.perf_counter() - start, 3),
                  "queries_changed": int(changed), "queries": len(self._state["docs"]),
                  "stale": int(sum((~a).sum() for a in self._state["alive"]))}
        self.refreshes.append(record)
        logger.info("refresh (%s) at step %s: %d of %d pools changed, %d stale candidates, %.1fs",
                    mode, step, changed, record["queries"], record["stale"], record["seconds"])
        return record

    def _alive(self, current: np.ndarray, mined: np.ndarray) -> np.ndarray:
        # Conan's rule on positive mined scores; a negative cosine cannot get "less hard" by a factor.
        alive = ~((current * self.stale_factor < mined) & (mined > 0))
        if alive.sum() < self.num_negatives:  # keep the hardest by the current model rather than run dry
            alive[np.argsort(-current, kind="stable")[: self.num_negatives]] = True
        return alive

    # -- collation --------------------------------------------------------------------------
    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        if not features:
            return {}
        self._ensure_pools()
        label_cols = set(self._valid_label_columns)
        columns = [c for c in features[0] if c != "dataset_name" and c not in label_cols]
        if len(columns) != 2:
            raise ValueError(f"MiningDataCollator expects (anchor, positive) rows, got columns {columns}")
        anchor_col, self._positive_column = columns
        rows = [self._lookup(f[anchor_col], f[self._positive_column]) for f in features]
        if any(r is None for r in rows):
            # Evaluation data, or rows not seen at mining time: collate them as they are.
            if not self._warned_unknown:
                logger.warning("batch rows not in the mined training data; collating without negatives")
                self._warned_unknown = True
            self.batch_stats["passthrough"] += 1
            return super().__call__(features)
        if self.scores and label_cols & set(features[0]):
            raise ValueError("the dataset already has a label column; scores= would overwrite it")
        negatives, neg_scores, pos_scores = self._draw(rows)
        out = []
        for feature, negs, ns, ps in zip(features, negatives, neg_scores, pos_scores):
            row = dict(feature)
            for j, d in enumerate(negs):
                row[f"negative_{j + 1}"] = self.data.corpus_texts[d]
            if self.scores == "scores":
                row["label"] = [ps, *ns]
            elif self.scores == "margins":
                row["label"] = [ps - s for s in ns]
            out.append(row)
        self.history.append({"call": self._calls, "pairs": rows, "negatives": negatives})
        self._calls += 1
        self.batch_stats["batches"] += 1
        self.batch_stats["rows"] += len(rows)
        return super().__call__(out)

    def _lookup(self, anchor: str, positive: str) -> int | None:
        pair = self._pair_of.get((anchor, positive))
        return pair if pair is not None else self._first_pair_of_query.get(anchor)

    def _draw(self, rows: Sequence[int]) -> tuple[list[list[int]], list[list[float]], list[float]]:
        self._ensure_pools()
        state = self._state
        data, texts = self.data, self.data.corpus_texts
        pool_of = state["pool_of"]
        queries = [data.pairs[r][0] for r in rows]
        # In-batch guard: every column of every row is a negative for every anchor.
        forbidden = {d for q in set(queries) for d in self._positives[q]}
        forbidden_keys = {normalize_text(texts[d]) for d in forbidden} | {normalize_text(data.query_texts[q]) for q in queries}
        used: set[int] = set()
        negatives, neg_scores, pos_scores = [], [], []
        for row, q in zip(rows, queries):
            i = pool_of[q]
            docs, teacher, alive = state["docs"][i], state["teacher"][i], state["alive"][i]
            allowed = [j for j in range(len(docs)) if alive[j] and int(docs[j]) not in forbidden
                       and normalize_text(texts[docs[j]]) not in forbidden_keys]
            self.batch_stats["guarded"] += int(alive.sum()) - len(allowed)
            fresh = [j for j in allowed if int(docs[j]) not in used]
            options = fresh if len(fresh) >= self.num_negatives else allowed
            rng = np.random.default_rng([self.seed, self._calls, row])
            picks = [options[j] for j in choose(teacher[options], self.num_negatives, self.sampling,
                                                pool=self.sample_pool, temperature=self.temperature, rng=rng)]
            chosen = [int(docs[j]) for j in picks]
            scores = [float(teacher[j]) for j in picks]
            for _ in range(100 * self.num_negatives):  # the pool ran dry: random safe documents
                if len(chosen) >= self.num_negatives:
                    break
                d = int(rng.integers(len(texts)))
                if d not in forbidden and d not in chosen and normalize_text(texts[d]) not in forbidden_keys:
                    chosen.append(d)
                    scores.append(self._score_one(q, d))
                    self.batch_stats["random_fill"] += 1
            if len(chosen) < self.num_negatives:
                raise ValueError(
                    f"could not find {self.num_negatives} safe negatives for training row {row}: nearly every document "
                    f"of the {len(texts)}-document corpus is a positive of an anchor in this batch; pass a larger "
                    "corpus= or lower num_negatives")
            used.update(chosen)
            negatives.append(chosen)
            neg_scores.append(scores)
            pos_index = self._positives[q].index(data.pairs[row][1])
            pos_scores.append(float(np.mean([ps[i][pos_index] for ps in state["positive_teacher"]])))
        return negatives, neg_scores, pos_scores

    def _score_one(self, q: int, d: int) -> float:
        if not self.scores:
            return float("nan")
        return float(np.mean([s.score([self.data.query_texts[q]], [[self.data.corpus_texts[d]]])[0][0]
                              for s in self._scorers]))


class _RefreshCallback(TrainerCallback):
    """Runs the collator's refresh on the trainer's schedule (every rank calls it at the same point)."""

    def __init__(self, collator: MiningDataCollator) -> None:
        self.collator = collator

    def on_step_end(self, args, state, control, **kwargs):
        c = self.collator
        if c.refresh_mode and c.refresh_steps and state.global_step % c.refresh_steps == 0:
            c.refresh(step=state.global_step)

    def on_epoch_begin(self, args, state, control, **kwargs):
        c = self.collator
        if c.refresh_mode and c.refresh_on_epoch and state.epoch and state.epoch >= 1:
            c.refresh(step=state.global_step)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        c = self.collator
        lines = [
            f"candidates: {c.retriever if isinstance(c.retriever, str) else c.retriever.name}, filtered by "
            f"{c.filter.description}, {c.pool_size} per query kept as the pool",
            f"teacher: {', '.join(s.name for s in (c._scorers or [])) or 'the model itself'}",
            f"{c.num_negatives} negatives per row, drawn per batch ({c.sampling}, seed {c.seed}) by "
            "MiningDataCollator, never a positive of another anchor in the batch",
            f"refresh: {c.refresh_mode or 'none'}"
            + (f" every {c.refresh_steps} steps" if c.refresh_steps else "")
            + (" at every epoch" if c.refresh_on_epoch else ""),
        ]
        from .cards import record_mining_in_card

        record_mining_in_card(c.model, lines)
