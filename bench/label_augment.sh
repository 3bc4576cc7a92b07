#!/usr/bin/env bash
# compare augmentation (authorship) and compare labeling (edition) at small sizes on a small base.
# usage: bench/label_augment.sh BASE OUT [augmentation|labeling|both]
#   BASE: an lmforge run or checkpoint (e.g. a smoke run); the two parts can run side by side
set -euo pipefail
BASE=${1:?base run or checkpoint}; OUT=${2:?output folder}; WHAT=${3:-both}
SMALL=(finetune.passage_chars=250 finetune.max_tokens=64 finetune.max_passages_per_doc=10 train.steps=30
       train.batch_size=16 train.eval_interval=30 eval.bootstrap_rounds=1000)
grep -m1 "model name" /proc/cpuinfo; grep -o -w -E "avx2|avx512f|avx512_bf16|amx_bf16" /proc/cpuinfo | sort -u | tr '\n' ' '; echo
python -c "import torch, cleanlab, sklearn; print('torch', torch.__version__, 'cleanlab', cleanlab.__version__, 'sklearn', sklearn.__version__)"
if [[ $WHAT != labeling ]]; then
  /usr/bin/time -f "augmentation wall %e s" lmforge compare augmentation "$BASE" "${SMALL[@]}" --sizes 16 --rate 0.1 -o "$OUT/augmentation"
fi
if [[ $WHAT != augmentation ]]; then
  /usr/bin/time -f "labeling wall %e s" lmforge compare labeling "$BASE" bench/labeling_edition.yaml "${SMALL[@]}" --budgets 16,48 -o "$OUT/labeling"
fi
