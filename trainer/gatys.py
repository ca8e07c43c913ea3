"""Gatys et al.'s "basic" neural style transfer: optimise the pixels of one image.

Starting from the content image (or noise, or any image such as a fast-stylised frame), the
pixels are optimised to minimise a `PerceptualLoss` whose style targets are already set. Slow
(hundreds of forward+backward passes) but needs no trained network; the app uses it to refine
snapshots.

Steps. One step is one optimiser iteration and costs exactly one forward+backward pass, for both
optimisers: L-BFGS runs with `max_iter=1` and no line search, its curvature history carried over
from one `step()` call to the next, so a step can be reported, cancelled and timed like an Adam
step. Each step evaluates the image it starts from: `history[i]` is the loss of the image after
i steps, so `history[0]` is the loss of the initial image.

Range. The pixels are clamped to [0, 1] in place after every step. A sigmoid parametrisation
would keep them in range too, but it starves saturated pixels of gradient and cannot represent
pure black or white content exactly; clamping only touches the few pixels that overshoot, and
L-BFGS copes with it in practice (it is what the common Gatys implementations do).

Scales. `scales=(0.5, 1.0)` runs coarse-to-fine: the steps are shared out between the scales,
the content target is recomputed at each scale's size, and each scale's result is upsampled to
start the next (with `keep_detail`, only its change is, added to the init at the next size).
Coarse steps are ~4x cheaper and settle the large structures, so a large image gets further in
a given time. The style targets (Gram matrices) are used as they are.
"""
from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from trainer.cliargs import int_at_least, number
from trainer.devices import DEVICE_CHOICES, resolve_device
from trainer.fileio import atomic_save_image, check_writable
from trainer.images import ImageLoadError, load_image, pil_to_tensor, tensor_to_pil
from trainer.lossnets import CHOICES as LOSS_NET_CHOICES
from trainer.lossnets import DEFAULT_WEIGHTS, LossNetUnavailable, build_loss_net
from trainer.perceptual import PerceptualLoss

logger = logging.getLogger(__name__)

OPTIMIZERS = ("lbfgs", "adam")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}
INITS = ("content", "noise")

Progress = Callable[[int, int, dict[str, float]], None]


@dataclass
class GatysResult:
    """`image`: (1, 3, H, W) float in [0, 1] on the CPU, at the content's size. `history`: one
    dict per step (step, scale, total, content, style, tv). `loss`: the terms of `image` as last
    evaluated (at the scale it was optimised at)."""

    image: torch.Tensor
    history: list[dict[str, float]] = field(default_factory=list)
    steps_done: int = 0
    cancelled: bool = False
    seconds: float = 0.0
    loss: dict[str, float] = field(default_factory=dict)


def build_perceptual_loss(
    loss_net: str = "auto",
    vgg_weights: str | Path | None = None,
    device: torch.device | str = "cpu",
    content_weight: float | None = None,
    style_weight: float | None = None,
    tv_weight: float | None = None,
    style_layers: dict[str, float] | None = None,
    content_layer: str | None = None,
) -> PerceptualLoss:
    """A PerceptualLoss on `device`; unset weights come from DEFAULT_WEIGHTS of the net built.

    Raises LossNetUnavailable if the net cannot be built (e.g. VGG19 without its weights). The
    style targets are still to be set (`set_style_image` or `set_style_targets`).
    """
    net = build_loss_net(
        loss_net, vgg_weights, style_layers=style_layers, content_layer=content_layer
    )
    defaults = DEFAULT_WEIGHTS[net.name]
    loss = PerceptualLoss(
        net,
        content_weight=defaults.content if content_weight is None else content_weight,
        style_weight=defaults.style if style_weight is None else style_weight,
        tv_weight=defaults.tv if tv_weight is None else tv_weight,
        style_layers=style_layers,
        content_layer=content_layer,
    )
    return loss.to(device)


