#!/usr/bin/env bash
# Build the nstcam desktop bundle (PyInstaller, onedir) for this OS.
#
#   packaging/build.sh lite   ONNX Runtime, no torch (target: at most 400 MB); the styles and
#                             MicroAST (instant styles) are exported to ONNX first, which needs
#                             torch and onnx in the BUILD env
#   packaging/build.sh full   torch (whatever torch build the env has: a CUDA build is GBs)
#
# Output: dist/<flavour>/nstcam/ (run dist/<flavour>/nstcam/nstcam; share/ holds the .desktop
# file, AppStream metainfo and icons); work files in build/pyinstaller-<flavour>/. Environment: PYTHON (default: .venv/bin/python if present, else
# python3), a Python with nstcam installed (pip install -e .) plus pyinstaller, onnxruntime and
# onnx (lite). Prints the bundle's size and its `--version` at the end.
set -euo pipefail

flavour="${1:-}"
if [[ "$flavour" != "lite" && "$flavour" != "full" ]]; then
    echo "usage: packaging/build.sh lite|full" >&2
    exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c "import PyInstaller" 2>/dev/null; then
    echo "build.sh: $PYTHON has no PyInstaller: $PYTHON -m pip install pyinstaller" >&2
    exit 2
fi

work="${NSTCAM_BUILD_DIR:-build}/pyinstaller-$flavour"
dist="${NSTCAM_DIST_DIR:-dist}/$flavour"
styles="$root/styles"
if [[ "$flavour" == "lite" ]]; then
    for module in onnx onnxruntime torch; do
        if ! "$PYTHON" -c "import $module" 2>/dev/null; then
            echo "build.sh: the lite build exports the styles to ONNX and needs $module in $PYTHON" >&2
            exit 2
        fi
    done
    styles="$(mkdir -p "$work" && cd "$work" && pwd)/styles"
    rm -rf "$styles"
    mkdir -p "$styles"
    echo "exporting the styles to ONNX in $styles"
    microast="$(cd "$work" && pwd)/microast"  # instant styles: MicroAST's encoder and frame graph
    rm -rf "$microast"
    "$PYTHON" -m nstcam.export "$root"/styles/*.pt -o "$styles" --microast "$microast" >/dev/null
    cp "$root/styles/manifest.json" "$styles/"
fi

NSTCAM_FLAVOUR="$flavour" NSTCAM_STYLES_DIR="$styles" NSTCAM_MICROAST_DIR="${microast:-}" "$PYTHON" -m PyInstaller --noconfirm --clean \
    --log-level WARN --workpath "$work" --distpath "$dist" packaging/nstcam.spec

# Strip debug symbols (~60 MB in libpython, lib-dynload and PyAV's modules), but not from the
# libraries auditwheel vendored into <package>.libs/ nor from the modules patchelf gave an RPATH
# to them: strip rewrites their patched ELF headers into files the loader rejects ("ELF load
# command address/offset not page-aligned", seen with numpy's OpenBLAS).
if command -v strip >/dev/null && command -v readelf >/dev/null; then
    find "$dist/nstcam/_internal" -type f -name '*.so*' -not -path '*.libs/*' -print0 |
        while IFS= read -r -d '' lib; do
            if ! readelf -d "$lib" 2>/dev/null | grep -q 'R.*PATH.*\.libs'; then
                strip --strip-unneeded "$lib" 2>/dev/null || true
            fi
        done
fi

# Desktop integration files in the XDG layout: `cp -r dist/<flavour>/nstcam/share ~/.local/`.
share="$dist/nstcam/share"
id="io.github.nstcam.nstcam"
install -D -m 644 packaging/linux/$id.desktop "$share/applications/$id.desktop"
install -D -m 644 packaging/linux/$id.metainfo.xml "$share/metainfo/$id.metainfo.xml"
install -D -m 644 packaging/icons/nstcam.svg "$share/icons/hicolor/scalable/apps/$id.svg"
for png in packaging/icons/nstcam-*.png; do
    size="${png##*-}"; size="${size%.png}"
    install -D -m 644 "$png" "$share/icons/hicolor/${size}x${size}/apps/$id.png"
done

app="$dist/nstcam/nstcam"
echo "built $app: $(du -sh "$dist/nstcam" | cut -f1)"
"$app" --version
