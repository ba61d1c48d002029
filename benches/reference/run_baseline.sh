#!/usr/bin/env bash
# Runs the Python reference (../shared/reference/bench_baseline.py: the real
# UTF8ValidationLogitsProcessor and WordStoppingCriteria inside Hugging Face `generate`) on this
# machine, with the model sizes `welt bench --e2e` uses, so that both can be put side by side:
#
#   bash benches/reference/run_baseline.sh           # CPU; extra arguments go to the script
#   cargo run --release -- bench --e2e
#
# Same model: Llama, vocabulary 256, hidden 256, intermediate 1024, 4 layers, 4 heads, random
# weights; 16 bytes per word with stop-prone bytes biased away; greedy; B = 1, 3, 32.
# Installs torch, transformers and the two packages into a virtual environment the first time
# (a large download); REF and VENV override where the script and the environment are.
set -euo pipefail
cd "$(dirname "$0")/../.."
REF=${REF:-../shared/reference}
VENV=${VENV:-.venv-ref}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch transformers utf8-tokenizer==0.8.5 words-segmentation==0.0.7
fi
OUT=${OUT:-target/reference}
mkdir -p "$OUT"
exec "$VENV/bin/python" "$REF/bench_baseline.py" --device cpu --batch-sizes 1,3,32 \
  --hidden 256 --intermediate 1024 --layers 4 --heads 4 --max-new-tokens 16 --threads 1 \
  --json "$OUT/baseline_cpu.json" "$@"
