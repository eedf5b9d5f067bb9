"""Benchmark: st-hardneg vs sentence-transformers' ``mine_hard_negatives`` on SciFact train, plus BM25 backends.

One run measures, on SciFact train (BEIR folder ``<data>/scifact``):

1. Hard-negative mining with the same all-MiniLM-L6-v2 model, 4 negatives, n-tuple output:
   * sentence-transformers: ``mine_hard_negatives(relative_margin=0.05, use_faiss=True, ...)``
   * st-hardneg: ``mine(filter=PositiveAwareFilter(relative_margin=0.05), range_max=50, ...)``

   each in a fresh subprocess (so peak RSS is per tool), first with empty embedding caches
   ("cold"), then again with the caches the cold run filled ("warm"). Reported: wall time with
   and without model load, peak RSS, rows kept, and the overlap of the negatives both tools chose.
   With ``--backends``, st-hardneg runs once per encoding backend (first run with the export, again
   with the export cached, warm) and is compared with its torch run: overlap@100 of the candidates,
   Spearman of their scores, Jaccard of the chosen negatives. ``--teacher`` times a teacher's encode
   of ``--teacher-docs`` documents on each backend.
2. BM25 top-100 for every unique SciFact train query with the ``rank_bm25`` and ``bm25s``
   backends of :class:`st_hardneg.candidates.BM25Retriever`: index/search time and overlap@100.

The markdown report is printed and written to ``benchmarks/results/mining_scifact.md``.

Usage::

    python benchmarks/bench_mining.py                 # torch only (~15-20 min on 2 CPU cores)
    python benchmarks/bench_mining.py --backends torch onnx onnx-int8 openvino openvino-int8 \
        --teacher "$(python recipes/prepare_mpnet_teacher.py)" --teacher-docs 300   # every backend (~65 min)
    python benchmarks/bench_mining.py --bm25-only     # BM25 part only (about a minute)
    python benchmarks/bench_mining.py --skip-st       # st-hardneg only (debugging)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from st_hardneg.models import BACKENDS  # light: no torch

logger = logging.getLogger("bench_mining")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "benchmarks" / "results" / "mining_scifact.md"
DATASET = "scifact"
NUM_NEGATIVES = 4
BATCH_SIZE = 32
ST_RELATIVE_MARGIN = 0.05
OURS_RANGE_MAX = 50  # st-hardneg 0.1's candidate window, kept so the committed numbers reproduce
BM25_K = 100
CANDIDATES_K = 100
TEACHER_MAX_LENGTH = 128


# --------------------------------------------------------------------------------------------- helpers


def _peak_rss_mib() -> float:
    import resource

    # Linux reports ru_maxrss in KiB (macOS in bytes).
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def _cpu_s() -> float:
    """User + system CPU seconds of this process so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _system_busy_s() -> float:
    """CPU seconds all processes on the machine spent busy (from /proc/stat), or NaN off Linux."""
    try:
        with open("/proc/stat", encoding="utf-8") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    # user nice system idle iowait irq softirq steal ...: everything but idle and iowait is busy.
    busy = sum(fields[:3]) + sum(fields[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


def _resolve_data(data: str) -> Path | str:
    """SciFact: ``<data>/scifact`` relative to the working directory or the repo root, else a Hub BEIR dataset.

    ``--data mteb/scifact`` (any name with a slash that is no local folder) loads it from the Hub.
    """
    base = Path(data).expanduser()
    candidates = [base] if base.is_absolute() else [Path.cwd() / base, REPO_ROOT / base]
    for candidate in candidates:
        if (candidate / DATASET).is_dir():
            return (candidate / DATASET).resolve()
        if (candidate / "corpus.jsonl").is_file():
            return candidate.resolve()
    if "/" in data and not base.exists():
        return data
    raise SystemExit(f"dataset folder {DATASET!r} not found under {', '.join(str(c) for c in candidates)}")


def _dir_size_mib(path: str) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total / (1024 * 1024)


def _machine_info() -> dict[str, str]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        nproc = str(os.cpu_count())
    mem = "unknown"
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal"):
                    mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                    break
    except OSError:
        pass
    versions = {}
    from importlib.metadata import PackageNotFoundError, version

    for package in ("st-hardneg", "sentence-transformers", "transformers", "torch", "faiss-cpu", "bm25s",
                    "rank-bm25", "datasets", "onnxruntime", "openvino", "nncf"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "-"
    return {
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": nproc,
        "cpu": cpu,
        "memory": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }


# --------------------------------------------------------------------------------------------- child


def _teacher_child(args: argparse.Namespace) -> None:
    """Encode the first ``--teacher-docs`` SciFact documents with the teacher on one backend."""
    import numpy as np

    from st_hardneg import load_beir
    from st_hardneg.models import load_model

    texts = list(load_beir(args.dataset_dir, "train").corpus_texts[: args.teacher_docs])
    t0 = time.perf_counter()
    model = load_model(args.teacher, max_seq_length=TEACHER_MAX_LENGTH, backend=args.backend, cache_folder=args.cache)
    load_s = time.perf_counter() - t0
    cpu0, t0 = _cpu_s(), time.perf_counter()
    embeddings = model.encode_document(texts, batch_size=BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True,
                                       show_progress_bar=False)
    encode_s, encode_cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    np.save(Path(args.result).with_suffix(".npy"), embeddings)
    Path(args.result).write_text(json.dumps({
        "backend": args.backend, "docs": len(texts), "load_s": load_s, "encode_s": encode_s,
        "encode_cpu_s": encode_cpu, "peak_rss_mib": _peak_rss_mib(),
    }), encoding="utf-8")


def _child(args: argparse.Namespace) -> None:
    """Run one tool once, in this (fresh) process, and write a JSON result file."""
    if args.child == "teacher":
        _teacher_child(args)
        return
    t_start = time.perf_counter()
    import numpy as np  # noqa: F401
    import sentence_transformers  # noqa: F401
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

    import st_hardneg.mining  # noqa: F401  (the lazy package would import it inside the timed call)
    from st_hardneg import PositiveAwareFilter, load_beir
    from st_hardneg.models import default_model_path

    t_imported = time.perf_counter()

    data = load_beir(args.dataset_dir, "train")
    anchors = [data.query_texts[q] for q, _ in data.pairs]
    positives = [data.corpus_texts[d] for _, d in data.pairs]
    corpus_texts = data.corpus_texts
    if args.child == "st":
        dataset = Dataset.from_dict({"anchor": anchors, "positive": positives})
    t_data = time.perf_counter()

    model = SentenceTransformer(default_model_path(), device="cpu")
    if args.max_seq_length is not None:
        model.max_seq_length = args.max_seq_length
    t_model = time.perf_counter()
    rss_before_mining = _peak_rss_mib()

    extra: dict = {}
    # Garbage left by imports and model loading would otherwise be collected (a full collection of
    # ~500k objects, ~0.3 s) inside whichever timed call happens to cross the threshold; timeit
    # turns the collector off for the same reason. Both tools get the same clean start.
    gc.collect()
    if args.child == "st":
        from sentence_transformers.util import mine_hard_negatives

        cpu0 = _cpu_s()
        t0 = time.perf_counter()
        out = mine_hard_negatives(
            dataset, model, corpus=corpus_texts, relative_margin=ST_RELATIVE_MARGIN, num_negatives=NUM_NEGATIVES,
            output_format="n-tuple", use_faiss=True, batch_size=BATCH_SIZE, verbose=False,
            cache_folder=args.cache,
        )
        t_mine = time.perf_counter() - t0
        cpu_mine = _cpu_s() - cpu0
        t_to_dataset = 0.0
        rows_in = len(dataset)
    else:
        from st_hardneg import mine

        filt = PositiveAwareFilter(relative_margin=ST_RELATIVE_MARGIN)
        cpu0 = _cpu_s()
        t0 = time.perf_counter()
        result = mine(
            data, model, filter=filt, range_max=OURS_RANGE_MAX, num_negatives=NUM_NEGATIVES, output_format="n-tuple",
            batch_size=BATCH_SIZE, cache_folder=args.cache, verbose=False, backend=args.backend,
        )
        t_mine = time.perf_counter() - t0
        cpu_mine = _cpu_s() - cpu0
        t1 = time.perf_counter()
        out = result.to_dataset("n-tuple")
        t_to_dataset = time.perf_counter() - t1
        rows_in = result.stats.input_rows
        extra = {
            "timings": dict(result.timings),
            "stats_table": result.stats.table(),
            "stats": result.stats.to_dict(),
            "backend": args.backend,
            "model_name": result.config["model"]["name"],
        }
    t_end_mine = t0 + t_mine
    peak = _peak_rss_mib()

    neg_cols = [f"negative_{j + 1}" for j in range(NUM_NEGATIVES)]
    missing = [c for c in ["anchor", "positive", *neg_cols] if c not in out.column_names]
    if missing:
        raise SystemExit(f"{args.child}: output lacks columns {missing}; columns are {out.column_names}")
    cols = {c: out[c] for c in ["anchor", "positive", *neg_cols]}
    rows = [
        [cols["anchor"][i], cols["positive"][i], [cols[c][i] for c in neg_cols]] for i in range(len(out))
    ]
    rows_path = Path(args.result).with_suffix(".rows.json")
    rows_path.write_text(json.dumps(rows), encoding="utf-8")
    if args.child == "ours" and args.cache_state == "cold":
        _save_candidates(args, data, model, Path(args.result).with_suffix(".candidates.npz"))

    payload = {
        "tool": args.child,
        "cache_state": args.cache_state,
        "import_s": t_imported - t_start,
        "data_s": t_data - t_imported,
        "model_load_s": t_model - t_data,
        "mining_s": t_mine,
        "mining_cpu_s": cpu_mine,
        "to_dataset_s": t_to_dataset,
        # From the first line of the child (before importing torch/sentence-transformers) to the end
        # of the mining call: imports + data loading + model load + mining.
        "wall_incl_load_s": t_end_mine - t_start,
        "peak_rss_mib": peak,
        "rss_before_mining_mib": rss_before_mining,
        "rows_in": rows_in,
        "rows_kept": len(out),
        "columns": out.column_names,
        "max_seq_length": model.max_seq_length,
        "corpus_size": len(corpus_texts),
        "queries": len(data.query_texts),
        "cache_mib": _dir_size_mib(args.cache),
        "rows_file": str(rows_path),
        **extra,
    }
    Path(args.result).write_text(json.dumps(payload, indent=2), encoding="utf-8")


def _save_candidates(args: argparse.Namespace, data, model, path: Path) -> None:
    """Top-``CANDIDATES_K`` documents and cosines per unique query, from the embeddings the run cached."""
    import numpy as np

    from st_hardneg.embeddings import Embedder
    from st_hardneg.models import load_model

    embedder = Embedder(load_model(model, backend=args.backend, cache_folder=args.cache), batch_size=BATCH_SIZE,
                        cache_dir=args.cache, show_progress=False)
    docs = embedder.encode(data.corpus_texts, "document")
    queries = sorted({q for q, _ in data.pairs})
    q_emb = embedder.encode([data.query_texts[q] for q in queries], "query")
    scores = q_emb @ docs.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :CANDIDATES_K]
    np.savez(path, top=top, scores=np.take_along_axis(scores, top, axis=1), all_scores=scores)


# --------------------------------------------------------------------------------------------- parent


def _run_child(tool: str, cache_state: str, cache: str, workdir: Path, args: argparse.Namespace,
               dataset_dir: Path, backend: str = "torch") -> dict:
    result = workdir / f"{tool}-{backend}_{cache_state}.json"
    log_path = workdir / f"{tool}-{backend}_{cache_state}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", tool, "--cache-state", cache_state,
           "--cache", cache, "--result", str(result), "--dataset-dir", str(dataset_dir), "--backend", backend,
           "--teacher-docs", str(args.teacher_docs)]
    if args.teacher:
        cmd += ["--teacher", args.teacher]
    if args.max_seq_length is not None:
        cmd += ["--max-seq-length", str(args.max_seq_length)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    logger.info("running %s (%s cache) ...", tool, cache_state)
    import resource

    load0 = os.getloadavg()[0]
    busy0 = _system_busy_s()
    own0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO_ROOT))
    elapsed = time.perf_counter() - t0
    own1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (own1.ru_utime - own0.ru_utime) + (own1.ru_stime - own0.ru_stime)
    # CPU the rest of the machine used while the child ran: a measure of how contended the run was.
    foreign_cpu = _system_busy_s() - busy0 - child_cpu
    if tool == "teacher" and proc.returncode != 0:  # e.g. a backend that refuses the model: reported, not fatal
        last = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1]
        logger.info("teacher on %s failed: %s", backend, last)
        return {"backend": backend, "error": last}
    if proc.returncode != 0 or not result.is_file():
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-6000:]
        raise SystemExit(f"child {tool}/{cache_state} failed (exit {proc.returncode}); log {log_path}:\n{tail}")
    payload = json.loads(result.read_text(encoding="utf-8"))
    if tool == "teacher":
        payload["embeddings"] = str(result.with_suffix(".npy"))
        logger.info("teacher on %s: load %.1fs, encode %.1fs", backend, payload["load_s"], payload["encode_s"])
        return payload
    payload["process_s"] = elapsed
    payload["process_cpu_s"] = child_cpu
    payload["foreign_cpu_s"] = max(0.0, foreign_cpu)
    payload["loadavg_start"] = load0
    payload["loadavg_end"] = os.getloadavg()[0]
    payload["rows"] = json.loads(Path(payload.pop("rows_file")).read_text(encoding="utf-8"))
    candidates = result.with_suffix(".candidates.npz")
    payload["candidates"] = str(candidates) if candidates.is_file() else None
    logger.info("%s (%s): mining %.1fs, incl. load %.1fs, process %.1fs, peak RSS %.0f MiB, rows %d/%d",
                tool, cache_state, payload["mining_s"], payload["wall_incl_load_s"], elapsed,
                payload["peak_rss_mib"], payload["rows_kept"], payload["rows_in"])
    return payload


