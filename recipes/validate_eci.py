"""Does ECI predict retrieval quality? Mine with many strategies, score ECI before training, train, correlate.

For each dataset this recipe

1. mines the same training pairs with every strategy below (4 negatives per row by default);
2. scores each mined set with ECI *before any training*, under the base student (raw cosine, the
   scale the issue and NV-Retriever's PercPos use) and, with ``--teacher``, under the teacher;
3. trains the same student with the same settings on each set (``train_with_hard_negatives.py
   --strategy dataset``) and measures nDCG@10 on the held-out split;
4. reports Spearman's rho and Kendall's tau between each predictor and nDCG@10 (ECI, its
   components, ECI at other alphas, ECI without the capacity factor) and draws a scatter PNG.

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
- ``st-percpos``: sentence-transformers' ``mine_hard_negatives(relative_margin=0.05)``, taken from the
  quality benchmark's run when it saved its mined set.

Training settings are the quality benchmark's (``benchmarks/bench_quality.py``), so the strategies
both scripts share are trained once. A finished training is reused only when the set mined now has
the same rows (a SHA-256 of them is kept beside each run), so a fresh clone re-mines in minutes and
retrains only what changed.

    python recipes/validate_eci.py --datasets scifact nfcorpus --teacher "$(python recipes/prepare_mpnet_teacher.py)" \
        --noise-seeds 43 44

``--noise-seeds`` retrains one strategy's mined set (``--noise-strategy``) with other seeds: the
spread that gives is what chance alone does to nDCG@10, and the report compares it with the spread
across strategies and simulates the rho a perfect predictor could reach through that noise.

Writes ``benchmarks/results/eci_validation.md``, ``eci_<dataset>.png`` and ``eci_validation.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))
import train_with_hard_negatives as recipe  # noqa: E402
from evaluation import rank_correlations  # noqa: E402

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


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    recipe.add_dataset_flags(p)
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES),
                   help="strategies to compare")
    p.add_argument("--teacher", default=None, help="teacher for hybrid-teacher and for ECI under the teacher")
    recipe.add_benchmark_flags(p)
    p.add_argument("--cache-dir", default="auto", help="embedding cache ('auto': ~/.cache/st_hardneg)")
    p.add_argument("--mine-only", action="store_true", help="mine and score ECI, train nothing (a quick look)")
    p.add_argument("--work", default=str(ROOT / "benchmarks" / "results" / "eci_runs"),
                   help="folder for each strategy's mined set and results.json")
    p.add_argument("--quality-runs", default=str(ROOT / "benchmarks" / "results" / "quality_runs"),
                   help="bench_quality.py's run folder, reused for the strategies both share")
    p.add_argument("--noise-seeds", nargs="*", type=int, default=[],
                   help="extra training seeds for --noise-strategy: its mined set is retrained with each, to "
                        "measure how far nDCG@10 moves by chance alone (the floor under any correlation)")
    p.add_argument("--noise-strategy", default="dense-percpos", choices=list(STRATEGIES),
                   help="the strategy retrained with --noise-seeds")
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "eci_validation.md"),
                   help="markdown report (the PNGs and a JSON go beside it)")
    args = p.parse_args(argv)
    if args.noise_seeds and args.noise_strategy not in args.strategies:
        p.error(f"--noise-strategy {args.noise_strategy} is not among --strategies {' '.join(args.strategies)}")
    return args


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


def mine_strategy(name: str, data, pairs, model, embedder, args, cache_dir: str, teacher) -> tuple[object, dict]:
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


def mining_config(name: str, args) -> dict:
    """Every setting that changes what a strategy mines (a saved set is reused only when it matches)."""
    return {"strategy": name, "num_negatives": args.num_negatives, "max_seq_length": args.max_seq_length,
            "seed": args.seed, "teacher": args.teacher if name == "hybrid-teacher" else None,
            "max_train_pairs": args.nfcorpus_train_pairs if args.dataset_name == "nfcorpus" else None}


def training_config(name: str, args) -> dict:
    return {**mining_config(name, args), "batch_size": args.batch_size, "epochs": args.epochs, "lr": args.lr}


def _quality_run_matches(name: str, theirs: dict, args) -> bool:
    """Whether a bench_quality.py run was trained with this recipe's settings."""
    settings = theirs.get("settings", {})
    ours = training_config(name, args)
    keys = ("num_negatives", "max_seq_length", "seed", "batch_size", "epochs", "lr", "max_train_pairs")
    same = all(settings.get(k) == ours[k] for k in keys)
    return same and (name != "hybrid-teacher" or settings.get("teacher") == args.teacher)


