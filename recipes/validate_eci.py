"""Does ECI predict retrieval quality? Mine with many strategies, score ECI before training, train with several
seeds, correlate ECI with the seed-averaged nDCG@10.

Stages (``all``, the default, runs the three on this machine):

1. ``mine``: each strategy below mines the same training pairs (4 negatives per row by default),
   once, and its set is scored with ECI *before any training*, under the base student (raw
   cosine, the scale NV-Retriever's PercPos uses) and, with ``--teacher``, under the teacher;
2. ``train``: the same student is trained on each set with every ``--seeds`` seed (the recipe's
   ``--strategy dataset``; ``--jobs`` at once, on any device, e.g. a GPU given ``--cache`` and
   ``--model``); the sets that ``benchmarks/bench_quality.py`` trained with the same settings and
   the very same rows are not trained again: their runs are read from ``--quality-work``;
3. ``report``: Spearman's rho and Kendall's tau between each predictor (ECI, its components, ECI
   at other alphas, ECI without the capacity factor) and nDCG@10 averaged over the seeds, the
   ceiling that training noise leaves a perfect predictor, and a scatter PNG per dataset.

Strategies, each one call of ``st_hardneg.mine`` (positives and their normalised-text copies are
never negatives):

- ``random``: documents drawn uniformly from the whole corpus (``sampling_strategy="random"``);
- ``bm25``: BM25's top-k in BM25's own order (BM25 is retriever and teacher), no filter;
- ``dense-naive``: the student's dense top-k, no filter;
- ``dense-percpos``: dense candidates, TopK-PercPos 95% (NV-Retriever);
- ``shifted``: dense top-k shifted by 10 ranks (``range_min=10``), no filter;
- ``hybrid-percpos``: BM25 + dense fused by RRF, PercPos 95% under the student;
- ``hybrid-teacher``: the same candidates scored by the teacher, PercPos 95% under the teacher;
- ``unsafe``: deliberately unsafe: among the query's 100 nearest documents, the k most similar to its
  *positives* (a custom teacher scoring document-to-positive cosine): relevant-looking
  near-duplicates, the likeliest false negatives;
- ``st-percpos``: sentence-transformers' ``mine_hard_negatives(relative_margin=0.05)``: the set that
  ``bench_quality.py prepare`` mined (row 3), read from ``--quality-cache``.

    python recipes/validate_eci.py mine --datasets scifact nfcorpus --teacher "$(python recipes/prepare_mpnet_teacher.py)"
    python recipes/validate_eci.py train --seeds 1 2 3 4 5 --jobs 8 --model ...   # e.g. on a GPU
    python recipes/validate_eci.py report --seeds 1 2 3 4 5

Settings default to the quality benchmark's (256 tokens, 2,000 NFCorpus pairs). A work folder
(``--work``) holds runs of one setting only (``settings.json``); a training is read only for the
very rows its set has now (SHA-256), so a set mined again with other rows (the data changed) is
trained again. Writes ``--output`` (markdown), the
PNGs beside it, and the same name with ``.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import seeded
import train_with_hard_negatives as recipe
from eci_report import render

logger = logging.getLogger("validate_eci")

STRATEGIES = {
    "random": "random documents",
    "bm25": "BM25 top-k",
    "dense-naive": "dense top-k, no filter",
    "dense-percpos": "dense, PercPos 95%",
    "shifted": "dense top-k shifted by 10",
    "hybrid-percpos": "hybrid BM25+dense, PercPos 95%",
    "hybrid-teacher": "hybrid + teacher, PercPos 95%",
    "unsafe": "near-duplicates of the positive (unsafe)",
    "st-percpos": "sentence-transformers PercPos 95%",
}
# Strategies that bench_quality.py trains with the same settings, under the same names.
SHARED = ("st-percpos", "dense-percpos", "hybrid-teacher")
ALPHAS = (0.9, 0.95, 0.99)
# What makes runs comparable (bench_quality.py's keys, less the ones of rows not run here).
SETTING_KEYS = ("max_seq_length", "num_negatives", "batch_size", "epochs", "lr", "nfcorpus_train_pairs", "teacher")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", nargs="?", default="all", choices=("all", "mine", "train", "report"),
                   help="all (default): mine, train and report on this machine")
    recipe.add_dataset_flags(p)
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES),
                   help="strategies to compare")
    p.add_argument("--teacher", default=None, help="teacher for hybrid-teacher and for ECI under the teacher")
    recipe.add_benchmark_flags(p)  # --seed: the mining seed (random and sampled strategies)
    p.set_defaults(max_seq_length=256, nfcorpus_train_pairs=2000)  # the quality benchmark's
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="training seeds")
    p.add_argument("--jobs", type=int, default=1, help="train: runs at once (several fit on one GPU)")
    p.add_argument("--model", default=None, help="train: the student's folder (default all-MiniLM-L6-v2)")
    p.add_argument("--cache-dir", default="auto", help="embedding cache ('auto': ~/.cache/st_hardneg)")
    p.add_argument("--work", default=str(ROOT / "benchmarks" / "results" / "eci_seeds"),
                   help="ECI scores (eci.json) and trainings (seed-N/results.json) per dataset and strategy")
    p.add_argument("--cache", default=str(ROOT / "benchmarks" / "results" / "cache" / "eci"),
                   help="the mined sets (large; rebuilt by the mine stage)")
    p.add_argument("--quality-work", default=str(ROOT / "benchmarks" / "results" / "quality_seeds"),
                   help="bench_quality.py's runs, reused for the strategies both share")
    p.add_argument("--quality-cache", default=str(ROOT / "benchmarks" / "results" / "cache" / "quality"),
                   help="bench_quality.py's mined sets (st-percpos is read from there)")
    p.add_argument("--min-trained", type=int, default=5,
                   help="report: strategies that must be trained before correlations are shown (rho over three "
                        "points can only be -1, -0.5, 0.5 or 1)")
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "eci_validation.md"),
                   help="markdown report (the PNGs and a JSON go beside it)")
    args = p.parse_args(argv)
    args.teacher_name = Path(args.teacher).name if args.teacher else None
    return args


def settings(args) -> dict:
    return {k: getattr(args, k if k != "teacher" else "teacher_name") for k in SETTING_KEYS}


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


# ----------------------------------------------------------------------------- mining


class PositiveSimilarity:
    """A deliberately unsafe teacher: a candidate's score is its cosine to the query's closest positive.

    Ranked by it, the negatives are the documents that look most like the positive: the likeliest
    false negatives there are. It plugs into ``mine`` like any :class:`~st_hardneg.teachers.Scorer`.
    """

    name = "cosine to the positive (unsafe)"

    def __init__(self, embedder, data) -> None:
        emb = embedder.encode(data.corpus_texts, "document")
        self.document = {text: emb[i] for i, text in enumerate(data.corpus_texts)}
        self.positives = {data.query_texts[q]: emb[docs] for q, docs in data.positives_by_query().items()}

    def score(self, queries, documents) -> list[np.ndarray]:
        return [np.array([float((self.positives[q] @ self.document[d]).max()) for d in docs], dtype=np.float32)
                for q, docs in zip(queries, documents)]


def mine_strategy(name: str, data, pairs, model, embedder, args, cache_dir: str | None, teacher) -> tuple[object, dict]:
    """(n-tuple dataset of the training pairs, mining statistics) for one strategy: one call of ``mine``."""
    from st_hardneg import PositiveAwareFilter, mine
    from st_hardneg.candidates import BM25Retriever

    if name == "hybrid-teacher" and teacher is None:
        raise SystemExit("strategy hybrid-teacher needs --teacher")
    unfiltered, percpos = PositiveAwareFilter(relative_margin=None), PositiveAwareFilter(relative_margin=0.05)
    bm25 = BM25Retriever("bm25s", show_progress=False)
    window = recipe.RANGE_MAX
    options = {
        "random": lambda: dict(filter=unfiltered, sampling_strategy="random", range_max=len(data.corpus_texts)),
        "bm25": lambda: dict(retriever=bm25, teacher=bm25, filter=unfiltered, range_max=window),
        "dense-naive": lambda: dict(filter=unfiltered, range_max=window),
        "dense-percpos": lambda: dict(filter=percpos, range_max=window),
        "shifted": lambda: dict(filter=PositiveAwareFilter(relative_margin=None, range_min=10), range_max=100),
        "hybrid-percpos": lambda: dict(retriever="hybrid", filter=percpos, range_max=window),
        "hybrid-teacher": lambda: dict(retriever="hybrid", filter=percpos, teacher=teacher, range_max=window),
        "unsafe": lambda: dict(teacher=PositiveSimilarity(embedder, data), filter=unfiltered, range_max=100),
    }
    if name not in options:
        raise ValueError(f"strategy {name!r} is not mined here")
    # Same call as train_with_hard_negatives.py for the strategies both run, so they mine identical sets.
    result = mine(data, model, num_negatives=args.num_negatives, seed=args.seed, cache_folder=cache_dir,
                  verbose=False, **options[name]())
    result = recipe.training_rows(result, pairs)
    return result.to_dataset("n-tuple"), result.stats.to_dict()


def mining_config(name: str, ds: str, data, args) -> dict:
    """Every setting (and the data) that changes what a strategy mines: a saved set is reused only when it matches."""
    pairs = hashlib.sha256(json.dumps([data.pairs, len(data.corpus_texts)]).encode()).hexdigest()
    return {"strategy": name, "num_negatives": args.num_negatives, "max_seq_length": args.max_seq_length,
            "seed": args.seed, "teacher": args.teacher_name if name == "hybrid-teacher" else None,
            "max_train_pairs": args.nfcorpus_train_pairs if ds == "nfcorpus" else None,
            "pairs_sha256": pairs}


def use_settings(args, ds: str) -> None:
    """Check (or record) the work folder's settings; a run without --teacher takes the teacher recorded there."""
    path = Path(args.work) / ds / "settings.json"
    seeded.check_settings(path, settings(args))
    args.teacher_name = args.teacher_name or _read_json(path).get("teacher")


