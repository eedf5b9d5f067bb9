"""Rebuild the embedded default dataset (``st_hardneg/sample/scifact_sample``) from SciFact.

Takes the first 60 SciFact train queries (by qrels order), all their positive documents, and the
BM25 top-8 documents of each query as realistic distractors, topped up with the lowest-id remaining
documents to 450 documents; keeps the data under 1 MB.

    python recipes/build_embedded_sample.py --data ../shared/data/scifact
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from st_hardneg.candidates.bm25 import BM25Retriever
from st_hardneg.data import read_qrels

OUT = Path(__file__).resolve().parents[1] / "st_hardneg" / "sample" / "scifact_sample"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/scifact", help="the SciFact BEIR folder")
    parser.add_argument("--queries", type=int, default=60, help="train queries to keep")
    parser.add_argument("--docs", type=int, default=450, help="corpus size to reach")
    args = parser.parse_args()
    src = Path(args.data)
    corpus = [json.loads(line) for line in (src / "corpus.jsonl").open(encoding="utf-8")]
    queries = {q["_id"]: q for q in map(json.loads, (src / "queries.jsonl").open(encoding="utf-8"))}
    qrels = read_qrels(src / "qrels" / "train.tsv")
    chosen: list[str] = []
    for _, qid, _, _ in qrels:
        if qid not in chosen:
            chosen.append(qid)
        if len(chosen) == args.queries:
            break
    keep_qrels = [(q, d, s) for _, q, d, s in qrels if q in chosen]
    doc_ids = list(dict.fromkeys(d for _, d, _ in keep_qrels))
    bm25 = BM25Retriever(show_progress=False)
    bm25.index([f"{d.get('title', '')} {d['text']}" for d in corpus])
    indices, _ = bm25.search([queries[q]["text"] for q in chosen], 8)
    for row in indices:
        for i in row:
            if corpus[i]["_id"] not in doc_ids:
                doc_ids.append(corpus[i]["_id"])
    for doc in sorted(corpus, key=lambda d: int(d["_id"])):
        if len(doc_ids) >= args.docs:
            break
        if doc["_id"] not in doc_ids:
            doc_ids.append(doc["_id"])
    wanted = set(doc_ids)
    (OUT / "qrels").mkdir(parents=True, exist_ok=True)
    with (OUT / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for doc in corpus:
            if doc["_id"] in wanted:
                f.write(json.dumps({"_id": doc["_id"], "title": doc["title"], "text": doc["text"]}) + "\n")
    with (OUT / "queries.jsonl").open("w", encoding="utf-8") as f:
        for qid in chosen:
            f.write(json.dumps({"_id": qid, "text": queries[qid]["text"]}) + "\n")
    with (OUT / "qrels" / "train.tsv").open("w", encoding="utf-8", newline="") as f:
        f.write("query-id\tcorpus-id\tscore\r\n")
        for q, d, s in keep_qrels:
            f.write(f"{q}\t{d}\t{s}\r\n")
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {len(chosen)} queries, {len(wanted)} documents, {len(keep_qrels)} qrels, {size:,} bytes to {OUT}")


if __name__ == "__main__":
    main()
