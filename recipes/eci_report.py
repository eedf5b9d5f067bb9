"""The report of ``validate_eci.py``: rank correlations of each predictor with the seed-averaged nDCG@10,
the ceiling that training noise leaves a perfect predictor, and a scatter plot per dataset."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from evaluation import rank_correlations


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