def quality_runs(ds: str, name: str, digest: str, args) -> Path | None:
    """bench_quality.py's run folder of strategy ``name`` when it mined these very rows with these settings."""
    if name not in SHARED:
        return None
    work = Path(args.quality_work) / ds
    kept, mine = _read_json(work / "settings.json"), settings(args)
    if any(kept.get(k) != v for k, v in mine.items() if k != "teacher"):
        return None
    if _read_json(work / name / "mining.json").get("mining", {}).get("rows_sha256") != digest:
        return None  # the digest pins the rows, and with them the teacher that chose them
    return work / name


def seed_runs(ds: str, name: str, digest: str, args) -> dict[int, tuple[dict, Path]]:
    """``seed -> (run, its folder)`` of the trainings on exactly these rows: the quality benchmark's first, then ours."""
    found: dict[int, tuple[dict, Path]] = {}
    for folder in (quality_runs(ds, name, digest, args), Path(args.work) / ds / name):
        if folder is None:
            continue
        for seed, run in seeded.load_runs(folder, args.seeds).items():
            if run["rows_sha256"] == digest and seed not in found:
                found[seed] = (run, folder)
    return found


# ----------------------------------------------------------------------------- stages


def mine_stage(args) -> None:
    """Mine each strategy's set once (or reuse it) and score it with ECI under the student and the teacher."""
    import datasets

    from st_hardneg import load_model
    from st_hardneg.eci import row_scores
    from st_hardneg.embeddings import Embedder
    from st_hardneg.teachers import BiEncoderScorer

    cache_dir = None if args.cache_dir == "none" else args.cache_dir
    for spec in args.datasets:
        ds, path, train_split, _ = recipe.dataset_spec(spec, args.data)
        use_settings(args, ds)
        model = load_model(None, max_seq_length=args.max_seq_length)
        data, pairs = recipe.training_pairs(path, train_split, args.nfcorpus_train_pairs if ds == "nfcorpus" else None)
        student = Embedder(model, cache_dir=cache_dir, show_progress=False)
        student.encode(data.corpus_texts, "document")  # mine()'s cache entry; serves every subset below from memory
        scorers = {"student": BiEncoderScorer(student)}
        teacher = None
        if args.teacher:
            teacher = recipe.primed_teacher(args.teacher, data.corpus_texts, args.max_seq_length, cache_dir)
            scorers["teacher"] = teacher
        for name in args.strategies:
            if name == "hybrid-teacher" and teacher is None:
                logger.warning("%s: no --teacher: leaving out hybrid-teacher", ds)
                continue
            out, work = Path(args.cache) / ds / name, Path(args.work) / ds / name
            if name == "st-percpos":  # mined by bench_quality.py (sentence-transformers' miner)
                mined_dir = Path(args.quality_cache) / ds / name / "mined"
                if not mined_dir.is_dir():
                    logger.warning("%s: skipping st-percpos: no %s (run bench_quality.py prepare --rows 3)", ds,
                                   mined_dir)
                    continue
                dataset = datasets.load_from_disk(str(mined_dir))
                record = {"config": {"strategy": name, "mined_by": "bench_quality.py"},
                          "rows_sha256": recipe.rows_digest(dataset), "mined": str(mined_dir)}
            else:
                record = _read_json(out / "mining.json")
                if record.get("config") == mining_config(name, ds, data, args) and (out / "mined").is_dir():
                    dataset = datasets.load_from_disk(str(out / "mined"))
                else:
                    start = time.perf_counter()
                    dataset, stats = mine_strategy(name, data, pairs, model, student, args, cache_dir, teacher)
                    record = {"config": mining_config(name, ds, data, args), "rows_sha256": recipe.rows_digest(dataset),
                              "stats": stats, "seconds": round(time.perf_counter() - start, 1)}
                    shutil.rmtree(out / "mined", ignore_errors=True)
                    dataset.save_to_disk(str(out / "mined"))
                    (out / "mining.json").write_text(json.dumps(record, indent=1))
                    logger.info("%s: mined %s (%d rows) in %.1f s", ds, name, len(dataset), record["seconds"])
            kept = _read_json(work / "eci.json")
            if kept and kept["rows_sha256"] != record["rows_sha256"]:  # trainings on the old rows are not read again
                logger.warning("%s %s: mined other rows than before; its trainings will be redone", ds, name)
            entry = {"strategy": name, "label": STRATEGIES[name], "rows": len(dataset),
                     "rows_sha256": record["rows_sha256"], "mining": record["config"]}
            for scorer_name, scorer in scorers.items():
                entry[scorer_name] = predictors(*row_scores(dataset, scorer))
            if "teacher" not in entry and kept.get("rows_sha256") == entry["rows_sha256"] and "teacher" in kept:
                entry["teacher"] = kept["teacher"]  # scored earlier with --teacher: the same rows, the same scores
            work.mkdir(parents=True, exist_ok=True)
            (work / "eci.json").write_text(json.dumps(entry, indent=1))
            logger.info("%s %s: %d rows, ECI %.4f (student)", ds, name, len(dataset), entry["student"]["eci"])