def _overlap(a_rows: list, b_rows: list) -> dict:
    """Match rows by (anchor, positive); mean Jaccard of the negative sets and share of identical sets."""
    a = {}
    for anchor, positive, negs in a_rows:
        a.setdefault((anchor, positive), negs)
    b = {}
    for anchor, positive, negs in b_rows:
        b.setdefault((anchor, positive), negs)
    common = [k for k in a if k in b]
    if not common:
        return {"common_rows": 0, "mean_jaccard": float("nan"), "identical": float("nan")}
    jaccards, identical = [], 0
    for key in common:
        sa, sb = set(a[key]), set(b[key])
        jaccards.append(len(sa & sb) / len(sa | sb) if sa | sb else 1.0)
        identical += sa == sb
    return {"common_rows": len(common), "mean_jaccard": sum(jaccards) / len(jaccards),
            "identical": identical / len(common)}


def _fidelity(reference: dict, other: dict) -> dict:
    """How closely a backend's run follows the fp32 torch run: candidates, their scores, the chosen negatives."""
    import numpy as np
    from scipy.stats import spearmanr

    ref, got = np.load(reference["candidates"]), np.load(other["candidates"])
    overlap = np.mean([len(set(a) & set(b)) / CANDIDATES_K for a, b in zip(ref["top"], got["top"])])
    # Per query: Spearman of the two backends' scores over the fp32 run's top candidates.
    rho = [spearmanr(ref["all_scores"][i, top], got["all_scores"][i, top]).statistic
           for i, top in enumerate(ref["top"])]
    return {"overlap_at_100": float(overlap), "spearman": float(np.mean(rho)), "spearman_min": float(np.min(rho)),
            **{f"negatives_{k}": v for k, v in _overlap(reference["rows"], other["rows"]).items()}}


