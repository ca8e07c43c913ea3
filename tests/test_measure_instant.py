"""The instant-vs-trained measurement's own figures (nstcam.measure.instant)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nstcam.jobs.instant_style import make_instant_style
from nstcam.measure.instant import DROP_TARGET_S, drop_latency, strength_figures, time_nets
from test_instant_style import painting


def test_strength_figures_compare_alpha_with_the_pixel_blend(tmp_path: Path) -> None:
    style = make_instant_style(painting(), tmp_path, "a")
    y, x = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 64), indexing="ij")
    photo = torch.stack([x, y, (x + y) / 2])[None]
    figures = strength_figures(style, photo)
    blend = np.array(figures["blend_half_fraction"])
    assert 0 < blend[0] < 1  # a 50/50 blend's lightness lies between the photo's and the style's
    assert figures["alpha_zero_distance"] > 5  # the model's alpha 0 is not the photo ...
    assert figures["alpha_half_distance"] > 0  # ... and 0.5 changes the picture (by how much is the finding)


def test_time_nets_times_each_net_in_one_run() -> None:
    nets = {"small": torch.nn.Conv2d(3, 3, 1), "large": torch.nn.Sequential(*[torch.nn.Conv2d(3, 3, 9, padding=4)] * 8)}
    ms = time_nets(nets, (64, 48), repeats=3)
    assert set(ms) == {"small", "large"} and 0 < ms["small"] < ms["large"]


@pytest.mark.slow
def test_drop_latency_times_each_picture_in_a_fresh_window(tmp_path: Path) -> None:
    """`--only drop`: the window in its own process, one time per picture, the median beside the goal."""
    pictures = [tmp_path / "poster.png", tmp_path / "mural.png"]
    for seed, path in enumerate(pictures):
        Image.fromarray(painting(seed, (96, 128))).save(path)
    result = drop_latency(pictures, tmp_path)
    assert len(result["seconds"]) == 2 and all(s > 0 for s in result["seconds"])
    assert result["median"] == pytest.approx(float(np.median(result["seconds"])))
    assert result["target_s"] == DROP_TARGET_S
    assert sorted(p.name for p in (tmp_path / "drop" / "nstcam" / "styles").glob("*.instant")) == ["mural.instant",
                                                                                                    "poster.instant"]


@pytest.mark.slow
def test_quality_and_flicker_of_both_engines_with_each_detail_amount(tmp_path: Path) -> None:
    """The report's figures for a pack painting, its instant style's detail amount (calibrated, or
    the one --detail sets for comparisons) and the flicker with and without the stabilizer."""
    import json

    from nstcam.measure.instant import main

    (tmp_path / "paintings").mkdir()
    (tmp_path / "eval").mkdir()
    Image.fromarray(painting(0, (96, 128))).save(tmp_path / "paintings" / "monet.jpg")
    Image.fromarray(painting(1, (48, 64))).save(tmp_path / "eval" / "street.png")
    args = ["--paintings", str(tmp_path / "paintings"), "--eval", str(tmp_path / "eval"), "--images", "street.png",
            "--clip-images", "street.png", "--clips", "pan1", "--frames", "3", "--size", "48", "--styles", "monet",
            "--only", "quality,flicker"]
    figures = {}
    for detail in (None, 1.25):
        out = tmp_path / f"report-{detail}.json"
        assert main(args + ["--json", str(out)] + ([] if detail is None else ["--detail", str(detail)])) == 0
        figures[detail] = json.loads(out.read_text())
    calibrated = figures[None]["detail"]["monet"]
    assert 0.5 <= calibrated <= 2.0 and figures[1.25]["detail"]["monet"] == 1.25
    rows = {r["engine"]: r for r in figures[1.25]["quality"]}
    assert set(rows) == {"trained", "instant"} and rows["instant"]["detail"] == 1.25
    assert all(0 < r["edge"] <= 1 and r["colour"] >= 0 for r in rows.values())
    summary = figures[None]["flicker"]["summary"]
    assert {(r["style"], r["renderer"]) for r in summary} == {("monet/trained", "stabilized"),
                                                              ("monet/instant", "stabilized")}
    assert all(0 < r["pan1"] for r in summary)  # the stabilized clip's warp error over the unstabilized one
