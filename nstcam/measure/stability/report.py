"""The comparison as tables, JSON and a before/after picture."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from nstcam.measure.stability.clips import Clip
from nstcam.measure.stability.compare import Comparison
from nstcam.measure.stability.figures import EDGE_GOAL, STRENGTH_GOAL, WARP_GOAL, meets_goals, motion_at
from trainer.benchkit import table

def _rows(results: Sequence[Comparison]) -> list[dict[str, Any]]:
    rows = []
    for res in results:
        for clip, by_renderer in res.figures.items():
            base = by_renderer["baseline"]
            for name, fig in by_renderer.items():
                r = fig.ratios(base)
                rows.append({
                    "style": res.style, "clip": clip, "renderer": name, "input_warp": fig.input_warp,
                    "warp": fig.warp, "strength": fig.strength, "edge": fig.edge, "edge_band": fig.edge_band,
                    "warp_ratio": r["warp"], "strength_ratio": r["strength"], "edge_ratio": r["edge"],
                    "band_ratio": r["edge_band"],
                })
    return rows


def _summary(results: Sequence[Comparison]) -> list[dict[str, Any]]:
    """Per style and renderer: warp-error ratio per clip, the worst strength and edge ratios over
    all clips, and whether every goal holds on every clip."""
    rows = []
    for res in results:
        renderers = [n for n in next(iter(res.figures.values())) if n != "baseline"]
        for name in renderers:
            row: dict[str, Any] = {"style": res.style, "renderer": name}
            ok = True
            strengths, edges, bands = [], [], []
            for clip, by_renderer in res.figures.items():
                r = by_renderer[name].ratios(by_renderer["baseline"])
                row[clip] = r["warp"]
                strengths.append(r["strength"])
                edges.append(r["edge"])
                if r["edge_band"] is not None:
                    bands.append(r["edge_band"])
                ok &= all(meets_goals(r, WARP_GOAL if clip != "still" else 1.0).values())
            row.update(strength=min(strengths), edge=min(edges), band=min(bands) if bands else None,
                       ms=res.ms_per_frame.get(name), cpu_ms=res.cpu_ms_per_frame.get(name),
                       goals="yes" if ok else "no")
            rows.append(row)
    return rows


def format_report(results: Sequence[Comparison], clip_names: Sequence[str]) -> str:

    detail = table(_rows(results), [
        ("style", "style", ""), ("clip", "clip", ""), ("renderer", "renderer", ""),
        ("in warp", "input_warp", ".2f"), ("warp", "warp", ".2f"), ("strength", "strength", ".1f"),
        ("edge", "edge", ".3f"), ("band", "edge_band", ".3f"), ("warp x", "warp_ratio", ".2f"),
        ("str x", "strength_ratio", ".2f"), ("edge x", "edge_ratio", ".2f"), ("band x", "band_ratio", ".2f"),
    ])
    summary = table(_summary(results), [
        ("style", "style", ""), ("renderer", "renderer", ""),
        *[(f"{c} warp x", c, ".2f") for c in clip_names],
        ("strength x", "strength", ".2f"), ("edge x", "edge", ".2f"), ("band x", "band", ".2f"),
        ("ms/frame", "ms", ".2f"), ("CPU ms/frame", "cpu_ms", ".2f"), ("goals", "goals", ""),
    ])
    return (f"{detail}\n\nRatios to the baseline (warp: lower is steadier; worst clip for strength and "
            f"edges; goals: warp <= {WARP_GOAL:.2f}x except on the still clip, strength >= {STRENGTH_GOAL}x, "
            f"edges >= {EDGE_GOAL}x)\n{summary}")


def to_json(results: Sequence[Comparison], meta: dict[str, Any]) -> dict[str, Any]:
    return {"meta": meta, "rows": _rows(results), "summary": _summary(results)}



def strip_image(clip: Clip, baseline: Sequence[np.ndarray], stabilized: Sequence[np.ndarray],
                count: int = 4, gain: float = 4.0) -> np.ndarray:
    """Before/after as one picture (RGB): for `count` consecutive frames, today's output, its
    change from the previous frame once the camera's motion is undone (amplified by `gain`: the
    shimmer a viewer sees), then the same two rows with the stabilizer."""
    rows = []
    for outputs in (baseline, stabilized):
        h, w = outputs[0].shape[:2]
        frames, changes = [], []
        for t in range(1, count + 1):
            m = motion_at(clip.motions[t - 1], (w, h), clip.size)
            back = cv2.remap(outputs[t], m.map_x, m.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            change = cv2.absdiff(back, outputs[t - 1]).mean(axis=2) * m.valid
            frames.append(outputs[t])
            changes.append(cv2.applyColorMap(np.clip(change * gain, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1])
        rows += [np.hstack(frames), np.hstack(changes)]
    return np.vstack(rows)