def _teacher_fidelity(runs: dict) -> dict:
    import numpy as np

    reference = np.load(runs["torch"]["embeddings"]) if "torch" in runs else None
    for run in runs.values():
        if reference is not None and "error" not in run:
            cosine = (np.load(run["embeddings"]) * reference).sum(axis=1)
            run["min_cos"], run["mean_cos"] = float(cosine.min()), float(cosine.mean())
    return runs


def _same_rows(a_rows: list, b_rows: list) -> bool:
    return [[r[0], r[1], list(r[2])] for r in a_rows] == [[r[0], r[1], list(r[2])] for r in b_rows]


def _bm25(dataset_dir: Path) -> dict:
    from st_hardneg import load_beir
    from st_hardneg.candidates import BM25Retriever

    data = load_beir(dataset_dir, "train")
    queries = list(dict.fromkeys(data.query_texts))
    corpus = data.corpus_texts
    out: dict = {"queries": len(queries), "corpus": len(corpus), "k": BM25_K, "backends": {}}
    # Import both libraries up front so that the index timings measure indexing, not imports.
    t0 = time.perf_counter()
    import rank_bm25  # noqa: F401

    out["import_rank_bm25_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    import bm25s  # noqa: F401

    out["import_bm25s_s"] = time.perf_counter() - t0
    found = {}
    for backend in ("rank_bm25", "bm25s"):
        retriever = BM25Retriever(backend, show_progress=False)
        t0 = time.perf_counter()
        retriever.index(corpus)
        t_index = time.perf_counter() - t0
        t0 = time.perf_counter()
        indices, _ = retriever.search(queries, BM25_K)
        t_search = time.perf_counter() - t0
        found[backend] = indices
        out["backends"][backend] = {"index_s": t_index, "search_s": t_search, "total_s": t_index + t_search}
        logger.info("BM25 %s: index %.2fs, search %.2fs", backend, t_index, t_search)
    overlaps = []
    for ra, rb in zip(found["rank_bm25"], found["bm25s"]):
        sa, sb = {int(i) for i in ra if i >= 0}, {int(i) for i in rb if i >= 0}
        overlaps.append(len(sa & sb) / BM25_K)
    out["overlap_at_k"] = sum(overlaps) / len(overlaps)
    b = out["backends"]
    out["speedup"] = b["rank_bm25"]["total_s"] / b["bm25s"]["total_s"]
    out["index_speedup"] = b["rank_bm25"]["index_s"] / b["bm25s"]["index_s"]
    out["search_speedup"] = b["rank_bm25"]["search_s"] / b["bm25s"]["search_s"]
    return out


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}x"


