"""Mafin benchmark: a frozen black box (all-mpnet-base-v2's vectors) augmented with a trainable MiniLM.

The black box is treated as an API: ``prepare`` embeds every text of the datasets once with it
(``recipes/precompute_black_box.py``, the only step that loads its weights) and everything after
reads those vectors alone (``--black-box STORE`` of the recipe). Rows, all trained with the same
student, loss, batch, learning rate, max length and epochs:

0. Mafin untrained: the black box beside the base MiniLM at λ (what the combination gives before any training);
1. the black box alone;
2. MiniLM fine-tuned alone on row 4's negatives (mined under the black box);
3. Mafin, in-batch negatives only;
4. Mafin, mined negatives: BM25 candidates fused with the black box's nearest documents, scored and
   filtered (TopK-PercPos 95%) under the *black box's* scores, i.e. the documents the black box ranks
   too high; ``--num-negatives`` per row. The quality benchmark's best miner (row 5, hybrid + teacher),
   with the black box as the teacher. BM25 matters on NFCorpus: its queries have 42 positives on
   average, so few of the black box's nearest documents pass PercPos under the lowest of them (the
   dense miner alone keeps 434 of the 2,000 pairs, the hybrid 1,933).

Stages:

- ``prepare``: the black box's store (``--black-box-model``; kept, never redone) and row 4's mined
  set per dataset (mined once; rows 2 and 4 train on it);
- ``sweep``: λ chosen on NFCorpus *train* queries held out of the training pairs (``--eval-heldout``:
  the queries beyond the 2,000-pair cap): row 4 at the first seed for each ``--weights`` value; the
  best held-out nDCG@10 wins and is written to ``<work>/lambda.json``. SciFact has no dev split and
  trains on every train query, so it takes NFCorpus's λ. The sweep's run at the chosen λ is row 4's
  first seed on NFCorpus (the same command; it also evaluated on dev);
- ``train``: rows 0-4 for every ``--seeds`` seed at the chosen λ (rows 0 and 1 train nothing: one
  run each, ``seed-42``), seed by seed, so a partial run has balanced seeds;
- ``report``: mean ± sd over the seeds of nDCG@10 and Recall@10, each row against the black box
  alone and row 4 against row 3, paired by seed (``scipy.stats.ttest_rel``, 95% t interval) and by
  query with the seeds pooled (sign-flip permutation test); the λ sweep; training time and device.

    python benchmarks/bench_mafin.py prepare --black-box-model "$(python recipes/prepare_mpnet_teacher.py)"
    python benchmarks/bench_mafin.py sweep
    python benchmarks/bench_mafin.py train --seeds 1 2 3 4 5
    python benchmarks/bench_mafin.py report --seeds 1 2 3 4 5

Runs are kept under ``--work`` (``<dataset>/<row>/seed-<n>/results.json``) and never redone; a work
folder refuses runs with other settings (``settings.json``). Writes ``--output`` (markdown) and the
same name with ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import seeded
import train_with_hard_negatives as recipe

# (row, run folder (λ appended for Mafin rows), label, recipe strategy, trains on the mined set, Mafin)
ROWS = [
    ("0", "mafin-base", "Mafin untrained (black box + base MiniLM)", "base", False, True),
    ("1", "black-box", "black box alone", "black-box", False, False),
    ("2", "minilm-mined", "MiniLM fine-tuned alone on row 4's negatives", "dataset", True, False),
    ("3", "mafin-in-batch", "Mafin, in-batch negatives only", "in-batch", False, True),
    ("4", "mafin-mined", "Mafin, negatives mined under the black box (hybrid, PercPos 95%)", "dataset", True, True),
]
MINED = "black-box-hybrid"
# Rows 0 and 1 train nothing: one run each, under this seed whatever --seeds says.
UNTRAINED, UNTRAINED_SEED = ("base", "black-box"), 42
# Within a seed: the quick untrained rows, then the rows the targets compare, then MiniLM alone.
TRAIN_ORDER = ("1", "0", "4", "3", "2")
SWEEP_DATASET = "nfcorpus"
SETTING_KEYS = ("max_seq_length", "num_negatives", "batch_size", "epochs", "lr", "nfcorpus_train_pairs", "black_box",
                "weights")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("prepare", "sweep", "train", "report"))
    recipe.add_dataset_flags(p)
    recipe.add_benchmark_flags(p)
    # The quality benchmark's settings (256 tokens, 2,000 NFCorpus pairs); one negative a row keeps a CPU run short.
    p.set_defaults(max_seq_length=256, nfcorpus_train_pairs=2000, num_negatives=1)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5], help="training seeds")
    p.add_argument("--rows", nargs="+", default=[r[0] for r in ROWS], help="rows to train (0-4)")
    p.add_argument("--weights", type=float, nargs="+", default=[0.5, 1.0, 2.0], help="λ values the sweep tries")
    p.add_argument("--black-box-model", default=None,
                   help="prepare: the black box's model, embedded once into the store (all-mpnet-base-v2's folder)")
    p.add_argument("--black-box-name", default="all-mpnet-base-v2", help="the black box's name in the store")
    p.add_argument("--store", default=None,
                   help="the black box's vectors (default: <cache>/<black box name>-<max length>.parquet)")
    p.add_argument("--model", default=None, help="the student's folder (default all-MiniLM-L6-v2)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (several fit on one GPU)")
    p.add_argument("--work", default=str(ROOT / "benchmarks" / "results" / "mafin_seeds"),
                   help="runs, one results.json per (dataset, row, seed), and the settings they share")
    p.add_argument("--cache", default=str(ROOT / "benchmarks" / "results" / "cache" / "mafin"),
                   help="the black box's store and the mined sets (large; rebuilt by prepare)")
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "mafin.md"), help="markdown table")
    args = p.parse_args(argv)
    args.store = args.store or str(Path(args.cache) / f"{args.black_box_name}-{args.max_seq_length}.parquet")
    args.black_box = args.black_box_name
    return args


def check_settings(args, name: str) -> None:
    seeded.check_settings(Path(args.work) / name / "settings.json", {k: getattr(args, k) for k in SETTING_KEYS})


def datasets_of(args):
    """(name, folder, train split, eval split, pair cap) of each ``--datasets`` entry."""
    for spec in args.datasets:
        name, path, train_split, eval_split = recipe.dataset_spec(spec, args.data)
        yield name, path, train_split, eval_split, args.nfcorpus_train_pairs if name == "nfcorpus" else None


def mined_set(args, name: str) -> Path:
    return Path(args.cache) / name / MINED / "mined"


def prepare(args) -> None:
    store = Path(args.store)
    if not store.is_file():
        if not args.black_box_model:
            raise SystemExit(f"{store}: no black-box store yet; give --black-box-model to embed the datasets once")
        folders = [path for _, path, *_ in datasets_of(args)]
        subprocess.run([sys.executable, str(ROOT / "recipes" / "precompute_black_box.py"), "--model",
                        args.black_box_model, "--name", args.black_box_name, "--max-seq-length",
                        str(args.max_seq_length), "--datasets", *folders, "--output", str(store)],
                       check=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    for name, path, train_split, eval_split, cap in datasets_of(args):
        check_settings(args, name)
        out = mined_set(args, name).parent
        cmd = recipe.recipe_command(MINED, path, train_split, eval_split, args, cap, "--mine-only", "--output",
                                    str(out), "--black-box", str(store), "--black-box-name", args.black_box_name)
        seeded.mine_once(cmd, out, Path(args.work) / name / MINED, f"{name}: negatives under the black box")


def folder_of(row: tuple, weight: float | None) -> str:
    return f"{row[1]}-w{weight:g}" if row[5] else row[1]


def command(args, row: tuple, dataset: tuple, seed: int, weight: float | None, *extra: str):
    """(recipe command, output folder) of one run."""
    name, path, train_split, eval_split, cap = dataset
    _, _, _, strategy, on_mined, mafin = row
    out = Path(args.work) / name / folder_of(row, weight) / f"seed-{seed}"
    args.seed = seed
    flags = ["--output", str(out), *extra]
    if on_mined:
        mined = mined_set(args, name)
        if not mined.is_dir():
            raise SystemExit(f"{mined}: not mined yet (run the prepare stage)")
        flags += ["--dataset", str(mined)]
    if mafin or strategy == "black-box":
        flags += ["--black-box", args.store, "--black-box-name", args.black_box_name]
    if mafin:
        flags += ["--mafin-weight", str(weight)]
    if args.model and strategy != "black-box":
        flags += ["--model", args.model]
    # A dataset run is told the pair cap so that --eval-heldout holds out the same queries as the other rows.
    return recipe.recipe_command(strategy, path, train_split, eval_split, args, cap, *flags), out


def chosen(args) -> dict:
    """The sweep's record: the chosen ``weight`` and every λ tried (``sweep``)."""
    f = Path(args.work) / "lambda.json"
    if not f.is_file():
        raise SystemExit(f"{f}: no λ chosen yet (run the sweep stage)")
    return json.loads(f.read_text())


