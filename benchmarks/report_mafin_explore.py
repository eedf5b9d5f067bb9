"""Report of the exploratory Mafin runs on NFCorpus's held-out train queries (``results/mafin_explore/commands.sh``).

Each run is one seed (seed 1), so there is no interval by seed: every run is compared with in-batch
negatives trained for the same number of epochs, by query (a paired sign-flip permutation test over the
581 held-out queries, ``seeded.compare``). Dev nDCG@10 is shown too; no setting was chosen on it.

    python benchmarks/report_mafin_explore.py   # writes results/mafin_explore/nfcorpus-heldout.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import seeded

HERE = Path(__file__).resolve().parent
HELDOUT, DEV = "nfcorpus-train-heldout", "nfcorpus-dev"
# (label, run folder relative to results/, epochs): the in-batch run of each epoch count is the reference.
RUNS = [
    ("in-batch", "mafin_explore/nfcorpus-heldout/mafin-in-batch-w1", 1),
    ("top-1 mined (row 4's set, the λ sweep's run)", "mafin_seeds/sweep/nfcorpus/mafin-mined-w1", 1),
    ("1 drawn from the top 10", "mafin_explore/nfcorpus-heldout/mafin-mined-sampled10-w1", 1),
    ("top-3 mined", "mafin_explore/nfcorpus-heldout/mafin-mined-top3-w1", 1),
    ("top-1, PercPos against each row's own positive", "mafin_explore/nfcorpus-heldout/mafin-mined-own-w1", 1),
    ("in-batch", "mafin_explore/nfcorpus-heldout/mafin-in-batch-w1-2ep", 2),
    ("top-1 mined (row 4's set as prepare mines it today)", "mafin_explore/nfcorpus-heldout/mafin-mined-w1-2ep", 2),
]


def summarise(results: Path) -> list[dict]:
    """One entry per run found: its held-out and dev nDCG@10, and the comparison with in-batch at its epochs."""
    refs = {epochs: seeded.load_runs(results / folder, [1], HELDOUT) for label, folder, epochs in RUNS
            if label == "in-batch"}
    out = []
    for label, folder, epochs in RUNS:
        held = seeded.load_runs(results / folder, [1], HELDOUT)
        if not held:
            continue
        raw = json.loads((results / folder / "seed-1" / "results.json").read_text())
        ref = refs.get(epochs) or {}
        cmp = seeded.compare(held, ref, min_seeds=1) if ref and label != "in-batch" else None
        out.append({"label": label, "folder": folder, "epochs": epochs, "rows": held[1]["train_rows"],
                    "heldout_ndcg10": held[1]["ndcg10"], "dev_ndcg10": raw["eval"].get(DEV, {}).get("ndcg@10"),
                    "train_seconds": held[1]["train_seconds"], "device": raw.get("device"),
                    "delta": cmp and cmp["delta"], "p_queries": cmp and cmp["p_queries"]})
    return out


def render(entries: list[dict]) -> str:
    lines = ["# Mafin on NFCorpus's held-out train queries: which negatives separate from in-batch", "",
             "Seed 1, one run each, λ 1, 2,000 training pairs, 256 tokens, batch 32, lr 2e-05. Δ: held-out nDCG@10",
             "against in-batch at the same epochs, p from a paired sign-flip test over the 581 held-out queries.",
             "Dev is shown, not used to choose. Train s: wall seconds of training on the run's machine, 2 CPU cores:",
             "a Xeon with AMX for the runs of 2026-12-02/03 (1-epoch in-batch, top-1, sampled, top-3), an AMD EPYC",
             "without it, 2-3x slower, for those of 2026-12-08 (own positive, 2 epochs).", "",
             "| epochs | negatives | rows | held-out nDCG@10 | Δ vs in-batch (p) | dev nDCG@10 | train s | run |",
             "|---:|---|---:|---:|---:|---:|---:|---|"]
    for e in entries:
        delta = "" if e["delta"] is None else f"{e['delta']:+.4f} ({e['p_queries']:.3f})"
        dev = "–" if e["dev_ndcg10"] is None else f"{e['dev_ndcg10']:.4f}"
        lines.append(f"| {e['epochs']} | {e['label']} | {e['rows']} | {e['heldout_ndcg10']:.4f} | {delta} | {dev} | "
                     f"{e['train_seconds']:.0f} | `{e['folder']}` |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=str(HERE / "results"), help="the benchmarks' results folder")
    p.add_argument("--output", default=str(HERE / "results" / "mafin_explore" / "nfcorpus-heldout.md"))
    args = p.parse_args(argv)
    entries = summarise(Path(args.results))
    if not entries:
        raise SystemExit(f"{args.results}: none of the exploratory runs is there (run mafin_explore/commands.sh)")
    seeded.write_report(render(entries), entries, args.output)


if __name__ == "__main__":
    main()
