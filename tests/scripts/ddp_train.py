"""Run by tests/test_collator.py under `accelerate launch --cpu --num_processes 2`.

Trains 2 steps with MiningDataCollator (refresh after step 1) on the embedded sample and writes,
per rank, a fingerprint of the pools before and after the refresh.
"""

import hashlib
import json
import os

import datasets
import torch.distributed as dist
from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.sentence_transformer import losses

from st_hardneg import MiningDataCollator, load_beir, load_model, sample_data_path


def pools_digest(collator):
    h = hashlib.sha256()
    for docs, stale in zip(collator._state["docs"], collator._state["stale"]):
        h.update(docs.tobytes())
        h.update(repr(sorted(stale)).encode())
    return h.hexdigest()


def main():
    out = os.environ["ST_HARDNEG_TEST_OUT"]
    data = load_beir(sample_data_path())
    dataset = datasets.Dataset.from_dict({
        "anchor": [data.query_texts[q] for q, _ in data.pairs],
        "positive": [data.corpus_texts[d] for _, d in data.pairs],
    })
    model = load_model(None, max_seq_length=32)
    args = SentenceTransformerTrainingArguments(output_dir=os.path.join(out, "ddp"), per_device_train_batch_size=4,
                                                max_steps=2, report_to=[], save_strategy="no", seed=0, use_cpu=True,
                                                learning_rate=1e-3)
    collator = MiningDataCollator(model, dataset, args=args, num_negatives=2, refresh="rescore", refresh_steps=1,
                                  verbose=False)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset,
                                         loss=losses.MultipleNegativesRankingLoss(model), data_collator=collator,
                                         callbacks=[collator.refresh_callback])
    before = pools_digest(collator)
    # Read while training is live: the trainer may tear the process group down when it ends.
    rank, world = dist.get_rank(), dist.get_world_size()
    trainer.train()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"world": world, "pools": before, "after_refresh": pools_digest(collator),
                   "refreshes": len(collator.refreshes), "stale": collator.refreshes[-1]["stale"]}, f)


if __name__ == "__main__":
    main()