def sweep_table(args) -> list[dict]:
    """One entry per λ tried: the held-out and the dev nDCG@10 of row 4's sweep run."""
    dataset = next((d for d in datasets_of(args) if d[0] == SWEEP_DATASET), None)
    if dataset is None:
        raise SystemExit(f"the sweep runs on {SWEEP_DATASET}: add it to --datasets")
    row = next(r for r in ROWS if r[0] == "4")
    entries = []
    for weight in args.weights:
        f = Path(args.work) / SWEEP_DATASET / folder_of(row, weight) / f"seed-{args.seeds[0]}" / "results.json"
        if not f.is_file():
            continue
        evals = json.loads(f.read_text())["eval"]
        heldout = next(v for k, v in evals.items() if k.endswith("-heldout"))
        dev = next(v for k, v in evals.items() if not k.endswith("-heldout"))
        entries.append({"weight": weight, "heldout_ndcg10": heldout["ndcg@10"], "heldout_queries":
                        len(heldout["query_ids"]), "dev_ndcg10": dev["ndcg@10"], "dev_recall10": dev.get("recall@10")})
    return entries


def sweep(args) -> None:
    dataset = next((d for d in datasets_of(args) if d[0] == SWEEP_DATASET), None)
    if dataset is None:
        raise SystemExit(f"the sweep runs on {SWEEP_DATASET}: add it to --datasets")
    check_settings(args, SWEEP_DATASET)
    row = next(r for r in ROWS if r[0] == "4")
    jobs = [command(args, row, dataset, args.seeds[0], w, "--eval-heldout") for w in args.weights]
    seeded.run_jobs([j for j in jobs if not (j[1] / "results.json").is_file()], args.jobs, Path(args.work))
    entries = sweep_table(args)
    best = max(entries, key=lambda e: e["heldout_ndcg10"])
    (Path(args.work) / "lambda.json").write_text(json.dumps({"weight": best["weight"], "sweep": entries,
                                                              "chosen_on": f"{SWEEP_DATASET} held-out train queries"},
                                                             indent=1), encoding="utf-8")
    for e in entries:
        print(f"λ {e['weight']:g}: held-out nDCG@10 {e['heldout_ndcg10']:.4f} ({e['heldout_queries']} queries)"
              f"{'  <- chosen' if e is best else ''}")


