"""The figures the losses do not show, shared by the quality report (`trainer.report`), the
stability report (`nstcam.measure.stability`) and the benchmarks: edges kept, colour distance to
the painting, strength, and the flicker of a camera pan.

Images are (1, 3, H, W) float RGB tensors in [0, 1] (`trainer.images`); figures on the 0-255 scale.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

EDGE_BLUR_SIGMA = 1.0  # px: the stability report's pre-blur (see edge_correlation)

@torch.inference_mode()
def stylize(net: torch.nn.Module, content: torch.Tensor) -> torch.Tensor:
    """The network's output as the app shows it: clamped to [0, 1], on the CPU."""
    device = next(net.parameters()).device
    return net(content.to(device)).float().clamp(0, 1).cpu().clone()


def _luma(img: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) RGB -> (1, 1, H, W) Rec. 601 luma."""
    return (img * torch.tensor([0.299, 0.587, 0.114], device=img.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


def _gaussian_blur(img: torch.Tensor, sigma: float = EDGE_BLUR_SIGMA) -> torch.Tensor:
    """Separable Gaussian of (N, 1, H, W), 4 sigma each side, mirrored borders (as OpenCV's)."""
    radius = round(4 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=img.device)
    g = torch.exp(-x.pow(2) / (2 * sigma * sigma))
    g = g / g.sum()
    img = F.pad(img, (radius, radius, radius, radius), mode="reflect")
    return F.conv2d(F.conv2d(img, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))


def _gradient_magnitude(img: torch.Tensor, blur_sigma: float) -> torch.Tensor:
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=img.device)
    kernels = torch.stack([sobel, sobel.t()]).unsqueeze(1)
    y = _luma(img.float())
    if blur_sigma > 0:
        y = _gaussian_blur(y, blur_sigma)
    g = F.conv2d(y, kernels)  # no padding: (1, 2, H - 2, W - 2)
    return g.pow(2).sum(1).sqrt()


def edge_correlation(output: torch.Tensor, photo: torch.Tensor, mask: torch.Tensor | None = None, *,
                     blur_sigma: float) -> float:
    """Pearson correlation of the luma gradient magnitudes of `output` and `photo` (1, 3, H, W).

    1: every edge of the photo is where the output has one, in proportion; near 0: the photo's
    structure is gone (blobs, or texture unrelated to the photo, or edges trailing a moving
    object). Two definitions, chosen by the caller:

    * `blur_sigma=0`: Sobel on the luma as it is, the quality report's published
      figure (docs/quality_report.*, the instant styles' report and issue #22's threshold); it
      counts pixel-scale strokes that are not the photo's as lost structure.
    * `blur_sigma=EDGE_BLUR_SIGMA`: a Gaussian blur first, the stability report's figure, which
      measures where the structure is, not pixel-scale noise or sharpness (a sensor's noise, a
      resampled or in-between frame's softness); it reads about 0.12 higher on stylized photos.

    `mask` (H, W, bool) limits it to some pixels (e.g. around a moving object); the outermost
    pixels never count (Sobel needs their neighbours).
    """
    a, b = _gradient_magnitude(output, blur_sigma), _gradient_magnitude(photo, blur_sigma)
    if mask is not None:
        inner = mask[1:-1, 1:-1].to(a.device)
        a, b = a[0][inner], b[0][inner]
    a, b = a.flatten(), b.flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


def strength(output: torch.Tensor, photo: torch.Tensor) -> float:
    """Mean |output - photo|, 0-255: how much style there is."""
    return float((output.float() - photo.float()).abs().mean() * 255)


def colour_distance(image: torch.Tensor, painting: torch.Tensor, quantiles: int = 256) -> float:
    """How far the colours of `image` are from the painting's, on the 0-255 scale.

    The mean over R, G and B of the 1-D Wasserstein distance between the two images' value
    distributions (compared quantile by quantile, so the sizes may differ): 0 = the painting's
    palette in the painting's proportions.
    """
    q = torch.linspace(0, 1, quantiles)
    a = image.float().flatten(2)[0]
    b = painting.float().flatten(2)[0]
    return float((torch.quantile(a, q, dim=1) - torch.quantile(b, q, dim=1)).abs().mean() * 255)


def pan_warp_error(net: torch.nn.Module, photo: torch.Tensor, shift: int) -> float:
    """Flicker of a camera pan by `shift` px: stylize two crops `shift` px apart (diagonally) and
    compare them where they show the same scene; mean absolute difference on the 0-255 scale,
    interior only. 0 = the painted texture moves with the scene."""
    h, w = photo.shape[-2:]
    a = stylize(net, photo[..., : h - shift, : w - shift])
    b = stylize(net, photo[..., shift:, shift:])
    m = 8  # the network's borders see reflection padding, not the scene
    return float((a[..., shift + m: -m, shift + m: -m] - b[..., m: -shift - m, m: -shift - m]).abs().mean() * 255)
