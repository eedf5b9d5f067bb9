"""Does ECI predict retrieval quality? Mine with many strategies, score ECI before training, train, correlate.

For each dataset this recipe

1. mines the same training pairs with every strategy below (4 negatives per row by default);
2. scores each mined set with ECI *before any training*, under the base student (raw cosine, the
   scale the issue and NV-Retriever's PercPos use) and, with ``--teacher``, under the teacher;
3. trains the same student with the same settings on each set (``train_with_hard_negatives.py
   --strategy dataset``) and measures nDCG@10 on the held-out split;
4. reports Spearman's rho and Kendall's tau between each predictor and nDCG@10 (ECI, its
   components, ECI at other alphas, ECI without the capacity factor) and draws a scatter PNG.

Strategies (negatives chosen per (query, positive) row; positives and their exact-text copies are
never negatives):

- ``random``: uniformly random documents of the corpus;
- ``bm25``: BM25's top-k (bm25s), no filter;
- ``dense-naive``: the student's dense top-k, no filter;
- ``dense-percpos``: dense candidates, TopK-PercPos 95% (NV-Retriever);
- ``shifted``: dense top-k shifted by 10 ranks (skip the 10 hardest), no filter;
- ``hybrid-percpos``: BM25 + dense fused by RRF, PercPos 95% under the student;
- ``hybrid-teacher``: the same candidates scored by the teacher, PercPos 95% under the teacher;
- ``unsafe``: deliberately unsafe: among the query's 100 nearest documents, the k most similar to the
  *positive* (document-to-document cosine): relevant-looking near-duplicates, the likeliest false
  negatives;
- ``st-percpos``: sentence-transformers' ``mine_hard_negatives(relative_margin=0.05)``, taken from the
  quality benchmark's run when it saved its mined set.

Training settings are the quality benchmark's (``benchmarks/bench_quality.py``), so the strategies
both scripts share are trained once: a quality run is reused when its mined set (or, for runs that
saved none, its mining statistics) equals what this recipe mines.

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
DATASETS = {"scifact": ("scifact", "train", "test"), "nfcorpus": ("nfcorpus", "train", "dev")}
ALPHAS = (0.9, 0.95, 0.99)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("ST_HARDNEG_DATA", str(ROOT.parent / "shared" / "data")),
                   help="folder holding the BEIR datasets")
    p.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus"], choices=sorted(DATASETS),
                   help="datasets to mine, train and evaluate on")
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


def _n_tuple(anchors: list[str], positives: list[str], negatives: list[list[str]]):
    import datasets

    k = len(negatives[0]) if negatives else 0
    cols = {"anchor": anchors, "positive": positives}
    cols.update({f"negative_{j + 1}": [row[j] for row in negatives] for j in range(k)})
    return datasets.Dataset.from_dict(cols)


def _custom_rows(data, pairs, choose_docs) -> tuple[list[str], list[str], list[list[str]]]:
    """Rows for the training ``pairs``; ``choose_docs(row, q, d, banned)`` returns document indices.

    Every labelled positive of the query (``data`` may know more than the training pairs) is banned.
    """
    from st_hardneg.filters import normalize_text

    positives = data.positives_by_query()
    wanted = set(zip(pairs["anchor"], pairs["positive"]))
    anchors, pos, negs = [], [], []
    for row, (q, d) in enumerate(data.pairs):
        key = (data.query_texts[q], data.corpus_texts[d])
        if key not in wanted:
            continue
        wanted.discard(key)  # corpora repeat texts: one row per training pair, as the engine gives
        banned_text = {normalize_text(data.corpus_texts[p]) for p in positives[q]}
        banned = set(positives[q])
        picked = choose_docs(row, q, d, lambda c: c in banned or normalize_text(data.corpus_texts[c]) in banned_text)
        anchors.append(data.query_texts[q])
        pos.append(data.corpus_texts[d])
        negs.append([data.corpus_texts[c] for c in picked])
    return anchors, pos, negs


def _first(order, is_banned, k: int) -> list[int]:
    out = []
    for c in order:
        c = int(c)
        if c >= 0 and not is_banned(c) and c not in out:
            out.append(c)
            if len(out) == k:
                break
    return out


def mine_strategy(name: str, data, pairs, model, embedder, args, cache_dir: str, teacher) -> tuple[object, dict]:
    """(n-tuple dataset, mining statistics or {}) for one strategy."""
    from st_hardneg import PositiveAwareFilter, mine
    from st_hardneg.candidates import BM25Retriever
    from st_hardneg.sampling import row_rng

    k = args.num_negatives
    mined_by_engine = {
        "dense-naive": dict(retriever="dense", filter=PositiveAwareFilter(perc=None)),
        "dense-percpos": dict(retriever="dense", filter=PositiveAwareFilter(perc=0.95)),
        "shifted": dict(retriever="dense", filter=PositiveAwareFilter(perc=None, skip_top=10), candidates=100),
        "hybrid-percpos": dict(retriever="hybrid", filter=PositiveAwareFilter(perc=0.95)),
        "hybrid-teacher": dict(retriever="hybrid", filter=PositiveAwareFilter(perc=0.95), teacher=teacher),
    }
    if name in mined_by_engine:
        if name == "hybrid-teacher" and teacher is None:
            raise SystemExit("strategy hybrid-teacher needs --teacher")
        # Same call as train_with_hard_negatives.py, so shared strategies mine identical sets.
        result = mine(data, model, num_negatives=k, seed=args.seed, cache_dir=cache_dir, show_progress=False,
                      **mined_by_engine[name])
        return recipe.only_training_rows(result.to_dataset("n-tuple"), pairs), result.stats.to_dict()
    n_docs = len(data.corpus_texts)
    if name == "random":
        rows = _custom_rows(data, pairs, lambda row, q, d, banned: _first(row_rng(args.seed, row).permutation(n_docs), banned, k))
    elif name == "bm25":
        bm25 = BM25Retriever("bm25s", show_progress=False)
        bm25.index(data.corpus_texts)
        queries = sorted(data.positives_by_query())
        most = max(len(p) for p in data.positives_by_query().values())
        indices, _ = bm25.search([data.query_texts[q] for q in queries], k + most + 10)
        ranked = dict(zip(queries, indices))
        rows = _custom_rows(data, pairs, lambda row, q, d, banned: _first(ranked[q], banned, k))
    elif name == "unsafe":
        docs = embedder.encode(data.corpus_texts, "document")
        queries = sorted(data.positives_by_query())
        qemb = dict(zip(queries, embedder.encode([data.query_texts[q] for q in queries], "query")))
        positives = data.positives_by_query()

        def nearest(row, q, d, banned):
            # Among the query's 100 nearest documents, those most like its positive: relevant-looking
            # near-duplicates, the likeliest false negatives there are.
            top = np.argsort(-(docs @ qemb[q]), kind="stable")[: 100 + len(positives[q])]
            return _first(top[np.argsort(-(docs[top] @ docs[d]), kind="stable")], banned, k)

        rows = _custom_rows(data, pairs, nearest)
    else:
        raise ValueError(f"strategy {name!r} is not mined here")
    short = [i for i, negs in enumerate(rows[2]) if len(negs) < k]
    if short:
        raise RuntimeError(f"strategy {name}: rows {short[:5]} got fewer than {k} negatives")
    return _n_tuple(*rows), {}


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


def _quality_result(name: str, dataset, stats: dict, quality: Path, args) -> dict | None:
    """The bench_quality.py run of this strategy, when it trained exactly this set with these settings."""
    import datasets

    theirs = _read_json(quality / "results.json")
    if name not in SHARED or not theirs or not _quality_run_matches(name, theirs, args):
        return None
    if name == "st-percpos":  # its set is the bench's own
        return theirs
    if (quality / "mined").is_dir():
        same = _same_rows(dataset, datasets.load_from_disk(str(quality / "mined")))
    else:  # runs from before --save-mined: their mining statistics must match
        same = _same_stats(stats, theirs.get("mining", {}).get("stats", {}))
    if not same:
        logger.warning("%s differs from the quality benchmark's set; training it here", quality)
    return theirs if same else None


def _same_stats(ours: dict, theirs: dict) -> bool:
    keys = (set(ours) & set(theirs)) - {"hardness_histogram"}
    return bool(keys) and all(ours[key] == theirs[key] for key in keys)


def _same_rows(a, b) -> bool:
    return a.column_names == b.column_names and len(a) == len(b) and a.to_dict() == b.to_dict()


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


def rank_correlations(x: list[float], y: list[float], permutations: int = 20_000, seed: int = 0) -> dict[str, float]:
    """Spearman's rho and Kendall's tau with two-sided p-values fit for a handful of points.

    SciPy's Spearman p-value is a t approximation, loose at n of about 9, so rho's p comes from
    ``permutations`` seeded random relabellings; Kendall's uses SciPy's exact distribution (no ties).
    """
    from scipy.stats import kendalltau, rankdata, spearmanr

    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"spearman": float("nan"), "spearman_p": float("nan"), "kendall": float("nan"), "kendall_p": float("nan")}
    rho = float(spearmanr(x, y).statistic)
    rx, ry = (rankdata(v) - (len(v) + 1) / 2 for v in (x, y))  # centred (average) ranks
    rng = np.random.default_rng(seed)
    shuffled = ry[np.argsort(rng.random((permutations, len(ry))), axis=1)]  # one permutation per row
    perms = shuffled @ rx / np.sqrt((rx @ rx) * (ry @ ry))  # Pearson on ranks = Spearman
    tau = kendalltau(x, y)
    return {"spearman": rho, "spearman_p": float((np.abs(perms) >= abs(rho) - 1e-12).mean()),
            "kendall": float(tau.statistic), "kendall_p": float(tau.pvalue)}


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


def seed_run(name: str, mined_dir: Path, work: Path, seed: int, split: tuple[Path, str, str, str], args) -> float:
    """nDCG@10 of ``name``'s mined set trained with another ``seed`` (the batch order and dropout change)."""
    out = work / f"seed-{seed}"
    config = {"training": training_config(name, args), "training_seed": seed}
    result = _read_json(out / "results.json") if _read_json(out / "config.json") == config else {}
    if not result:
        out.mkdir(parents=True, exist_ok=True)
        result = train(f"{name} (seed {seed})", mined_dir, out, *split, argparse.Namespace(**{**vars(args), "seed": seed}))
        (out / "config.json").write_text(json.dumps(config, indent=1))
    (ev,) = result["eval"].values()
    return ev["ndcg@10"]


