#!/usr/bin/env bash
# The GPU figures of docs/BENCHMARKS.md in one call, on the JAX backend with
# no TensorFlow (as the lent H100/H200 machines have). From the project root,
# with Keras on PYTHONPATH (see the README, "Training without TensorFlow"):
#
#   OUT=/tmp/out PEAK=790 bash benchmarks/gpu_check.sh
#
# PEAK: the card's measured bf16 matrix rate in TFLOP/s (about 790 on an
# H200). SMOKE=1 shrinks every run to check the script on a CPU. Each line
# is one process: float32 against mixed_bfloat16 in the same run, images
# fed as uint8. Results go to $OUT/<run>/results.json; the tables last.
set -u
OUT=${OUT:-benchmark_out}
PEAK=${PEAK:-790}
SIZE=128 STEPS=20 EPOCHS=3 UNET_BATCH=128 MNV2_BATCH=256
if [ "${SMOKE:-0}" = 1 ]; then
  SIZE=32 STEPS=2 EPOCHS=2 UNET_BATCH=2 MNV2_BATCH=2
fi
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
run() {
  local name=$1
  shift
  python3 benchmarks/train_throughput.py --image-size "$SIZE" --steps "$STEPS" \
    --epochs "$EPOCHS" --input-dtype uint8 --peak-tflops "$PEAK" \
    --out "$OUT/$name" "$@" >"$OUT/$name.log" 2>&1 || echo "$name failed"
}
mkdir -p "$OUT"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >"$OUT/gpu.txt"
else
  echo "no nvidia-smi: not a GPU machine" >"$OUT/gpu.txt"
fi
run unet --models unet --precisions float32,mixed_bfloat16 --batch-size "$UNET_BATCH"
run mobilenet_unet --models mobilenet_unet --tutorial \
  --precisions float32,mixed_bfloat16 --batch-size "$MNV2_BATCH"
cat "$OUT/gpu.txt"
for name in unet mobilenet_unet; do
  echo "== $name"
  grep -A20 "^| model" "$OUT/$name.log" || tail -5 "$OUT/$name.log"
done
