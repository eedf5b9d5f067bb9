"""Benchmark: encoding speed per backend and thread count, to choose the thread settings for this machine.

Each (backend, threads) pair runs in a fresh subprocess: it loads all-MiniLM-L6-v2 with
``st_hardneg.load_model(backend=..., num_threads=...)`` (torch: ``torch.set_num_threads``), encodes
one warm-up batch, then the first ``--docs`` SciFact train documents at ``--max-seq-length`` tokens,
and reports wall time, CPU time and documents per second. The exports come from the cache, so the
first run of an int8 backend also exports it (not timed). Every backend runs one synchronous
request at a time (``encode`` batch by batch), so OpenVINO runs one stream; more streams only help
with several requests in flight.

The markdown report is printed and written to ``benchmarks/results/threads.md``.

Usage::

    python benchmarks/bench_threads.py                          # torch, onnx-int8, openvino-int8; 1 and 2 threads
    python benchmarks/bench_threads.py --backends torch onnx --threads 1 2 --docs 256
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from st_hardneg.models import BACKENDS  # light: no torch

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "benchmarks" / "results" / "threads.md"


def _cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(args: argparse.Namespace) -> None:
    import torch

    from st_hardneg import load_beir
    from st_hardneg.models import load_model

    texts = list(load_beir(args.dataset_dir, "train").corpus_texts[: args.docs])
    if args.backend == "torch":
        torch.set_num_threads(args.child_threads)
    model = load_model(None, max_seq_length=args.max_seq_length, backend=args.backend,
                       num_threads=None if args.backend == "torch" else args.child_threads)
    model.encode_document(texts[: args.batch_size], batch_size=args.batch_size, show_progress_bar=False)  # warm-up
    cpu0, t0 = _cpu_s(), time.perf_counter()
    model.encode_document(texts, batch_size=args.batch_size, show_progress_bar=False)
    wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    Path(args.result).write_text(json.dumps({"backend": args.backend, "threads": args.child_threads,
                                             "docs": len(texts), "wall_s": wall, "cpu_s": cpu}), encoding="utf-8")


def _run(backend: str, threads: int, args: argparse.Namespace, workdir: Path) -> dict:
    result = workdir / f"{backend}-{threads}.json"
    cmd = [sys.executable, __file__, "--child-backend", backend, "--child-threads", str(threads), "--result",
           str(result), "--dataset-dir", str(args.dataset_dir), "--docs", str(args.docs), "--max-seq-length",
           str(args.max_seq_length), "--batch-size", str(args.batch_size)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))  # torch's and ONNX Runtime's OpenMP pools, if any
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{backend} with {threads} threads failed:\n{proc.stderr[-3000:]}")
    return json.loads(result.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data"), help="folder holding scifact/")
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx-int8", "openvino-int8"], choices=BACKENDS)
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--docs", type=int, default=384)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting, alternating; the best is kept")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT))
    parser.add_argument("--child-backend", help=argparse.SUPPRESS)
    parser.add_argument("--child-threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--dataset-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_backend:
        args.backend = args.child_backend
        _child(args)
        return
    args.dataset_dir = Path(args.data) / "scifact"
    started = time.perf_counter()
    runs: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for backend in args.backends:
                for threads in args.threads:
                    run = _run(backend, threads, args, Path(tmp))
                    runs.setdefault((backend, threads), []).append(run)
                    print(f"[{repeat + 1}/{args.repeats}] {backend} x{threads}: {run['wall_s']:.1f} s", flush=True)
    total = time.perf_counter() - started
    torch_best = min((min(r["wall_s"] for r in rs) for (b, _), rs in runs.items() if b == "torch"), default=None)
    lines = [
        "# Encoding speed by backend and thread count",
        "",
        f"- command: `{shlex.join(['python', 'benchmarks/bench_threads.py', *(sys.argv[1:] if argv is None else argv)])}`",
        f"- date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC",
        f"- machine: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
        f"python {platform.python_version()}",
        f"- all-MiniLM-L6-v2, the first {args.docs} SciFact train documents, {args.max_seq_length} tokens, "
        f"batch {args.batch_size}; each setting in a fresh process, {args.repeats} runs alternating, best kept; "
        f"whole benchmark {total:.0f} s",
        "",
        "| backend | threads | wall s (best) | all runs s | CPU s | docs/s | vs torch best |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for (backend, threads), rs in runs.items():
        best = min(rs, key=lambda r: r["wall_s"])
        ratio = f"{best['wall_s'] / torch_best:.2f}x" if torch_best else "n/a"
        every = ", ".join(format(r["wall_s"], ".1f") for r in rs)
        lines.append(f"| {backend} | {threads} | {best['wall_s']:.1f} | {every} | "
                     f"{best['cpu_s']:.1f} | {best['docs'] / best['wall_s']:.1f} | {ratio} |")
    report = "\n".join(lines) + "\n"
    print(report)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
