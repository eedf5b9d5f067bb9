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
  the queries beyond the 2,000-pair cap, the last ones in the qrels' order): row 4 for each
  ``--weights`` value under ``--sweep-seed``, kept apart (``<work>/sweep/``); the best held-out
  nDCG@10 wins and is written to ``<work>/lambda.json`` with that seed. SciFact has no dev split and
  trains on every train query, so it takes NFCorpus's λ;
- ``train``: rows 0-4 for every ``--seeds`` seed at the chosen λ: rows 0, 1, 3 and 4 seed by seed,
  then row 2 seed by seed, so a run cut short leaves the compared rows with the same seeds. The sweep's seed is refused: the same seed trains the very run that won the
  sweep, a selected (lucky) run that would favour row 4. Rows 0 and 1 train nothing: one run each;
- ``report``: mean ± sd over the seeds of nDCG@10 and Recall@10; every row against the black box
  alone, by seed (a one-sample t interval: the black box has one run) and by query on each query's
  mean over the seeds (a sign-flip permutation test; the black box's one value per query is not
  repeated as if it were new evidence); row 4 against row 3 as the quality benchmark compares, by
  seed (``scipy.stats.ttest_rel``) and by query on each query's mean over the seeds; the λ sweep; training time
  and device.

    python benchmarks/bench_mafin.py prepare --black-box-model "$(python recipes/prepare_mpnet_teacher.py)"
    python benchmarks/bench_mafin.py sweep
    python benchmarks/bench_mafin.py train --seeds 2 3 4 5 6
    python benchmarks/bench_mafin.py report --seeds 2 3 4 5 6

Two epochs (rows 0, 1, 3 and 4 in their own work folder, at the λ the 1-epoch sweep chose; row 2 is left out):

    python benchmarks/bench_mafin.py prepare --epochs 2 --work benchmarks/results/mafin_seeds_2ep
    python benchmarks/bench_mafin.py train --epochs 2 --rows 0 1 3 4 --work benchmarks/results/mafin_seeds_2ep \
        --lambda-file benchmarks/results/mafin_seeds/lambda.json
    python benchmarks/bench_mafin.py report --epochs 2 --work benchmarks/results/mafin_seeds_2ep \
        --lambda-file benchmarks/results/mafin_seeds/lambda.json --output benchmarks/results/mafin_2ep.md

Runs are kept under ``--work`` (``<dataset>/<row>/seed-<n>/results.json``) and never redone; a work
folder refuses runs with other settings (``settings.json``), and a run of rows 2 or 4 on other rows
than the mined set now holds (SHA-256) is refused by the report. Writes ``--output`` (markdown) and
the same name with ``.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import seeded
import train_with_hard_negatives as recipe


class Row(NamedTuple):
    number: str
    folder: str  # λ is appended for Mafin rows
    label: str
    strategy: str  # the recipe's
    on_mined: bool  # trains on the set ``prepare`` mined
    mafin: bool