def refine(
    content: torch.Tensor,
    *,
    loss: PerceptualLoss,
    init: torch.Tensor | str | None = None,
    steps: int | Sequence[int] = 300,
    optimizer: str = "lbfgs",
    lr: float | None = None,
    scales: Sequence[float] = (1.0,),
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    seed: int | None = None,
    on_image: Callable[[int, torch.Tensor], None] | None = None,
    keep_detail: bool = False,
) -> GatysResult:
    """Optimise an image to have `content`'s content and the style `loss` holds targets for.

    `init`: None or "content" starts from the content image, "noise" from uniform noise (drawn
    with `seed`), a tensor from that image (resized to the content's size if needed).
    `steps`: the total, shared out evenly between `scales` (the finest scales get any
    remainder), or one count per scale. `lr` defaults to 1.0 for L-BFGS, 0.02 for Adam.
    `progress(steps_done, total_steps, terms)` is called after every step with the terms of the
    image that step started from; `on_image(steps_done, image)` likewise with the current image
    (at the current scale; a view of the live tensor, clone it to keep it). `should_stop()` is
    checked before every step; when it returns True the best image so far is returned with
    `cancelled=True`. `keep_detail`: each finer scale (and a stop before the finest) starts from
    the init at its size plus the upsampled change the coarser scales made, rather than their
    upsampled image, so the init's fine detail (a fast-stylised frame's strokes) survives.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    per_scale = _split_steps(steps, scales)
    total_steps = sum(per_scale)
    lr = DEFAULT_LR[optimizer] if lr is None else lr
    device = loss.net.mean.device
    content = _as_batch(content, "content").to(device, torch.float32)
    full_size = tuple(content.shape[-2:])
    x = _initial_image(init, content, seed)

    start = time.perf_counter()
    history: list[dict[str, float]] = []
    base = x if keep_detail else None
    done, cancelled, last = 0, False, {}
    for scale, n_steps in zip(scales, per_scale):
        size = _scaled_size(full_size, scale)
        # Contiguous: L-BFGS views the gradient flat (and images from PIL are channels-last).
        x = _start_at(x, size, base).clamp(0, 1).contiguous().requires_grad_(True)
        target = loss.content_features(_resize(content, size))
        opt = _make_optimizer(optimizer, x, lr)
        best, best_terms = x.detach().clone(), {"total": math.inf}

        def closure() -> torch.Tensor:
            nonlocal best, best_terms
            opt.zero_grad(set_to_none=True)
            terms = loss(x, target)
            terms.total.backward()
            values = terms.as_floats()
            history.append({"step": done, "scale": scale, **values})
            if values["total"] < best_terms["total"]:
                best, best_terms = x.detach().clone(), values
            return terms.total

        for _ in range(n_steps):
            if should_stop is not None and should_stop():
                cancelled = True
                break
            opt.step(closure)
            with torch.no_grad():
                x.clamp_(0, 1)
            done += 1
            if progress is not None:
                progress(done, total_steps, history[-1])
            if on_image is not None:
                on_image(done, x.detach())
        if not cancelled:  # the last step's update has not been evaluated yet
            with torch.no_grad():
                final = loss(x, target).as_floats()
            if final["total"] < best_terms["total"]:
                best, best_terms = x.detach().clone(), final
        x, last = best, best_terms
        if cancelled:
            break

    image = _start_at(x, full_size, base).clamp_(0, 1).cpu()
    seconds = time.perf_counter() - start
    return GatysResult(image, history, done, cancelled, seconds, last if done else {})


def _split_steps(steps: int | Sequence[int], scales: Sequence[float]) -> list[int]:
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f"scales must be positive, got {tuple(scales)}")
    if isinstance(steps, int):
        if steps < 1:
            raise ValueError(f"steps must be positive, got {steps}")
        base, extra = divmod(steps, len(scales))
        return [base + (i >= len(scales) - extra) for i in range(len(scales))]
    per_scale = [int(n) for n in steps]
    if len(per_scale) != len(scales) or any(n < 0 for n in per_scale) or sum(per_scale) < 1:
        raise ValueError(f"steps {tuple(steps)} must be one count >= 0 per scale {tuple(scales)}")
    return per_scale


def _start_at(x: torch.Tensor, size: tuple[int, int], base: torch.Tensor | None) -> torch.Tensor:
    """`x` at `size`; with a `base` (the full-size init), base at `size` plus x's change from it."""
    if base is None:
        return _resize(x, size)
    change = x.detach() - _resize(base, tuple(x.shape[-2:]))
    return _resize(base, size) + _resize(change, size)


