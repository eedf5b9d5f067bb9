"""Does a fast miner train as well as an exact one? nDCG@10 after training on each backend's negatives.

Issue 12's deciding test. Every run is ``recipes/train_with_hard_negatives.py --strategy dense-percpos``
with the quality benchmark's settings (all-MiniLM-L6-v2 student and miner, MNRL, batch 32, lr 2e-5,
1 epoch, max length 128, 4 negatives, PercPos 95%); only ``--backend`` (the model that *mines*; the
student always trains in torch fp32) and ``--seed`` (training order and initialisation of the
run) change. Runs go seed-major, so a cut-short run still leaves complete seeds.

Reported per backend: the chosen negatives' Jaccard against the torch run's, nDCG@10 per seed, the
mean difference to torch paired by seed with a 95% t interval (scipy's ``ttest_rel`` over seeds),
and a paired sign-flip permutation test over queries on each query's mean over the seeds. A backend passes when the
mean difference lies within the seed-to-seed SD of the same recipe measured in
``benchmarks/results/eci_validation_128_seed42.json`` (128 tokens, as this benchmark).

    python benchmarks/bench_backend_quality.py --datasets scifact --backends torch onnx-int8 openvino-int8 --seeds 42 43 44

Writes ``benchmarks/results/backend_quality.md`` (and ``.json``) and each run's ``results.json``
and mined set under ``--work``.
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
sys.path.insert(0, str(ROOT / "recipes"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import seeded  # noqa: E402
import train_with_hard_negatives as recipe  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    recipe.add_dataset_flags(p)
    recipe.add_benchmark_flags(p)  # --seed is replaced by --seeds
    p.add_argument("--backends", nargs="+", default=["torch", "onnx-int8", "openvino-int8"],
                   help="mining backends; the first is the reference (torch)")
    p.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44], help="training seeds, paired across backends")
    p.add_argument("--work", default=str(RESULTS / "backend_quality_runs"), help="folder for each run")
    p.add_argument("--output", default=str(RESULTS / "backend_quality.md"), help="markdown table (and .json beside)")
    p.add_argument("--noise", default=str(RESULTS / "eci_validation_128_seed42.json"),
                   help="eci_validation.json: the seed SD each difference is judged against")
    p.add_argument("--reuse", action="store_true", help="skip runs whose results.json exists")
    p.add_argument("--reference-from", default=None,
                   help="a validate_eci.py run folder of the same recipe (e.g. benchmarks/results/eci_runs/scifact/"
                        "dense-percpos): a reference seed trained there on rows identical (SHA-256) to the "
                        "reference backend's mined set is taken from it instead of being retrained")
    return p.parse_args(argv)


def run_dir(args: argparse.Namespace, dataset: str, backend: str, seed: int) -> Path:
    return Path(args.work) / dataset / backend / f"seed-{seed}"


def pairwise_jaccard(ref: Path, other: Path) -> tuple[float, int, int]:
    """Mean Jaccard of the chosen negatives over the (anchor, positive) pairs both runs kept."""
    from st_hardneg import load_mined

    def by_pair(folder: Path) -> dict[tuple[str, str], set[str]]:
        dataset, _ = load_mined(folder)
        columns = [c for c in dataset.column_names if c.startswith("negative")]
        rows = dataset.to_dict()
        return {(rows["anchor"][i], rows["positive"][i]): {rows[c][i] for c in columns} for i in range(len(dataset))}

    a, b = by_pair(ref), by_pair(other)
    shared = a.keys() & b.keys()
    value = float(np.mean([len(a[k] & b[k]) / len(a[k] | b[k]) for k in shared])) if shared else float("nan")
    return value, len(a), len(b)


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.time()
    report: dict = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
                    "settings": {k: v for k, v in vars(args).items() if k not in ("work", "output", "noise", "seed")},
                    "results": {}}
    for spec in args.datasets:
        name, path, train_split, eval_split = recipe.dataset_spec(spec, args.data)
        cap = args.nfcorpus_train_pairs if name == "nfcorpus" else None
        for seed in args.seeds:
            for backend in args.backends:
                out = run_dir(args, name, backend, seed)
                if args.reuse and (out / "results.json").is_file():
                    continue
                if backend == args.backends[0] and seed != args.seeds[0] and borrow(args, name, seed):
                    continue
                args.seed = seed
                cmd = recipe.recipe_command("dense-percpos", path, train_split, eval_split, args, cap,
                                            "--backend", backend, "--save-mined", "--output", str(out))
                print(f"[{time.strftime('%H:%M:%S')}] {name} seed {seed} backend {backend}", flush=True)
                subprocess.run(cmd, check=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        report["results"][name] = summarise(args, name)
    noise = json.loads(Path(args.noise).read_text())["noise"] if Path(args.noise).is_file() else {}
    table = render(report, noise, time.time() - started)
    print(table)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(table, encoding="utf-8")
    Path(args.output).with_suffix(".json").write_text(json.dumps(report, indent=1), encoding="utf-8")


def borrow(args: argparse.Namespace, name: str, seed: int) -> bool:
    """Take the reference backend's training for ``seed`` from ``--reference-from`` when its rows are ours."""
    if not args.reference_from:
        return False
    source = Path(args.reference_from) / f"seed-{seed}"
    mined = run_dir(args, name, args.backends[0], args.seeds[0]) / "mined"
    if not (source / "results.json").is_file() or not mined.is_dir():
        return False
    import datasets

    config = json.loads((source / "config.json").read_text())
    digest = recipe.rows_digest(datasets.load_from_disk(str(mined)))
    if config.get("rows_sha256") != digest or config.get("training_seed") != seed:
        print(f"not borrowing {source}: other rows or seed", flush=True)
        return False
    out = run_dir(args, name, args.backends[0], seed)
    out.mkdir(parents=True, exist_ok=True)
    record = json.loads((source / "results.json").read_text())
    record["borrowed_from"] = {"folder": str(source), "rows_sha256": digest}
    (out / "results.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    print(f"{name} seed {seed} {args.backends[0]}: borrowed from {source} (identical rows)", flush=True)
    return True


def summarise(args: argparse.Namespace, name: str) -> dict:
    """Per backend: nDCG@10 per seed, per-query scores, mining time and the negatives' Jaccard to the reference."""
    reference = args.backends[0]
    out: dict = {}
    for backend in args.backends:
        runs = {}
        for seed in args.seeds:
            folder = run_dir(args, name, backend, seed)
            if not (folder / "results.json").is_file():
                continue
            r = json.loads((folder / "results.json").read_text())
            (ev,) = r["eval"].values()
            runs[seed] = {"ndcg10": ev["ndcg@10"], "recall100": ev["recall@100"], "per_query": ev["per_query"]["ndcg@10"],
                          "train_rows": r.get("train_rows"), "mining_seconds": r.get("mining_seconds"),
                          "borrowed_from": r.get("borrowed_from", {}).get("folder")}
        ref_mined = run_dir(args, name, reference, args.seeds[0]) / "mined"
        mined = run_dir(args, name, backend, args.seeds[0]) / "mined"
        jac = pairwise_jaccard(ref_mined, mined) if ref_mined.is_dir() and mined.is_dir() else None
        out[backend] = {"runs": runs, "negatives_jaccard": jac[0] if jac else None,
                        "rows": jac[2] if jac else None}
    return out


def render(report: dict, noise: dict, seconds: float) -> str:
    s = report["settings"]
    lines = [
        "# Training on each backend's negatives (issue 12's deciding test)",
        "",
        f"- command: `{report['command']}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; this invocation {seconds / 60:.1f} min",
        f"- machine: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}; no GPU",
        f"- recipe `--strategy dense-percpos` (PercPos 95%), miner and student all-MiniLM-L6-v2; MNRL; batch "
        f"{s['batch_size']}; lr {s['lr']}; {s['epochs']:g} epoch; max length {s['max_seq_length']}; "
        f"{s['num_negatives']} negatives; only the *mining* backend changes, training is torch fp32",
        "- Δ: mean over seeds of (backend − torch) nDCG@10, paired by seed, with a 95% t interval "
        "(`scipy.stats.ttest_rel`); p (queries): paired sign-flip permutation test over queries, on each query's "
        "mean over the seeds",
        "- pass: |Δ| within the seed SD of the same recipe in `benchmarks/results/eci_validation_128_seed42.json`",
        "",
    ]
    borrowed = sorted({(n, b, k, r["borrowed_from"]) for n, bs in report["results"].items() for b, x in bs.items()
                       for k, r in x["runs"].items() if r.get("borrowed_from")})
    lines += [f"- {n} {b} seed {k}: taken from `{f}` (same rows, SHA-256 checked; same settings and seed)"
              for n, b, k, f in borrowed] + ([""] if borrowed else [])
    for name, backends in report["results"].items():
        sd = noise.get(name, {}).get("sd")
        reference = next(iter(backends))
        ref_runs = backends[reference]["runs"]
        lines += [f"## {name}" + (f" (seed SD {sd:.4f})" if sd is not None else ""), "",
                  "| backend | pairs kept | negatives Jaccard vs torch | nDCG@10 per seed | mean | Δ vs torch [95% CI] | "
                  "p (seeds) | p (queries) | within seed SD |",
                  "|---|---:|---:|---|---:|---|---:|---:|---|"]
        for backend, b in backends.items():
            runs = b["runs"]
            if not runs:
                continue
            per_seed = " / ".join(f"{runs[k]['ndcg10']:.4f}" for k in sorted(runs))
            mean = np.mean([r["ndcg10"] for r in runs.values()])
            delta = p_seeds = p_queries = verdict = "–"
            c = seeded.compare(runs, ref_runs, min_seeds=1) if backend != reference else None
            if c is not None:
                d = c["delta"]
                delta = f"{d:+.4f}"
                if c["p_seeds"] is not None:
                    delta += f" [{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}]"
                    p_seeds = f"{c['p_seeds']:.3f}"
                p_queries = f"{c['p_queries']:.3f}"
                if sd is not None:
                    verdict = "yes" if abs(d) <= sd else "no"
                b["delta"] = d
            jac = b["negatives_jaccard"]
            lines.append(f"| {backend} | {b['rows'] if b['rows'] is not None else '–'} | "
                         f"{'–' if jac is None or backend == reference else f'{jac:.3f}'} | {per_seed} | {mean:.4f} | "
                         f"{delta} | {p_seeds} | {p_queries} | {verdict} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
