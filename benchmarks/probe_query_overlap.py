"""Probe: evaluation queries that repeat a training query's text (issue 14's caveat, counted only).

For SciFact test and NFCorpus dev, counts the evaluation queries whose text (stripped, lower-cased)
equals the text of a query judged in the train split. Nothing is removed from any benchmark: the
count says how much of an evaluation split a model could have seen as a training query.

    python benchmarks/probe_query_overlap.py --data ../shared/data

Writes ``benchmarks/results/probe_query_overlap.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from st_hardneg.beir import read_jsonl, read_qrels

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))
import train_with_hard_negatives as recipe  # noqa: E402 - the benchmarks' --data/--datasets and splits


def overlap(folder: Path, split: str, train_split: str = "train") -> tuple[int, list[str]]:
    """(number of ``split`` queries, the texts among them that a ``train_split`` query also has)."""
    texts = {obj["_id"]: obj["text"] for _, obj in read_jsonl(folder / "queries.jsonl")}

    def judged(name: str) -> set[str]:
        return {qid for _, qid, _, _ in read_qrels(folder / "qrels" / f"{name}.tsv") if qid in texts}

    seen = {texts[q].strip().lower() for q in judged(train_split)}
    queries = judged(split)
    return len(queries), sorted(texts[q] for q in queries if texts[q].strip().lower() in seen)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    recipe.add_dataset_flags(p)
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "probe_query_overlap.md"))
    args = p.parse_args()
    lines = ["# Evaluation queries with the text of a train-split query", "",
             "`python benchmarks/probe_query_overlap.py`; text compared stripped and lower-cased; nothing removed", "",
             "| dataset | split | queries | with a train query's text | texts |", "|---|---|---:|---:|---|"]
    for spec in args.datasets:
        name, folder, train_split, split = recipe.dataset_spec(spec, args.data)
        if not (Path(folder) / "qrels" / f"{train_split}.tsv").is_file():
            raise SystemExit(f"{spec}: no local BEIR folder with qrels/{train_split}.tsv (looked under {args.data})")
        total, shared = overlap(Path(folder), split, train_split)
        lines.append(f"| {name} | {split} | {total} | {len(shared)} | {'; '.join(shared)} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.output)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(out)  # atomic: a cut-short run leaves the previous report


if __name__ == "__main__":
    main()
