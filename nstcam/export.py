"""`python -m nstcam.export`: style files (.pt) to ONNX for the torch-free engine, int8 calibrated on
the demo scene, and MicroAST's graphs for instant styles (the packaging script runs it for the lite
bundle)."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from nstcam.engines.instant_onnx import export_graphs
from nstcam.engines.onnx_export import ExportError, ensure_onnx, export_style
from nstcam.engines.ort import QUANTIZATIONS, SUFFIXES
from nstcam.live.demo import calibration_frames


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m nstcam.export",
        description="Export style files (*.pt) to ONNX for the torch-free engine (--backend onnxruntime). "
        "Needs torch; the exported files do not.")
    p.add_argument("styles", nargs="*", metavar="STYLE", help="style files (*.pt) or folders of them")
    p.add_argument("--quantization", choices=QUANTIZATIONS, action="append",
                   help="number format(s) to export; may be repeated (default: fp32). int8 = static "
                   "quantisation calibrated on demo frames, int8-dynamic = weights only")
    p.add_argument("-o", "--output-dir", metavar="DIR", default=None,
                   help="write the ONNX files here instead of next to each style file (or in the "
                   "user cache when that folder is read-only)")
    p.add_argument("--microast", metavar="DIR", default=None,
                   help="also export MicroAST's style encoder and per-frame network (instant styles from "
                   "pictures without torch; nstcam.engines.instant_onnx) into DIR")
    args = p.parse_args(argv)
    if not args.styles and not args.microast:
        p.error("give style files, --microast DIR, or both")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    files: list[Path] = []
    for item in map(Path, args.styles):
        files.extend(sorted(item.glob("*.pt")) if item.is_dir() else [item])
    out_dir = Path(args.output_dir) if args.output_dir else None
    frames = calibration_frames()
    failed = 0
    for style in files:
        for q in args.quantization or ["fp32"]:
            target = out_dir / (style.stem + SUFFIXES[q]) if out_dir else None
            try:
                print(export_style(style, target, q, frames) if target else ensure_onnx(style, q, frames))
            except ExportError as exc:
                print(f"nstcam.export: error: {exc}", file=sys.stderr)
                failed += 1
    if args.microast:
        for path in export_graphs(Path(args.microast)):
            print(path)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
