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
(``--work``) holds runs of one setting only (``settings.json``); a set mined again with other rows
(the data changed) drops the trainings made on the old rows. Writes ``--output`` (markdown), the
PNGs beside it, and the same name with ``.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
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
from evaluation import rank_correlations

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
    return recipe.only_training_rows(result.to_dataset("n-tuple"), pairs), result.stats.to_dict()


def mining_config(name: str, ds: str, data, args) -> dict:
    """Every setting (and the data) that changes what a strategy mines: a saved set is reused only when it matches."""
    pairs = hashlib.sha256(json.dumps([data.pairs, len(data.corpus_texts)]).encode()).hexdigest()
    return {"strategy": name, "num_negatives": args.num_negatives, "max_seq_length": args.max_seq_length,
            "seed": args.seed, "teacher": args.teacher_name if name == "hybrid-teacher" else None,
            "max_train_pairs": args.nfcorpus_train_pairs if ds == "nfcorpus" else None,
            "pairs_sha256": pairs}


def quality_runs(ds: str, name: str, digest: str, args) -> Path | None:
    """bench_quality.py's run folder of strategy ``name`` when it trained these very rows with these settings."""
    if name not in SHARED:
        return None
    work = Path(args.quality_work) / ds
    kept, mine = _read_json(work / "settings.json"), settings(args)
    if any(kept.get(k) != v for k, v in mine.items() if k != "teacher"):
        return None
    if name == "hybrid-teacher" and kept.get("teacher") != mine["teacher"]:
        return None
    if _read_json(work / name / "mining.json").get("mining", {}).get("rows_sha256") != digest:
        return None
    return work / name


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
        seeded.check_settings(Path(args.work) / ds / "settings.json", settings(args))
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
            if kept and kept["rows_sha256"] != record["rows_sha256"]:  # other rows: their trainings are stale
                for stale in work.glob("seed-*"):
                    shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
                logger.warning("%s %s: mined other rows than before; its trainings were dropped", ds, name)
            entry = {"strategy": name, "label": STRATEGIES[name], "rows": len(dataset),
                     "rows_sha256": record["rows_sha256"], "mining": record["config"]}
            for scorer_name, scorer in scorers.items():
                entry[scorer_name] = predictors(*row_scores(dataset, scorer))
            work.mkdir(parents=True, exist_ok=True)
            (work / "eci.json").write_text(json.dumps(entry, indent=1))
            logger.info("%s %s: %d rows, ECI %.4f (student)", ds, name, len(dataset), entry["student"]["eci"])


def train_stage(args) -> None:
    """Train every mined set with every seed, except the ones bench_quality.py already trained."""
    jobs = []
    for spec in args.datasets:
        ds, path, train_split, eval_split = recipe.dataset_spec(spec, args.data)
        seeded.check_settings(Path(args.work) / ds / "settings.json", settings(args))
        for name in args.strategies:
            work = Path(args.work) / ds / name
            entry = _read_json(work / "eci.json")
            if not entry:
                logger.warning("%s %s: not mined yet (run the mine stage)", ds, name)
                continue
            if quality_runs(ds, name, entry["rows_sha256"], args) is not None:
                continue
            mined = Path(args.quality_cache if name == "st-percpos" else args.cache) / ds / name / "mined"
            if not mined.is_dir():
                raise SystemExit(f"{mined}: no mined set (run the mine stage, or carry the cache here)")
            for seed in args.seeds:
                out = work / f"seed-{seed}"
                if (out / "results.json").is_file():
                    continue
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
        seeded.check_settings(Path(args.work) / ds / "settings.json", settings(args))
        rows = []
        for name in args.strategies:
            entry = _read_json(Path(args.work) / ds / name / "eci.json")
            if not entry:
                continue
            folder = quality_runs(ds, name, entry["rows_sha256"], args) or Path(args.work) / ds / name
            runs = {s: r for s, r in seeded.load_runs(folder, args.seeds).items()
                    if r["rows_sha256"] == entry["rows_sha256"]}
            if runs:
                values = [r["ndcg10"] for r in runs.values()]
                entry.update(ndcg10_by_seed={str(s): r["ndcg10"] for s, r in runs.items()},
                             ndcg10=float(np.mean(values)), ndcg10_sd=float(np.std(values, ddof=1)) if len(values) > 1
                             else None, recall100=float(np.mean([r["recall100"] for r in runs.values()])),
                             train_seconds=float(np.mean([r["train_seconds"] or 0 for r in runs.values()])),
                             device=", ".join(sorted({r["device"] for r in runs.values()})),
                             trained_in=str(folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder))
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


