#!/usr/bin/env bash
# The one prepared script for the GPU machine (no Rust there). Build here first:
#
#   cargo build --release --features cuda && mkdir -p .gpu-carry && cp target/release/welt .gpu-carry/
#
# then run it on the device with `.gpu-carry` carried:  bash .ci/gpu-check.sh
# It prints the GPU, runs `welt gpu-check` (device vs CPU tables, then timings with CUDA
# events) and the quick check under compute-sanitizer memcheck; results go to $OUT.
set -u
BIN=${BIN:-.gpu-carry/welt}
OUT=${OUT:-/tmp/welt-gpu}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
date -u +%FT%TZ | tee "$OUT/date.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
status=0
"$BIN" gpu-check --json "$OUT/gpu_check.json" 2>&1 | tee "$OUT/gpu_check.txt" || status=1
SAN=/usr/local/cuda/bin/compute-sanitizer
if [ -x "$SAN" ]; then
  "$SAN" --tool memcheck --error-exitcode 9 "$BIN" gpu-check --quick >"$OUT/memcheck.txt" 2>&1 || status=1
  tail -5 "$OUT/memcheck.txt"
else
  echo "compute-sanitizer not found at $SAN" | tee "$OUT/memcheck.txt"; status=1
fi
exit $status