def train_stage(args) -> None:
    """Train every mined set with every seed, except the ones bench_quality.py already trained."""
    jobs = []
    for spec in args.datasets:
        ds, path, train_split, eval_split = recipe.dataset_spec(spec, args.data)
        use_settings(args, ds)
        for name in args.strategies:
            work = Path(args.work) / ds / name
            entry = _read_json(work / "eci.json")
            if not entry:
                logger.warning("%s %s: not mined yet (run the mine stage)", ds, name)
                continue
            missing = [s for s in args.seeds if s not in seed_runs(ds, name, entry["rows_sha256"], args)]
            if not missing:
                continue
            mined = Path(args.quality_cache if name == "st-percpos" else args.cache) / ds / name / "mined"
            if not mined.is_dir():
                raise SystemExit(f"{mined}: no mined set (run the mine stage, or carry the cache here)")
            for seed in missing:
                out = work / f"seed-{seed}"
                shutil.rmtree(out, ignore_errors=True)  # a training on other rows, or one cut short
                cmd = recipe.recipe_command("dataset", Path(path), train_split, eval_split,
                                            argparse.Namespace(**{**vars(args), "seed": seed}), None,
                                            "--dataset", str(mined), "--output", str(out))
                jobs.append((cmd + (["--model", args.model] if args.model else []), out))
    seeded.run_jobs(jobs, args.jobs, Path(args.work))


