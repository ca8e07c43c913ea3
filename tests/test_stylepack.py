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


def test_recipe_becomes_a_fast_command_line(tmp_path: Path) -> None:
    args = argparse.Namespace(photos=Path("p"), paintings=Path("s"), work=tmp_path, steps=7,
                              image_size=96, loss_net="efficientnet-lite0", threads=1, variant="light")
    recipe = next(r for r in stylepack.RECIPES if r.name == "van_gogh")
    argv = stylepack.train_args(recipe, args)
    parsed = stylepack.fast.build_parser().parse_args(argv)
    assert parsed.style == Path("s/van_gogh.jpg") and parsed.steps == 7 and parsed.image_size == 96
    assert parsed.style_weight == recipe.style_weight
    assert parsed.style_layers == {"stem": 1.0, "stage2": 1.0, "stage3": 1.0, "stage4": 0.5}
    assert parsed.content_layer == "stage2"
    assert parsed.out == tmp_path / "van_gogh-light" / "van_gogh-light.pt"
    assert (parsed.width, parsed.outer_kernel, parsed.variant) == (16, 5, "light")
    args.variant = "full"
    parsed = stylepack.fast.build_parser().parse_args(stylepack.train_args(recipe, args))
    assert parsed.out == tmp_path / "van_gogh-full" / "van_gogh-full.pt"
    assert (parsed.width, parsed.outer_kernel, parsed.variant) == (32, 9, "full")


def test_unknown_style_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        stylepack.main(["--only", "rembrandt"])
    assert exc.value.code == 2
    assert "rembrandt" in capsys.readouterr().err
