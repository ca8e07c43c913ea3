"""The quality report (trainer.report): contact sheets, loss table and JSON on tiny generated data.

Two random-weight width-4 style files whose Gram targets come from a generated 64 px pattern
through the real EfficientNet-Lite0, two generated photographs, 32 px, 3 Gatys steps: a few
seconds on one thread. Nothing is read from ../shared.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainer import metrics
from trainer.report import cli, files, inputs, sheets
from trainer.images import rgb_array_to_tensor
from trainer.lossnets import build_loss_net
from trainer.lossnets.efficientnet import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_WEIGHTS
from trainer.perceptual import PerceptualLoss
from trainer.stylefile import load_style, save_style
from trainer.transformer import TransformerConfig, TransformerNet

TINY = TransformerConfig(width=4, res_blocks=1, outer_kernel=3)
STYLE_WEIGHT = 20.0
PHOTO_SIZES = {"portrait": (32, 44), "landscape": (48, 36)}  # (w, h)


def pattern(size: int, seed: int) -> np.ndarray:
    """A stripy, noisy RGB uint8 image: a stand-in painting."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.stack([
        0.5 + 0.5 * np.sin(2 * np.pi * (4 * x + 2 * y + rng.random())),
        0.5 + 0.5 * np.sin(2 * np.pi * (6 * y + rng.random())),
        0.5 + 0.5 * np.cos(2 * np.pi * 5 * x * y + rng.random()),
    ], -1) * 0.8 + 0.2 * rng.random((size, size, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def photo(w: int, h: int, seed: int) -> Image.Image:
    """A textured stand-in photograph with a bright disc (an edge to keep).

    Its texture resembles the paintings', so the photograph itself already has a lowish style
    loss: Gatys, starting from it with zero content loss, can only lower the style loss (it
    keeps its best total), whereas a random network's output is far from both.
    """
    img = pattern(max(w, h), seed + 10)[:h, :w].astype(np.float32) / 255
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img[(x - w / 2) ** 2 + (y - h / 2) ** 2 < (min(w, h) / 4) ** 2] = 0.95
    return Image.fromarray((img * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report")
    styles, eval_dir = root / "styles", root / "eval"
    styles.mkdir()
    eval_dir.mkdir()
    for i, (name, (w, h)) in enumerate(PHOTO_SIZES.items()):
        photo(w, h, i).save(eval_dir / f"{name}.png")
    loss = PerceptualLoss(build_loss_net("efficientnet-lite0"), 1.0, 1.0)
    for seed, name in enumerate(("ember", "glacier")):
        torch.manual_seed(seed)
        net = TransformerNet(TINY)
        targets = loss.compute_style_targets(rgb_array_to_tensor(pattern(64, seed)))
        meta = {
            "name": name, "title": f"{name.title()} Painting", "variant": "light",
            "loss_net": "efficientnet-lite0", "style_layers": dict(DEFAULT_STYLE_WEIGHTS),
            "content_layer": DEFAULT_CONTENT_LAYER, "content_weight": 1.0, "style_weight": STYLE_WEIGHT,
            "tv_weight": 0.0, "steps": 600 + seed, "training_seconds": 3725.0,
            "images_per_second": 2.5,
        }
        save_style(styles / f"{name}-light.pt", net, meta, {"efficientnet-lite0": targets})
    return {"styles": styles, "eval": eval_dir, "root": root}


@pytest.fixture(scope="module")
def run(data) -> dict[str, Path]:
    out = data["root"] / "docs"
    status = cli.main([
        "--styles", str(data["styles"]), "--eval", str(data["eval"]),
        "--images", *[f"{n}.png" for n in PHOTO_SIZES], "--size", "32", "--gatys-steps", "3",
        "--out", str(out), "--device", "cpu",
    ])
    assert status == 0
    return {"out": out}


def test_contact_sheets_have_one_cell_per_photo_and_style(run):
    rows, cols, cell = len(PHOTO_SIZES), 1 + 2, 32  # original + two styles
    expected = (sheets.LABEL_WIDTH + sheets.PAD + cols * (cell + sheets.PAD),
                sheets.HEADER_HEIGHT + sheets.PAD + rows * (cell + sheets.PAD))
    assert sheets.sheet_size(rows, cols, cell) == expected
    for name in ("contact_sheet.png", "gatys_sheet.png"):
        with Image.open(run["out"] / name) as sheet:
            assert sheet.size == expected
            assert sheet.mode == "RGB"
            # Every cell holds a picture: not the plain page background.
            pixels = np.asarray(sheet)
            for r in range(rows):
                for c in range(cols):
                    x = sheets.LABEL_WIDTH + sheets.PAD + c * (cell + sheets.PAD)
                    y = sheets.HEADER_HEIGHT + sheets.PAD + r * (cell + sheets.PAD)
                    assert (pixels[y:y + cell, x:x + cell] != sheets.BACKGROUND).any()


def test_json_has_finite_losses_and_gatys_beats_a_random_network(run):
    data = json.loads((run["out"] / "quality_report.json").read_text())
    assert data["settings"]["size"] == 32 and data["settings"]["gatys_steps"] == 3
    assert data["settings"]["images"] == list(PHOTO_SIZES)
    styles = data["styles"]
    assert [(s["name"], s["variant"]) for s in styles] == [("ember", "light"), ("glacier", "light")]
    for s in styles:
        assert s["measured"] and s["skipped"] is None
        assert s["loss_net"] == "efficientnet-lite0" and s["style_weight"] == 20.0
        assert len(s["images"]) == len(PHOTO_SIZES)
        for which in ("fast", "gatys", "photo"):
            for term in ("content", "style", "total"):
                assert math.isfinite(s["mean"][which][term])
        for entry in s["images"]:
            w, h = PHOTO_SIZES[entry["image"]]
            assert min(entry["width"], entry["height"]) == 32
            assert (entry["width"] > entry["height"]) == (w > h)
        # A random network does not paint the style; three L-BFGS steps already do better.
        assert s["mean"]["gatys"]["style"] < s["mean"]["fast"]["style"]
        # Gatys starts from the photograph (content loss 0) and keeps its best total.
        assert s["mean"]["gatys"]["total"] <= s["mean"]["photo"]["total"]
        assert s["mean"]["gatys"]["total"] < s["mean"]["fast"]["total"]
        assert s["ratio"]["style"] == pytest.approx(
            s["mean"]["fast"]["style"] / s["mean"]["gatys"]["style"])
        assert s["ratio"]["style"] > 1


def test_markdown_table_lists_every_style(run):
    text = (run["out"] / "quality_report.md").read_text()
    assert "| style | variant | loss net |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ember |")
            or line.startswith("| glacier |")]
    assert len(rows) == 6  # summary, per-photograph, and structure/palette/stability tables
    assert "| style | variant | edge | colour |" in text
    assert any("efficientnet-lite0" in r and "600" in r and "1h 02m" in r for r in rows)
    assert "contact_sheet.png" in text


def test_styles_follow_the_manifest_light_before_full(data, tmp_path):
    folder = tmp_path / "styles"
    folder.mkdir()
    for src in data["styles"].glob("*.pt"):
        (folder / src.name).write_bytes(src.read_bytes())
    torch.manual_seed(5)
    save_style(folder / "ember-full.pt", TransformerNet(TINY), {"name": "ember", "variant": "full"}, {})
    (folder / "broken.pt").write_bytes(b"not a style")
    (folder / "manifest.json").write_text(json.dumps({"styles": [{"name": "glacier"}, {"name": "ember"}]}))
    styles, problems = inputs.discover_styles(folder)
    assert [(s.name, s.variant) for s in styles] == [
        ("glacier", "light"), ("ember", "light"), ("ember", "full")]
    assert len(problems) == 1 and "broken.pt" in problems[0]


def test_style_without_targets_is_shown_but_not_measured(data, tmp_path):
    folder = tmp_path / "styles"
    folder.mkdir()
    torch.manual_seed(7)
    save_style(folder / "plain.pt", TransformerNet(TINY), {"name": "plain", "variant": "light"}, {})
    out = tmp_path / "docs"
    assert cli.main(["--styles", str(folder), "--eval", str(data["eval"]), "--images",
                        "portrait.png", "--size", "16", "--gatys-steps", "1", "--out", str(out),
                        "--device", "cpu", "--threads", "2"]) == 0
    assert torch.get_num_threads() == 1  # main restores the caller's thread count
    entry = json.loads((out / "quality_report.json").read_text())["styles"][0]
    assert not entry["measured"] and "loss net" in entry["skipped"]
    assert entry["ratio"]["style"] is None
    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.size == sheets.sheet_size(1, 2, 16)
    assert "Not measured" in (out / "quality_report.md").read_text()


@pytest.mark.parametrize("case", ["no_styles_dir", "empty_styles", "no_eval_dir", "missing_image"])
def test_bad_input_is_an_error_with_status_2(case, data, tmp_path, capsys):
    styles, eval_dir, images = data["styles"], data["eval"], ["portrait.png"]
    if case == "no_styles_dir":
        styles = tmp_path / "nope"
    elif case == "empty_styles":
        styles = tmp_path / "empty"
        styles.mkdir()
    elif case == "no_eval_dir":
        eval_dir = tmp_path / "nope"
    else:
        images = ["missing.png"]
    status = cli.main(["--styles", str(styles), "--eval", str(eval_dir), "--images", *images,
                          "--out", str(tmp_path / "docs"), "--device", "cpu"])
    assert status == 2
    err = capsys.readouterr().err
    assert "error:" in err
    assert not (tmp_path / "docs").exists()


def _entry(name: str, variant: str, content: float, style: float, width: int) -> dict:
    fast = {"content": content, "style": style, "tv": 0.0, "total": content + style}
    return {"name": name, "variant": variant, "skipped": None, "mean": {"fast": fast},
            "architecture": {"width": width, "res_blocks": 5, "outer_kernel": 5 if width == 16 else 9,
                             "separable": False}}


def test_variant_costs_compare_light_with_full_of_the_same_style():
    styles = [_entry("ember", "light", 30.0, 12.0, 16), _entry("ember", "full", 20.0, 8.0, 32),
              _entry("glacier", "light", 10.0, 5.0, 16)]  # no full variant: no row
    (row,) = files.variant_costs(styles)
    assert row["name"] == "ember"
    assert row["content_ratio"] == pytest.approx(1.5) and row["style_ratio"] == pytest.approx(1.5)
    assert row["total_ratio"] == pytest.approx(42 / 28)
    text = files.markdown_report({
        "settings": {"styles_dir": "s", "images": ["a"], "size": 32, "gatys_steps": 3},
        "styles": [], "variant_costs": [row],
    })
    assert "| ember | w16/r5/k5 | w32/r5/k9 | 30 | 20 | 1.50 |" in text


def test_quality_figures_are_in_the_json(run):
    for s in json.loads((run["out"] / "quality_report.json").read_text())["styles"]:
        q = s["quality"]["fast"]
        assert -1 <= q["edge"] <= 1 and q["strength"] > 0 and q["pan1"] >= 0 and q["pan2"] >= 0
        assert q["colour"] is None  # no paintings folder given: left out, not guessed
        assert s["quality"]["old"] is None and s["mean_old"] is None


def test_edge_correlation_and_colour_distance_have_known_answers():
    x = rgb_array_to_tensor(np.array(photo(48, 36, 0)))
    assert metrics.edge_correlation(x, x, blur_sigma=0.0) == pytest.approx(1.0, abs=1e-5)
    flat = torch.full_like(x, 0.5) + 0.01 * torch.rand_like(x)
    assert abs(metrics.edge_correlation(flat, x, blur_sigma=0.0)) < 0.3
    assert metrics.colour_distance(x, x) == pytest.approx(0.0, abs=1e-4)
    assert metrics.colour_distance(torch.zeros_like(x), torch.ones_like(x)) == pytest.approx(255.0)
    darker = metrics.colour_distance(x * 0.5, x)
    assert 20 < darker < metrics.colour_distance(torch.zeros_like(x), x) + 1e-3


def test_pan_warp_error_is_zero_for_a_shift_equivariant_net_and_not_for_an_aliasing_one():
    x = rgb_array_to_tensor(np.array(photo(48, 48, 1)))
    identity = torch.nn.Conv2d(3, 3, 1, bias=False)
    with torch.no_grad():
        identity.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
    assert metrics.pan_warp_error(identity, x, 1) == pytest.approx(0.0, abs=1e-3)
    aliasing = torch.nn.Sequential(torch.nn.AvgPool2d(4), torch.nn.Upsample(scale_factor=4), identity)
    assert metrics.pan_warp_error(aliasing, x[..., :48, :48], 1) > 2.0


def test_compare_sets_old_and_new_side_by_side(data, tmp_path):
    paintings = tmp_path / "paintings"
    paintings.mkdir()
    Image.fromarray(pattern(64, 0)).save(paintings / "ember.png")
    for f in data["styles"].glob("*.pt"):  # the same files, told where ember's painting is
        model = load_style(f)
        save_style(tmp_path / "new" / f.name, model.build(), {**model.meta, "style_image": "ember.png"},
                   model.style_targets)
    out = tmp_path / "docs"
    assert cli.main([
        "--styles", str(tmp_path / "new"), "--compare", str(data["styles"]), "--paintings", str(paintings),
        "--eval", str(data["eval"]), "--images", *[f"{n}.png" for n in PHOTO_SIZES], "--size", "32",
        "--gatys-steps", "1", "--out", str(out), "--device", "cpu",
    ]) == 0
    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.size == sheets.sheet_size(len(PHOTO_SIZES), 1 + 2 * 2, 32)
    styles = json.loads((out / "quality_report.json").read_text())["styles"]
    for s in styles:
        assert s["mean_old"]["style"] == pytest.approx(s["mean"]["fast"]["style"], rel=1e-4)  # same nets
        assert s["quality"]["old"]["edge"] == pytest.approx(s["quality"]["fast"]["edge"], abs=1e-4)
        assert s["quality"]["fast"]["colour"] is not None and s["quality"]["photo_colour"] > 0
    text = (out / "quality_report.md").read_text()
    assert "old network against new" in text and " → " in text