def collect(args) -> dict[str, list[dict]]:
    """Per dataset, one entry per mined strategy: its ECI scores and its trainings' nDCG@10 over the seeds."""
    results = {}
    for spec in args.datasets:
        ds = recipe.dataset_spec(spec, args.data)[0]
        if not (Path(args.work) / ds / "settings.json").is_file():
            continue
        use_settings(args, ds)
        rows = []
        for name in args.strategies:
            entry = _read_json(Path(args.work) / ds / name / "eci.json")
            if not entry:
                continue
            found = seed_runs(ds, name, entry["rows_sha256"], args)
            runs = {s: run for s, (run, _) in sorted(found.items())}
            seeded.check_alike(runs, f"{ds} {name}")  # the quality benchmark's seeds and ours: one device, one student
            folders = sorted({str(f.relative_to(ROOT) if f.is_relative_to(ROOT) else f) for _, f in found.values()})
            if runs:
                values = [r["ndcg10"] for r in runs.values()]
                entry.update(ndcg10_by_seed={str(s): r["ndcg10"] for s, r in runs.items()},
                             ndcg10=float(np.mean(values)), ndcg10_sd=float(np.std(values, ddof=1)) if len(values) > 1
                             else None, recall100=float(np.mean([r["recall100"] for r in runs.values()])),
                             train_seconds=float(np.mean([r["train_seconds"] or 0 for r in runs.values()])),
                             device=", ".join(sorted({r["device"] for r in runs.values()})),
                             trained_in=", ".join(folders))
            rows.append(entry)
        results[ds] = rows
    return results


