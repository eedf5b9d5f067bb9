#!/usr/bin/env bash
# NFCorpus held-out train queries (581), training seed 1, one run each: which negatives could separate
# Mafin mined from in-batch. Exploratory, not a benchmark stage; the top-1 mined reference is the λ sweep's
# run, benchmarks/results/mafin_seeds/sweep/nfcorpus/mafin-mined-w1/seed-1. Needs bench_mafin.py prepare's
# store. Run from the repository root: bash benchmarks/results/mafin_explore/commands.sh [DATA]
set -euo pipefail
DATA=${1:-../shared/data}
R="python recipes/train_with_hard_negatives.py --train $DATA/nfcorpus --train-split train --eval $DATA/nfcorpus:dev --max-seq-length 256 --batch-size 32 --epochs 1.0 --lr 2e-05 --max-train-pairs 2000"
# STORE: the black box's vectors (bench_mafin.py prepare's store; one made with --datasets nfcorpus alone does too)
STORE=${STORE:-benchmarks/results/cache/mafin/all-mpnet-base-v2-256.parquet}
BB="--black-box $STORE --black-box-name all-mpnet-base-v2"
X=benchmarks/results/mafin_explore/nfcorpus-heldout
C=benchmarks/results/cache/mafin_explore/nfcorpus
export HF_HUB_OFFLINE=1
mkdir -p "$X"
$R --strategy in-batch --num-negatives 1 --seed 1 --output $X/mafin-in-batch-w1/seed-1 --eval-heldout $BB --mafin-weight 1.0 > $X/in-batch.log 2>&1
$R --strategy black-box-hybrid --num-negatives 1 --sampling-strategy sampled --sample-pool 10 --seed 42 --mine-only --output $C/sampled1 $BB > $X/mine-sampled10.log 2>&1
$R --strategy dataset --dataset $C/sampled1/mined --num-negatives 1 --seed 1 --output $X/mafin-mined-sampled10-w1/seed-1 --eval-heldout $BB --mafin-weight 1.0 > $X/sampled10.log 2>&1
$R --strategy black-box-hybrid --num-negatives 3 --seed 42 --mine-only --output $C/top3 $BB > $X/mine-top3.log 2>&1
$R --strategy dataset --dataset $C/top3/mined --num-negatives 3 --seed 1 --output $X/mafin-mined-top3-w1/seed-1 --eval-heldout $BB --mafin-weight 1.0 > $X/top3.log 2>&1
# 2026-12-07: PercPos under the black box against each row's own positive (the documents the black box ranks above
# a row's positive but below 95% of it, other positives still excluded by id): the black box's own mistakes, where
# the lowest-positive rule keeps only documents below all 42 positives on average.
$R --strategy black-box-hybrid --num-negatives 1 --positive-reference own --seed 42 --mine-only --output $C/own1 $BB > $X/mine-own1.log 2>&1
$R --strategy dataset --dataset $C/own1/mined --num-negatives 1 --seed 1 --output $X/mafin-mined-own-w1/seed-1 --eval-heldout $BB --mafin-weight 1.0 > $X/own1.log 2>&1
# 2026-12-08: two epochs (the later --epochs wins), in-batch against top-1 mined: row 4's set as bench_mafin.py prepare
# mines it, not mined again here (today's code keeps 1,935 rows where the λ sweep's one-epoch run trained on 1,933).
$R --strategy in-batch --num-negatives 1 --seed 1 --epochs 2.0 --output $X/mafin-in-batch-w1-2ep/seed-1 --eval-heldout $BB --mafin-weight 1.0 > $X/in-batch-2ep.log 2>&1
$R --strategy dataset --dataset benchmarks/results/cache/mafin/nfcorpus/black-box-hybrid/mined --num-negatives 1 --seed 1 --epochs 2.0 --output $X/mafin-mined-w1-2ep/seed-1 --eval-heldout $BB --mafin-weight 1.0 > $X/mined-2ep.log 2>&1
# The table of all these runs against in-batch at the same epochs: results/mafin_explore/nfcorpus-heldout.md
python benchmarks/report_mafin_explore.py
