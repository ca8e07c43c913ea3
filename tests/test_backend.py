"""`--backend onnxruntime`: render matches torch fp32, and the app runs where torch is missing."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nstcam_fixtures import make_video, video_frame
from nstcam.cli import main

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("video") / "clip.avi", frames=12, size=(96, 64))


def decode(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24").astype(np.float64) for f in container.decode(video=0)]


def psnr(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    mse = np.mean([np.mean((x - y) ** 2) for x, y in zip(a, b, strict=True)])
    return float(10 * np.log10(255**2 / max(mse, 1e-12)))


def test_render_with_onnxruntime_matches_torch_fp32(styles_dir, video, tmp_path, capsys) -> None:
    common = ["render", str(video), "--style", "glacier", "--styles-dir", str(styles_dir), "--no-stabilize"]
    assert main([*common, "-o", str(tmp_path / "ort.mp4"), "--backend", "onnxruntime"]) == 0
    assert "ONNX Runtime" in capsys.readouterr().out
    assert main([*common, "-o", str(tmp_path / "torch.mp4"), "--backend", "torch", "--precision", "fp32"]) == 0
    ort, torch_frames = decode(tmp_path / "ort.mp4"), decode(tmp_path / "torch.mp4")
    assert len(ort) == len(torch_frames) == 12
    assert psnr(ort, torch_frames) >= 35.0
    assert list(styles_dir.glob("glacier*.onnx"))  # exported once, next to the style, reused


def test_onnxruntime_backend_refuses_bf16(styles_dir, video, tmp_path, capsys) -> None:
    code = main(["render", str(video), "-o", str(tmp_path / "x.mp4"), "--style", "moss", "--styles-dir",
                 str(styles_dir), "--backend", "onnxruntime", "--precision", "bf16"])
    assert code == 2 and "runs fp32" in capsys.readouterr().err


@pytest.mark.slow
def test_the_app_runs_without_torch(styles_dir, video, tmp_path) -> None:
    """What the lite bundle does: torch unimportable, styles found as their ONNX exports."""
    from nstcam.engines.onnx_export import ensure_onnx

    for style in styles_dir.glob("*.pt"):  # exported here too, so this test runs alone (-m slow)
        ensure_onnx(style)
    block = tmp_path / "block" / "torch"
    block.mkdir(parents=True)
    (block / "__init__.py").write_text('raise ImportError("no torch here")\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(block.parent), str(Path(__file__).parents[1])])}
    out = tmp_path / "lite.mp4"
    run = subprocess.run([sys.executable, "-m", "nstcam", "render", str(video), "-o", str(out), "--style", "ember",
                          "--styles-dir", str(styles_dir)], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "ONNX Runtime" in run.stdout and len(decode(out)) == 12
    listed = subprocess.run([sys.executable, "-m", "nstcam", "styles", "--styles-dir", str(styles_dir)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0 and "ember" in listed.stdout and ".onnx" in listed.stdout


def test_the_anti_aliased_network_exports_and_matches(tmp_path) -> None:
    """Nets trained with the anti-aliasing options (blur before striding, bilinear upsampling) must
    run alike in ONNX."""
    import torch

    from nstcam.engines.torch_engine import StyleEngine
    from nstcam.engines.ort import OnnxStyleEngine
    from nstcam.engines.onnx_export import export_model
    from trainer.stylefile import load_style, save_style
    from trainer.transformer import TransformerConfig, TransformerNet

    torch.manual_seed(0)
    net = TransformerNet(TransformerConfig(width=4, res_blocks=1, outer_kernel=3, blur_downsample=True,
                                           upsample="bilinear"))
    save_style(tmp_path / "aa.pt", net, {"name": "aa", "variant": "light"}, {})
    model = load_style(tmp_path / "aa.pt")
    torch_engine = StyleEngine({"aa": model}, device="cpu", size=None, precision="fp32", channels_last=False)
    ort_engine = OnnxStyleEngine({"aa": export_model(model, tmp_path / "aa.onnx")}, device="cpu", size=None)
    frame = video_frame(5)
    a, b = torch_engine.stylize(frame).astype(float), ort_engine.stylize(frame).astype(float)
    assert 10 * np.log10(255**2 / max(np.mean((a - b) ** 2), 1e-12)) >= 40.0
