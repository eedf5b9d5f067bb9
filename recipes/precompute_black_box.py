"""Embed every text of BEIR datasets with a frozen model into one parquet store, as a black box would.

Mafin (``st_hardneg.mafin``) treats the black box as weights it cannot see: an API that returns
vectors. This recipe plays that API once, offline: it embeds each dataset's corpus and every query
of every qrels split with the given model and writes ``text_sha256`` and ``embedding`` columns,
which ``st_hardneg.mafin.PrecomputedBlackBox`` reads (``load_black_box`` and the recipe's
``--black-box`` take the name from the store's own record). From then on the model's weights are
never loaded again: the recipe and the benchmark see only the vectors.

Texts are embedded through a ``VectorCache`` with a folder beside the output, so an interrupted run
resumes where it stopped (each chunk is saved as it is done; a folder left by another model or max
length is refused); the store is written at the end.

    python recipes/precompute_black_box.py --model "$(python recipes/prepare_mpnet_teacher.py)" \
        --datasets scifact nfcorpus --output benchmarks/results/cache/mafin/all-mpnet-base-v2-256.parquet
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_with_hard_negatives import resolve_dataset  # noqa: E402

logger = logging.getLogger("precompute_black_box")


HUB_SPLITS = ("train", "dev", "test")


def dataset_texts(spec: str) -> list[str]:
    """Every document (title + text, as ``load_beir`` and the evaluators give it) and query text of a BEIR dataset.

    Args:
        spec (str): A BEIR folder, a name under ``../shared/data`` or a Hub dataset name. A folder's
            splits are its ``qrels/*.tsv``; a Hub dataset's, those of ``train``, ``dev`` and ``test`` it has.
    """
    from st_hardneg import load_beir

    folder = resolve_dataset(spec)
    qrels = Path(folder) / "qrels"
    local = qrels.is_dir()
    texts: list[str] = []
    for split in sorted(p.stem for p in qrels.glob("*.tsv")) if local else HUB_SPLITS:
        try:
            data = load_beir(folder, split)
        except Exception:  # noqa: BLE001 - a Hub dataset without this split (its loaders raise several types)
            if local:
                raise
            logger.info("%s: no %s split", spec, split)
            continue
        if not texts:
            texts.extend(data.corpus_texts)
        texts.extend(data.query_texts)
    if not texts:
        raise SystemExit(f"{spec}: no split of {', '.join(HUB_SPLITS)} could be read")
    return texts


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the black box's model (a SentenceTransformer folder or name)")
    p.add_argument("--name", default=None, help="the black box's name in caches and cards (default: the model's "
                                                "folder name)")
    p.add_argument("--datasets", nargs="+", required=True, help="BEIR folders, names under ../shared/data, or Hub names")
    p.add_argument("--max-seq-length", type=int, default=256, help="the model's max tokens (default 256)")
    p.add_argument("--batch-size", type=int, default=32, help="encoding batch size")
    p.add_argument("--output", required=True, help="parquet file to write")
    return p.parse_args(argv)


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(argv)
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sentence_transformers import SentenceTransformer

    from st_hardneg.mafin import ModelBlackBox, VectorCache, text_hash
    from st_hardneg.mafin.blackbox import STORE_RECORD

    name = args.name or Path(args.model.rstrip("/")).name
    texts = list(dict.fromkeys(t for spec in args.datasets for t in dataset_texts(spec)))
    texts.sort(key=len, reverse=True)  # chunks of similar length pad little
    model = SentenceTransformer(args.model)
    model.max_seq_length = args.max_seq_length
    output = Path(args.output)
    parts = output.with_name(output.stem + ".parts")
    made_by = {"model": str(Path(args.model).expanduser().resolve()) if Path(args.model).expanduser().exists()
               else args.model, "max_seq_length": args.max_seq_length}
    kept = parts / "made_by.json"
    if kept.is_file() and json.loads(kept.read_text()) != made_by:  # resuming another model's vectors would mix them
        raise SystemExit(f"{parts}: holds vectors of {json.loads(kept.read_text())}, not {made_by}; delete it or "
                         "choose another --output")
    parts.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps(made_by), encoding="utf-8")
    cache = VectorCache(ModelBlackBox(model, name=name, batch_size=args.batch_size), folder=parts, chunk_size=256)
    logger.info("%s: %d distinct texts, %d already embedded", name, len(texts), len(cache))
    vectors = []
    for start in tqdm(range(0, len(texts), cache.chunk_size), desc=f"embedding with {name}", unit="chunk"):
        vectors.append(cache.embed(texts[start:start + cache.chunk_size]))
    matrix = np.concatenate(vectors)
    table = pa.table({"text_sha256": [text_hash(t) for t in texts], "embedding": list(matrix)})
    meta = {"black_box": name, "model": str(args.model), "max_seq_length": args.max_seq_length,
            "datasets": args.datasets, "texts": len(texts), "dim": int(matrix.shape[1])}
    table = table.replace_schema_metadata({STORE_RECORD: json.dumps(meta).encode()})
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, output)
    print(f"{output}: {len(texts)} vectors of {matrix.shape[1]} dims ({name}, max length {args.max_seq_length})")


if __name__ == "__main__":
    main()
