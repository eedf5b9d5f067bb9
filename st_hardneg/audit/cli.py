"""`st-hardneg audit`: argument parsing for the label audit (the work is :func:`~st_hardneg.audit.audit_labels`)."""

from __future__ import annotations

import argparse

from ..models import BACKENDS


def add_audit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="find likely missing and wrong relevance labels, with evidence, for review and correction",
        description=(
            "Audit relevance labels: unlabelled documents that the mining model and the teacher(s) score at or "
            "near a labelled positive (likely missing labels, the false negatives mining would drop), and "
            "labelled positives both rank far down or that are outliers among their query's positives (likely "
            "wrong labels). Every flag has its scores, ranks, reason and a calibrated confidence. Writes "
            "review.jsonl / review.csv (most likely errors first), summary.txt, qrels/corrected.tsv and "
            "audit.json (for `st-hardneg mine --relabel`). Without --data, audits the embedded SciFact sample."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", default=None, help="BEIR folder, pairs file or dataset, as for `st-hardneg mine` "
                                                "(default: the embedded SciFact sample)")
    p.add_argument("--split", default="train", help="qrels split of a BEIR folder, or split of a Hub dataset")
    p.add_argument("--corpus", default=None, help="separate corpus for a dataset of pairs")
    p.add_argument("--relevance-threshold", type=float, default=0.0,
                   help="BEIR qrels: a judgment is a positive when its score is strictly above this (as for mine)")
    p.add_argument("--model", default=None, help="the mining model (default: all-MiniLM-L6-v2)")
    p.add_argument("--teacher", action="append", default=None,
                   help="teacher model name or path; repeat for a second teacher (a third vote)")
    p.add_argument("--retriever", choices=["dense", "bm25", "hybrid"], default="dense", help="candidate source")
    p.add_argument("--k", type=int, default=100, help="candidates examined per query")
    p.add_argument("--margin", type=float, default=0.05,
                   help="missing labels: a vote when a candidate scores within this fraction of the query's positive "
                        "(the median one when there are several)")
    p.add_argument("--wrong-rank", type=int, default=10,
                   help="wrong labels: a vote when at least this many unlabelled candidates outscore a positive")
    p.add_argument("--far", type=float, default=0.2,
                   help="wrong labels: and scores this fraction under the median of the query's other positives")
    p.add_argument("--outlier-threshold", type=float, default=3.5,
                   help="wrong labels: modified z-score under which a positive is an embedding outlier")
    p.add_argument("--min-votes", type=int, default=None,
                   help="models that must agree (default: all of one or two models, a majority of three or more)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="confidence at which qrels/corrected.tsv (and --relabel) apply a flag")
    p.add_argument("--write-corrected", default=None, metavar="DIR",
                   help="also write the corrected data as a BEIR folder (corpus, queries, qrels) that `st-hardneg "
                        "mine --data`, the collator and the recipes read")
    p.add_argument("--batch-size", type=int, default=32, help="encoding batch size")
    p.add_argument("--max-seq-length", type=int, default=None, help="truncate texts to this many tokens")
    p.add_argument("--backend", choices=BACKENDS, default="torch", help="runtime that encodes")
    p.add_argument("--cache-folder", default="auto", help="embedding cache folder ('auto': ~/.cache/st_hardneg)")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration folds")
    p.add_argument("--output", default="audit", help="folder for the review files, summary, qrels and audit.json")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars or info logging")
    p.set_defaults(func=run_audit)


def run_audit(args: argparse.Namespace) -> int:
    from ..result import check_output
    from ..sample import sample_data_path
    from .labels import audit_labels

    inputs = tuple(p for p in (args.data or sample_data_path(), args.corpus) if p)
    for target in (args.output, args.write_corrected):
        if target:
            check_output(target, overwrite=args.overwrite, inputs=inputs)
    audit = audit_labels(
        args.data or sample_data_path(), args.model, teacher=args.teacher, split=args.split, corpus=args.corpus,
        relevance_threshold=args.relevance_threshold,
        k=args.k, margin=args.margin, wrong_rank=args.wrong_rank, far=args.far,
        outlier_threshold=args.outlier_threshold, min_votes=args.min_votes, threshold=args.threshold,
        retriever=args.retriever, batch_size=args.batch_size, max_seq_length=args.max_seq_length,
        backend=args.backend, cache_folder=args.cache_folder, seed=args.seed, verbose=not args.quiet,
    )
    folder = audit.save(args.output, overwrite=args.overwrite)
    print(audit.table())
    print(f"\nwrote the review (review.jsonl, review.csv), summary.txt, qrels/corrected.tsv and audit.json to {folder}")
    if args.write_corrected:
        print(f"wrote the corrected data (BEIR) to {audit.write_beir(args.write_corrected, overwrite=args.overwrite)}")
    return 0
