"""What the benchmarks that train one setting under several seeds share: a parallel runner for the
recipe's runs, reading them back, and the paired comparison of two settings.

A comparison pairs the runs by seed: the mean difference with a 95% t interval
(``scipy.stats.ttest_rel``), and by query: a paired sign-flip permutation test over queries
(``evaluation.paired_permutation_test``) on each query's mean over the seeds. The query is the unit
that is resampled: a query's seeds are flipped together, since its difference repeats from seed to
seed (testing every (seed, query) pair as if it were a query of its own overstates significance).
"""

from __future__ import annotations

import hashlib
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
                      "queries": _digest(ev.get("query_ids")),
                      "recall10": ev.get("recall@10"), "per_query_recall10": ev["per_query"].get("recall@10"),
                      "device": r["device"], "model": r["settings"].get("model"), "train_rows": r.get("train_rows"),
                      "train_seconds": r.get("train_seconds"), "train_cpu_seconds": r.get("train_cpu_seconds"),
                      "rows_sha256": r.get("mining", {}).get("rows_sha256")}
    return runs


def check_alike(runs: dict[int, dict], where: str) -> None:
    """Refuse to average runs of one row that differ in what they trained on or where: the mined rows
    (SHA-256), the student's starting weights, or the kind of device (an H100 and a CPU do not give
    the same numbers, so a row's seeds must not mix them)."""
    for label, value in (("rows", lambda r: r.get("rows_sha256")), ("student", lambda r: r.get("model")),
                         ("device", lambda r: str(r.get("device")).split(":")[0])):
        found: dict = {}
        for seed, run in sorted(runs.items()):
            found.setdefault(value(run), []).append(seed)
        if len(found) > 1:
            detail = "; ".join(f"seeds {seeds}: {str(key)[:16]}" for key, seeds in found.items())
            raise SystemExit(f"{where}: the runs differ in {label} ({detail}); keep one kind in a row")


def trained_on(folder: Path) -> dict[str, list[int]]:
    """The mined sets (SHA-256 of the rows) the runs under ``folder`` trained on, with their seeds."""
    found: dict[str, list[int]] = {}
    for f in sorted(folder.glob("seed-*/results.json")):
        digest = json.loads(f.read_text()).get("mining", {}).get("rows_sha256")
        found.setdefault(digest, []).append(int(f.parent.name.split("-", 1)[1]))
    return found


def _digest(ids: list | None) -> str | None:
    """SHA-256 of a run's query ids in order: runs are paired query by query only when theirs agree."""
    return None if ids is None else hashlib.sha256(json.dumps(ids).encode()).hexdigest()


# The per-query values behind each metric that compare() tests.
PER_QUERY = {"ndcg10": "per_query", "recall10": "per_query_recall10"}


def compare(runs: dict[int, dict], ref: dict[int, dict], key: str = "ndcg10", *, min_seeds: int = 2) -> dict | None:
    """``runs`` minus ``ref`` on nDCG@10 (or ``key``: ``"recall10"``) over their common seeds.

    By seed: the mean difference with a 95% t interval (``scipy.stats.ttest_rel``; against a ``ref``
    whose one run stands for every seed, the same run under each seed, this is the one-sample
    interval of the training noise). By query: a paired sign-flip permutation test on each query's
    mean over those seeds, so a query counts once however many seeds there are.

    Args:
        runs, ref: ``seed -> run`` (``load_runs``); every run must list the same queries in the same order.
        key (str): ``"ndcg10"`` or ``"recall10"``.
        min_seeds (int): Fewer common seeds give None; with one, ``ci`` and ``p_seeds`` are None.
    """
    from evaluation import paired_permutation_test
    from scipy import stats

    common = sorted(set(runs) & set(ref))
    if len(common) < max(1, min_seeds):
        return None
    order = {r["queries"] for r in (*[runs[k] for k in common], *[ref[k] for k in common]) if r.get("queries")}
    if len(order) > 1:
        raise ValueError(f"seeds {common}: the runs list other queries or another order; per-query values "
                         "cannot be paired")
    a = np.array([runs[k][key] for k in common])
    b = np.array([ref[k][key] for k in common])
    ci, p_seeds = [None, None], None
    if len(common) > 1:
        test = stats.ttest_rel(a, b)
        ci, p_seeds = [float(test.confidence_interval().low), float(test.confidence_interval().high)], float(test.pvalue)
    ours, theirs = (np.array([r[k][PER_QUERY[key]] for k in common]).mean(axis=0) for r in (runs, ref))
    return {"seeds": common, "delta": float((a - b).mean()), "ci": ci, "p_seeds": p_seeds,
            "p_queries": float(paired_permutation_test(ours, theirs))}


def mean_sd(runs: dict[int, dict], key: str = "ndcg10") -> str:
    """``mean ± sd`` over the seeds (just the value for one seed)."""
    v = np.array([r[key] for r in runs.values()])
    return f"{v.mean():.4f} ± {v.std(ddof=1):.4f}" if len(v) > 1 else f"{v.mean():.4f}"


def write_report(text: str, summary: dict, output: str | Path) -> None:
    """Print the markdown report and write it to ``output``, with ``summary`` beside it as ``.json``."""
    print(text)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Through a temporary file each: a run cut short never leaves a half-written report over the last good one.
    for path, content in ((out, text), (out.with_suffix(".json"), json.dumps(summary, indent=1))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(content, encoding="utf-8")
        os.replace(tmp, path)
