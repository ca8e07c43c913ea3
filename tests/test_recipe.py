"""The default recipe of trainer.fast per device and precision, and what counts as native bf16.

No training here except one tiny run that shows the choice reaches the log and the style file.
"""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from trainer import fast
from trainer.devices import bf16_ruled_out_by_env, cpu_bf16_supported
from trainer.stylefile import load_style
from trainer.training import recipe

ISA_VARIABLES = ("NSTCAM_NO_NATIVE_BF16", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


@pytest.fixture
def clean_isa(monkeypatch):
    for name in ISA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _args(*extra: str):
    return fast.build_parser().parse_args(["--dataset", "d", "--style", "s.jpg", "--loss-net", "efficientnet-lite0",
                                           *extra])


def test_cpu_recipe_follows_the_step_precision():
    cpu = torch.device("cpu")
    bf16 = _args()
    summary = recipe.apply_recipe_defaults(bf16, cpu, torch.bfloat16)
    assert (bf16.width, bf16.outer_kernel, bf16.image_size, bf16.batch_size, bf16.steps) == (16, 5, 192, 4, 1200)
    assert bf16.recipe == "cpu-bf16" and summary.startswith("default recipe cpu-bf16")
    fp32 = _args()
    summary = recipe.apply_recipe_defaults(fp32, cpu, None)
    assert (fp32.width, fp32.outer_kernel, fp32.image_size, fp32.batch_size, fp32.steps) == (16, 5, 160, 4, 800)
    assert fp32.recipe == "cpu-fp32" and "160" in summary and "800 steps" in summary
    # The fp32 recipe does at most half the bf16 recipe's work (steps x crop pixels): the step
    # costs 0.72x at 160 px (side by side under AVX2 emulation), so it ends in under half the time.
    work = {name: r["steps"] * r["image_size"] ** 2 for name, r in recipe.RECIPES.items()}
    assert work["cpu-fp32"] <= 0.5 * work["cpu-bf16"]


def test_given_settings_win_over_the_recipe_and_the_summary_says_what_it_set():
    fp32 = _args("--image-size", "192", "--batch-size", "2")
    summary = recipe.apply_recipe_defaults(fp32, torch.device("cpu"), None)
    assert (fp32.image_size, fp32.batch_size, fp32.steps) == (192, 2, 800)
    assert "image size" not in summary and "batch size" not in summary and "800 steps" in summary
    epochs = _args("--epochs", "3")
    recipe.apply_recipe_defaults(epochs, torch.device("cpu"), None)
    assert epochs.steps is None and epochs.epochs == 3
    cuda = _args("--image-size", "320")
    recipe.apply_recipe_defaults(cuda, torch.device("cuda"), torch.bfloat16)
    assert (cuda.width, cuda.outer_kernel, cuda.image_size, cuda.steps, cuda.recipe) == (32, 9, 320, 10000, "cuda")
    everything = _args("--width", "8", "--outer-kernel", "3", "--image-size", "64", "--batch-size", "1", "--steps", "5")
    summary = recipe.apply_recipe_defaults(everything, torch.device("cpu"), None)
    assert everything.recipe is None and "nothing" in summary


def test_a_resumed_run_keeps_its_recipe_and_settings():
    args = _args()
    recipe.apply_checkpoint_args(args, set(), {"recipe": "cpu-bf16", "image_size": 192, "steps": 1200,
                                               "batch_size": 4, "width": 16, "outer_kernel": 5})
    recipe.apply_recipe_defaults(args, torch.device("cpu"), None)  # resumed on an fp32 CPU
    assert (args.recipe, args.image_size, args.steps) == ("cpu-bf16", 192, 1200)


@pytest.mark.parametrize("name,value", [("ONEDNN_MAX_CPU_ISA", "AVX2"), ("ONEDNN_MAX_CPU_ISA", "avx512_core"),
                                        ("ATEN_CPU_CAPABILITY", "avx2"), ("NSTCAM_NO_NATIVE_BF16", "1")])
def test_an_emulated_older_cpu_has_no_native_bf16_and_trains_fp32(clean_isa, name, value):
    clean_isa.setenv(name, value)
    assert bf16_ruled_out_by_env() == f"{name}={value}"
    assert cpu_bf16_supported() is False
    args = _args()
    amp = recipe.resolve_amp(args, torch.device("cpu"))
    assert amp is None
    summary = recipe.apply_recipe_defaults(args, torch.device("cpu"), amp)
    assert args.recipe == "cpu-fp32" and f"{name}={value}" in summary


@pytest.mark.parametrize("name,value", [("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX"), ("ONEDNN_MAX_CPU_ISA", "ALL"),
                                        ("ATEN_CPU_CAPABILITY", "avx512"), ("NSTCAM_NO_NATIVE_BF16", "0")])
def test_caps_that_keep_bf16_do_not_rule_it_out(clean_isa, name, value):
    clean_isa.setenv(name, value)
    assert bf16_ruled_out_by_env() is None


def test_forcing_amp_where_bf16_is_not_native_warns(clean_isa, caplog):
    clean_isa.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    with caplog.at_level(logging.WARNING, logger="trainer"):
        assert recipe.resolve_amp(_args("--amp"), torch.device("cpu")) is torch.bfloat16
    assert any("not native" in r.getMessage() and "ONEDNN_MAX_CPU_ISA=AVX2" in r.getMessage() for r in caplog.records)


def test_the_run_logs_its_recipe_and_the_style_file_records_it(clean_isa, tmp_path, caplog):
    clean_isa.setenv("NSTCAM_NO_NATIVE_BF16", "1")
    rng = np.random.default_rng(0)
    for i in range(4):
        (tmp_path / "photos").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "photos" / f"p{i}.png")
    Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(tmp_path / "painting.png")
    out = tmp_path / "run" / "p.pt"
    with caplog.at_level(logging.INFO, logger="trainer"):
        rc = fast.main(["--dataset", str(tmp_path / "photos"), "--style", str(tmp_path / "painting.png"),
                        "--out", str(out), "--image-size", "32", "--width", "8", "--res-blocks", "1",
                        "--batch-size", "2", "--steps", "2", "--workers", "0", "--sample-every", "0",
                        "--loss-net", "efficientnet-lite0"])
    assert rc == 0
    meta = load_style(out).meta
    assert meta["recipe"] == "cpu-fp32" and meta["amp"] is None
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("default recipe")]
    assert lines == ["default recipe cpu-fp32 (bf16 not native: NSTCAM_NO_NATIVE_BF16=1, so steps run in fp32, "
                     + recipe._FP32_WHY + "): outer kernel 5"]
    assert any(r.getMessage().startswith("wrote ") and r.getMessage().endswith(", default recipe cpu-fp32)")
               for r in caplog.records)
