"""MiningDataCollator: hard negatives attached per batch inside ``SentenceTransformerTrainer``.

A drop-in replacement for sentence-transformers' data collator on (anchor, positive) data::

    collator = MiningDataCollator(model, pairs, args=args, num_negatives=3)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=pairs,
                                         loss=MultipleNegativesRankingLoss(model), data_collator=collator)

The collator mines candidate pools once, when it is created (the same engine as
:func:`~st_hardneg.mine`, filtered by a PositiveAwareFilter), and every batch draws its rows'
negatives from them (seeded by seed, batch number and row). Negatives that are a positive of
*another* anchor in the batch, or share its text, are never attached: MNRL-style losses use every
column as a negative for every anchor.

Pools can be refreshed with the model being trained: ``refresh="rescore"`` applies
Conan-embedding's dynamic hard-negative rule (Li et al., arXiv 2408.15710: a negative whose
current score x 1.15 falls below its mined score is no longer hard and is replaced by the next
ones in its pool); ``refresh="remine"`` re-encodes the corpus and mines again (ANCE, Xiong et al.,
arXiv 2007.00808). The refresh runs on the trainer's schedule through the callback the user adds:
``callbacks=[collator.refresh_callback]``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sentence_transformers.sentence_transformer.data_collator import SentenceTransformerDataCollator
from transformers import TrainerCallback

from ._deprecation import renamed
from .cards import record_mining_in_card
from .embeddings import Embedder
from .filters import PositiveAwareFilter, normalize_text
from .pools import CandidatePools, build_pools, build_retriever, draw, index_all, make_scorers, on_positive_scale
from .mining import MiningSettings
from .sources import load_data
from .stats import MiningStats

logger = logging.getLogger(__name__)

Refresh = Literal["rescore", "remine"]
_ALIASES = {"anchor_column": "anchor_column_name", "positive_column": "positive_column_name",
            "candidates": "range_max", "sampling": "sampling_strategy", "cache_dir": "cache_folder",
            "show_progress": "verbose"}


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
    collator. The trainer does not hand ``args.prompts`` / ``args.router_mapping`` to a custom
    collator, so pass the training arguments (``args=``) or the two settings themselves. Negative
    columns take the positive column's prompt and route unless ``negative`` is mapped explicitly.

    Args:
        model (SentenceTransformer): The model being trained (used for mining and for refreshes).
        train_dataset (Dataset): The (anchor, positive) training data; anything
            :func:`~st_hardneg.sources.load_data` accepts.
        args (SentenceTransformerTrainingArguments | None): Training arguments whose ``prompts``
            and ``router_mapping`` the collator applies.
        corpus (list[str] | None): Extra documents to draw negatives from (default: the positives).
        anchor_column_name / positive_column_name (str | None): Columns of ``train_dataset``.
        num_negatives (int): Negative columns added to each row. Defaults to 3 (GISTEmbedLoss takes
            one; CachedGISTEmbedLoss and the MNRL losses any number).
        retriever (str | Retriever): ``"dense"``, ``"bm25"``, ``"hybrid"`` or a Retriever.
        teacher (Any): Scorer(s) for filtering (default: ``model`` itself, before training).
        ensemble (str): ``"mean"`` or ``"union"`` of several teachers. Defaults to "mean".
        filter (PositiveAwareFilter | None): The false-negative rules (default TopK-PercPos 95%).
        range_max (int): First candidate window per query beyond its positives. Defaults to 50.
        pool_size (int): Filtered candidates kept per query to draw from (per row with the
            filter's ``positive_reference="own"``). Defaults to 20.
        max_candidates (int): Widest window tried for queries short of ``pool_size``. Defaults to 1000.
        sampling_strategy (str): How each batch draws from a pool (see
            :func:`~st_hardneg.sampling.choose`); ``"sampled"`` gives fresh negatives every step.
        sample_pool / temperature: Window and softmax temperature of the sampled strategies.
        scores (str | None): Also add a ``label`` column with teacher ``"scores"`` ([pos, neg_1, ...],
            for DistillKLDivLoss) or ``"margins"`` ([pos - neg_i], for MarginMSELoss).
        refresh (str | None): ``None``, ``"rescore"`` (Conan rule) or ``"remine"`` (ANCE-style);
            runs when ``collator.refresh_callback`` is among the trainer's callbacks.
        refresh_steps (int | None): Refresh every this many optimiser steps.
        refresh_on_epoch (bool): Refresh at the start of every epoch after the first.
        stale_factor (float): Conan's factor: stale when ``current * stale_factor < mined``. Defaults to 1.15.
        seed (int): Seed of every draw; draws depend on (seed, batch number, row). Defaults to 42.
        batch_size / cache_folder / verbose: Encoding settings for mining.
        backend (str): Runtime of the bi-encoder teacher(s), as in :func:`~st_hardneg.mine` (e.g.
            ``"onnx-int8"``). The model being trained always encodes on torch: its weights change,
            and its scores must stay comparable from one refresh to the next. Defaults to "torch".
        prompts / router_mapping / max_length / valid_label_columns: As in
            ``SentenceTransformerDataCollator``; explicit values win over ``args``.

    References:
        Li et al., "Conan-embedding: General Text Embedding with More and Better Negative Samples",
        arXiv 2408.15710 (dynamic hard negatives); Xiong et al., "Approximate Nearest Neighbor
        Negative Contrastive Learning for Dense Text Retrieval", arXiv 2007.00808 (ANCE).

    Example::

        collator = MiningDataCollator(model, train_dataset, args=args, refresh="rescore", refresh_steps=100)
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train_dataset, loss=loss,
                                             data_collator=collator, callbacks=[collator.refresh_callback])
    """

    def __init__(
        self,
        model: Any,
        train_dataset: Any,
        *,
        args: Any = None,
        corpus: Any = None,
        anchor_column_name: str | None = None,
        positive_column_name: str | None = None,
        num_negatives: int = 3,
        retriever: Any = "dense",
        teacher: Any = None,
        ensemble: Literal["mean", "union"] = "mean",
        filter: PositiveAwareFilter | None = None,
        range_max: int = 50,
        pool_size: int = 20,
        max_candidates: int = 1000,
        sampling_strategy: str = "sampled",
        sample_pool: int = 10,
        temperature: float = 0.05,
        scores: Literal["scores", "margins"] | None = None,
        refresh: Refresh | None = None,
        refresh_steps: int | None = None,
        refresh_on_epoch: bool = False,
        stale_factor: float = 1.15,
        seed: int = 42,
        batch_size: int = 32,
        cache_folder: str | None = None,
        verbose: bool = True,
        backend: str = "torch",
        prompts: Any = None,
        router_mapping: Any = None,
        max_length: int | dict[str, int] | None = None,
        valid_label_columns: list[str] | None = None,
        **deprecated: Any,
    ) -> None:
        given = {"anchor_column_name": anchor_column_name is not None,
                 "positive_column_name": positive_column_name is not None, "range_max": range_max != 50,
                 "sampling_strategy": sampling_strategy != "sampled", "cache_folder": cache_folder is not None,
                 "verbose": verbose is not True}
        old = renamed(deprecated, _ALIASES, "MiningDataCollator", given)
        anchor_column_name = old.get("anchor_column_name", anchor_column_name)
        positive_column_name = old.get("positive_column_name", positive_column_name)
        range_max = old.get("range_max", range_max)
        sampling_strategy = old.get("sampling_strategy", sampling_strategy)
        cache_folder, verbose = old.get("cache_folder", cache_folder), old.get("verbose", verbose)
        if prompts is None and args is not None:
            prompts = getattr(args, "prompts", None)
        if router_mapping is None and args is not None:
            router_mapping = getattr(args, "router_mapping", None)
        kwargs = {} if valid_label_columns is None else {"valid_label_columns": valid_label_columns}
        super().__init__(preprocess_fn=model.preprocess, router_mapping=router_mapping or {}, prompts=prompts or {},
                         max_length=max_length, **kwargs)
        # The settings mine() shares, checked the same way, before anything is encoded.
        settings = MiningSettings(
            retriever=retriever, teacher=teacher, ensemble=ensemble, filter=filter or PositiveAwareFilter(),
            range_max=range_max, max_candidates=max_candidates, num_negatives=num_negatives,
            sampling_strategy=sampling_strategy, sample_pool=sample_pool, temperature=temperature, seed=seed,
            batch_size=batch_size, cache_folder=cache_folder, verbose=verbose, backend=backend)
        if seed is None:
            raise ValueError("MiningDataCollator needs an integer seed: its draws depend on (seed, batch, row)")
        if refresh not in (None, "rescore", "remine"):
            raise ValueError(f"unknown refresh {refresh!r}; use None, 'rescore' or 'remine'")
        if refresh_steps is not None and refresh_steps < 1:
            raise ValueError(f"refresh_steps must be a positive integer, got {refresh_steps}")
        if refresh and not (refresh_steps or refresh_on_epoch):
            raise ValueError(f"refresh={refresh!r} needs refresh_steps or refresh_on_epoch=True, or it never runs")
        if stale_factor <= 0:
            raise ValueError(f"stale_factor must be > 0, got {stale_factor}")
        if scores not in (None, "scores", "margins"):
            raise ValueError(f"unknown scores {scores!r}; use None, 'scores' or 'margins'")
        if pool_size < num_negatives:
            raise ValueError(f"pool_size ({pool_size}) must be at least num_negatives ({num_negatives})")
        if refresh and args is not None and getattr(args, "dataloader_num_workers", 0):
            raise ValueError("refresh needs dataloader_num_workers=0: worker processes hold stale copies of the pools")
        self.model = model
        self.data = load_data(train_dataset, corpus=corpus, anchor_column_name=anchor_column_name,
                              positive_column_name=positive_column_name)
        self.num_negatives, self.retriever, self.teacher, self.ensemble = num_negatives, retriever, teacher, ensemble
        self.filter = settings.filter
        self.range_max, self.pool_size, self.max_candidates = range_max, pool_size, max_candidates
        self.sampling_strategy = settings.sampling_strategy
        self.sample_pool, self.temperature = sample_pool, temperature
        self.scores, self.refresh_mode, self.refresh_steps = scores, refresh, refresh_steps
        self.refresh_on_epoch, self.stale_factor, self.seed = refresh_on_epoch, stale_factor, seed
        self.encode_batch_size, self.cache_folder, self.verbose = batch_size, cache_folder, verbose
        self.backend = backend
        self._positives = self.data.positives_by_query()
        self._pair_of = {(self.data.query_texts[q], self.data.corpus_texts[d]): i
                         for i, (q, d) in enumerate(self.data.pairs)}
        self._first_pair_of_query: dict[str, int] = {}
        for i, (q, _) in enumerate(self.data.pairs):
            self._first_pair_of_query.setdefault(self.data.query_texts[q], i)
        self._scorers: list | None = None
        self._calls = 0
        self._warned_unknown = False
        self._positive_column = "positive"
        self.stats = MiningStats(num_negatives=num_negatives)
        self.batch_stats = {"batches": 0, "rows": 0, "guarded": 0, "random_fill": 0, "passthrough": 0}
        self.history: deque[dict] = deque(maxlen=256)
        self.refreshes: list[dict] = []
        self.refresh_callback = RefreshCallback(self)
        # Mined now, in the main process: dataloader workers then share the pools, and under
        # `accelerate launch` rank 0 mines once and every rank receives the same pools.
        self._state = _broadcast(self._mine(self._embedder(self.cache_folder)) if _distributed()[0] == 0 else None)
        record_mining_in_card(model, self._card_lines())

    @property
    def quotas(self) -> list[int]:
        """Negatives each teacher contributes to a row (one teacher, or a mean ensemble: all of them)."""
        k = len(self._state["pools"].kept[0]) if self._state else 1
        return [self.num_negatives // k + (i < self.num_negatives % k) for i in range(k)]

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
    def _embedder(self, cache_folder: Any = None) -> Embedder:
        return Embedder(self.model, batch_size=self.encode_batch_size, cache_dir=cache_folder,
                        show_progress=self.verbose)

    def _mine(self, embedder: Embedder) -> dict[str, Any]:
        """Build pools with the model as it is now; returns the state shared by all ranks."""
        was_training = self.model.training
        try:
            source = build_retriever(self.retriever, embedder, show_progress=self.verbose)
            self._scorers = self._scorers or make_scorers(self.teacher, embedder, ensemble=self.ensemble,
                                                          batch_size=self.encode_batch_size,
                                                          cache_dir=self.cache_folder, show_progress=self.verbose,
                                                          backend=self.backend)
            index_all(source, self._scorers, self.data.corpus_texts)
            stats = MiningStats(num_negatives=self.num_negatives, queries=len(self._positives))
            pools = build_pools(self.data, source, self._scorers, self.filter, embedder,
                                want=[self.pool_size] * len(self._scorers), range_max=self.range_max,
                                max_candidates=self.max_candidates, stats=stats, pool_size=self.pool_size)
            docs = [np.array(list(dict.fromkeys(int(d) for k in kept for d in k.docs)), dtype=np.int64)
                    for kept in pools.kept]
            mined = self._student_scores(embedder, pools.query_order, docs)
        finally:
            self.model.train(was_training)  # SentenceTransformer.encode leaves the model in eval mode
        self.stats = stats
        # Per pool: every candidate document, its score under the model when mined, and which are stale.
        return {"pools": pools, "docs": docs, "mined": mined, "stale": [set() for _ in docs]}

    def _student_scores(self, embedder: Embedder, query_order: list[int], docs: list[np.ndarray]) -> list[np.ndarray]:
        """Cosine of the model being trained for every (query, pool document)."""
        unique = sorted({int(d) for row in docs for d in row})
        where = {d: i for i, d in enumerate(unique)}
        doc_emb = embedder.encode([self.data.corpus_texts[d] for d in unique], "document")
        q_emb = embedder.encode([self.data.query_texts[q] for q in query_order], "query")
        return [doc_emb[[where[int(d)] for d in row]] @ q_emb[i] if len(row) else np.zeros(0, np.float32)
                for i, row in enumerate(docs)]

    def _card_lines(self) -> list[str]:
        return [
            f"candidates: {self.retriever if isinstance(self.retriever, str) else self.retriever.name}, filtered by "
            f"{self.filter.description}, {self.pool_size} per query kept as the pool",
            f"teacher: {', '.join(s.name for s in (self._scorers or [])) or 'the model itself'}",
            f"{self.num_negatives} negatives per row, drawn per batch ({self.sampling_strategy}, seed {self.seed}) "
            "by MiningDataCollator, never a positive of another anchor in the batch",
            f"refresh: {self.refresh_mode or 'none'}"
            + (f" every {self.refresh_steps} steps" if self.refresh_steps else "")
            + (" at every epoch" if self.refresh_on_epoch else ""),
        ]

    # -- refresh ----------------------------------------------------------------------------
    def refresh(self, mode: Refresh | None = None, step: int | None = None) -> dict:
        """Refresh the pools with the model as it is now; returns (and logs) what it did and cost.

        ``"rescore"`` marks a candidate stale when ``current x stale_factor < mined`` (Conan) and
        draws from the rest of its pool (at least ``num_negatives`` stay, the hardest by current
        score); ``"remine"`` rebuilds the pools with the live model. All ranks get rank 0's result.
        """
        mode = mode or self.refresh_mode or "rescore"
        start = time.perf_counter()
        before = [set(s) for s in self._state["stale"]]
        old_docs = [d.copy() for d in self._state["docs"]]
        if _distributed()[0] == 0:
            was_training = self.model.training
            try:
                if mode == "remine":
                    self._scorers = None if self.teacher is None else self._scorers  # the student scores itself
                    state = self._mine(self._embedder())
                else:
                    state = dict(self._state)
                    current = self._student_scores(self._embedder(), state["pools"].query_order, state["docs"])
                    state["stale"] = [self._stale(docs, cur, mined)
                                      for docs, cur, mined in zip(state["docs"], current, state["mined"])]
            finally:
                self.model.train(was_training)
        else:
            state = None
        self._state = _broadcast(state)
        if mode == "remine":
            changed = sum(not np.array_equal(a, b) for a, b in zip(old_docs, self._state["docs"]))
        else:
            changed = sum(a != b for a, b in zip(before, self._state["stale"]))
        record = {"step": step, "mode": mode, "seconds": round(time.perf_counter() - start, 3),
                  "queries_changed": int(changed), "queries": len(self._state["docs"]),
                  "stale": int(sum(len(s) for s in self._state["stale"]))}
        self.refreshes.append(record)
        logger.info("refresh (%s) at step %s: %d of %d pools changed, %d stale candidates, %.1fs",
                    mode, step, changed, record["queries"], record["stale"], record["seconds"])
        return record

    def _stale(self, docs: np.ndarray, current: np.ndarray, mined: np.ndarray) -> set[int]:
        # Conan's rule on positive mined scores; a negative cosine cannot get "less hard" by a factor.
        stale = (current * self.stale_factor < mined) & (mined > 0)
        if (~stale).sum() < self.num_negatives:  # keep the hardest by the current model rather than run dry
            stale[np.argsort(-current, kind="stable")[: self.num_negatives]] = False
        return {int(d) for d in docs[stale]}

    # -- collation --------------------------------------------------------------------------
    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        if not features:
            return {}
        if self.refresh_mode and not self.refresh_callback.attached and not self.refresh_callback.warned:
            self.refresh_callback.warned = True
            logger.warning("refresh=%r is set but collator.refresh_callback is not among the trainer's callbacks: "
                           "the pools will not be refreshed", self.refresh_mode)
        label_cols = set(self.valid_label_columns)
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
        # The rows' own positive texts are guarded too: a row found by its anchor alone may bring a text
        # that the mined pairs do not label.
        own = [f[self._positive_column] for f in features]
        negatives, neg_scores, pos_scores = self.draw(rows, self._calls, self.batch_stats, also_forbidden=own)
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

    def draw(self, rows: Sequence[int], call: int, stats: dict[str, int] | None = None,
             also_forbidden: Sequence[str] = ()) -> tuple[list[list[int]], list[list[float]], list[float]]:
        """Negatives for a batch of training rows (indices into ``collator.data.pairs``), as batch ``call`` gets them.

        Returns each row's negatives (corpus positions), their teacher scores and the positive's
        score; ``stats`` (when given) counts guarded candidates and random fills; texts in
        ``also_forbidden`` are never attached either.
        """
        stats = {"guarded": 0, "random_fill": 0} if stats is None else stats
        state, data, texts = self._state, self.data, self.data.corpus_texts
        pools: CandidatePools = state["pools"]
        queries = [data.pairs[r][0] for r in rows]
        # In-batch guard: every column of every row is a negative for every anchor.
        forbidden = {d for q in set(queries) for d in self._positives[q]}
        forbidden_keys = ({normalize_text(texts[d]) for d in forbidden}
                          | {normalize_text(data.query_texts[q]) for q in queries}
                          | {normalize_text(t) for t in also_forbidden})
        used: set[int] = set()
        negatives, neg_scores, pos_scores = [], [], []
        for row, q in zip(rows, queries):
            i = pools.pool_of[q]
            stale = state["stale"][i]
            safe = lambda d: d not in forbidden and normalize_text(texts[d]) not in forbidden_keys  # noqa: E731
            stats["guarded"] += sum(not safe(int(d)) for d in state["docs"][i] if int(d) not in stale)
            rng = np.random.default_rng([self.seed, call, row])
            pos_index = self._positives[q].index(data.pairs[row][1])
            merged = draw(pools.kept_for(i, pos_index), self.quotas, self.sampling_strategy, rng,
                          sample_pool=self.sample_pool, temperature=self.temperature,
                          usable=lambda d: d not in stale and safe(d),
                          fresh=lambda d: d not in used)
            positive = [float(ps[i][pos_index]) for ps in pools.positive_scores]
            chosen, scores = [m[0] for m in merged], on_positive_scale(merged, positive)
            for _ in range(100 * self.num_negatives):  # the pool ran dry: random safe documents
                if len(chosen) >= self.num_negatives:
                    break
                d = int(rng.integers(len(texts)))
                if d not in chosen and safe(d):
                    chosen.append(d)
                    scores.append(self._score_one(q, d))
                    stats["random_fill"] += 1
            if len(chosen) < self.num_negatives:
                raise ValueError(
                    f"could not find {self.num_negatives} safe negatives for training row {row}: nearly every document "
                    f"of the {len(texts)}-document corpus is a positive of an anchor in this batch; pass a larger "
                    "corpus= or lower num_negatives")
            used.update(chosen)
            negatives.append(chosen)
            neg_scores.append(scores)
            pos_scores.append(float(np.mean(positive)))
        return negatives, neg_scores, pos_scores

    def _score_one(self, q: int, d: int) -> float:
        if not self.scores:
            return float("nan")
        return float(np.mean([s.score([self.data.query_texts[q]], [[self.data.corpus_texts[d]]])[0][0]
                              for s in self._scorers]))


class RefreshCallback(TrainerCallback):
    """Runs a :class:`MiningDataCollator`'s refresh on the trainer's schedule.

    Wire it in plain sight: ``callbacks=[collator.refresh_callback]``. Every rank calls it at the
    same point, so all ranks refresh together.
    """

    def __init__(self, collator: MiningDataCollator) -> None:
        self.collator = collator
        self.attached = False
        self.warned = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.attached = True
        if self.collator.refresh_mode and args.dataloader_num_workers:
            raise ValueError("refresh needs dataloader_num_workers=0: worker processes hold stale copies of the pools")

    def on_step_end(self, args, state, control, **kwargs):
        c = self.collator
        if c.refresh_mode and c.refresh_steps and state.global_step % c.refresh_steps == 0:
            c.refresh(step=state.global_step)

    def on_epoch_begin(self, args, state, control, **kwargs):
        c = self.collator
        if c.refresh_mode and c.refresh_on_epoch and state.epoch and state.epoch >= 1:
            c.refresh(step=state.global_step)