def train(args) -> None:
    weight = chosen(args)["weight"]
    jobs = []
    for seed in args.seeds:  # seed by seed: a run cut short leaves every row with the same seeds
        for dataset in datasets_of(args):
            check_settings(args, dataset[0])
            for row in sorted(ROWS, key=lambda r: TRAIN_ORDER.index(r[0])):
                if row[0] not in args.rows or (row[3] in UNTRAINED and seed != args.seeds[0]):
                    continue
                cmd, out = command(args, row, dataset, UNTRAINED_SEED if row[3] in UNTRAINED else seed,
                                   weight if row[5] else None)
                if not (out / "results.json").is_file():
                    jobs.append((cmd, out))
    seeded.run_jobs(jobs, args.jobs, Path(args.work))


def summarise(args) -> dict:
    record = chosen(args)
    weight = record["weight"]
    out: dict = {"weight": weight, "sweep": record.get("sweep", []), "datasets": {}}
    for name, _, _, eval_split, _ in datasets_of(args):
        work = Path(args.work) / name
        if not (work / "settings.json").is_file():
            continue
        check_settings(args, name)
        split = f"{name}-{eval_split}"
        table = {}
        for row in ROWS:
            seeds = [UNTRAINED_SEED] if row[3] in UNTRAINED else args.seeds
            runs = seeded.load_runs(work / folder_of(row, weight if row[5] else None), seeds, split)
            if runs:
                table[row[0]] = {"label": row[2], "runs": runs, "weight": weight if row[5] else None}
        mining = work / MINED / "mining.json"
        out["datasets"][name] = {"rows": table, "mined_rows": json.loads(mining.read_text())["mining"]["rows"]
                                 if mining.is_file() else None}
        for number, row in table.items():
            ref = {}
            if "1" in table and number != "1":  # the black box is deterministic: its one run stands for every seed
                (box,) = table["1"]["runs"].values()
                ref = {"vs_1": {s: box for s in row["runs"]}}
            if number == "4" and "3" in table:
                ref["vs_3"] = table["3"]["runs"]
            for label, runs in ref.items():
                row[label] = {key: seeded.compare(row["runs"], runs, key) for key in ("ndcg10", "recall10")}
    return out