def _report(runs: dict, bm25: dict | None, args: argparse.Namespace, machine: dict, total_s: float,
            dataset_dir: Path) -> str:
    lines = ["# Hard-negative mining benchmark: SciFact train", ""]
    lines += [
        f"- command: `{args.command_line}`",
        f"- date: {machine['date']}",
        f"- machine: {machine['nproc']} CPU cores (`nproc`), {machine['cpu']}, {machine['memory']} RAM, no GPU",
        f"- python {machine['python']} on {machine['platform']}",
        f"- packages: {machine['versions']}",
        f"- data: `{dataset_dir}` (qrels/train.tsv, score > 0; corpus = title + \" \" + text)",
        f"- whole benchmark run: {total_s:.1f} s",
        "",
    ]
    if runs:
        any_run = next(iter(runs.values()))
        lines += [
            "## Mining",
            "",
            f"Model all-MiniLM-L6-v2 (`st_hardneg.mining.default_model_path()`), max_seq_length "
            f"{any_run['max_seq_length']}, batch size {BATCH_SIZE}, {NUM_NEGATIVES} negatives, n-tuple output; "
            f"{any_run['rows_in']} (query, positive) rows, {any_run['queries']} unique queries, "
            f"{any_run['corpus_size']} corpus documents.",
            "",
            f"- **ST**: `sentence_transformers.util.mine_hard_negatives(relative_margin={ST_RELATIVE_MARGIN}, "
            f"use_faiss=True, num_negatives={NUM_NEGATIVES}, output_format=\"n-tuple\", cache_folder=...)`",
            f"- **ours**: `st_hardneg.mine(filter=PositiveAwareFilter(relative_margin={ST_RELATIVE_MARGIN}), "
            f"range_max={OURS_RANGE_MAX}, num_negatives={NUM_NEGATIVES}, output_format=\"n-tuple\", "
            "cache_folder=..., verbose=False)`",
            "- Each run is a fresh subprocess. *cold*: empty cache folder; *warm*: the folder the cold run filled.",
            "- *mining s*: the mining call only (ours: `mine()`; the `to_dataset(\"n-tuple\")` conversion is in notes).",
            "- *wall s incl. load*: child start -> end of the mining call (imports + data loading + model load + "
            "mining).",
            "- *peak RSS*: `ru_maxrss` of the child after mining.",
            "- *mining CPU*: user+sys CPU seconds of the mining call (less sensitive than wall time to other "
            "load on the machine); *other processes' CPU*: busy CPU seconds of the whole machine (/proc/stat) "
            "during the child minus the child's own, i.e. contention from unrelated work.",
            "",
            "| tool | cache | wall s incl. load | mining s | peak RSS MiB | rows kept | notes |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        names = {"st": "sentence-transformers", "ours": "st-hardneg"}
        for key in ("st_cold", "ours_cold", "st_warm", "ours_warm"):
            run = runs.get(key)
            if run is None:
                continue
            notes = [
                f"imports {run['import_s']:.1f}s, data {run['data_s']:.1f}s, model load {run['model_load_s']:.1f}s",
                f"mining CPU {run['mining_cpu_s']:.1f}s",
                f"RSS before mining {run['rss_before_mining_mib']:.0f} MiB",
                f"process {run['process_s']:.1f}s ({run['process_cpu_s']:.1f} CPU s)",
                f"other processes' CPU during run {run['foreign_cpu_s']:.1f}s "
                f"(load avg {run['loadavg_start']:.2f} -> {run['loadavg_end']:.2f})",
                f"cache {run['cache_mib']:.1f} MiB",
            ]
            if run["tool"] == "ours":
                notes.append(f"to_dataset {run['to_dataset_s']:.2f}s")
                notes.append("stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in run["timings"].items()))
            if run.get("warm_mining_s"):
                notes.append(f"median of {len(run['warm_mining_s'])} warm runs, mining s: "
                             + ", ".join(f"{v:.2f}" for v in run["warm_mining_s"]))
            if run.get("same_as_cold") is not None:
                notes.append("output identical to cold" if run["same_as_cold"] else "OUTPUT DIFFERS FROM COLD")
            lines.append(
                f"| {names[run['tool']]} | {run['cache_state']} | {run['wall_incl_load_s']:.1f} | "
                f"{run['mining_s']:.2f} | {run['peak_rss_mib']:.0f} | {run['rows_kept']} / {run['rows_in']} | "
                f"{'; '.join(notes)} |"
            )
        lines.append("")
        if "st_cold" in runs:
            lines += [
                "### Ratios against sentence-transformers (lower is better for time and memory)",
                "",
                "| metric | ours cold / ST cold | ours warm / ST cold | ours warm / ST warm |",
                "|---|---:|---:|---:|",
            ]
            sc, sw, oc, ow = (runs.get(k) for k in ("st_cold", "st_warm", "ours_cold", "ours_warm"))

            def get(run, field):
                return None if run is None else run[field]

            for label, field in (("wall s incl. load", "wall_incl_load_s"), ("mining s", "mining_s"),
                                 ("mining CPU s (user+sys)", "mining_cpu_s"),
                                 ("peak RSS MiB", "peak_rss_mib"), ("rows kept", "rows_kept")):
                lines.append(
                    f"| {label} | {_ratio(get(oc, field), get(sc, field))} | {_ratio(get(ow, field), get(sc, field))} "
                    f"| {_ratio(get(ow, field), get(sw, field))} |"
                )
            lines.append("")
            ov = runs.get("overlap")
            if ov:
                lines += [
                    "### Overlap of the chosen negatives (cold runs)",
                    "",
                    "Rows matched by (anchor text, positive text); negatives compared as sets.",
                    "",
                    "| rows in both | mean Jaccard | identical sets |",
                    "|---:|---:|---:|",
                    f"| {ov['common_rows']} (ST {runs['st_cold']['rows_kept']}, ours {runs['ours_cold']['rows_kept']}) "
                    f"| {ov['mean_jaccard']:.3f} | {ov['identical']:.1%} |",
                    "",
                ]
        if "ours_cold" in runs:
            lines += ["### st-hardneg statistics (cold run, `result.stats.table()`)", "", "```",
                      runs["ours_cold"]["stats_table"], "```", ""]
            lines += ["### st-hardneg stage timings (`result.timings`, seconds)", "",
                      "| run | " + " | ".join(runs["ours_cold"]["timings"]) + " | total |",
                      "|---|" + "---:|" * (len(runs["ours_cold"]["timings"]) + 1)]
            for key in ("ours_cold", "ours_warm"):
                run = runs.get(key)
                if run:
                    t = run["timings"]
                    lines.append(f"| {run['cache_state']} | " + " | ".join(f"{v:.2f}" for v in t.values())
                                 + f" | {sum(t.values()):.2f} |")
            lines.append("")
    backends = [k[: -len("_cold")] for k in runs if k.startswith("ours") and k.endswith("_cold")]
    if len(backends) > 1 or any(k != "ours" for k in backends):
        st_cold = runs.get("st_cold", {}).get("wall_incl_load_s")
        lines += [
            "## Encoding backends (st-hardneg, same settings)",
            "",
            "*first run*: empty cache folder, so the wall time includes exporting (and quantising) the model; "
            "*export cached*: embeddings cold, the export kept (every later run with new texts); *warm*: "
            "embeddings cached. Fidelity against the torch fp32 run: overlap@100 of each query's top-100 "
            "candidates, mean per-query Spearman of the scores over the fp32 top-100, and the chosen negatives "
            "(rows matched by anchor and positive).",
            "",
            "| backend | first run s | export cached s | vs ST cold | mining CPU s | peak RSS MiB | warm s (mining) "
            "| rows kept | overlap@100 | Spearman | negatives Jaccard | identical sets |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for key in backends:
            cold, warm = runs[f"{key}_cold"], runs.get(f"{key}_warm")
            cached = runs.get(f"{key}_cold-export-cached", cold)
            fid = runs.get(f"{key}_fidelity")
            fid_cells = (f"{fid['overlap_at_100']:.3f} | {fid['spearman']:.3f} | {fid['negatives_mean_jaccard']:.3f} | "
                         f"{fid['negatives_identical']:.1%}") if fid else "1 | 1 | 1 | 100%"
            lines.append(
                f"| {cold.get('backend', 'torch')} | {cold['wall_incl_load_s']:.1f} | {cached['wall_incl_load_s']:.1f} | "
                f"{_ratio(cached['wall_incl_load_s'], st_cold)} | {cached['mining_cpu_s']:.1f} | "
                f"{cached['peak_rss_mib']:.0f} | "
                f"{'n/a' if warm is None else format(warm['wall_incl_load_s'], '.1f') + ' (' + format(warm['mining_s'], '.2f') + ')'}"
                f" | {cold['rows_kept']} | {fid_cells} |")
        lines.append("")
    teacher = runs.get("teacher")
    if teacher:
        base = teacher.get("torch", {}).get("encode_s")
        any_run = next(r for r in teacher.values() if "error" not in r)
        lines += [
            f"## Teacher encode: `--teacher` on the first {any_run['docs']} SciFact documents, max length "
            f"{TEACHER_MAX_LENGTH}, batch {BATCH_SIZE}",
            "",
            "| backend | load s (incl. export) | encode s | speed-up vs torch | min cosine to torch | mean cosine |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, run in teacher.items():
            if "error" in run:
                lines.append(f"| {name} | refused: {run['error'].split(': ', 1)[-1]} | | | | |")
                continue
            lines.append(f"| {name} | {run['load_s']:.1f} | {run['encode_s']:.1f} | "
                         f"{'n/a' if not base else format(base / run['encode_s'], '.2f') + 'x'} | "
                         f"{run.get('min_cos', float('nan')):.4f} | {run.get('mean_cos', float('nan')):.4f} |")
        lines.append("")
    if bm25:
        b = bm25["backends"]
        lines += [
            f"## BM25 top-{bm25['k']} ({bm25['queries']} unique SciFact train queries, {bm25['corpus']} documents)",
            "",
            "`st_hardneg.candidates.BM25Retriever(backend, show_progress=False)`; same tokenizer for both backends. "
            f"Library imports done beforehand (rank_bm25 {bm25['import_rank_bm25_s']:.2f}s, "
            f"bm25s {bm25['import_bm25s_s']:.2f}s); index s includes tokenizing the corpus.",
            "",
            "| backend | index s | search s | total s |",
            "|---|---:|---:|---:|",
        ]
        for name in ("rank_bm25", "bm25s"):
            lines.append(f"| {name} | {b[name]['index_s']:.2f} | {b[name]['search_s']:.2f} | {b[name]['total_s']:.2f} |")
        lines += [
            "",
            f"- speedup rank_bm25 / bm25s: total **{bm25['speedup']:.1f}x** (index {bm25['index_speedup']:.1f}x, "
            f"search {bm25['search_speedup']:.1f}x)",
            f"- mean overlap@{bm25['k']} of the returned document sets: {bm25['overlap_at_k']:.3f}",
            "",
        ]
    return "\n".join(lines)


def _parent(args: argparse.Namespace) -> None:
    t_total = time.perf_counter()
    dataset_dir = _resolve_data(args.data)
    machine = _machine_info()
    logger.info("data: %s; machine: %s cores, %s", dataset_dir, machine["nproc"], machine["cpu"])
    runs: dict = {}
    if not args.bm25_only:
        with tempfile.TemporaryDirectory(prefix="bench_mining_") as tmp:
            workdir = Path(tmp)
            warm_jobs: list[tuple[str, str, str, str]] = []  # (tool, run key, cache, backend)
            if not args.skip_st:
                cache = tempfile.mkdtemp(prefix="cache_st_", dir=tmp)
                runs["st_cold"] = _run_child("st", "cold", cache, workdir, args, dataset_dir)
                warm_jobs.append(("st", "st_warm", cache, "torch"))
            for backend in args.backends:
                key = "ours" if backend == "torch" else f"ours-{backend}"
                # <cache>/embeddings holds the embeddings, <cache>/exports the exported model.
                cache = Path(tempfile.mkdtemp(prefix=f"cache_{key}_", dir=tmp)) / "embeddings"
                runs[f"{key}_cold"] = _run_child("ours", "cold", str(cache), workdir, args, dataset_dir, backend)
                if backend != "torch":  # cold embeddings, the export kept: every run after a model's first
                    shutil.rmtree(cache)
                    runs[f"{key}_cold-export-cached"] = _run_child("ours", "cold", str(cache), workdir, args,
                                                                   dataset_dir, backend)
                warm_jobs.append(("ours", f"{key}_warm", str(cache), backend))
                if backend != "torch" and "ours_cold" in runs:
                    runs[f"{key}_fidelity"] = _fidelity(runs["ours_cold"], runs[f"{key}_cold"])
            # Warm runs take well under a second, so one sample is noise: tools alternate, the median is kept.
            warm: dict[str, list[dict]] = {}
            for _ in range(args.warm_runs):
                for tool, key, cache, backend in warm_jobs:
                    warm.setdefault(key, []).append(_run_child(tool, "warm", cache, workdir, args, dataset_dir,
                                                               backend))
            for key, samples in warm.items():
                ordered = sorted(samples, key=lambda r: r["mining_s"])
                runs[key] = ordered[(len(ordered) - 1) // 2]
                runs[key]["warm_mining_s"] = [r["mining_s"] for r in samples]
                cold = runs[key.replace("_warm", "_cold")]["rows"]
                runs[key]["same_as_cold"] = all(_same_rows(cold, r["rows"]) for r in samples)
            if not args.skip_st and "ours_cold" in runs:
                runs["overlap"] = _overlap(runs["st_cold"]["rows"], runs["ours_cold"]["rows"])
            if args.teacher:
                cache = str(Path(tempfile.mkdtemp(prefix="cache_teacher_", dir=tmp)) / "embeddings")
                teacher = {b: _run_child("teacher", "cold", cache, workdir, args, dataset_dir, b) for b in args.backends}
                runs["teacher"] = _teacher_fidelity(teacher)
    bm25 = _bm25(dataset_dir)
    report = _report(runs, bm25, args, machine, time.perf_counter() - t_total, dataset_dir)
    print(report, flush=True)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report + "\n", encoding="utf-8")
    logger.info("wrote %s", output)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("ST_HARDNEG_DATA", "../shared/data"),
                        help="folder holding the BEIR 'scifact' folder, or a Hub BEIR dataset such as mteb/scifact "
                             "(default: $ST_HARDNEG_DATA or ../shared/data)")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="markdown report path")
    parser.add_argument("--skip-st", action="store_true", help="skip sentence-transformers (debugging)")
    parser.add_argument("--bm25-only", action="store_true", help="run only the BM25 comparison")
    parser.add_argument("--max-seq-length", type=int, default=None, help="override the model's max_seq_length")
    parser.add_argument("--backends", nargs="+", default=["torch"],
                        choices=BACKENDS,
                        help="st-hardneg encoding backends to run, each in fresh processes (default: torch)")
    parser.add_argument("--teacher", default=None,
                        help="a bi-encoder teacher folder (e.g. from recipes/prepare_mpnet_teacher.py): time its "
                             "encoding of --teacher-docs documents on each backend")
    parser.add_argument("--warm-runs", type=int, default=5, help="warm runs per tool, alternating; the median is "
                        "reported (default: 5)")
    parser.add_argument("--teacher-docs", type=int, default=500, help="documents the teacher encodes (default: 500)")
    # Hidden: the per-tool subprocess.
    parser.add_argument("--child", choices=["st", "ours", "teacher"], help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="torch", help=argparse.SUPPRESS)
    parser.add_argument("--cache-state", choices=["cold", "warm"], help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--dataset-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.child:
        _child(args)
        return
    args.command_line = shlex.join(["python", *sys.argv]) if argv is None else shlex.join(["python", *argv])
    _parent(args)


if __name__ == "__main__":
    main()
