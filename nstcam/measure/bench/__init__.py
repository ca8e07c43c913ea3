"""Benchmark of the live path: `python -m nstcam.measure.bench`.

What it measures, for each device (cpu; cuda when available) and precision (cpu: fp32, plus bf16
where the CPU has native bf16; cuda: fp16 and fp32), at each frame size:

* engine: `StyleEngine.stylize` at full frame resolution (size=None), from a numpy BGR frame in
  host memory to an RGB uint8 frame in host memory: throughput (frames/s, the median of
  `--repeats` runs of `--frames` frames) and per-frame latency p50/p95 (pooled over the runs);
* naive: the same network and frames run the way the PyTorch fast_neural_style example stylizes
  (PIL image from the array, `ToTensor()` + `Lambda(x.mul(255))` per frame, fp32, pageable
  `.to(device)`, forward, synchronous `.cpu()`, clamp, uint8 via PIL); every engine figure gets
  its ratio to this. The runs of all variants are interleaved, so load that comes and goes on a
  shared machine hits them alike;
* pipeline: the app's LiveSession (nstcam.live.session: CaptureThread on a generated video, paced
  faster than the engine can go -> StylizeThread -> a sink counting results): pipeline fps against engine-only fps (goal >=
  90 %), capture-to-result latency p50/p95, the capture slot's drops, and latency in the first
  vs the second half of the window (it must not grow: the slot keeps only the newest frame).
  Engine-only fps is also measured from a fresh thread, as the StylizeThread runs: on CPU a
  second thread running torch's OpenMP regions is slower than the first (see
  `engine_fps_in_thread`), which is not the pipeline's doing;
* parity: PSNR (dB) of every variant's output against a strict fp32 eager reference (TF32 off)
  on the same frames (aim: >= 40 dB for fp16 / bf16 / compiled).

`--stability [its flags]` instead runs the temporal stability report (`python -m nstcam.measure.stability
--help`): warp error, strength and edge alignment of every style with and without the stabilizer.

`--compare-archs` instead times candidate light TransformerNet configurations on the CPU at
320x240 and 640x480 against the CPU targets (24 fps and 8 fps). The first configuration (the
bundled light network unless `--arch` names others) is the reference: every round times each
configuration once, in turn, and each configuration's cost is its ms/frame over the reference's in
the same round (median, min and max over the rounds), so load that comes and goes on a shared
machine cancels out of the ratio. The process's CPU time per frame is reported beside it: with
`--threads 1` on a busy machine it is the network's compute cost, free of the time spent waiting
for a core. `--cpu-bf16 off` times fp32 alone.

The model is a bundled style (`--style`, default the first; the variant the app would pick for
each device) or, with `--arch width=16,res_blocks=5,outer_kernel=9,separable=0`, a randomly
initialised network of that shape (timing does not depend on the weights).

Notes on the naive loop: the example's networks take and return 0-255 images; nstcam's take and
return [0, 1], so the naive loop wraps the network in a x/255 ... *255 scaling (two element-wise
passes, negligible next to the network) to keep the same weights meaningful. It runs with cuDNN
autotuning off, as the example leaves it.

The parts: `runners` (style models, frames, the engine and naive runners, reference outputs),
`pipeline` (capture -> engine -> consumer), `suites` (one device's runs; --compare-archs),
`report` (tables), `cli` (parser and main).
"""
from nstcam.measure.bench.cli import build_parser, main
from nstcam.measure.bench.runners import PSNR_CAP, parse_sizes, psnr

__all__ = ["PSNR_CAP", "build_parser", "main", "parse_sizes", "psnr"]
