"""Train the bundled style pack and write its manifest: `python -m trainer.stylepack`.

Every style is trained with `trainer.fast`'s own defaults (its CPU recipe: the light network,
content at stage2, the automatic style weight and the stability loss),
so the pack shows what `python -m trainer.fast --dataset PHOTOS --style PAINTING.jpg` gives for
any painting; the recipes below only name the paintings. Rerunning this command with the same
data on a CPU with native bf16 (trainer.fast's cpu-bf16 recipe) reproduces `styles/`; elsewhere
trainer.fast's defaults are its cpu-fp32 recipe, and `--image-size 192 --steps 1200` gives the pack's.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from trainer import fast
from trainer.stylefile import StyleFileError, load_style

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    name: str
    painting: str  # file name in the paintings folder
    title: str
    artist: str
    year: str


RECIPES: tuple[Recipe, ...] = (
    Recipe("monet", "monet.jpg", "Woman with a Parasol", "Claude Monet", "1875"),
    Recipe("van_gogh", "van_gogh.jpg", "The Starry Night", "Vincent van Gogh", "1889"),
    Recipe("munch", "munch.jpg", "The Scream", "Edvard Munch", "1893"),
    Recipe("hokusai", "hokusai.jpg", "The Great Wave off Kanagawa", "Katsushika Hokusai", "c. 1831"),
    Recipe("kandinsky", "kandinsky.jpg", "Composition VII", "Wassily Kandinsky", "1913"),
    Recipe("picabia", "picabia.jpg", "Udnie", "Francis Picabia", "1913"),
)

# "light": the CPU variant, half width with 5x5 outer convolutions (README "Performance" has the
# measurements behind it); "full": Johnson's network, for GPUs. Both are trainer.fast's device
# defaults; naming them keeps a variant's network whichever device trains it.
ARCHITECTURES = {
    "light": {"width": 16, "outer_kernel": 5},
    "full": {"width": 32, "outer_kernel": 9},
}
VARIANTS_NOTE = (
    "Only the light (CPU) variants are shipped; the app runs them on CUDA too. The pack was "
    "trained on a 2-core CPU with no GPU: full networks trained there for comparison (van_gogh, "
    "monet; 1,200-2,000 steps, 14-25 min each) painted a saturated colour blob into every image "
    "and need GPU-scale training before they can ship."
)
PUBLIC_DOMAIN = "The painting is in the public domain; the trained weights are part of nstcam."
MANIFEST_KEYS = (
    "name", "title", "artist", "year", "variant", "loss_net", "content_weight", "style_weight",
    "style_weight_auto", "tv_weight", "style_layers", "content_layer", "smoothing", "stability",
    "image_size", "style_size", "batch_size", "steps", "lr", "seed", "amp", "training_seconds",
    "images_per_second", "architecture",
)


def style_file(recipe: Recipe, args: argparse.Namespace) -> Path:
    """Where `trainer.fast` writes the recipe's style file; its checkpoint goes next to it."""
    return args.work / f"{recipe.name}-{args.variant}" / f"{recipe.name}-{args.variant}.pt"


def train_args(recipe: Recipe, args: argparse.Namespace) -> list[str]:
    """The `trainer.fast` command line for one recipe."""
    out = style_file(recipe, args)
    arch = ARCHITECTURES[args.variant]
    argv = [
        "--dataset", str(args.photos), "--style", str(args.paintings / recipe.painting),
        "--out", str(out), "--name", recipe.name, "--title", recipe.title,
        "--artist", recipe.artist, "--year", recipe.year, "--variant", args.variant,
        "--width", str(arch["width"]), "--outer-kernel", str(arch["outer_kernel"]),
        # What "auto" picks without VGG19 weights on disk; named so the pack never depends on them.
        "--loss-net", "efficientnet-lite0", "--sample-every", "250", "--checkpoint-every", "250",
    ]
    for flag, value in (("--steps", args.steps), ("--image-size", args.image_size), ("--threads", args.threads),
                        ("--max-minutes", args.max_minutes)):
        if value:
            argv += [flag, str(value)]
    return argv


def write_manifest(folder: Path) -> Path:
    """manifest.json from the style files' own metadata, in recipe order."""
    order = {r.name: i for i, r in enumerate(RECIPES)}
    styles = []
    for path in sorted(folder.glob("*.pt")):
        try:
            meta = load_style(path).meta
        except StyleFileError as exc:
            log.warning("skipping %s", exc)
            continue
        entry = {k: meta.get(k) for k in MANIFEST_KEYS}
        entry["file"] = path.name
        entry["public_domain"] = PUBLIC_DOMAIN
        styles.append(entry)
    styles.sort(key=lambda e: (order.get(e["name"], len(order)), e["name"], e["variant"] or ""))
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({"variants_note": VARIANTS_NOTE, "styles": styles}, indent=2) + "\n")
    return manifest


def build_parser() -> argparse.ArgumentParser:
    names = ", ".join(r.name for r in RECIPES)
    p = argparse.ArgumentParser(
        prog="python -m trainer.stylepack",
        description="Train the bundled styles with trainer.fast and write styles/manifest.json.",
    )
    p.add_argument("--photos", type=Path, default=Path("../shared/data/photos"),
                   help="training photos folder (default: ../shared/data/photos)")
    p.add_argument("--paintings", type=Path, default=Path("../shared/data/styles"),
                   help="folder holding the paintings named in the recipes (default: ../shared/data/styles)")
    p.add_argument("--out", type=Path, default=Path("styles"),
                   help="where the finished style files and manifest go (default: styles)")
    p.add_argument("--work", type=Path, default=Path("runs/stylepack"),
                   help="checkpoints and samples, one folder per style and variant (default: runs/stylepack); "
                        "an interrupted style resumes from here")
    p.add_argument("--only", nargs="+", metavar="NAME", help=f"train only these styles ({names})")
    p.add_argument("--variant", choices=tuple(ARCHITECTURES), default="light",
                   help="which network to train: light (CPU; every style ships one) or full "
                        "(Johnson's, for GPUs) (default: light)")
    p.add_argument("--steps", type=int, default=0, help="training steps per style (default: trainer.fast's)")
    p.add_argument("--image-size", type=int, default=0, help="training crop size (default: trainer.fast's)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--max-minutes", type=float, default=0,
                   help="end each style's training after this many minutes, writing the style file with "
                        "the steps done (trainer.fast --max-minutes; default: no limit)")
    p.add_argument("--manifest-only", action="store_true",
                   help="only rewrite the manifest from the style files already in --out")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    recipes = RECIPES
    if args.only:
        unknown = set(args.only) - {r.name for r in RECIPES}
        if unknown:
            parser.error(f"unknown style(s) {sorted(unknown)}; choose from {[r.name for r in RECIPES]}")
        recipes = tuple(r for r in RECIPES if r.name in args.only)
    if not args.manifest_only:
        for recipe in recipes:
            argv_fast = train_args(recipe, args)
            produced = style_file(recipe, args)
            checkpoint = produced.parent / "checkpoint.pt"
            if checkpoint.is_file():
                argv_fast.append("--resume")
            log.info("training %s: python -m trainer.fast %s", recipe.name, " ".join(argv_fast))
            status = fast.main(argv_fast)
            if status != 0:
                log.error("training %s failed (exit %d); its checkpoint is kept in %s",
                          recipe.name, status, checkpoint.parent)
                return status
            args.out.mkdir(parents=True, exist_ok=True)
            shutil.copy2(produced, args.out / produced.name)
    log.info("wrote %s", write_manifest(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
