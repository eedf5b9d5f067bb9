"""Training compute on this CPU: CPU seconds per training row, by the number of texts a row holds.

The quality benchmark trains on a GPU but compares rows at equal *CPU* compute (mining + teacher +
training). Training a whole row on 2 CPU cores takes half an hour a seed, so this script measures a
few steps instead: for each dataset and row width (2 texts: in-batch pairs; 3: one negative; 6:
four negatives) it trains the student for ``--steps`` steps (after one warm-up step) on the quality
benchmark's mined set, with the benchmark's batch, max length and optimiser, and records the CPU
seconds of this process per step and per row. ``bench_quality.py report`` multiplies these by each
row's training rows and epochs.

    python benchmarks/bench_compute.py --datasets scifact nfcorpus

Writes ``--output`` (markdown) and the same name with ``.json``.
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
sys.path.insert(0, str(ROOT / "recipes"))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus"], help="dataset names")
    p.add_argument("--widths", type=int, nargs="+", default=[2, 3, 6], help="texts per training row")
    p.add_argument("--steps", type=int, default=3, help="measured steps (after one warm-up step)")
    p.add_argument("--max-seq-length", type=int, default=256, help="max tokens (the quality benchmark's)")
    p.add_argument("--batch-size", type=int, default=32, help="rows per step (the quality benchmark's)")
    p.add_argument("--cache", default=str(ROOT / "benchmarks" / "results" / "cache" / "quality"),
                   help="bench_quality.py's mined sets (row 5's, 4 negatives, is used)")
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "compute.md"), help="markdown table")
    return p.parse_args(argv)


def measure(dataset, width: int, args) -> dict:
    """CPU and wall seconds per step of training on ``width``-text rows, warm-up step excluded."""
    import torch
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer import losses
    from transformers import TrainerCallback

    from st_hardneg import load_model

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.cpu, self.wall = [], []

        def on_step_begin(self, *_, **__):
            self._cpu, self._wall = time.process_time(), time.perf_counter()

        def on_step_end(self, *_, **__):
            self.cpu.append(time.process_time() - self._cpu)
            self.wall.append(time.perf_counter() - self._wall)

    torch.manual_seed(0)
    model = load_model(None, max_seq_length=args.max_seq_length)
    rows = dataset.select_columns(dataset.column_names[:width]).select(range((args.steps + 1) * args.batch_size))
    clock = Clock()
    training_args = SentenceTransformerTrainingArguments(
        output_dir=str(Path("/tmp") / "bench_compute"), max_steps=args.steps + 1,
        per_device_train_batch_size=args.batch_size, learning_rate=2e-5, warmup_steps=0.1, seed=0,
        save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True)
    SentenceTransformerTrainer(model=model, args=training_args, train_dataset=rows,
                               loss=losses.MultipleNegativesRankingLoss(model), callbacks=[clock]).train()
    cpu, wall = clock.cpu[1:], clock.wall[1:]
    return {"width": width, "steps": len(cpu), "cpu_per_step": sum(cpu) / len(cpu),
            "wall_per_step": sum(wall) / len(wall), "cpu_per_row": sum(cpu) / len(cpu) / args.batch_size}


def main(argv=None) -> None:
    import datasets

    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out: dict = {"settings": {"max_seq_length": args.max_seq_length, "batch_size": args.batch_size,
                              "steps": args.steps, "cpu_cores": os.cpu_count(), "torch_threads": None}, "datasets": {}}
    import torch

    out["settings"]["torch_threads"] = torch.get_num_threads()
    for name in args.datasets:
        mined = Path(args.cache) / name / "hybrid-teacher" / "mined"
        if not mined.is_dir():
            raise SystemExit(f"{mined}: no mined set (run bench_quality.py prepare --rows 5)")
        dataset = datasets.load_from_disk(str(mined)).shuffle(seed=0)
        out["datasets"][name] = [measure(dataset, width, args) for width in args.widths]
        for m in out["datasets"][name]:
            print(f"{name} {m['width']} texts: {m['cpu_per_step']:.1f} CPU s / step, {m['cpu_per_row']:.2f} / row",
                  flush=True)
    lines = ["# Training compute on this CPU", "",
             f"- command: `python {' '.join(sys.argv)}`; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"- {os.cpu_count()} CPU cores ({platform.machine()}), torch threads {out['settings']['torch_threads']}; "
             f"all-MiniLM-L6-v2, MNRL, batch {args.batch_size}, max length {args.max_seq_length}; "
             f"{args.steps} steps measured after one warm-up, rows drawn from row 5's mined set (shuffled, seed 0)",
             "- CPU s: this process's CPU time (all threads), so comparable with the mining CPU seconds", "",
             "| dataset | texts per row | CPU s / step | wall s / step | CPU s / row |", "|---|---:|---:|---:|---:|"]
    for name, ms in out["datasets"].items():
        lines += [f"| {name} | {m['width']} | {m['cpu_per_step']:.1f} | {m['wall_per_step']:.1f} | "
                  f"{m['cpu_per_row']:.2f} |" for m in ms]
    text = "\n".join(lines) + "\n"
    print(text)
    path = Path(args.output)
    path.write_text(text, encoding="utf-8")
    path.with_suffix(".json").write_text(json.dumps(out, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
