"""The reproducible quality report of a folder of styles: `python -m trainer.report`.

For every style file (each variant) and every evaluation photograph it

* stylises the photograph with the style's fast network (the app's output, clamped to [0, 1]);
* runs Gatys et al.'s optimisation on the same photograph (L-BFGS, starting from the photograph)
  against the same objective the network was trained on: the style's own loss net, its stored
  Gram targets, style layers, content layer and content/style/tv weights, all from the file;
* measures content and style loss of both results with that objective (weighted terms, as
  `PerceptualLoss` returns them), and of the untouched photograph for scale;
* measures what the losses do not show: the edge correlation of the network's output with the
  photograph (structure kept), the colour distance to the painting (palette taken), the strength
  (mean change from the photograph) and the flicker of a 1 and a 2 px camera pan.

With `--compare OLD_DIR` every style is also run from the same-named file in OLD_DIR (an earlier
recipe): its losses under the new file's objective and the same figures, side by side, and the
contact sheet shows old and new next to each other.

The optimisation is the bar: a ratio fast/Gatys near 1 means the network reaches what a few
seconds of per-image optimisation reach, well above 1 means it falls short. Outputs
(in --out, default docs/): `contact_sheet.png` (photographs x styles, fast networks),
`gatys_sheet.png` (the same grid with the Gatys results), `quality_report.md` and
`quality_report.json`. Everything is deterministic for a given machine, inputs and --threads
(the thread count changes the float rounding, which L-BFGS amplifies in the last digits) except
the timings in the JSON.

This module reads style files straight from a folder (its `manifest.json` gives the order when
there is one); it must not import the app (`nstcam`).

The parts: `inputs` (style files, photographs, each style's objective), `measure` (losses and
the figures of `trainer.metrics` per style), `sheets` (contact sheets), `files` (the Markdown
and JSON report) and `cli` (`python -m trainer.report`).
"""
