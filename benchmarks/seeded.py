"""What the benchmarks that train one setting under several seeds share: a parallel runner for the
recipe's runs, reading them back, and the paired comparison of two settings.

A comparison pairs the runs by seed: the mean difference with a 95% t interval
(``scipy.stats.ttest_rel``) and a paired sign-flip permutation test over queries with the seeds
pooled (``evaluation.paired_permutation_test``), as ``bench_backend_quality.py`` reports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))


def cpu_description() -> str:
    """This machine's CPU for a report: cores, model name and its widest matrix instructions (``/proc/cpuinfo``)."""
    name, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name == "unknown CPU":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    isa = next((label for flag, label in (("amx_bf16", "AMX-BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))
                if flag in flags), "no AVX2")
    return f"{os.cpu_count()} CPU cores, {name} ({isa})"


def check_settings(path: Path, settings: dict) -> None:
    """Record ``settings`` in ``path`` (a work folder's ``settings.json``) on first use; refuse other settings.

    Runs without a teacher are comparable whatever the teacher (the first one named is recorded),
    and a key the file does not know yet came with rows none of its runs belongs to (recorded now).
    """
    mine = dict(settings)
    if path.is_file():
        kept = json.loads(path.read_text())
        mine["teacher"] = mine.get("teacher") or kept.get("teacher")
        differ = {k: (kept[k], v) for k, v in mine.items()
                  if k in kept and kept[k] != v and not (k == "teacher" and kept[k] is None)}
        if differ:
            raise SystemExit(f"{path}: the runs there were made with other settings "
                             f"({', '.join(f'{k} {a!r} not {b!r}' for k, (a, b) in differ.items())}); use --work")
        if mine == kept:
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(mine, indent=1), encoding="utf-8")


def mine_once(cmd: list[str], out: Path, work: Path, label: str) -> None:
    """Run the recipe's ``--mine-only`` command ``cmd`` into ``out`` unless its mined set is there; keep its record
    (``results.json``: rows, timings, audit) as ``work/mining.json``, beside the trainings that use it."""
    if not ((out / "mined").is_dir() and (out / "results.json").is_file()):
        print(f"[{time.strftime('%H:%M:%S')}] {label}: mining", flush=True)
        subprocess.run(cmd, check=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    work.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / "results.json", work / "mining.json")


def run_jobs(jobs: list[tuple[list[str], Path]], at_once: int, root: Path) -> None:
    """Run each ``(command, output folder)``, ``at_once`` at a time (several fit on one GPU); log beside the folder."""
    jobs, running, failed = list(jobs), [], 0
    while jobs or running:
        while jobs and len(running) < at_once:
            cmd, out = jobs.pop(0)
            out.mkdir(parents=True, exist_ok=True)
            log = (out.parent / f"{out.name}.log").open("w")
            print(f"[{time.strftime('%H:%M:%S')}] start {out.relative_to(root)}", flush=True)
            running.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                             env=dict(os.environ, HF_HUB_OFFLINE="1")), out, log))
        time.sleep(1)
        for job in list(running):
            proc, out, log = job
            if proc.poll() is None:
                continue
            running.remove(job)
            log.close()
            failed += proc.returncode != 0
            print(f"[{time.strftime('%H:%M:%S')}] {'done' if proc.returncode == 0 else 'FAILED'} "
                  f"{out.relative_to(root)}", flush=True)
    if failed:
        raise SystemExit(f"{failed} run(s) failed: see the .log files under {root}")


def load_runs(folder: Path, seeds: list[int], split: str | None = None) -> dict[int, dict]:
    """``seed -> run`` for the ``seed-N/results.json`` under ``folder``: its one evaluation, or the one named ``split``."""
    runs = {}
    for seed in seeds:
        f = folder / f"seed-{seed}" / "results.json"
        if not f.is_file():
            continue
        r = json.loads(f.read_text())
        if split is None:
            (ev,) = r["eval"].values()
        else:
            ev = r["eval"][split]
        runs[seed] = {"ndcg10": ev["ndcg@10"], "recall100": ev["recall@100"], "per_query": ev["per_query"]["ndcg@10"],
                      "recall10": ev.get("recall@10"), "per_query_recall10": ev["per_query"].get("recall@10"),
                      "device": r["device"], "model": r["settings"].get("model"), "train_rows": r.get("train_rows"),
                      "train_seconds": r.get("train_seconds"), "train_cpu_seconds": r.get("train_cpu_seconds"),
                      "rows_sha256": r.get("mining", {}).get("rows_sha256")}
    return runs


# The per-query values behind each metric that compare() tests.
PER_QUERY = {"ndcg10": "per_query", "recall10": "per_query_recall10"}


def compare(runs: dict[int, dict], ref: dict[int, dict], key: str = "ndcg10", *, pool: str = "seeds",
            min_seeds: int = 2) -> dict | None:
    """``runs`` minus ``ref`` on nDCG@10 (or ``key``: ``"recall10"``) over their common seeds.

    Args:
        runs, ref: ``seed -> run`` (``load_runs``).
        key (str): ``"ndcg10"`` or ``"recall10"``.
        pool (str): The query test's pairs: ``"seeds"``, every (seed, query) pair (the quality
            benchmark's test); ``"mean"``, each query's mean over the seeds, for a ``ref`` that does not
            vary by seed (one run standing for every seed), whose repeated copies are no new evidence.
        min_seeds (int): Fewer common seeds give None; with one, ``ci`` and ``p_seeds`` are None.
    """
    from evaluation import paired_permutation_test
    from scipy import stats

    common = sorted(set(runs) & set(ref))
    if len(common) < max(1, min_seeds):
        return None
    a = np.array([runs[k][key] for k in common])
    b = np.array([ref[k][key] for k in common])
    ci, p_seeds = [None, None], None
    if len(common) > 1:
        test = stats.ttest_rel(a, b)
        ci, p_seeds = [float(test.confidence_interval().low), float(test.confidence_interval().high)], float(test.pvalue)
    ours, theirs = (np.array([r[k][PER_QUERY[key]] for k in common]) for r in (runs, ref))
    if pool == "mean":
        ours, theirs = ours.mean(axis=0), theirs.mean(axis=0)
    elif pool != "seeds":
        raise ValueError(f"unknown pool {pool!r}; use 'seeds' or 'mean'")
    return {"seeds": common, "delta": float((a - b).mean()), "ci": ci, "p_seeds": p_seeds,
            "p_queries": float(paired_permutation_test(ours.ravel(), theirs.ravel()))}


def mean_sd(runs: dict[int, dict], key: str = "ndcg10") -> str:
    """``mean ± sd`` over the seeds (just the value for one seed)."""
    v = np.array([r[key] for r in runs.values()])
    return f"{v.mean():.4f} ± {v.std(ddof=1):.4f}" if len(v) > 1 else f"{v.mean():.4f}"


def write_report(text: str, summary: dict, output: str | Path) -> None:
    """Print the markdown report and write it to ``output``, with ``summary`` beside it as ``.json``."""
    print(text)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
