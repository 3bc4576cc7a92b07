#!/usr/bin/env bash
# compare augmentation (authorship) and compare labeling (edition) on a pretrained base.
# usage: bench/label_augment.sh BASE OUT [augmentation|labeling|both] [tiny|small] [extra key=value ...]
#   BASE: an lmforge run or checkpoint. tiny: 250-character passages read as 64 tokens, 30 steps,
#   16 passages (a smoke base); small: 500-character passages read as 128 tokens, 60 steps, 16 and
#   64 passages (the fine-tuning base of docs/benchmarks.md). Run the two parts one after the other.
set -euo pipefail
BASE=${1:?base run or checkpoint}; OUT=${2:?output folder}; WHAT=${3:-both}; SIZE=${4:-tiny}
shift $(( $# < 4 ? $# : 4 ))
case $SIZE in
  tiny)  KEYS=(finetune.passage_chars=250 finetune.max_tokens=64 finetune.max_passages_per_doc=10 train.steps=30
               train.batch_size=16 train.eval_interval=30 eval.bootstrap_rounds=1000)
         SIZES=16; BUDGETS=16,48 ;;
  small) KEYS=(finetune.passage_chars=500 finetune.max_tokens=128 finetune.max_passages_per_doc=20 train.steps=60
               train.batch_size=16 train.eval_interval=60 eval.bootstrap_rounds=1000 train.threads=1)
         SIZES=16,64; BUDGETS=16,48 ;;
  *) echo "size must be tiny or small" >&2; exit 2 ;;
esac
grep -m1 "model name" /proc/cpuinfo; grep -o -w -E "avx2|avx512f|avx512_bf16|amx_bf16" /proc/cpuinfo | sort -u | tr '\n' ' '; echo
python -c "import torch, cleanlab, sklearn; print('torch', torch.__version__, 'cleanlab', cleanlab.__version__, 'sklearn', sklearn.__version__)"
if [[ $WHAT != labeling ]]; then
  /usr/bin/time -f "augmentation wall %e s" lmforge compare augmentation "$BASE" "${KEYS[@]}" "$@" --sizes "$SIZES" --rate 0.1 -o "$OUT/augmentation"
fi
if [[ $WHAT != augmentation ]]; then
  /usr/bin/time -f "labeling wall %e s" lmforge compare labeling "$BASE" bench/labeling_edition.yaml "${KEYS[@]}" "$@" --budgets "$BUDGETS" -o "$OUT/labeling"
fi
