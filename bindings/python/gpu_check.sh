#!/usr/bin/env bash
# welt's Python package on a CUDA machine without network: install the carried wheels, run the
# CUDA tests (welt.hf drop-ins inside generate, no host sync under
# torch.cuda.set_sync_debug_mode("error"), generate_words) and the benchmark; results to $OUT.
#
# Prepare (on the build machine), from the repository root:
#   mkdir -p bindings/python/dist/ref
#   cp /work/wt/wheels/welt-*.whl bindings/python/dist/          # the abi3 wheel (pycore)
#   (cd bindings/python/dist/ref && pip download --no-deps utf8-tokenizer==0.8.5 \
#        words-segmentation==0.0.7 signwriting==0.1.19)
# then run it there with bindings/python/dist carried (an ignored path), e.g.
#   run(command="bash bindings/python/gpu_check.sh", carry=["bindings/python/dist"], timeout_s=540)
#
# Environment: OUT (results; default ./gpu_out), PYTHON (default python3), WELT_GPU_DRY=1 runs
# the same steps on the CPU (a dry run: the tests' CPU cases and a short CPU benchmark).
# Each stage has its own time limit, so a slow stage cannot eat the others' time; the exit
# status is the first failing stage's.
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT:-$PWD/gpu_out}"
PY="${PYTHON:-python3}"
DRY="${WELT_GPU_DRY:-0}"
mkdir -p "$OUT"
site="$(mktemp -d "${TMPDIR:-/tmp}/welt-site.XXXXXX")"
status=0
log() { echo "[gpu_check] $*" | tee -a "$OUT/gpu_check.log"; }
stage() {  # stage NAME SECONDS COMMAND...
    local name="$1" secs="$2"
    shift 2
    log "stage $name (limit ${secs}s): $*"
    local t0=$SECONDS
    timeout "$secs" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    log "stage $name: rc=$rc in $((SECONDS - t0))s"
    tail -n 25 "$OUT/$name.log" | sed 's/^/    /' | tee -a "$OUT/gpu_check.log"
    if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then status=$rc; fi
    return "$rc"
}

# 1. Install: the welt wheel and the reference packages, without dependencies, into $site.
wheel="$(ls "$here"/dist/welt-*.whl 2>/dev/null | head -n 1)"
if [ -z "$wheel" ]; then
    log "no welt wheel in $here/dist (see the header: copy it there and carry bindings/python/dist)"
    exit 2
fi
install_wheel() {  # pip when the tags fit, else unpack the wheel (a zip) directly
    "$PY" -m pip install --no-deps --no-index --quiet --target "$site" "$1" 2>>"$OUT/install.log" ||
        "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$1" "$site"
}
install_wheel "$wheel" || { log "cannot install $wheel"; exit 2; }
# The package's Python files from this tree (welt.hf, the loop, the bench) over the wheel's.
cp "$here"/python/welt/*.py "$site/welt/"
for w in "$here"/dist/ref/*.whl; do
    [ -e "$w" ] || continue
    case "$(basename "$w")" in
        regex-*) "$PY" -c 'import regex' 2>/dev/null && continue ;;  # transformers brings its own
    esac
    install_wheel "$w" || log "could not install $w (the reference-parity tests will be skipped)"
done
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"

stage env 120 "$PY" - <<'EOF'
import json, platform, sys
import torch, transformers, welt
info = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
        "welt": welt.__file__, "cuda": torch.cuda.is_available(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
try:
    import utf8_tokenizer, words_segmentation  # noqa: F401
    info["reference_packages"] = True
except Exception as e:  # the parity tests skip without them
    info["reference_packages"] = repr(e)
print(json.dumps(info))
EOF
command -v nvidia-smi >/dev/null && nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1

cd "$here" || exit 2
if [ "$DRY" = "1" ]; then
    sel=(-k "cpu and not sampling and (greedy or sync or model_forward)")
    bench=(--device cpu --batch-sizes 3 --calls 3 --warmup 1 --direct-reps 16)
else
    sel=(-k "cuda or not cpu")
    bench=(--device cuda --calls 20 --warmup 3)
fi
# 2. The tests: the CUDA cases of test_hf.py / test_loop.py (and those without a device).
stage tests 300 "$PY" -m pytest -q -p no:cacheprovider tests/test_hf.py tests/test_loop.py "${sel[@]}" \
    --junitxml="$OUT/pytest.xml" -rs --durations=10
# 3. The benchmark, as JSON.
stage bench 300 "$PY" -m welt.bench "${bench[@]}" --json "$OUT/bench.json"
log "done: status $status; results in $OUT"
rm -rf "$site"
exit "$status"
