"""`python -m trainer.report`: the command line, the run over styles x photographs, the outputs."""
from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from trainer.cliargs import int_at_least
from trainer.devices import DEVICE_CHOICES, resolve_device
from trainer.fileio import atomic_write_bytes
from trainer.gatys import refine
from trainer.images import ImageLoadError, load_image, pil_to_tensor, tensor_to_pil
from trainer.metrics import colour_distance, stylize
from trainer.report.files import fmt, markdown_report, variant_costs
from trainer.report.inputs import (
    LossNetCache, StyleVariant, discover_styles, find_painting, resolve_images, style_objective,
)
from trainer.report.measure import StyleResult, measure, quality, ratio
from trainer.report.sheets import contact_sheet

logger = logging.getLogger("trainer.report")

# Two faces and a drawing, where styles fail most visibly (faces smeared, line art lost), plus
# the two photographs the original authors' reference outputs show (amber: a carved doorway).
DEFAULT_IMAGES = ("face.jpg", "foreman.jpg", "amber.jpg", "comic.jpg", "chicago.jpg")
DEFAULT_SIZE = 256
# From the photograph at 256 px, L-BFGS's total loss at 200 steps is within a few per cent of
# its value at 400 (style alone within ~12%; at 100 steps it is still 25-60% higher), and the
# default report (6 styles x 5 photographs) takes about 5 minutes on one CPU thread.
DEFAULT_GATYS_STEPS = 200


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trainer.report",
        description="Quality report of a folder of styles: contact sheets of the fast networks "
        "and of Gatys optimisation on evaluation photographs, and each style's content and style "
        "loss relative to Gatys under the style's own training objective.",
    )
    p.add_argument("--styles", type=Path, default=Path("styles"), metavar="DIR",
                   help="folder of style files (*.pt; manifest.json orders them) (default: styles)")
    p.add_argument("--eval", type=Path, default=Path("../shared/data/eval"), metavar="DIR",
                   help="folder of evaluation photographs (default: ../shared/data/eval)")
    p.add_argument("--images", nargs="+", default=list(DEFAULT_IMAGES), metavar="IMAGE",
                   help="photographs, as names in --eval or as paths "
                   f"(default: {' '.join(DEFAULT_IMAGES)})")
    p.add_argument("--size", type=int_at_least(1), default=DEFAULT_SIZE, metavar="N",
                   help=f"resize photographs so their short side is N pixels; also the sheet's "
                   f"cell size (default: {DEFAULT_SIZE})")
    p.add_argument("--gatys-steps", type=int_at_least(1), default=DEFAULT_GATYS_STEPS, metavar="N",
                   help=f"L-BFGS steps of the Gatys baseline per style and photograph "
                   f"(default: {DEFAULT_GATYS_STEPS})")
    p.add_argument("--out", type=Path, default=Path("docs"), metavar="DIR",
                   help="where contact_sheet.png, gatys_sheet.png, quality_report.md and "
                   "quality_report.json go (default: docs)")
    p.add_argument("--device", default="auto", metavar="|".join(DEVICE_CHOICES),
                   help="where to compute; auto = cuda if available, else cpu (default: auto)")
    p.add_argument("--threads", type=int_at_least(1), default=1, metavar="N",
                   help="torch CPU threads (default: 1: the same numbers run after run, and "
                   "immune to the 10-100x slowdown of several threads on a busy CPU; more is "
                   "faster on idle cores)")
    p.add_argument("--vgg-weights", type=Path, default=None, metavar="PATH",
                   help="VGG19 state-dict file, for styles trained with the vgg19 loss net")
    p.add_argument("--paintings", type=Path, default=Path("../shared/data/styles"), metavar="DIR",
                   help="folder holding the paintings (by the file name each style file records), for "
                   "the colour distance; a painting not found there is left out (default: "
                   "../shared/data/styles)")
    p.add_argument("--compare", type=Path, default=None, metavar="OLD_DIR",
                   help="a folder of earlier style files to set side by side with --styles (same name "
                   "and variant), e.g. the previous pack")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    def fail(message: str) -> int:
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 2

    if not args.styles.is_dir():
        return fail(f"--styles {args.styles}: no such folder")
    styles, problems = discover_styles(args.styles)
    for problem in problems:
        logger.warning("skipping style file: %s", problem)
    if not styles:
        return fail(f"--styles {args.styles}: no loadable style files (*.pt)")
    if args.compare is not None:
        if not args.compare.is_dir():
            return fail(f"--compare {args.compare}: no such folder")
        olds, problems = discover_styles(args.compare)
        for problem in problems:
            logger.warning("skipping style file to compare: %s", problem)
        args.olds = {(o.name, o.variant): o for o in olds}
    else:
        args.olds = {}
    if not args.eval.is_dir() and any("/" not in n and "\\" not in n for n in args.images):
        return fail(f"--eval {args.eval}: no such folder")
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        return fail(str(exc))
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args, styles, device, fail, parser.prog)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace, styles: list[StyleVariant], device: torch.device, fail,
         prog: str) -> int:
    photos: list[tuple[str, torch.Tensor]] = []
    for path in resolve_images(args.images, args.eval):
        try:
            photos.append((path.stem, pil_to_tensor(load_image(path, args.size))))
        except ImageLoadError as exc:
            return fail(str(exc))
    names = [name for name, _ in photos]
    if len(set(names)) != len(names):
        return fail(f"--images: two photographs share a name ({', '.join(names)})")

    start = time.perf_counter()
    nets = LossNetCache(device, args.vgg_weights)
    results: list[StyleResult] = []
    fast_cells: list[list[Image.Image | None]] = [[tensor_to_pil(t)] for _, t in photos]
    gatys_cells: list[list[Image.Image | None]] = [[tensor_to_pil(t)] for _, t in photos]
    logger.info("%d style files x %d photographs at %d px on %s, Gatys %d steps",
                len(styles), len(photos), args.size, device, args.gatys_steps)
    bar = tqdm(total=len(styles) * len(photos), unit="image", dynamic_ncols=True)
    try:
        for style in styles:
            net = style.model.build(device)
            loss, why = style_objective(style, nets)
            old = args.olds.get((style.name, style.variant))
            old_net = old.model.build(device) if old else None
            painting = find_painting(style, args.paintings, args.size)
            result = StyleResult(style, skipped=why, old=old)
            if why:
                logger.warning("%s: not measured: %s", style.label, why)
            for row, (image_name, photo) in enumerate(photos):
                bar.set_description(f"{style.label} {image_name}")
                t0 = time.perf_counter()
                fast = stylize(net, photo)
                fast_seconds = time.perf_counter() - t0
                if old_net is not None:
                    old_out = stylize(old_net, photo)
                    fast_cells[row].append(tensor_to_pil(old_out))
                fast_cells[row].append(tensor_to_pil(fast))
                if loss is None:
                    gatys_cells[row].append(None)
                    bar.update()
                    continue
                target = loss.content_features(photo.to(device))
                gatys = refine(photo, loss=loss, init="content", steps=args.gatys_steps,
                               optimizer="lbfgs")
                gatys_cells[row].append(tensor_to_pil(gatys.image))
                entry = {
                    "image": image_name,
                    "width": int(photo.shape[-1]),
                    "height": int(photo.shape[-2]),
                    "fast": measure(loss, fast, target),
                    "gatys": measure(loss, gatys.image, target),
                    "photo": measure(loss, photo, target),
                    "fast_seconds": round(fast_seconds, 4),
                    "gatys_seconds": round(gatys.seconds, 3),
                    "quality": quality(fast, photo, painting, net),
                    "photo_colour": colour_distance(photo, painting) if painting is not None else None,
                }
                if old_net is not None:
                    entry["old"] = measure(loss, old_out, target)
                    entry["quality_old"] = quality(old_out, photo, painting, old_net)
                entry["ratio"] = {t: ratio(entry["fast"][t], entry["gatys"][t])
                                  for t in ("content", "style", "total")}
                result.per_image.append(entry)
                bar.set_postfix(style_ratio=fmt(entry["ratio"]["style"], ".2f"), refresh=False)
                bar.update()
            results.append(result)
            if not result.skipped:
                m = result.to_json()
                logger.info("%s: content fast/gatys %s, style fast/gatys %s", style.label,
                            fmt(m["ratio"]["content"], ".2f"), fmt(m["ratio"]["style"], ".2f"))
    except KeyboardInterrupt:
        bar.close()
        print(f"{prog}: aborted", file=sys.stderr)
        return 130
    bar.close()
    seconds = time.perf_counter() - start

    args.out.mkdir(parents=True, exist_ok=True)
    col_labels = [("original", f"{args.size} px")]
    for style in styles:
        title = str(style.meta.get("title") or "")
        if (style.name, style.variant) in args.olds:
            col_labels += [(f"{style.label} old", title), (f"{style.label} new", title)]
        else:
            col_labels.append((style.label, title))
    _save_png(contact_sheet(fast_cells, names, col_labels, args.size), args.out / "contact_sheet.png")
    gatys_labels = [("original", f"{args.size} px")] + [
        (f"{s.label} gatys", f"{args.gatys_steps} L-BFGS steps") for s in styles]
    _save_png(contact_sheet(gatys_cells, names, gatys_labels, args.size), args.out / "gatys_sheet.png")
    report = {
        "settings": {
            "styles_dir": str(args.styles),
            "eval_dir": str(args.eval),
            "images": names,
            "size": args.size,
            "gatys_steps": args.gatys_steps,
            "gatys_optimizer": "lbfgs",
            "gatys_init": "content",
            "device": str(device),
            "torch_version": str(torch.__version__),
            "threads": args.threads,
            "compare_dir": str(args.compare) if args.compare else None,
            "paintings_dir": str(args.paintings),
        },
        "seconds": round(seconds, 1),
        "styles": [r.to_json() for r in results],
    }
    report["variant_costs"] = variant_costs(report["styles"])
    atomic_write_bytes(args.out / "quality_report.json", (json.dumps(report, indent=2) + "\n").encode())
    atomic_write_bytes(args.out / "quality_report.md", markdown_report(report).encode())
    logger.info("wrote %s/{contact_sheet.png, gatys_sheet.png, quality_report.md, "
                "quality_report.json} in %.0f s", args.out, seconds)
    return 0


def _save_png(img: Image.Image, path: Path) -> None:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())

