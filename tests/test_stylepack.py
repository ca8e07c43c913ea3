"""The style-pack recipes turn into trainer.fast command lines, and the manifest follows the files."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from trainer import stylepack
from trainer.stylefile import save_style
from trainer.transformer import TransformerConfig, TransformerNet


def _style(folder: Path, name: str) -> None:
    meta = {"name": name, "title": name.title(), "variant": "light", "loss_net": "efficientnet-lite0",
            "style_weight": 5.0, "steps": 3}
    net = TransformerNet(TransformerConfig(width=4, res_blocks=1, outer_kernel=3))
    save_style(folder / f"{name}-light.pt", net, meta, {"efficientnet-lite0": {"stem": torch.eye(2)}})


def test_manifest_lists_style_files_in_recipe_order(tmp_path: Path) -> None:
    for name in ("picabia", "monet", "zzz_user"):
        _style(tmp_path, name)
    (tmp_path / "broken.pt").write_bytes(b"not a style")
    manifest = json.loads(stylepack.write_manifest(tmp_path).read_text())
    names = [s["name"] for s in manifest["styles"]]
    assert names == ["monet", "picabia", "zzz_user"]  # recipe order, unknown names last, broken skipped
    monet = manifest["styles"][0]
    assert monet["file"] == "monet-light.pt" and monet["variant"] == "light"
    assert monet["style_weight"] == 5.0 and "public domain" in monet["public_domain"]
    assert "light" in manifest["variants_note"]


def test_recipe_is_trainer_fast_defaults_plus_names(tmp_path: Path) -> None:
    args = argparse.Namespace(photos=Path("p"), paintings=Path("s"), work=tmp_path, steps=0, image_size=0,
                              threads=1, variant="light", max_minutes=0)
    recipe = next(r for r in stylepack.RECIPES if r.name == "van_gogh")
    argv = stylepack.train_args(recipe, args)
    parsed = stylepack.fast.build_parser().parse_args(argv)
    defaults = stylepack.fast.build_parser().parse_args(["--dataset", "p", "--style", "s/van_gogh.jpg"])
    assert parsed.style == Path("s/van_gogh.jpg") and parsed.title == "The Starry Night"
    for key in ("steps", "image_size", "style_weight", "style_layers", "content_layer", "tv_weight",
                "stability_weight", "blur_downsample", "upsample", "smoothing", "batch_size"):
        assert getattr(parsed, key) == getattr(defaults, key), key  # the pack is the CLI's recipe
    assert parsed.loss_net == "efficientnet-lite0" and parsed.threads == 1 and parsed.max_minutes is None
    assert parsed.out == tmp_path / "van_gogh-light" / "van_gogh-light.pt"
    assert (parsed.width, parsed.outer_kernel, parsed.variant) == (16, 5, "light")
    args.variant, args.steps, args.max_minutes = "full", 7, 2.5  # the GPU check's time budget
    parsed = stylepack.fast.build_parser().parse_args(stylepack.train_args(recipe, args))
    assert parsed.out == tmp_path / "van_gogh-full" / "van_gogh-full.pt" and parsed.steps == 7
    assert parsed.max_minutes == 2.5
    assert (parsed.width, parsed.outer_kernel, parsed.variant) == (32, 9, "full")


def test_unknown_style_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        stylepack.main(["--only", "rembrandt"])
    assert exc.value.code == 2
    assert "rembrandt" in capsys.readouterr().err