def oracle_rho(ndcg: list[float], sigma: float, draws: int = 20_000, seed: int = 0) -> float:
    """Mean Spearman rho between ``ndcg`` and ``ndcg`` plus Gaussian noise of standard deviation ``sigma``.

    Roughly the rho a perfect predictor (one that knew each strategy's expected nDCG@10) could reach
    when every strategy is trained once: a ceiling, and an optimistic one, since the measured spread
    across strategies itself contains noise.
    """
    y = np.asarray(ndcg, dtype=float)
    if len(y) < 3 or sigma <= 0:
        return float("nan") if len(y) < 3 else 1.0
    noisy = y + np.random.default_rng(seed).normal(0.0, sigma, (draws, len(y)))
    ranks = noisy.argsort(axis=1).argsort(axis=1) - (len(y) - 1) / 2  # continuous noise: no ties
    truth = y.argsort().argsort() - (len(y) - 1) / 2
    return float(np.mean(ranks @ truth / (truth @ truth)))


def scatter_png(rows: list[dict], numbers: list[int], dataset: str, rho: float) -> bytes:
    """PNG of nDCG@10 against ECI under the student, each strategy numbered as in the report's table."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.2), dpi=100)
    ax = figure.add_subplot()
    for number, r in zip(numbers, rows):
        ax.scatter(r["student"]["eci"], r["ndcg10"], color="#4C72B0", zorder=3,
                   label=f"{number}: {r['label']}")
        ax.annotate(str(number), (r["student"]["eci"], r["ndcg10"]), textcoords="offset points", xytext=(5, 4),
                    fontsize=9)
    ax.set_xlabel("ECI before training (student scorer)")
    ax.set_ylabel("nDCG@10 after training")
    ax.set_title(f"{dataset}: Spearman rho = {rho:.2f}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=7, frameon=False, handletextpad=0.2)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()




PREDICTORS = [
    ("eci", "ECI (alpha 0.95)"), ("eci@0.9", "ECI (alpha 0.90)"), ("eci@0.99", "ECI (alpha 0.99)"),
    ("efficiency", "E = 2HS/(H+S), no capacity"), ("capacity", "C = log(1 + safe)"), ("hardness", "H"),
    ("safety", "S"), ("safe_fraction", "safe fraction"), ("s0_share", "minus the share of S = 0"),
    ("mean_ratio", "mean negative/positive score"),
]


def training_noise(trained: list[dict]) -> dict:
    """How far chance alone moves a strategy's seed-averaged nDCG@10, against the spread across strategies.

    The within-strategy sd is pooled over the strategies trained with two seeds or more; a mean over
    n seeds carries sd / sqrt(n) of it, which ``oracle_rho`` turns into the rho a perfect predictor
    could reach through that noise.
    """
    repeated = [r for r in trained if len(r["ndcg10_by_seed"]) >= 2]
    if not repeated:
        return {}
    pooled = float(np.sqrt(np.mean([r["ndcg10_sd"] ** 2 for r in repeated])))
    seeds = float(np.mean([len(r["ndcg10_by_seed"]) for r in trained]))
    means = [r["ndcg10"] for r in trained]
    return {"seed_sd": pooled, "seeds": seeds, "sd_of_mean": pooled / np.sqrt(seeds),
            "strategies_sd": float(np.std(means, ddof=1)), "strategies_range": float(np.ptp(means)),
            "oracle_rho": oracle_rho(means, pooled / np.sqrt(seeds))}


def render(results: dict[str, list[dict]], args) -> tuple[str, dict, dict]:
    """(markdown report, rank correlations by dataset and predictor, training noise by dataset)."""
    lines = [
        "# ECI validation: does ECI before training predict nDCG@10 after it?",
        "",
        f"- command: `python {' '.join(sys.argv)}`; report written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- mining and ECI on {os.cpu_count()} CPU cores, {platform.machine()}; the training device is in each row",
        f"- student all-MiniLM-L6-v2, MNRL, batch {args.batch_size}, lr {args.lr}, {args.epochs:g} epoch, max length "
        f"{args.max_seq_length}, {args.num_negatives} negatives, training seeds {', '.join(map(str, args.seeds))} "
        "(the quality benchmark's settings; its runs are reused where it trained the same rows); NFCorpus "
        f"{args.nfcorpus_train_pairs} train pairs, evaluated on dev",
        f"- ECI scorers: the untrained student (raw cosine, clipped at 0) and the teacher `{args.teacher_name}`",
        "- nDCG@10: mean ± sd over the seeds; rho / tau: Spearman / Kendall rank correlation of each predictor with "
        "the seed-averaged nDCG@10 across strategies; in brackets two-sided p (rho: 20,000 random permutations; tau: "
        "exact)",
        "",
    ]
    correlations: dict = {}
    noises: dict = {}
    for ds, rows in results.items():
        trained = [r for r in rows if "ndcg10" in r]
        lines += [f"## {ds}", "", "| # | strategy | rows | ECI (student) | H | S | C | S = 0 share | ECI (teacher) "
                  "| nDCG@10 mean ± sd | seeds | Recall@100 | train s | device |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for i, r in enumerate(rows, 1):
            s, t = r["student"], r.get("teacher", {})
            train_s = f"{r['train_seconds']:.0f}" if "train_seconds" in r else "–"
            recall = f"{r['recall100']:.4f}" if "recall100" in r else "–"
            ndcg = "–" if "ndcg10" not in r else (
                f"{r['ndcg10']:.4f}" + (f" ± {r['ndcg10_sd']:.4f}" if r["ndcg10_sd"] is not None else ""))
            lines.append(f"| {i} | {r['label']} | {r['rows']} | {s['eci']:.3f} | {s['hardness']:.3f} | "
                         f"{s['safety']:.3f} | {s['capacity']:.3f} | {s['s0_share']:.3f} | "
                         f"{t.get('eci', float('nan')):.3f} | {ndcg} | {len(r.get('ndcg10_by_seed', {}))} | "
                         f"{recall} | "
                         f"{train_s} | "
                         f"{r.get('device', '–')} |")
        lines.append("")
        if len(trained) < max(3, args.min_trained):
            lines += [f"{len(trained)} of {len(rows)} strategies trained so far (--min-trained {args.min_trained}): "
                      "no correlation yet.", ""]
            continue
        ndcg = [r["ndcg10"] for r in trained]
        correlations[ds] = {}
        lines += ["| predictor | scorer | rho | tau |", "|---|---|---:|---:|"]
        for scorer in ("student", "teacher"):
            if scorer not in trained[0]:
                continue
            for key, label in PREDICTORS:
                sign = -1 if key == "s0_share" else 1
                c = rank_correlations([sign * r[scorer][key] for r in trained], ndcg)
                correlations[ds][f"{scorer}:{'-' if sign < 0 else ''}{key}"] = c
                lines.append(f"| {label} | {scorer} | {c['spearman']:.3f} ({c['spearman_p']:.3f}) | "
                             f"{c['kendall']:.3f} ({c['kendall_p']:.3f}) |")
        noise = training_noise(trained)
        if noise:
            noises[ds] = noise
            lines += ["", f"Training noise: the seed-to-seed sd of nDCG@10 is {noise['seed_sd']:.4f} (pooled over the "
                      f"strategies), so a mean over {noise['seeds']:g} seeds moves by about {noise['sd_of_mean']:.4f} "
                      f"by chance; across the strategies the means have sd {noise['strategies_sd']:.4f} (range "
                      f"{noise['strategies_range']:.4f}). A predictor that knew each strategy's expected nDCG@10 "
                      f"exactly would reach rho of about {noise['oracle_rho']:.2f} on these means (simulated)."]
        png = Path(args.output).with_name(f"eci_{ds}.png")
        png.write_bytes(scatter_png(trained, [rows.index(r) + 1 for r in trained], ds,
                                    correlations[ds]["student:eci"]["spearman"]))
        lines += ["", f"![ECI (student) against nDCG@10 on {ds}]({png.name})", "",
                  f"`{png.name}`: x = ECI under the student, y = seed-averaged nDCG@10; points numbered as in the "
                  "first table.", ""]
    return "\n".join(lines), correlations, noises


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