def run_dataset(ds: str, args) -> list[dict]:
    import datasets

    from st_hardneg.eci import row_scores
    from st_hardneg.embeddings import Embedder
    from st_hardneg.formats import load_mined
    from st_hardneg.mining import load_model
    from st_hardneg.teachers import BiEncoderScorer

    folder, train_split, eval_split = DATASETS[ds]
    path = Path(args.data) / folder
    cache_dir = None if args.cache_dir == "none" else args.cache_dir
    args.dataset_name = ds
    model = load_model(None, max_seq_length=args.max_seq_length)
    max_pairs = args.nfcorpus_train_pairs if ds == "nfcorpus" else None
    data, pairs = recipe.training_pairs(str(path), train_split, max_pairs)
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
        stats: dict = {}
        if name == "st-percpos":
            theirs = _read_json(quality / "results.json")
            if not (quality / "mined").is_dir() or not _quality_run_matches(name, theirs, args):
                logger.warning("%s: skipping st-percpos: %s holds no mined set made with these settings "
                               "(run bench_quality.py row 3)", ds, quality)
                continue
            dataset, mined_dir = datasets.load_from_disk(str(quality / "mined")), quality / "mined"
        elif mined_dir.is_dir() and _read_json(work / "config.json").get("mining") == mining_config(name, args):
            try:
                dataset = load_mined(mined_dir)[0]
            except FileNotFoundError:
                dataset = datasets.load_from_disk(str(mined_dir))
            if (work / "stats.json").is_file():
                stats = json.loads((work / "stats.json").read_text())
        else:
            start = time.perf_counter()
            dataset, stats = mine_strategy(name, data, pairs, model, student, args, cache_dir, teacher)
            logger.info("%s: mined %s (%d rows) in %.1f s", ds, name, len(dataset), time.perf_counter() - start)
            work.mkdir(parents=True, exist_ok=True)
            (work / "results.json").unlink(missing_ok=True)  # trained on an older set
            dataset.save_to_disk(str(mined_dir))
            (work / "stats.json").write_text(json.dumps(stats, indent=1))
            (work / "config.json").write_text(json.dumps({"mining": mining_config(name, args)}, indent=1))
        entry = {"strategy": name, "label": STRATEGIES[name], "rows": len(dataset)}
        for scorer_name, scorer in scorers.items():
            entry[scorer_name] = predictors(*row_scores(dataset, scorer))
        if not args.mine_only:
            result = None
            config = _read_json(work / "config.json")
            if (work / "results.json").is_file() and config.get("training") == training_config(name, args):
                result = json.loads((work / "results.json").read_text())
            elif (result := _quality_result(name, dataset, stats, quality, args)) is not None:
                entry["trained_in"] = str(quality)
            if result is None:
                result = train(name, mined_dir, work, path, train_split, eval_split, ds, args)
                work.mkdir(parents=True, exist_ok=True)
                (work / "config.json").write_text(json.dumps({**config, "training": training_config(name, args)}, indent=1))
            (ev,) = result["eval"].values()
            entry.update(ndcg10=ev["ndcg@10"], recall100=ev["recall@100"], train_seconds=result.get("train_seconds"))
            if name == args.noise_strategy and args.noise_seeds:
                split = (path, train_split, eval_split, ds)
                others = [s for s in args.noise_seeds if s != args.seed]
                entry["seed_ndcg10"] = {str(args.seed): entry["ndcg10"],
                                        **{str(s): seed_run(name, mined_dir, work, s, split, args) for s in others}}
        rows.append(entry)
        logger.info("%s %s: %s", ds, name, {k: entry[k] for k in entry if k in ("ndcg10", "rows")} | {
            "eci": round(entry["student"]["eci"], 4)})
    return rows


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


def render(results: dict[str, list[dict]], args, seconds: float) -> tuple[str, dict, dict]:
    """(markdown report, rank correlations by dataset and predictor, training noise by dataset)."""
    from st_hardneg.plots import scatter_png

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
            png.write_bytes(scatter_png([r["student"]["eci"] for r in trained], ndcg,
                                        labels=[str(rows.index(r) + 1) for r in trained]))
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
    results = {ds: run_dataset(ds, args) for ds in args.datasets}
    report, correlations, noise = render(results, args, time.time() - started)
    print(report)
    out.write_text(report, encoding="utf-8")
    summary = {"results": results, "correlations": correlations, "noise": noise}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    sys.exit(main())