def _cmp(c: dict | None) -> str:
    if c is None:
        return "– | – | –"
    return f"{c['delta']:+.4f} [{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}] | {c['p_seeds']:.3f} | {c['p_queries']:.3f}"


def render(summary: dict, args) -> str:
    import numpy as np

    lines = [
        "# Mafin benchmark: a frozen black box augmented with a trainable MiniLM",
        "",
        f"- command: `python {' '.join(sys.argv)}`; report written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {seeded.cpu_description()}; the training device of each row is in its row",
        f"- black box: {args.black_box_name}'s vectors at max length {args.max_seq_length}, precomputed once "
        "(`recipes/precompute_black_box.py`); the runs read only the vectors",
        f"- Mafin: `[black box ; λ·normalize(MiniLM)]`, λ = {summary['weight']:g}, chosen on {SWEEP_DATASET} train "
        f"queries held out of the training pairs (sweep below; SciFact takes it over)",
        f"- student all-MiniLM-L6-v2; MultipleNegativesRankingLoss; batch {args.batch_size}; lr {args.lr}; "
        f"{args.epochs:g} epoch; warmup 10%; max length {args.max_seq_length}; {args.num_negatives} negative(s) a row "
        f"(rows 2 and 4); NFCorpus: {args.nfcorpus_train_pairs} train pairs, evaluated on dev; seeds "
        f"{', '.join(map(str, args.seeds))}",
        "- Δ: paired by seed, 95% t interval (`scipy.stats.ttest_rel`; the black box has one run, which stands for "
        "every seed); p (queries): paired sign-flip permutation test over queries, seeds pooled (10,000 resamples)",
        "",
    ]
    for name, entry in summary["datasets"].items():
        table = entry["rows"]
        lines += [f"## {name}", "",
                  f"Row 4's mined set: {entry['mined_rows']} rows.", "",
                  "| row | strategy | nDCG@10 mean ± sd | per seed | Recall@10 mean ± sd | Δ nDCG@10 vs 1 [95% CI] | "
                  "p seeds | p queries | Δ Recall@10 vs 1 | p queries | train s | device |",
                  "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for number, row in table.items():
            runs = row["runs"]
            vs1 = row.get("vs_1", {})
            rec = vs1.get("recall10")
            train_s = [r["train_seconds"] for r in runs.values() if r["train_seconds"] is not None]
            per_seed = " / ".join(f"{r['ndcg10']:.4f}" for r in runs.values())
            rec_delta = "–" if rec is None else f"{rec['delta']:+.4f}"
            rec_p = "–" if rec is None else f"{rec['p_queries']:.3f}"
            seconds = f"{np.mean(train_s):.0f}" if train_s else "–"
            devices = ", ".join(sorted({r["device"] for r in runs.values()}))
            lines.append(f"| {number} | {row['label']} | {seeded.mean_sd(runs)} | {per_seed} | "
                         f"{seeded.mean_sd(runs, 'recall10')} | {_cmp(vs1.get('ndcg10'))} | {rec_delta} | {rec_p} | "
                         f"{seconds} | {devices} |")
        if "4" in table and "vs_3" in table["4"]:
            c = table["4"]["vs_3"]
            lines += ["", "Row 4 (mined) against row 3 (in-batch):", "",
                      "| metric | Δ [95% CI] | p seeds | p queries |", "|---|---:|---:|---:|",
                      f"| nDCG@10 | {_cmp(c['ndcg10'])} |", f"| Recall@10 | {_cmp(c['recall10'])} |"]
        lines.append("")
    if summary["sweep"]:
        lines += [f"## λ sweep ({SWEEP_DATASET}, row 4, seed {args.seeds[0]})", "",
                  "| λ | held-out train nDCG@10 | held-out queries | dev nDCG@10 |", "|---:|---:|---:|---:|"]
        for e in summary["sweep"]:
            mark = " (chosen)" if e["weight"] == summary["weight"] else ""
            lines.append(f"| {e['weight']:g}{mark} | {e['heldout_ndcg10']:.4f} | {e['heldout_queries']} | "
                         f"{e['dev_ndcg10']:.4f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.stage == "prepare":
        prepare(args)
    elif args.stage == "sweep":
        sweep(args)
    elif args.stage == "train":
        train(args)
    else:
        summary = summarise(args)
        text = render(summary, args)
        print(text)
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        out.with_suffix(".json").write_text(json.dumps(summary, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