ROWS = [
    Row("0", "mafin-base", "Mafin untrained (black box + base MiniLM)", "base", False, True),
    Row("1", "black-box", "black box alone", "black-box", False, False),
    Row("2", "minilm-mined", "MiniLM fine-tuned alone on row 4's negatives", "dataset", True, False),
    Row("3", "mafin-in-batch", "Mafin, in-batch negatives only", "in-batch", False, True),
    Row("4", "mafin-mined", "Mafin, negatives mined under the black box (hybrid, PercPos 95%)", "dataset", True, True),
]
MINED = "black-box-hybrid"
# Rows 0 and 1 train nothing: one run each, under this seed whatever --seeds says.
UNTRAINED, UNTRAINED_SEED = ("base", "black-box"), 42
# The quick untrained rows and the rows the targets compare, seed by seed; then MiniLM alone, seed by seed.
TRAIN_ORDER = (("1", "0", "4", "3"), ("2",))
SWEEP_DATASET, SWEEP_ROW = "nfcorpus", ROWS[4]
SETTING_KEYS = ("max_seq_length", "num_negatives", "batch_size", "epochs", "lr", "nfcorpus_train_pairs", "black_box",
                "weights", "model")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("prepare", "sweep", "train", "report"))
    recipe.add_dataset_flags(p)
    recipe.add_benchmark_flags(p)
    # The quality benchmark's settings (256 tokens, 2,000 NFCorpus pairs); one negative a row keeps a CPU run short.
    p.set_defaults(max_seq_length=256, nfcorpus_train_pairs=2000, num_negatives=1)
    p.add_argument("--seeds", type=int, nargs="+", default=[2, 3, 4, 5, 6], help="training seeds (not --sweep-seed)")
    p.add_argument("--sweep-seed", type=int, default=1, help="sweep: the training seed of its runs")
    p.add_argument("--rows", nargs="+", default=[r.number for r in ROWS], help="rows to train (0-4)")
    p.add_argument("--weights", type=float, nargs="+", default=[0.5, 1.0, 2.0], help="λ values the sweep tries")
    p.add_argument("--lambda-file", default=None,
                   help="train/report: the sweep's record of the chosen λ (default <work>/lambda.json); another work "
                        "folder's, to train rows under other settings (e.g. --epochs 2) at the λ chosen there")
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
    args.black_box = args.black_box_name  # the settings' name for it
    return args


def check_settings(args, name: str) -> None:
    """Record the work folder's settings on first use; refuse runs with others (``seeded.check_settings``)."""
    seeded.check_settings(Path(args.work) / name / "settings.json", {k: getattr(args, k) for k in SETTING_KEYS})


class Dataset(NamedTuple):
    name: str
    path: str
    train_split: str
    eval_split: str
    cap: int | None  # training pairs kept (NFCorpus)


def datasets_of(args) -> list[Dataset]:
    """Each ``--datasets`` entry, resolved (``recipe.dataset_spec``), with its pair cap."""
    out = []
    for spec in args.datasets:
        name, path, train_split, eval_split = recipe.dataset_spec(spec, args.data)
        out.append(Dataset(name, path, train_split, eval_split, args.nfcorpus_train_pairs if name == "nfcorpus" else None))
    return out


def sweep_dataset(args) -> Dataset:
    found = [d for d in datasets_of(args) if d.name == SWEEP_DATASET]
    if not found:
        raise SystemExit(f"the sweep runs on {SWEEP_DATASET}: add it to --datasets")
    return found[0]


def mined_set(args, name: str) -> Path:
    return Path(args.cache) / name / MINED / "mined"


