"""Embed every text of BEIR datasets with a frozen model into one parquet store, as a black box would;
and open a store (or a frozen model) as the black box of the recipe's ``--black-box``.

Mafin (``st_hardneg.mafin``) treats the black box as weights it cannot see: an API that returns
vectors. This recipe plays that API once, offline: it embeds each dataset's corpus and every query
of every qrels split with the given model and writes ``text_sha256`` and ``embedding`` columns,
which ``st_hardneg.mafin.PrecomputedBlackBox`` reads. From then on the model's weights are never
loaded again: the recipe and the benchmark see only the vectors.

Texts are embedded through a ``VectorCache`` with a folder beside the output, so an interrupted run
resumes where it stopped (each chunk is saved as it is done); the store is written at the end.

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


def dataset_texts(spec: str) -> list[str]:
    """Every document (title + text, as ``load_beir`` and the evaluators give it) and query text of a BEIR dataset."""
    from st_hardneg import load_beir

    folder = resolve_dataset(spec)
    qrels = Path(folder) / "qrels"
    splits = sorted(p.stem for p in qrels.glob("*.tsv")) if qrels.is_dir() else ["train", "test"]
    texts: list[str] = []
    for split in splits:
        data = load_beir(folder, split)
        if not texts:
            texts.extend(data.corpus_texts)
        texts.extend(data.query_texts)
    return texts


def load_black_box(spec: str, name: str | None = None):
    """The black box of ``--black-box``: a parquet store of precomputed vectors, or a frozen model's folder.

    A store's name comes from ``name``, else from the record ``precompute_black_box.py`` writes into
    it; a store with neither is refused (caches and cards key on the name).
    """
    from st_hardneg.mafin import ModelBlackBox, PrecomputedBlackBox

    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "modules.json").is_file():
            raise SystemExit(f"--black-box {spec}: a folder must be a SentenceTransformer model (no modules.json)")
        return ModelBlackBox(str(path), name=name or path.name)
    if not path.is_file():
        raise SystemExit(f"--black-box {spec}: no such file or folder")
    import pyarrow.parquet as pq

    try:
        meta = (pq.read_schema(path).metadata or {}).get(b"st_hardneg")
    except Exception as error:  # noqa: BLE001 - any unreadable file: one clear line
        raise SystemExit(f"--black-box {spec}: not a parquet store ({error})") from error
    name = name or (json.loads(meta).get("black_box") if meta else None)
    if not name:
        raise SystemExit(f"--black-box {spec}: the store does not record its black box's name; give --black-box-name")
    try:
        return PrecomputedBlackBox(path, name=name)
    except ValueError as error:
        raise SystemExit(f"--black-box {spec}: {error}") from error


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

    name = args.name or Path(args.model.rstrip("/")).name
    texts = list(dict.fromkeys(t for spec in args.datasets for t in dataset_texts(spec)))
    texts.sort(key=len, reverse=True)  # chunks of similar length pad little
    model = SentenceTransformer(args.model)
    model.max_seq_length = args.max_seq_length
    output = Path(args.output)
    cache = VectorCache(ModelBlackBox(model, name=name, batch_size=args.batch_size),
                        folder=output.with_name(output.stem + ".parts"), chunk_size=256)
    logger.info("%s: %d distinct texts, %d already embedded", name, len(texts), len(cache))
    vectors = []
    for start in tqdm(range(0, len(texts), cache.chunk_size), desc=f"embedding with {name}", unit="chunk"):
        vectors.append(cache.embed(texts[start:start + cache.chunk_size]))
    matrix = np.concatenate(vectors)
    table = pa.table({"text_sha256": [text_hash(t) for t in texts], "embedding": list(matrix)})
    meta = {"black_box": name, "model": str(args.model), "max_seq_length": args.max_seq_length,
            "datasets": args.datasets, "texts": len(texts), "dim": int(matrix.shape[1])}
    table = table.replace_schema_metadata({b"st_hardneg": json.dumps(meta).encode()})
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, output)
    print(f"{output}: {len(texts)} vectors of {matrix.shape[1]} dims ({name}, max length {args.max_seq_length})")


if __name__ == "__main__":
    main()