def _as_batch(image: torch.Tensor, what: str) -> torch.Tensor:
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"{what} must be shaped (1, 3, H, W), got {tuple(image.shape)}")
    return image


def _initial_image(
    init: torch.Tensor | str | None, content: torch.Tensor, seed: int | None
) -> torch.Tensor:
    if init is None or (isinstance(init, str) and init == "content"):
        return content.clone()
    if isinstance(init, str):
        if init != "noise":
            raise ValueError(f"unknown init {init!r}; use a tensor or one of {', '.join(INITS)}")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        # Drawn on the CPU so a seed gives the same image on every device.
        return torch.rand(content.shape, generator=generator).to(content.device)
    init = _as_batch(init, "init").to(content.device, torch.float32)
    return _resize(init, tuple(content.shape[-2:])).clone()


def _scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[-2:]) == tuple(size):
        return image.detach()
    return F.interpolate(image.detach(), size=size, mode="bilinear", antialias=True, align_corners=False)


def _make_optimizer(name: str, x: torch.Tensor, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam([x], lr=lr)
    # max_iter=1: one iteration = one evaluation per step() call; the history persists across
    # calls in the optimizer's state.
    return torch.optim.LBFGS([x], lr=lr, max_iter=1, history_size=50)


# ----------------------------------------------------------------------------------------------
# Command line


def _scales(text: str) -> tuple[float, ...]:
    scales = tuple(number(positive=True)(part) for part in text.split(",") if part.strip())
    if not scales:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers > 0, got {text!r}")
    return scales


def build_parser() -> argparse.ArgumentParser:
    script = Path(sys.argv[0]).name
    p = argparse.ArgumentParser(
        prog=script if script == "nstcam-gatys" else "python -m trainer.gatys",
        description="Gatys et al. neural style transfer: optimise the pixels of one image so it "
        "keeps CONTENT's content and takes on STYLE's style.",
    )
    p.add_argument("content", metavar="CONTENT", help="content image (any format Pillow reads)")
    p.add_argument("style", metavar="STYLE", help="style image, e.g. a painting")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output image; the format follows the extension (.png, .jpg, ...)")
    p.add_argument("--size", type=int_at_least(1), default=512, metavar="N",
                   help="resize the content so its short side is N pixels (default: 512)")
    p.add_argument("--style-size", type=int_at_least(1), default=None, metavar="N",
                   help="resize the style image so its short side is N pixels "
                   "(default: the same as --size)")
    p.add_argument("--steps", type=int_at_least(1), default=300, metavar="N",
                   help="optimisation steps, one forward+backward pass each (default: 300)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="lbfgs",
                   help="lbfgs converges in fewer steps; adam is steadier (default: lbfgs)")
    p.add_argument("--lr", type=number(positive=True), default=None, metavar="F",
                   help="learning rate (default: 1.0 for lbfgs, 0.02 for adam)")
    p.add_argument("--content-weight", type=number(positive=False), default=None, metavar="F",
                   help="content loss weight (default: the loss net's suggested weight)")
    p.add_argument("--style-weight", type=number(positive=False), default=None, metavar="F",
                   help="style loss weight (default: the loss net's suggested weight)")
    p.add_argument("--tv-weight", type=number(positive=False), default=None, metavar="F",
                   help="total-variation (smoothness) weight (default: the loss net's suggested weight)")
    p.add_argument("--init", choices=INITS, default="content",
                   help="start from the content image or from random noise (default: content)")
    p.add_argument("--scales", type=_scales, default=(1.0,), metavar="S[,S...]",
                   help="coarse-to-fine schedule as fractions of --size, e.g. 0.5,1; the steps "
                   "are shared out evenly (default: 1)")
    p.add_argument("--loss-net", choices=LOSS_NET_CHOICES, default="auto",
                   help="feature network for the losses; auto = vgg19 if its weights are on "
                   "disk, else efficientnet-lite0 (default: auto)")
    p.add_argument("--vgg-weights", default=None, metavar="PATH",
                   help="VGG19 state-dict file (torchvision's vgg19 weights) for --loss-net vgg19")
    p.add_argument("--device", default="auto", metavar="|".join(DEVICE_CHOICES),
                   help="where to compute; auto = cuda if available, else cpu (default: auto)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="random seed for --init noise (default: 0)")
    p.add_argument("--save-every", type=int_at_least(1), default=None, metavar="N",
                   help="also save the image every N steps, as OUT with a step suffix "
                   "(out_step0100.png)")
    return p


def _step_path(out: Path, step: int) -> Path:
    return out.with_name(f"{out.stem}_step{step:04d}{out.suffix}")


class _InterruptFlag:
    """Turns the first Ctrl-C into a cooperative stop (the best image so far is saved)."""

    def __init__(self) -> None:
        self.stopped = False

    def __call__(self) -> bool:
        return self.stopped

    def handle(self, signum, frame) -> None:  # noqa: ANN001 - signal handler signature
        if self.stopped:
            raise KeyboardInterrupt
        self.stopped = True
        logger.warning("interrupted: stopping after this step (Ctrl-C again to abort)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    def fail(message: str) -> int:
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return 2

    out = Path(args.output)
    if out.suffix.lower() not in Image.registered_extensions():
        return fail(f"{out}: unknown image format {out.suffix!r}; use e.g. .png or .jpg")
    try:
        check_writable(out)  # now, not after the whole optimisation
    except OSError as exc:
        return fail(f"-o {out}: cannot create files in {out.parent} ({exc.strerror or exc})")
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        return fail(str(exc))
    try:
        content = pil_to_tensor(load_image(args.content, args.size))
        style = pil_to_tensor(load_image(args.style, args.style_size or args.size))
    except ImageLoadError as exc:
        return fail(str(exc))
    try:
        loss = build_perceptual_loss(
            args.loss_net, args.vgg_weights, device, args.content_weight, args.style_weight,
            args.tv_weight,
        )
    except LossNetUnavailable as exc:
        return fail(str(exc))
    loss.set_style_image(style.to(device))
    logger.info(
        "%s on %s: content %dx%d, style %dx%d, weights content=%g style=%g tv=%g",
        loss.net.name, device, content.shape[3], content.shape[2], style.shape[3],
        style.shape[2], loss.content_weight, loss.style_weight, loss.tv_weight,
    )

    bar = tqdm(total=args.steps, unit="step", dynamic_ncols=True)

    def progress(step: int, total: int, terms: dict[str, float]) -> None:
        bar.set_postfix({k: f"{terms[k]:.3g}" for k in ("total", "content", "style", "tv")},
                        refresh=False)
        bar.update(step - bar.n)

    write_failures: list[str] = []

    def write(image: torch.Tensor, path: Path) -> bool:
        """Save atomically; on failure (full disk) remember one message for the user and say False."""
        try:
            atomic_save_image(tensor_to_pil(image), path)
        except OSError as exc:
            write_failures.append(f"cannot write {path}: {exc.strerror or exc}")
            return False
        return True

    def on_image(step: int, image: torch.Tensor) -> None:
        if args.save_every and step % args.save_every == 0:
            if not write(_resize(image, tuple(content.shape[-2:])).clamp(0, 1), _step_path(out, step)):
                stop.stopped = True  # the final image would not fit either

    stop = _InterruptFlag()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, stop.handle) if main_thread else None
    try:
        result = refine(
            content, loss=loss, init=args.init, steps=args.steps, optimizer=args.optimizer,
            lr=args.lr, scales=args.scales, progress=progress, should_stop=stop,
            seed=args.seed, on_image=on_image,
        )
    except KeyboardInterrupt:  # a second Ctrl-C
        print(f"{parser.prog}: aborted", file=sys.stderr)
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
        bar.close()
    saved = write(result.image, out)
    if write_failures:
        kept = f"; stopped after {result.steps_done} steps, the image so far is in {out}" if saved else ""
        print(f"{parser.prog}: error: {'; '.join(write_failures)}{kept}", file=sys.stderr)
        return 1
    logger.info(
        "%s %d steps in %.1f s (%.2f steps/s); loss %s; wrote %s",
        "cancelled after" if result.cancelled else "did", result.steps_done, result.seconds,
        result.steps_done / max(result.seconds, 1e-9),
        ", ".join(f"{k}={v:.4g}" for k, v in result.loss.items()), out,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
