#!/usr/bin/env bash
# GPU checks of the trainer, for one short lease of a CUDA machine (written for one H200).
#
# Run from the repository root on the GPU machine, with the pydantic wheels carried in .whl/
# (the device image has torch, numpy, PyYAML and safetensors, but not pydantic):
#   bash bench/gpu_check.sh            # results under $OUT (or ./gpu-results without OUT)
# Prepare the wheels once on the developer machine (python 3.12, manylinux x86-64):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl pydantic==2.14.4 pydantic-core==2.50.5 \
#     annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0
#
# Parts, most important first; each is guarded by a timeout, and a part that would start after
# BUDGET_S seconds is skipped, so the whole script ends within about 7 minutes:
#   precision       bf16 autocast and fp16+GradScaler steps against fp32 (same weights, batches)
#   gpt2 compile    GPT-2 124M, bf16, torch.compile: tokens/s and MFU (goal >= 50%)
#   default bf16    the default preset's model (4x4x128, ctx 128, batch 16), bf16
#   ddp / fsdp      torchrun --nproc_per_node 1 smokes (NCCL)
#   gpt2 eager, default fp32
#   gpt2_compile_b32/_b64  the same at batch 32 and 64 (does a bigger batch lift MFU?)
#   gpt2_compile_eagerloss  batch 16 with the loss left out of torch.compile (what compiling the
#                     loss over the 50k vocabulary gained)
#   gpt2_compile_raw  batch 16 in a plain loop without per-step host syncs (what do the trainer's
#                     syncs and host work cost?)
# ONLY="part part" runs just the named parts, e.g.
#   ONLY="gpt2_compile gpt2_compile_eagerloss gpt2_compile_raw gpt2_compile_b32 gpt2_compile_b64"
#   (the MFU questions).
# Output: $OUT/results.jsonl (one JSON object per check), $OUT/gpu_check.log, $OUT/env.txt.
set -u
OUT="${OUT:-$PWD/gpu-results}"
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
BUDGET_S="${BUDGET_S:-400}"
START=$(date +%s)
exec > >(tee -a "$LOG") 2>&1

PY=${PY:-python3}
{
  date; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
  $PY -c "import sys, torch; print('python', sys.version.split()[0]); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# a venv that sees the image's torch; pydantic from the carried wheels when the image lacks it.
# The image's python3 is itself a venv, whose packages --system-site-packages would not show, so
# a .pth file links the new venv to them.
VENV=/tmp/lmforge-gpu-venv
BASE_SITE=$($PY -c "import site; print(':'.join(site.getsitepackages()))")
if [ ! -x "$VENV/bin/python" ] && $PY -m venv --without-pip "$VENV"; then
  VSITE=$("$VENV/bin/python" -c "import site; print(site.getsitepackages()[0])")
  echo "$BASE_SITE" | tr ':' '\n' > "$VSITE/image-packages.pth"
fi
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  PY="$VENV/bin/python"
else
  echo "venv unusable: using the image's python3 with a --target folder"; VENV=""
fi
if ! $PY -c "import pydantic" 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    # pip runs from the image's python (the venv has none); --target is the venv's site-packages
    TARGET=${VSITE:-/tmp/lmforge-site}
    python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$TARGET" .whl/*.whl \
      || echo "wheel install failed"
    [ -z "$VENV" ] && export PYTHONPATH="$TARGET"
  else
    echo "pydantic is missing and no .whl/ was carried: the checks will fail (see the header)"
  fi
fi
$PY -c "import pydantic, torch; print('pydantic', pydantic.VERSION, 'torch', torch.__version__)"
export PYTHONPATH="$PWD/src:$PWD/bench${PYTHONPATH:+:$PYTHONPATH}" OUT PYTHONUNBUFFERED=1
TORCHRUN="$PY -m torch.distributed.run --standalone --nproc_per_node 1"

part() {  # part NAME TIMEOUT_S COMMAND...
  local name=$1 limit=$2; shift 2
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi  # ONLY="a b": just those parts
  local now=$(( $(date +%s) - START ))
  if [ "$now" -ge "$BUDGET_S" ]; then echo "== $name: skipped (budget ${BUDGET_S}s spent)"; return; fi
  [ $((now + limit)) -gt $((BUDGET_S + 60)) ] && limit=$((BUDGET_S + 60 - now))
  echo "== $name (limit ${limit}s, at ${now}s)"
  timeout --kill-after=10 "$limit" "$@"; local rc=$?
  [ $rc -ne 0 ] && echo "== $name: exit $rc" && echo "{\"check\": \"$name\", \"failed\": $rc}" >> "$OUT/results.jsonl"
  return 0
}

part precision      80 $PY bench/gpu_train.py precision --steps 60
part gpt2_compile  180 $PY bench/gpu_train.py throughput --model gpt2-124m --dtype bfloat16 --batch 16 --compile --warmup 8 --steps 20
part default_bf16   45 $PY bench/gpu_train.py throughput --model default --dtype bfloat16 --batch 16 --warmup 10 --steps 50
part ddp            60 $TORCHRUN bench/gpu_train.py ddp
part gpt2_eager     60 $PY bench/gpu_train.py throughput --model gpt2-124m --dtype bfloat16 --batch 16 --warmup 3 --steps 10
part fsdp           60 $TORCHRUN bench/gpu_train.py ddp --fsdp
part gpt2_compile_b32 120 $PY bench/gpu_train.py throughput --model gpt2-124m --dtype bfloat16 --batch 32 --compile --warmup 8 --steps 20
part gpt2_compile_b64 120 $PY bench/gpu_train.py throughput --model gpt2-124m --dtype bfloat16 --batch 64 --compile --warmup 8 --steps 20
part gpt2_compile_eagerloss 120 $PY bench/gpu_train.py throughput --model gpt2-124m --dtype bfloat16 --batch 16 --compile --warmup 8 --steps 20 --eager-loss
part gpt2_compile_raw 120 $PY bench/gpu_train.py throughput --model gpt2-124m --dtype bfloat16 --batch 16 --compile --warmup 8 --steps 20 --loop raw
part default_fp32   40 $PY bench/gpu_train.py throughput --model default --dtype float32 --batch 16 --warmup 10 --steps 50

echo "== done in $(( $(date +%s) - START ))s; results:"
cat "$OUT/results.jsonl" 2>/dev/null
