"""Quality benchmark: nDCG@10 and Recall@100 after training on differently mined negatives.

Rows (same student, loss, batch, learning rate, max length, epochs and seed everywhere):
1. base model, no training; 2. MNRL, in-batch negatives only; 3. sentence-transformers
``mine_hard_negatives(relative_margin=0.05)`` (TopK-PercPos 95%); 4. st-hardneg dense PercPos,
static; 5. st-hardneg hybrid BM25+dense with the teacher, PercPos, static; 6. the same through
``MiningDataCollator`` with refresh; 7. row 5's miner with one negative per row instead of four
(fewer, better negatives: the half-training-time target). Each row runs ``recipes/train_with_hard_negatives.py`` in a
fresh process; p-values are paired sign-flip permutation tests over queries against row 3.

    python benchmarks/bench_quality.py --datasets scifact nfcorpus --teacher "$(python recipes/prepare_mpnet_teacher.py)"

Writes ``benchmarks/results/quality.md`` and the per-row ``results.json`` under ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "recipes"))
import train_with_hard_negatives as recipe  # noqa: E402
from evaluation import paired_permutation_test  # noqa: E402

# (row, run folder, label, recipe strategy, extra recipe flags)
ROWS = [
    ("1", "base", "base model, no training", "base", []),
    ("2", "in-batch", "MNRL, in-batch negatives only", "in-batch", []),
    ("3", "st-percpos", "sentence-transformers mine_hard_negatives, PercPos 95%", "st-percpos", []),
    ("4", "dense-percpos", "st-hardneg dense PercPos, static", "dense-percpos", []),
    ("5", "hybrid-teacher", "st-hardneg hybrid BM25+dense + teacher, PercPos, static", "hybrid-teacher", []),
    ("6", "collator-refresh", "st-hardneg row 5 via MiningDataCollator + refresh", "collator-refresh", []),
    ("7", "hybrid-teacher-1neg", "st-hardneg row 5 with 1 negative (fewer, better)", "hybrid-teacher",
     ["--num-negatives", "1"]),
]

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    recipe.add_dataset_flags(p)
    p.add_argument("--rows", nargs="+", default=[r[0] for r in ROWS], help="row numbers to run (1-7)")
    p.add_argument("--teacher", default=None, help="teacher for rows 5-7 (e.g. all-mpnet-base-v2's folder)")
    recipe.add_benchmark_flags(p)  # row 7 overrides --num-negatives with 1
    p.add_argument("--refresh-steps", type=int, default=10, help="row 6: refresh every this many steps")
    p.add_argument("--work", default=str(ROOT / "benchmarks" / "results" / "quality_runs"),
                   help="folder for each row's results.json")
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "quality.md"), help="markdown table")
    p.add_argument("--reuse", action="store_true", help="skip rows whose results.json already exists")
    args = p.parse_args()
    started = time.time()
    results: dict[str, dict[str, dict]] = {}
    for spec in args.datasets:
        name, path, train_split, eval_split = recipe.dataset_spec(spec, args.data)
        for number, folder_name, _, strategy, extra in ROWS:
            if number not in args.rows:
                continue
            if strategy in ("hybrid-teacher", "collator-refresh") and not args.teacher:
                print(f"skipping row {number} ({strategy}): no --teacher", flush=True)
                continue
            out = Path(args.work) / name / folder_name
            if not (args.reuse and (out / "results.json").is_file()):
                cap = args.nfcorpus_train_pairs if name == "nfcorpus" else None
                # --save-mined: the mined sets feed recipes/validate_eci.py
                cmd = recipe.recipe_command(strategy, path, train_split, eval_split, args, cap, "--refresh-steps",
                                            str(args.refresh_steps), "--output", str(out), "--save-mined", *extra)
                if args.teacher:
                    cmd += ["--teacher", args.teacher]
                print(f"[{time.strftime('%H:%M:%S')}] {name} row {number}: {folder_name}", flush=True)
                subprocess.run(cmd, check=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
            results.setdefault(name, {})[number] = json.loads((out / "results.json").read_text())
    table = render(results, args, time.time() - started)
    print(table)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(table, encoding="utf-8")


def render(results: dict, args: argparse.Namespace, seconds: float) -> str:
    lines = [
        "# Quality benchmark: training on mined hard negatives",
        "",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; whole run {seconds / 60:.1f} min",
        f"- machine: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}; no GPU unless noted",
        f"- student all-MiniLM-L6-v2; MultipleNegativesRankingLoss; batch {args.batch_size}; lr {args.lr}; "
        f"{args.epochs:g} epoch; warmup 10%; max length {args.max_seq_length} (mining, training, evaluation); "
        f"{args.num_negatives} negatives; seed {args.seed}; NO_DUPLICATES batch sampler",
        "- row 7 trains on 1 negative per row, every other setting as row 5",
        f"- teacher (rows 5-7): `{args.teacher}`, truncated to {args.max_seq_length} tokens like the student; row 6 refreshes (Conan rule) every {args.refresh_steps} steps",
        f"- NFCorpus: {args.nfcorpus_train_pairs} train pairs (one positive per query first), evaluated on dev",
        "- p: paired sign-flip permutation test over queries against row 3 (10,000 permutations)",
        "",
    ]
    for name, rows in results.items():
        lines += [f"## {name}", "",
                  "| row | strategy | train rows | nDCG@10 | p vs 3 | Recall@100 | p vs 3 | train s | s / row |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        ref = rows.get("3")
        for number, _, label, _, _ in ROWS:
            r = rows.get(number)
            if r is None:
                continue
            (ev,) = r["eval"].values()
            cells = []
            for metric in ("ndcg@10", "recall@100"):
                p = "–"
                if ref is not None and number != "3":
                    (ref_ev,) = ref["eval"].values()
                    p = f"{paired_permutation_test(np.array(ev['per_query'][metric]), np.array(ref_ev['per_query'][metric])):.3f}"
                cells += [f"{ev[metric]:.4f}", p]
            lines.append(f"| {number} | {label} | {r.get('train_rows', '–')} | {cells[0]} | {cells[1]} | {cells[2]} | "
                         f"{cells[3]} | {r.get('train_seconds', '–')} | {r.get('train_seconds_per_row', '–')} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