def _quality_result(name: str, digest: str, quality: Path, args) -> dict | None:
    """The bench_quality.py run of this strategy, when it trained exactly these rows with these settings."""
    theirs = _read_json(quality / "results.json")
    if name not in SHARED or not theirs or not _quality_run_matches(name, theirs, args):
        return None
    if theirs.get("mining", {}).get("rows_sha256") != digest:
        logger.warning("%s trained other rows than this recipe mined; training them here", quality)
        return None
    return theirs


# ----------------------------------------------------------------------------- scoring and statistics


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


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


# ----------------------------------------------------------------------------- training


def train(name: str, mined_dir: Path, out: Path, folder: Path, train_split: str, eval_split: str, ds: str, args) -> dict:
    cap = args.nfcorpus_train_pairs if ds == "nfcorpus" else None
    cmd = recipe.recipe_command("dataset", folder, train_split, eval_split, args, cap,
                                "--dataset", str(mined_dir), "--output", str(out))
    logger.info("%s: training on %s", ds, name)
    subprocess.run(cmd, check=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    return json.loads((out / "results.json").read_text())


def seed_run(name: str, mined_dir: Path, work: Path, seed: int, split: tuple[str, str, str, str], args,
             digest: str) -> float:
    """nDCG@10 of ``name``'s mined set trained with another ``seed`` (the batch order and dropout change)."""
    out = work / f"seed-{seed}"
    config = {"training": training_config(name, args), "training_seed": seed, "rows_sha256": digest}
    result = _read_json(out / "results.json") if _read_json(out / "config.json") == config else {}
    if not result:
        out.mkdir(parents=True, exist_ok=True)
        result = train(f"{name} (seed {seed})", mined_dir, out, *split, argparse.Namespace(**{**vars(args), "seed": seed}))
        (out / "config.json").write_text(json.dumps(config, indent=1))
    (ev,) = result["eval"].values()
    return ev["ndcg@10"]


def run_dataset(spec: str, args) -> tuple[str, list[dict]]:
    """(dataset name, one entry per strategy: ECI before training and, unless --mine-only, nDCG@10 after)."""
    import datasets

    from st_hardneg import load_model
    from st_hardneg.eci import row_scores
    from st_hardneg.embeddings import Embedder
    from st_hardneg.teachers import BiEncoderScorer

    ds, path, train_split, eval_split = recipe.dataset_spec(spec, args.data)
    cache_dir = None if args.cache_dir == "none" else args.cache_dir
    args.dataset_name = ds
    model = load_model(None, max_seq_length=args.max_seq_length)
    max_pairs = args.nfcorpus_train_pairs if ds == "nfcorpus" else None
    data, pairs = recipe.training_pairs(path, train_split, max_pairs)
    student = Embedder(model, cache_dir=cache_dir, show_progress=False)
    student.encode(data.corpus_texts, "document")  # mine()'s cache entry; serves every subset below from memory
    scorers = {"student": BiEncoderScorer(student)}
    teacher = None
    if args.teacher:
        teacher = recipe.primed_teacher(args.teacher, data.corpus_texts, args.max_seq_length, cache_dir)
        scorers["teacher"] = teacher
    rows = []
    for name in args.strategies:
        work = Path(args.work) / ds / name
        mined_dir = work / "mined"
        quality = Path(args.quality_runs) / ds / name
        config = _read_json(work / "config.json")
        if name == "st-percpos":
            theirs = _read_json(quality / "results.json")
            if not (quality / "mined").is_dir() or not _quality_run_matches(name, theirs, args):
                logger.warning("%s: skipping st-percpos: %s holds no mined set made with these settings "
                               "(run bench_quality.py row 3)", ds, quality)
                continue
            dataset, mined_dir = datasets.load_from_disk(str(quality / "mined")), quality / "mined"
            digest = recipe.rows_digest(dataset)
        else:
            start = time.perf_counter()
            dataset, stats = mine_strategy(name, data, pairs, model, student, args, cache_dir, teacher)
            digest = recipe.rows_digest(dataset)
            logger.info("%s: mined %s (%d rows) in %.1f s", ds, name, len(dataset), time.perf_counter() - start)
            if config.get("mining") != mining_config(name, args) or config.get("rows_sha256") != digest:
                (work / "results.json").unlink(missing_ok=True)  # trained on other rows
                config = {}
            work.mkdir(parents=True, exist_ok=True)
            dataset.save_to_disk(str(mined_dir))
            (work / "stats.json").write_text(json.dumps(stats, indent=1))
            config = {**config, "mining": mining_config(name, args), "rows_sha256": digest}
            (work / "config.json").write_text(json.dumps(config, indent=1))
        entry = {"strategy": name, "label": STRATEGIES[name], "rows": len(dataset)}
        for scorer_name, scorer in scorers.items():
            entry[scorer_name] = predictors(*row_scores(dataset, scorer))
        if not args.mine_only:
            result = None
            if (work / "results.json").is_file() and config.get("training") == training_config(name, args):
                result = json.loads((work / "results.json").read_text())
            elif (result := _quality_result(name, digest, quality, args)) is not None:
                entry["trained_in"] = str(quality.relative_to(ROOT) if quality.is_relative_to(ROOT) else quality)
            if result is None:
                result = train(name, mined_dir, work, path, train_split, eval_split, ds, args)
                config = {**config, "training": training_config(name, args)}
                (work / "config.json").write_text(json.dumps(config, indent=1))
            (ev,) = result["eval"].values()
            entry.update(ndcg10=ev["ndcg@10"], recall100=ev["recall@100"], train_seconds=result.get("train_seconds"))
            if name == args.noise_strategy and args.noise_seeds:
                split = (path, train_split, eval_split, ds)
                others = [s for s in args.noise_seeds if s != args.seed]
                entry["seed_ndcg10"] = {str(args.seed): entry["ndcg10"],
                                        **{str(s): seed_run(name, mined_dir, work, s, split, args, digest)
                                           for s in others}}
        rows.append(entry)
        logger.info("%s %s: %s", ds, name, {k: entry[k] for k in entry if k in ("ndcg10", "rows")} | {
            "eci": round(entry["student"]["eci"], 4)})
    return ds, rows


# ----------------------------------------------------------------------------- report

PREDICTORS = [
    ("eci", "ECI (alpha 0.95)"), ("eci@0.9", "ECI (alpha 0.90)"), ("eci@0.99", "ECI (alpha 0.99)"),
    ("efficiency", "E = 2HS/(H+S), no capacity"), ("capacity", "C = log(1 + safe)"), ("hardness", "H"),
    ("safety", "S"), ("safe_fraction", "safe fraction"), ("s0_share", "minus the share of S = 0"),
    ("mean_ratio", "mean negative/positive score"),
]


def noise_lines(rows: list[dict], trained: list[dict]) -> tuple[list[str], dict]:
    """The training-noise section: one strategy retrained with other seeds against the spread across strategies."""
    repeated = [r for r in rows if len(r.get("seed_ndcg10", {})) >= 2]
    if not repeated:
        return [], {}
    (r,) = repeated
    values = list(r["seed_ndcg10"].values())
    sigma = float(np.std(values, ddof=1))
    spread = [t["ndcg10"] for t in trained]
    noise = {"strategy": r["strategy"], "ndcg10_by_seed": r["seed_ndcg10"], "sd": sigma,
             "strategies_sd": float(np.std(spread, ddof=1)), "strategies_range": float(np.ptp(spread)),
             "oracle_rho": oracle_rho(spread, sigma)}
    seeds = ", ".join(f"{v:.4f} (seed {k})" for k, v in r["seed_ndcg10"].items())
    return [f"Training noise: {r['label']}'s mined set retrained with {len(values)} seeds gives nDCG@10 {seeds}; "
            f"standard deviation {sigma:.4f}. Across the strategies nDCG@10 has standard deviation "
            f"{noise['strategies_sd']:.4f} (range {noise['strategies_range']:.4f}). A predictor that knew each "
            f"strategy's expected nDCG@10 exactly would reach rho of about {noise['oracle_rho']:.2f} on these "
            "single-seed measurements (simulated: the measured values plus noise of that deviation; optimistic, "
            "since the measured spread already contains noise).", ""], noise


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


def render(results: dict[str, list[dict]], args, seconds: float) -> tuple[str, dict, dict]:
    """(markdown report, rank correlations by dataset and predictor, training noise by dataset)."""
    lines = [
        "# ECI validation: does ECI before training predict nDCG@10 after it?",
        "",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; whole run {seconds / 60:.1f} min; "
        f"{os.cpu_count()} CPU cores, {platform.machine()}",
        f"- student all-MiniLM-L6-v2, MNRL, batch {args.batch_size}, lr {args.lr}, {args.epochs:g} epoch, max length "
        f"{args.max_seq_length}, {args.num_negatives} negatives, seed {args.seed} (the quality benchmark's settings)",
        f"- ECI scorers: the untrained student (raw cosine, clipped at 0) and the teacher `{args.teacher}`",
        "- rho / tau: Spearman / Kendall rank correlation with nDCG@10 across strategies; in brackets two-sided p "
        "(rho: 20,000 random permutations; tau: exact)",
        "",
    ]
    correlations: dict = {}
    noises: dict = {}
    for ds, rows in results.items():
        trained = [r for r in rows if "ndcg10" in r]
        lines += [f"## {ds}", "", "| # | strategy | rows | ECI (student) | H | S | C | S = 0 share | ECI (teacher) "
                  "| nDCG@10 | Recall@100 | train s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for i, r in enumerate(rows, 1):
            s, t = r["student"], r.get("teacher", {})
            lines.append(f"| {i} | {r['label']} | {r['rows']} | {s['eci']:.3f} | {s['hardness']:.3f} | {s['safety']:.3f} | "
                         f"{s['capacity']:.3f} | {s['s0_share']:.3f} | {t.get('eci', float('nan')):.3f} | "
                         f"{r.get('ndcg10', float('nan')):.4f} | {r.get('recall100', float('nan')):.4f} | "
                         f"{r.get('train_seconds') or '–'} |")
        lines.append("")
        if len(trained) >= 3:
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
            extra, noise = noise_lines(rows, trained)
            if noise:
                noises[ds] = noise
            lines += ["", *extra]
            png = Path(args.output).with_name(f"eci_{ds}.png")
            png.write_bytes(scatter_png(trained, [rows.index(r) + 1 for r in trained], ds,
                                        correlations[ds]["student:eci"]["spearman"]))
            lines += [f"![ECI (student) against nDCG@10 on {ds}]({png.name})", "",
                      f"`{png.name}`: x = ECI under the student, y = nDCG@10; points numbered as in the first table.", ""]
    return "\n".join(lines), correlations, noises


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(argv)
    if not args.teacher and "hybrid-teacher" in args.strategies:
        logger.warning("no --teacher: leaving out hybrid-teacher")
        args.strategies = [s for s in args.strategies if s != "hybrid-teacher"]
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)  # before hours of training, and the PNGs go there too
    started = time.time()
    results = dict(run_dataset(spec, args) for spec in args.datasets)
    report, correlations, noise = render(results, args, time.time() - started)
    print(report)
    out.write_text(report, encoding="utf-8")
    summary = {"results": results, "correlations": correlations, "noise": noise}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    sys.exit(main())