def prepare(args) -> None:
    """The black box's store (embedded once, if missing) and row 4's mined set per dataset (mined once)."""
    store = Path(args.store)
    if not store.is_file():
        if not args.black_box_model:
            raise SystemExit(f"{store}: no black-box store yet; give --black-box-model to embed the datasets once")
        subprocess.run([sys.executable, str(ROOT / "recipes" / "precompute_black_box.py"), "--model",
                        args.black_box_model, "--name", args.black_box_name, "--max-seq-length",
                        str(args.max_seq_length), "--datasets", *[d.path for d in datasets_of(args)],
                        "--output", str(store)], check=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    for d in datasets_of(args):
        check_settings(args, d.name)
        out = mined_set(args, d.name).parent
        cmd = recipe.recipe_command(MINED, d.path, d.train_split, d.eval_split, args, d.cap, "--mine-only",
                                    "--output", str(out), "--black-box", str(store), "--black-box-name",
                                    args.black_box_name)
        seeded.mine_once(cmd, out, Path(args.work) / d.name / MINED, f"{d.name}: negatives under the black box")


def folder_of(row: Row, weight: float | None) -> str:
    return f"{row.folder}-w{weight:g}" if row.mafin else row.folder


def command(args, row: Row, d: Dataset, seed: int, weight: float | None, out: Path, *extra: str) -> list[str]:
    """The recipe command of one run of ``row`` on ``d`` into ``out``."""
    flags = ["--output", str(out), *extra]
    if row.on_mined:
        mined = mined_set(args, d.name)
        if not mined.is_dir():
            raise SystemExit(f"{mined}: not mined yet (run the prepare stage)")
        flags += ["--dataset", str(mined)]
    if row.mafin or row.strategy == "black-box":
        flags += ["--black-box", args.store, "--black-box-name", args.black_box_name]
    if row.mafin:
        flags += ["--mafin-weight", str(weight)]
    if args.model and row.strategy != "black-box":
        flags += ["--model", args.model]
    # Every row is told the pair cap, so --eval-heldout holds out the same queries whatever the row trains on.
    return recipe.recipe_command(row.strategy, d.path, d.train_split, d.eval_split, argparse.Namespace(
        **{**vars(args), "seed": seed}), d.cap, *flags)


def sweep_run(args, weight: float, seed: int) -> Path:
    return Path(args.work) / "sweep" / SWEEP_DATASET / folder_of(SWEEP_ROW, weight) / f"seed-{seed}"


def chosen(args) -> dict:
    """The sweep's record: the chosen ``weight``, its ``seed`` and every λ tried (``sweep``)."""
    f = Path(args.lambda_file) if args.lambda_file else Path(args.work) / "lambda.json"
    if not f.is_file():
        raise SystemExit(f"{f}: no λ chosen yet (run the sweep stage, or give --lambda-file)")
    return {**json.loads(f.read_text()), "file": str(f)}


def sweep(args) -> None:
    """Row 4 on NFCorpus at each λ under ``--sweep-seed``; the best held-out nDCG@10 is written to lambda.json."""
    d = sweep_dataset(args)
    check_settings(args, d.name)
    jobs = [(command(args, SWEEP_ROW, d, args.sweep_seed, w, sweep_run(args, w, args.sweep_seed), "--eval-heldout"),
             sweep_run(args, w, args.sweep_seed)) for w in args.weights]
    seeded.run_jobs([j for j in jobs if not (j[1] / "results.json").is_file()], args.jobs, Path(args.work))
    entries = []
    for weight in args.weights:
        evals = json.loads((sweep_run(args, weight, args.sweep_seed) / "results.json").read_text())["eval"]
        heldout = [v for k, v in evals.items() if k.endswith("-heldout")]
        if not heldout:
            raise SystemExit(f"{sweep_run(args, weight, args.sweep_seed)}: this run has no held-out evaluation")
        dev = next(v for k, v in evals.items() if not k.endswith("-heldout"))
        entries.append({"weight": weight, "heldout_ndcg10": heldout[0]["ndcg@10"],
                        "heldout_queries": len(heldout[0]["query_ids"]), "dev_ndcg10": dev["ndcg@10"]})
    best = max(entries, key=lambda e: e["heldout_ndcg10"])
    record = {"weight": best["weight"], "seed": args.sweep_seed, "sweep": entries,
              "chosen_on": f"{SWEEP_DATASET} held-out train queries"}
    (Path(args.work) / "lambda.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    for e in entries:
        print(f"λ {e['weight']:g}: held-out nDCG@10 {e['heldout_ndcg10']:.4f} ({e['heldout_queries']} queries), "
              f"dev {e['dev_ndcg10']:.4f}{'  <- chosen' if e is best else ''}")


def train(args) -> None:
    """Every chosen row at every seed at the chosen λ, seed by seed (untrained rows once)."""
    record = chosen(args)
    if record["seed"] in args.seeds:
        raise SystemExit(f"--seeds: seed {record['seed']} chose λ (the sweep's winning run); leave it out")
    jobs = []
    for d in datasets_of(args):
        check_settings(args, d.name)
    # Seed by seed within each group: a run cut short leaves the rows of a group with the same seeds.
    by_number = {row.number: row for row in ROWS}
    for group in TRAIN_ORDER:
        for seed in args.seeds:
            for d in datasets_of(args):
                for row in (by_number[n] for n in group if n in args.rows):
                    if row.strategy in UNTRAINED and seed != args.seeds[0]:
                        continue
                    run_seed = UNTRAINED_SEED if row.strategy in UNTRAINED else seed
                    weight = record["weight"] if row.mafin else None
                    out = Path(args.work) / d.name / folder_of(row, weight) / f"seed-{run_seed}"
                    if not (out / "results.json").is_file():
                        jobs.append((command(args, row, d, run_seed, weight, out), out))
    seeded.run_jobs(jobs, args.jobs, Path(args.work))


def summarise(args) -> dict:
    """Per dataset: each row's runs and its comparisons (``vs_1`` with the black box, ``vs_3`` for row 4)."""
    record = chosen(args)
    weight = record["weight"]
    out: dict = {"weight": weight, "sweep_seed": record.get("seed"), "sweep": record.get("sweep", []),
                 "lambda_file": os.path.relpath(record["file"], ROOT),
                 "lambda_elsewhere": Path(record["file"]).resolve() != (Path(args.work) / "lambda.json").resolve(),
                 "datasets": {}}
    for d in datasets_of(args):
        work = Path(args.work) / d.name
        if not (work / "settings.json").is_file():
            continue
        check_settings(args, d.name)
        mining_file = work / MINED / "mining.json"
        mining = json.loads(mining_file.read_text())["mining"] if mining_file.is_file() else {}
        table = {}
        for row in ROWS:
            seeds = [UNTRAINED_SEED] if row.strategy in UNTRAINED else args.seeds
            folder = work / folder_of(row, weight if row.mafin else None)
            runs = seeded.load_runs(folder, seeds, f"{d.name}-{d.eval_split}")
            stale = [s for s, r in runs.items() if row.on_mined and r["rows_sha256"] != mining.get("rows_sha256")]
            if stale:
                raise SystemExit(f"{folder}: seed(s) {stale} trained on other rows than the mined set holds now; "
                                 "delete them and train again")
            if runs:
                table[row.number] = {"label": row.label, "runs": runs, "weight": weight if row.mafin else None}
        out["datasets"][d.name] = {"rows": table, "mined_rows": mining.get("rows")}
        for number, row in table.items():
            if "1" in table and number != "1":
                (box,) = table["1"]["runs"].values()
                same = {s: box for s in row["runs"]}  # the black box's one run stands for every seed
                row["vs_1"] = {key: seeded.compare(row["runs"], same, key, min_seeds=1)
                               for key in ("ndcg10", "recall10")}
            if number == "4" and "3" in table:
                row["vs_3"] = {key: seeded.compare(row["runs"], table["3"]["runs"], key) for key in ("ndcg10", "recall10")}
    return out


def _cmp(c: dict | None) -> str:
    """``Δ [95% CI] | p seeds | p queries`` cells ("–" where a test cannot be made)."""
    if c is None:
        return "– | – | –"
    ci = "" if c["ci"][0] is None else f" [{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}]"
    # ttest_rel gives nan when every seed's difference is the same (here: identical Recall@10 per seed)
    p_seeds = "–" if c["p_seeds"] is None or math.isnan(c["p_seeds"]) else f"{c['p_seeds']:.3f}"
    return f"{c['delta']:+.4f}{ci} | {p_seeds} | {c['p_queries']:.3f}"


def render(summary: dict, args) -> str:
    """The markdown report of :func:`summarise`."""
    import numpy as np

    lines = [
        "# Mafin benchmark: a frozen black box augmented with a trainable MiniLM",
        "",
        f"- command: `python {' '.join(sys.argv)}`; report written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        f" on {seeded.cpu_description()}; the device each row trained on is in its row",
        f"- black box: {args.black_box_name}'s vectors at max length {args.max_seq_length}, precomputed once "
        "(`recipes/precompute_black_box.py`); the runs read only the vectors",
        f"- Mafin: `[black box ; λ·normalize(student)]`, λ = {summary['weight']:g}, chosen on {SWEEP_DATASET} train "
        f"queries held out of the training pairs (sweep below, training seed {summary['sweep_seed']}, which no "
        f"row below uses; `{summary['lambda_file']}`); SciFact takes it over",
        f"- student {args.model or 'all-MiniLM-L6-v2'}; MultipleNegativesRankingLoss; batch {args.batch_size}; lr "
        f"{args.lr}; {args.epochs:g} epoch(s); warmup 10%; max length {args.max_seq_length}; {args.num_negatives} "
        f"negative(s) a row (rows 2 and 4); NFCorpus: {args.nfcorpus_train_pairs} train pairs, evaluated on dev; "
        f"seeds {', '.join(map(str, args.seeds))}",
        "- vs 1: the black box has one run, which stands for every seed: Δ with a one-sample 95% t interval over "
        "the seeds (training noise only), p (queries) on each query's mean over the seeds (paired sign-flip "
        "permutation test, 10,000 resamples); rows 0 and 1 are one run each (no interval)",
        "- row 4 vs row 3: paired by seed (`scipy.stats.ttest_rel`, 95% t interval) and by query on each query's "
        "mean over the seeds, as the quality benchmark compares",
        "",
    ]
    for name, entry in summary["datasets"].items():
        table = entry["rows"]
        lines += [f"## {name}", "",
                  f"Row 4's mined set: {entry['mined_rows']} rows.", "",
                  "| row | strategy | nDCG@10 mean ± sd | per seed | Recall@10 mean ± sd | Δ nDCG@10 vs 1 [95% CI] | "
                  "p seeds | p queries | Δ Recall@10 vs 1 | p queries (R@10) | train s | device |",
                  "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for number, row in table.items():
            runs = row["runs"]
            vs1 = row.get("vs_1", {})
            rec = vs1.get("recall10")
            per_seed = " / ".join(f"{r['ndcg10']:.4f}" for r in runs.values())
            rec_cells = "– | –" if rec is None else f"{rec['delta']:+.4f} | {rec['p_queries']:.3f}"
            train_s = [r["train_seconds"] for r in runs.values() if r["train_seconds"] is not None]
            seconds = f"{np.mean(train_s):.0f}" if train_s else "–"
            devices = ", ".join(sorted({r["device"] for r in runs.values()}))
            lines.append(f"| {number} | {row['label']} | {seeded.mean_sd(runs)} | {per_seed} | "
                         f"{seeded.mean_sd(runs, 'recall10')} | {_cmp(vs1.get('ndcg10'))} | {rec_cells} | "
                         f"{seconds} | {devices} |")
        if "4" in table and "vs_3" in table["4"]:
            c = table["4"]["vs_3"]
            lines += ["", "Row 4 (mined) against row 3 (in-batch):", "",
                      "| metric | Δ [95% CI] | p seeds | p queries |", "|---|---:|---:|---:|",
                      f"| nDCG@10 | {_cmp(c['ndcg10'])} |", f"| Recall@10 | {_cmp(c['recall10'])} |"]
        lines.append("")
    if summary["sweep"]:
        # A λ taken from another work folder was swept under that folder's settings (e.g. 1 epoch), not these.
        elsewhere = "; its runs had that work folder's settings, not this report's" if summary.get(
            "lambda_elsewhere") else ""
        lines += [f"## λ sweep ({SWEEP_DATASET}, row 4, training seed {summary['sweep_seed']}, "
                  f"`{summary['lambda_file']}`{elsewhere})", "",
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
        seeded.write_report(render(summary, args), summary, args.output)


if __name__ == "__main__":
    main()