# ----------------------------------------------------------------------------- statistics and report


def predictors(queries, pos, neg) -> dict[str, float]:
    """ECI at several alphas, its components, and simpler candidates, all from one set of scores."""
    from st_hardneg.eci import eci_from_scores

    out: dict[str, float] = {}
    for alpha in ALPHAS:
        r = eci_from_scores(queries, pos, neg, alpha=alpha)
        tag = "" if alpha == 0.95 else f"@{alpha}"
        out[f"eci{tag}"] = r.eci
        if alpha == 0.95:
            out.update({k: v for k, v in r.components.items()})
            out["s0_share"] = r.unsafe_share
    ratios = [n / p for p, row in zip(pos, neg) if p > 0 for n in row]
    out["mean_ratio"] = float(np.mean(ratios)) if ratios else 0.0
    return out


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(argv)
    if args.stage in ("all", "mine"):
        mine_stage(args)
    if args.stage in ("all", "train"):
        train_stage(args)
    if args.stage in ("all", "report"):
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)  # the PNGs go there too
        results = collect(args)
        report, correlations, noise = render(results, args)
        print(report)
        out.write_text(report, encoding="utf-8")
        out.with_suffix(".json").write_text(json.dumps({"results": results, "correlations": correlations,
                                                        "noise": noise}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
