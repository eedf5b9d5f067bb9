"""Benchmark: does the label audit find label noise where the truth is known? And what does it flag in real data?

On the train split of each dataset (settings are chosen on these splits only):

1. **Synthetic noise.** Remove ``--noise`` (10%) of the labelled (query, positive) pairs, never a
   query's last one (they become missing labels), and add as many wrong positives: half random
   documents, half "hard but irrelevant" ones, i.e. the document labelled for a *different* query
   that BM25 ranks highest for this query (never one of the query's own positives). Then audit the
   noisy labels with the mining model (student, all-MiniLM-L6-v2), the teacher (all-mpnet-base-v2),
   and both, from the same gathered evidence, and report for each detector:

   - removed positives: ROC-AUC of the confidence over every unlabelled candidate, the rule's
     precision and recall, precision@k, and the best recall at precision >= 0.5 (walking the flags
     most-confident first); recall counts removed positives the retriever never surfaced as missed;
   - wrong positives: ROC-AUC of the confidence over every labelled positive (all, random only,
     hard only), the rule's precision and recall, precision@k;
   - calibration: mean confidence against the observed share, in bins.

2. **Real noise.** Audit the clean labels and list the top-confidence flags with their texts.

Usage::

    python benchmarks/bench_audit.py --datasets scifact nfcorpus --teacher "$(python recipes/prepare_mpnet_teacher.py)"

Writes ``benchmarks/results/audit.md`` and ``audit.json``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
VARIANTS = {"student": [0], "teacher": [1], "student + teacher": [0, 1]}


def inject_noise(data, rate: float, seed: int):
    """Noisy copy of ``data`` and the truth: removed pairs, added (pair, kind) with kind "random" or "hard"."""
    from st_hardneg.candidates import BM25Retriever
    from st_hardneg.data import MiningData

    rng = np.random.default_rng(seed)
    pairs = list(dict.fromkeys(data.pairs))
    positives: dict[int, set[int]] = {}
    for q, d in pairs:
        positives.setdefault(q, set()).add(d)
    n = round(rate * len(pairs))
    left = {q: len(p) for q, p in positives.items()}
    removed = []
    for i in rng.permutation(len(pairs)):
        q, d = pairs[i]
        if len(removed) == n:
            break
        if left[q] > 1:  # never a query's last positive: the query would leave the data
            left[q] -= 1
            removed.append((q, d))
    queries = sorted(positives)
    labelled_anywhere = {d for q, d in pairs}
    added: dict[tuple[int, int], str] = {}
    bm25 = BM25Retriever(show_progress=False)
    bm25.index(data.corpus_texts)
    picks = [queries[i] for i in rng.integers(len(queries), size=n)]
    hard_queries = picks[: n - n // 2]
    found, _ = bm25.search([data.query_texts[q] for q in hard_queries], 100)
    for q, row in zip(hard_queries, found):
        # The other query's positive BM25 ranks highest for this query (lexically close, labelled elsewhere).
        choice = next((int(d) for d in row if d >= 0 and int(d) in labelled_anywhere and int(d) not in positives[q]
                       and (q, int(d)) not in added), None)
        while choice is None or (q, choice) in added:
            choice = int(rng.choice(sorted(labelled_anywhere - positives[q])))
        added[(q, choice)] = "hard"
    for q in picks[n - n // 2:]:
        while True:
            d = int(rng.integers(len(data.corpus_texts)))
            if d not in positives[q] and (q, d) not in added:
                break
        added[(q, d)] = "random"
    gone = set(removed)
    noisy = [p for p in pairs if p not in gone] + list(added)
    out = MiningData(data.corpus_ids, data.corpus_texts, data.query_ids, data.query_texts, noisy,
                     f"{data.source} (+synthetic noise)")
    return out, set(removed), added


def _precision_at(order: np.ndarray, truth: np.ndarray, ks=(50, 100, 200)) -> dict[str, float]:
    return {f"p@{k}": float(truth[order[:k]].mean()) if len(order) >= k else float("nan") for k in ks}


def _best_recall(order: np.ndarray, truth: np.ndarray, total: int, min_precision: float = 0.5):
    """Best recall (of ``total``) over prefixes of ``order`` whose precision is >= ``min_precision``; and its cutoff."""
    hits = np.cumsum(truth[order])
    precision = hits / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(precision >= min_precision)
    if not len(ok):
        return 0.0, 0
    best = ok[np.argmax(hits[ok])]
    return float(hits[best] / total), int(best + 1)


def evaluate(evidence, removed, added, args) -> dict:
    from sklearn.metrics import roc_auc_score

    from st_hardneg.audit import score_items
    from st_hardneg.audit.labels import default_votes

    pairs = list(zip(np.asarray(evidence.query_order)[evidence.query].tolist(), evidence.doc.tolist()))
    unl = ~evidence.labelled
    lab = evidence.labelled
    is_removed = np.array([p in removed for p in pairs])
    kind = np.array([added.get(p, "") for p in pairs])
    is_wrong = kind != ""
    out = {"removed_total": len(removed), "removed_in_candidates": int((is_removed & unl).sum()),
           "added_total": len(added), "variants": {}}
    for name, models in VARIANTS.items():
        items = score_items(evidence, models=models, margin=args.margin, wrong_rank=args.wrong_rank, far=args.far,
                            outlier_threshold=args.outlier_threshold, seed=args.seed)
        votes = default_votes(len(models))
        res: dict = {"c": items["c"]}
        # Missing labels: every unlabelled candidate scored by P(relevant | x, unlabelled).
        conf = items["unlabelled_relevant"]
        u = np.flatnonzero(unl)
        truth_u = is_removed[u]
        res["missing_auc"] = float(roc_auc_score(truth_u, conf[u])) if 0 < truth_u.sum() < len(u) else float("nan")
        flagged = u[items["within"][u] >= votes]
        res["missing_rule"] = {"flags": len(flagged), "precision": float(is_removed[flagged].mean()) if len(flagged)
                               else float("nan"), "recall": float(is_removed[flagged].sum() / len(removed))}
        order = flagged[np.argsort(-items["order_missing"][flagged], kind="stable")]
        res["missing_rule"].update(_precision_at(order, is_removed))
        res["missing_rule"]["recall_at_p50"], res["missing_rule"]["cutoff"] = _best_recall(order, is_removed,
                                                                                           len(removed))
        order_all = u[np.argsort(-items["order_missing"][u], kind="stable")]
        res["missing_confidence"] = _precision_at(order_all, is_removed)
        res["missing_confidence"]["recall_at_p50"], res["missing_confidence"]["cutoff"] = _best_recall(
            order_all, is_removed, len(removed))
        res["missing_calibration"] = _calibration(conf[u], truth_u)
        # Wrong labels: every labelled positive scored by 1 - P(relevant | x).
        wrong_conf = 1 - items["relevant"]
        lpos = np.flatnonzero(lab)
        res["wrong_auc"] = float(roc_auc_score(is_wrong[lpos], wrong_conf[lpos]))
        for sub in ("random", "hard"):
            keep = lpos[(kind[lpos] == sub) | ~is_wrong[lpos]]
            res[f"wrong_auc_{sub}"] = float(roc_auc_score(kind[keep] == sub, wrong_conf[keep]))
        outlier = np.nan_to_num(items["outlier_z"], nan=0.0) < -args.outlier_threshold
        wflag = lpos[(items["wrong"][lpos] >= votes) | outlier[lpos]]
        res["wrong_rule"] = {"flags": len(wflag), "precision": float(is_wrong[wflag].mean()) if len(wflag)
                             else float("nan"), "recall": float(is_wrong[wflag].sum() / len(added))}
        # Least likely relevant first.
        res["wrong_rule"].update(_precision_at(lpos[np.argsort(items["order_relevant"][lpos], kind="stable")],
                                               is_wrong))
        res["wrong_mean_confidence"] = {"injected": float(wrong_conf[lpos][is_wrong[lpos]].mean()),
                                        "original": float(wrong_conf[lpos][~is_wrong[lpos]].mean())}
        out["variants"][name] = res
    return out


def _calibration(conf: np.ndarray, truth: np.ndarray, edges=(0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0001)) -> list[dict]:
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (conf >= lo) & (conf < hi)
        if mask.any():
            rows.append({"bin": f"{lo:.1f}-{min(hi, 1):.1f}", "n": int(mask.sum()), "mean_confidence": float(conf[mask].mean()),
                         "observed": float(truth[mask].mean())})
    return rows


def real_flags(evidence, names, args, top: int) -> list[dict]:
    from st_hardneg.audit import judge

    audit = judge(evidence, margin=args.margin, wrong_rank=args.wrong_rank, far=args.far,
                  outlier_threshold=args.outlier_threshold, seed=args.seed)
    audit.models = names
    rows = audit.review_rows(max_chars=220)
    summary = audit.summary()
    return {"summary": {k: summary[k] for k in ("queries", "positives", "candidates", "missing", "wrong")},
            "top_missing": [r for r in rows if r["kind"] == "missing"][: top // 2],
            "top_wrong": [r for r in rows if r["kind"] == "wrong"][: top // 2]}


def report(results: dict, args, started: float) -> str:
    lines = ["# Label audit on synthetic and real noise", "",
             f"- command: `{shlex.join(['python', 'benchmarks/bench_audit.py', *sys.argv[1:]])}`",
             f"- date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} CPU cores; "
             f"python {platform.python_version()}; whole run {(time.perf_counter() - started) / 60:.1f} min",
             f"- student all-MiniLM-L6-v2, teacher all-mpnet-base-v2, both at {args.max_seq_length} tokens; "
             f"k {args.k} candidates per query (dense, student); margin {args.margin}, wrong rank {args.wrong_rank}, "
             f"far {args.far}, outlier z {args.outlier_threshold}; votes: every model of the variant",
             f"- noise: {args.noise:.0%} of the labelled pairs removed (never a query's last), as many wrong "
             "positives added (half random, half the other-query positive BM25 ranks highest); seed "
             f"{args.seed}", ""]
    for ds, r in results.items():
        s = r["synthetic"]
        lines += [f"## {ds} train", "",
                  f"Removed positives: {s['removed_total']} ({s['removed_in_candidates']} among the top-{args.k} "
                  f"candidates, the recall ceiling {s['removed_in_candidates'] / max(1, s['removed_total']):.2f}); "
                  f"wrong positives added: {s['added_total']}.", "",
                  "### Removed positives (missing labels)", "",
                  "| detector | ROC-AUC | rule flags | rule precision | rule recall | P@50 | P@100 | P@200 | "
                  "recall at precision ≥ 0.5 (rule) | same, confidence alone |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, v in s["variants"].items():
            m, c = v["missing_rule"], v["missing_confidence"]
            lines.append(f"| {name} | {v['missing_auc']:.3f} | {m['flags']} | {m['precision']:.3f} | {m['recall']:.3f} | "
                         f"{m['p@50']:.2f} | {m['p@100']:.2f} | {m['p@200']:.2f} | {m['recall_at_p50']:.3f} "
                         f"({m['cutoff']} flags) | {c['recall_at_p50']:.3f} ({c['cutoff']}) |")
        lines += ["", "### Wrong positives", "",
                  "| detector | ROC-AUC all | random | hard | rule flags | rule precision | rule recall | P@50 | P@100 | "
                  "mean confidence injected / original |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, v in s["variants"].items():
            w = v["wrong_rule"]
            mc = v["wrong_mean_confidence"]
            lines.append(f"| {name} | {v['wrong_auc']:.3f} | {v['wrong_auc_random']:.3f} | {v['wrong_auc_hard']:.3f} | "
                         f"{w['flags']} | {w['precision']:.3f} | {w['recall']:.3f} | {w['p@50']:.2f} | {w['p@100']:.2f} | "
                         f"{mc['injected']:.2f} / {mc['original']:.2f} |")
        both = s["variants"]["student + teacher"]
        lines += ["", "### Calibration of the missing-label confidence (student + teacher)", "",
                  f"Estimated P(labelled | relevant) c = {both['c']:.3f}. *observed*: share of removed positives "
                  "among the unlabelled candidates in the bin (real missing labels count as wrong here, so it is a "
                  "lower bound).", "", "| confidence | candidates | mean confidence | observed |",
                  "|---|---:|---:|---:|"]
        for row in both["missing_calibration"]:
            lines.append(f"| {row['bin']} | {row['n']} | {row['mean_confidence']:.3f} | {row['observed']:.3f} |")
        real = r["real"]
        lines += ["", f"### Real labels: top flags ({real['summary']['missing']['flags']} missing-label and "
                  f"{real['summary']['wrong']['flags']} wrong-label flags over {real['summary']['queries']} queries)", ""]
        for title, rows in (("likely missing", real["top_missing"]), ("likely wrong", real["top_wrong"])):
            lines += [f"**{title}**", "", "| conf. | query | document | student / teacher score (rank) | reason |",
                      "|---:|---|---|---|---|"]
            for row in rows:
                sc = f"{row['student score']:.3f} ({row['student rank']}) / {row['teacher score']:.3f} ({row['teacher rank']})"
                lines.append(f"| {row['confidence']:.3f} | {_cell(row['query'])} | {_cell(row['document'])} | {sc} | "
                             f"{_cell(row['reason'])} |")
            lines.append("")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _gathered(path: Path, gather):
    """The gathered evidence, pickled under ``--evidence-cache`` so the detectors can be re-run without encoding."""
    import pickle

    if path.is_file():
        with path.open("rb") as fh:
            return pickle.load(fh)
    result = gather()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pickle.dump(result, fh)
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus"])
    p.add_argument("--teacher", required=True, help="all-mpnet-base-v2 folder (recipes/prepare_mpnet_teacher.py)")
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--margin", type=float, default=0.05)
    p.add_argument("--wrong-rank", type=int, default=10)
    p.add_argument("--far", type=float, default=0.2)
    p.add_argument("--outlier-threshold", type=float, default=3.5)
    p.add_argument("--noise", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=20, help="real flags listed per dataset")
    p.add_argument("--cache-folder", default="auto")
    p.add_argument("--evidence-cache", default=str(RESULTS / "cache" / "audit"),
                   help="where gathered evidence is pickled (delete it after changing the models or k)")
    p.add_argument("--output", default=str(RESULTS / "audit.md"))
    args = p.parse_args(argv)
    from sentence_transformers import SentenceTransformer

    from st_hardneg import load_beir, load_model
    from st_hardneg.audit import gather_evidence

    started = time.perf_counter()
    student = load_model(None, max_seq_length=args.max_seq_length)
    teacher = SentenceTransformer(args.teacher, device="cpu")
    teacher.max_seq_length = args.max_seq_length
    results = {}
    for ds in args.datasets:
        clean = load_beir(Path(args.data) / ds, "train")
        noisy, removed, added = inject_noise(clean, args.noise, args.seed)
        kw = {"teacher": [teacher], "k": args.k, "cache_folder": args.cache_folder, "verbose": True}
        # Everything that changes the evidence is in the file name.
        tag = f"k{args.k}-len{args.max_seq_length}-{Path(args.teacher).name}"
        evidence, _ = _gathered(Path(args.evidence_cache) / f"{ds}-noisy{args.noise}-seed{args.seed}-{tag}.pkl",
                                lambda data=noisy, kw=kw: gather_evidence(data, student, **kw))
        synthetic = evaluate(evidence, removed, added, args)
        evidence, names = _gathered(Path(args.evidence_cache) / f"{ds}-clean-{tag}.pkl",
                                    lambda data=clean, kw=kw: gather_evidence(data, student, **kw))
        results[ds] = {"synthetic": synthetic, "real": real_flags(evidence, names, args, args.top)}
        print(f"{ds}: done in {(time.perf_counter() - started) / 60:.1f} min", flush=True)
    text = report(results, args, started)
    print(text)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
