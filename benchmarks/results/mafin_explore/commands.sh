# NFCorpus held-out train queries (581), training seed 1, one run each: which negatives could separate Mafin mined from in-batch.
# Exploratory (not a benchmark stage); the mined-w1 reference is benchmarks/results/mafin_seeds/sweep/nfcorpus/mafin-mined-w1/seed-1.
# run from the repository root
R="python recipes/train_with_hard_negatives.py --train /work/shared/data/nfcorpus --train-split train --eval /work/shared/data/nfcorpus:dev --max-seq-length 256 --batch-size 32 --epochs 1.0 --lr 2e-05 --max-train-pairs 2000"
BB="--black-box benchmarks/results/cache/mafin/all-mpnet-base-v2-256.parquet --black-box-name all-mpnet-base-v2"
X=benchmarks/results/mafin_explore/nfcorpus-heldout
C=benchmarks/results/cache/mafin_explore/nfcorpus
export HF_HUB_OFFLINE=1
echo "[$(date +%T)] in-batch"; $R --strategy in-batch --num-negatives 1 --seed 1 --output $X/mafin-in-batch-w1/seed-1 --eval-heldout $BB --mafin-weight 1.0 > /tmp/ex/inbatch.log 2>&1
echo "[$(date +%T)] mine sampled"; $R --strategy black-box-hybrid --num-negatives 1 --sampling-strategy sampled --sample-pool 10 --seed 42 --mine-only --output $C/sampled1 $BB > /tmp/ex/mine_s.log 2>&1
echo "[$(date +%T)] train sampled"; $R --strategy dataset --dataset $C/sampled1/mined --num-negatives 1 --seed 1 --output $X/mafin-mined-sampled10-w1/seed-1 --eval-heldout $BB --mafin-weight 1.0 > /tmp/ex/sampled.log 2>&1
echo "[$(date +%T)] mine top3"; $R --strategy black-box-hybrid --num-negatives 3 --seed 42 --mine-only --output $C/top3 $BB > /tmp/ex/mine_3.log 2>&1
echo "[$(date +%T)] train top3"; $R --strategy dataset --dataset $C/top3/mined --num-negatives 3 --seed 1 --output $X/mafin-mined-top3-w1/seed-1 --eval-heldout $BB --mafin-weight 1.0 > /tmp/ex/top3.log 2>&1
echo "[$(date +%T)] done"
