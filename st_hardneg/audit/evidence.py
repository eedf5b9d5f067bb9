"""What the label audit looks at: every query's labelled positives and unlabelled top candidates, under each model.

:func:`gather_evidence` runs the engine's retrieval and scoring (:func:`st_hardneg.pools.score_candidates`)
without the filter, then lays the result out as flat arrays, one entry per (query, document) *item*:

- each labelled positive of a query, whether or not the retriever found it;
- each unlabelled document among the query's top ``k`` candidates.

For every item and model it records the score, the rank among the query's items, and the scores of
the query's *other* positives (the reference a document is compared with), plus the document's mean
cosine to those positives in the mining model's embedding space. Everything downstream
(:mod:`.detectors`, :mod:`.calibration`) is a pure function of these arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from ..data import MiningData


@dataclass
class Evidence:
    """Per item (query, document) arrays; ``[m, n]`` arrays have one row per model.

    Attributes:
        data: The audited data.
        models: Model names, the mining model ("student") first.
        k: Candidates retrieved per query.
        query: Row of :attr:`query_order` each item belongs to.
        query_order: ``data`` query index of each row.
        doc: Corpus position of each item.
        labelled: Whether the item is a labelled positive.
        retrieved: Whether the retriever returned the item among the top ``k`` (every candidate is;
            a positive may not be).
        scores: ``[m, n]`` scores.
        ranks: ``[m, n]`` 1-based rank among the query's items (ties share the best rank).
        above: ``[m, n]`` how many of the query's *unlabelled* candidates score strictly higher.
        ref_low, ref_median: ``[m, n]`` lowest / median score of the query's *other* positives (NaN:
            none); an unlabelled item compares with all of them (what the rules use).
        positive_cosine: Mean cosine to the query's other positives under the mining model (NaN: none).
        n_positives: Labelled positives of the item's query.
    """

    data: MiningData
    models: list[str]
    k: int
    query: np.ndarray
    query_order: list[int]
    doc: np.ndarray
    labelled: np.ndarray
    retrieved: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray
    above: np.ndarray
    ref_low: np.ndarray
    ref_median: np.ndarray
    positive_cosine: np.ndarray
    n_positives: np.ndarray

    def __len__(self) -> int:
        return len(self.doc)


def lay_out(data: MiningData, models: Sequence[str], query_order: list[int], indices: np.ndarray,
            scores: Sequence[np.ndarray], positive_scores: Sequence[Sequence[np.ndarray]],
            doc_embeddings: np.ndarray | None, k: int) -> Evidence:
    """Flatten scored candidates (as :class:`~st_hardneg.pools.ScoredCandidates` holds them) into items.

    ``doc_embeddings`` are the mining model's unit-normalised corpus embeddings (for the positive
    cosine; ``None`` leaves it NaN).
    """
    positives = data.positives_by_query()
    m = len(models)
    q_of, d_of, lab, ret, sc = [], [], [], [], []
    for row, q in enumerate(query_order):
        pos = positives[q]
        pos_set = set(pos)
        found = {int(d) for d in indices[row] if d >= 0}
        cand_cols = [j for j, d in enumerate(indices[row]) if d >= 0 and int(d) not in pos_set]
        cand = [int(indices[row][j]) for j in cand_cols]
        q_of += [row] * (len(pos) + len(cand))
        d_of += pos + cand
        lab += [True] * len(pos) + [False] * len(cand)
        ret += [d in found for d in pos] + [True] * len(cand)
        sc.append(np.stack([np.concatenate([np.asarray(positive_scores[s][row], dtype=np.float64),
                                            np.asarray(scores[s][row][cand_cols], dtype=np.float64)])
                            for s in range(m)]))
    query = np.asarray(q_of, dtype=np.int64)
    doc = np.asarray(d_of, dtype=np.int64)
    labelled = np.asarray(lab, dtype=bool)
    retrieved = np.asarray(ret, dtype=bool)
    all_scores = np.concatenate(sc, axis=1) if sc else np.zeros((m, 0))
    n = len(doc)
    ranks = np.zeros((m, n), dtype=np.int64)
    above = np.zeros((m, n), dtype=np.int64)
    ref_low, ref_median = np.full((m, n), np.nan), np.full((m, n), np.nan)
    cosine = np.full(n, np.nan)
    n_pos = np.zeros(n, dtype=np.int64)
    bounds = np.flatnonzero(np.diff(query, prepend=-1, append=len(query_order) + 1)) if n else np.zeros(1, np.int64)
    for start, stop in pairwise(bounds):
        pos_mask = labelled[start:stop]
        idx = np.flatnonzero(pos_mask) + start  # positives come first in each query's items
        cand = np.flatnonzero(~pos_mask) + start
        n_here = len(idx)
        n_pos[start:stop] = n_here
        for s in range(m):
            values = all_scores[s, start:stop]
            # rank = 1 + number of the query's items scoring strictly higher
            ranks[s, start:stop] = 1 + np.searchsorted(np.sort(-values), -values, side="left")
            above[s, start:stop] = np.searchsorted(np.sort(-all_scores[s, cand]), -values, side="left")
            pos_values = all_scores[s, idx]
            ref_low[s, cand], ref_median[s, cand] = pos_values.min(), np.median(pos_values)
            if n_here > 1:
                for j, item in enumerate(idx):  # a positive against the others (leave one out)
                    others = np.delete(pos_values, j)
                    ref_low[s, item] = others.min()
                    ref_median[s, item] = np.median(others)
        if doc_embeddings is not None:
            emb = doc_embeddings[doc[start:stop]]
            sims = emb @ emb[pos_mask].T  # [items, positives]
            cosine[cand] = sims[~pos_mask].mean(axis=1)
            if n_here > 1:
                own = np.eye(n_here, dtype=bool)
                cosine[idx] = np.where(own, 0.0, sims[pos_mask]).sum(axis=1) / (n_here - 1)
    return Evidence(data, list(models), k, query, list(query_order), doc, labelled, retrieved, all_scores, ranks,
                    above, ref_low, ref_median, cosine, n_pos)
