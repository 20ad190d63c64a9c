#!/usr/bin/env bash
# Issue #17's GPU measurement in one call of a GPU machine that has JAX and PyTorch but no
# TensorFlow and no registry: BERT-base 12 -> 6, batch 32, length 128, float32 and
# bfloat16; kd_keras' `all` step on Keras' JAX backend against a hand-written eager
# PyTorch step with the same losses (scripts/bench_torch_step.py), after checking that the
# two compute the same terms.  A few minutes: each precision compiles three JAX steps.
#
#   scripts/gpu_wheels.sh                      # here, once: keras, namex, optree -> .whl/
#   bash scripts/gpu_bench.sh                  # there (the device tool: carry .whl)
#
# Writes $OUT (default /tmp/kd_keras_gpu): jax_<precision>.json, torch_<precision>.json,
# gpu.txt and summary.json (scripts/gpu_summary.py, which also prints the ratios and
# targets).  Copy summary.json to benchmarks/gpu_base32@<gpu tag>.json and run
# `python scripts/bench.py --markdown_only` to put it into BENCHMARKS.md.
# SIZE=tiny runs the same sequence in seconds (how tests/test_bench_jax.py checks it).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/kd_keras_gpu}
SIZE=${SIZE:-base32}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/kd_keras_site .whl/*.whl
  export PYTHONPATH=/tmp/kd_keras_site${PYTHONPATH:+:$PYTHONPATH}
fi
# JAX takes 75% of the GPU's memory at start unless told not to; PyTorch runs after it.
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
  || echo "no GPU: $(uname -m)"; } | tee "$OUT/gpu.txt"

# The peer must compute what the Distiller computes: float32 at full matmul precision
# (JAX would use TF32 on the GPU), dropout off, every term within 1e-5.
check=$(mktemp -d)
JAX_DEFAULT_MATMUL_PRECISION=highest "$PY" scripts/bench_jax.py --check_inputs="$check"
"$PY" scripts/bench_torch_step.py --check="$check"
rm -rf "$check"

rows=teacher_forward,student_train_step,distill_all
for precision in bfloat16 float32; do
  "$PY" scripts/bench_jax.py --size="$SIZE" --precision=$precision --rows=$rows \
    --warmup=3 --repeats=20 --json="$OUT/jax_$precision.json"
  "$PY" scripts/bench_torch_step.py --size="$SIZE" --precision=$precision \
    --warmup=3 --repeats=20 --json="$OUT/torch_$precision.json"
done
"$PY" scripts/gpu_summary.py "$OUT"
