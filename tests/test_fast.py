"""trainer.fast: the CLI, a few real training steps, checkpoint/resume, interruption, torchrun.

Everything trains the real EfficientNet-Lite0 loss net at 32 px with a tiny TransformerNet: about
20 ms a step on one CPU thread. With more threads such tiny ops mostly wait on each other (and on
a busy machine, 10-100x slower), so the tests train on one thread.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainer import fast
from trainer.training import recipe
from trainer.checkpoint import load_checkpoint
from trainer.stylefile import load_style

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--image-size", "32", "--width", "8", "--res-blocks", "1", "--batch-size", "2",
        "--workers", "0", "--log-every", "1", "--loss-net", "efficientnet-lite0"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _image(path: Path, w: int, h: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / (w - 1), yy * 255 / (h - 1), np.full_like(xx, seed * 41 % 256)], -1)
    arr = np.clip(base + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset folder of 12 photos, some nested, plus a corrupt one; style image)."""
    root = tmp_path_factory.mktemp("fastdata")
    photos = root / "photos"
    for i in range(12):
        _image(photos / ("nested" if i % 3 == 0 else "") / f"p{i:02d}.jpg", 64, 64 + 4 * i, seed=i)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    style = _image(root / "starry.jpg", 80, 96, seed=99)
    return photos, style


def _run(data, out: Path, *extra: str) -> int:
    photos, style = data
    return fast.main(["--dataset", str(photos), "--style", str(style), "--out", str(out), *TINY, *extra])


@pytest.mark.slow
def test_few_steps_write_a_loadable_style_file_with_metadata(data, tmp_path):
    out = tmp_path / "run" / "starry.pt"
    rc = _run(data, out, "--steps", "4", "--workers", "1", "--sample-every", "2", "--checkpoint-every", "2",
              "--title", "The Starry Night", "--artist", "Vincent van Gogh", "--year", "1889",
              "--style-layers", "stem,stage2:0.5", "--content-layer", "stage2")
    assert rc == 0
    style = load_style(out)
    meta = style.meta
    assert meta["name"] == "starry" and meta["title"] == "The Starry Night"
    assert meta["artist"] == "Vincent van Gogh" and meta["year"] == "1889"
    assert meta["style_image"] == "starry.jpg" and meta["loss_net"] == "efficientnet-lite0"
    assert meta["steps"] == 4 and meta["image_size"] == 32 and meta["batch_size"] == 2
    assert meta["style_size"] == 80  # the painting's own short side: smaller than 512, not upscaled
    assert meta["dataset_size"] == 12 and meta["variant"] == "light" and meta["seed"] == 0
    assert meta["training_seconds"] > 0 and meta["images_per_second"] > 0
    assert meta["torch_version"] == torch.__version__ and meta["lr"] == 1e-3
    for key in ("content_weight", "style_weight", "tv_weight", "content_layer"):
        assert key in meta
    assert set(style.style_targets) == {"efficientnet-lite0"}
    grams = style.style_targets["efficientnet-lite0"]
    assert meta["style_layers"] == {"stem": 1.0, "stage2": 0.5} and meta["content_layer"] == "stage2"
    assert set(grams) == set(meta["style_layers"]) and all(g.dim() == 2 for g in grams.values())
    assert style.config.width == 8 and style.config.res_blocks == 1
    y = style.build()(torch.rand(1, 3, 36, 44))
    assert y.shape == (1, 3, 36, 44) and torch.isfinite(y).all()
    samples = sorted(p.name for p in (out.parent / "samples").iterdir())
    assert samples == ["step_000002.png", "step_000004.png"]
    assert Image.open(out.parent / "samples" / samples[0]).size == (4 * 32, 2 * 32)
    assert load_checkpoint(out.parent / "checkpoint.pt")["step"] == 4


def test_epochs_count_whole_passes_and_amp_on_cpu_means_bf16(data, tmp_path):
    out = tmp_path / "e" / "s.pt"
    assert _run(data, out, "--epochs", "1", "--batch-size", "4", "--amp", "--separable", "--sample-every", "0",
                "--variant", "full", "--name", "my style") == 0
    meta = load_style(out).meta
    assert meta["steps"] == 3  # 12 photos / 4
    assert meta["amp"] == "bfloat16" and meta["variant"] == "full" and meta["name"] == "my style"
    assert load_style(out).config.separable
    assert not (out.parent / "samples").exists()


def _interrupt_at(monkeypatch, call: int) -> None:
    """Make the perceptual loss send this process SIGINT during its `call`-th forward."""
    real = recipe.build_perceptual

    def build(args, device):
        loss = real(args, device)
        forward, calls = loss.forward, [0]

        def counting(*a, **k):
            calls[0] += 1
            if calls[0] == call:
                signal.raise_signal(signal.SIGINT)
            return forward(*a, **k)

        loss.forward = counting
        return loss

    monkeypatch.setattr(recipe, "build_perceptual", build)


def test_ctrl_c_checkpoints_and_resume_gives_the_same_weights(data, tmp_path, monkeypatch, capsys):
    # 12 photos / batch 2 = 6 steps an epoch: stopping at 3 resumes mid-epoch, and 8 crosses one.
    straight = tmp_path / "straight" / "s.pt"
    assert _run(data, straight, "--steps", "8", "--checkpoint-every", "3") == 0

    broken = tmp_path / "broken" / "s.pt"
    before = signal.getsignal(signal.SIGINT)
    with monkeypatch.context() as m:
        _interrupt_at(m, 3)
        assert _run(data, broken, "--steps", "8", "--checkpoint-every", "100") == fast.INTERRUPTED_EXIT
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
    assert load_checkpoint(broken.parent / "checkpoint.pt")["step"] == 3
    assert not broken.exists()
    # Resume with a shorter command line: the checkpoint supplies the rest (width, sizes, ...).
    photos, style = data
    rc = fast.main(["--dataset", str(photos), "--style", str(style), "--out", str(broken), "--resume",
                    "--workers", "0"])
    assert rc == 0

    a = load_checkpoint(straight.parent / "checkpoint.pt")
    b = load_checkpoint(broken.parent / "checkpoint.pt")
    assert a["step"] == b["step"] == 8
    assert a["data"] == b["data"]
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k
    assert load_style(broken).meta["steps"] == 8


def test_max_minutes_ends_training_with_a_style_file_that_resume_continues(data, tmp_path, caplog):
    out = tmp_path / "budget" / "s.pt"
    # 6 ms: every step takes longer (~20 ms), so the budget runs out after the first one.
    with caplog.at_level("WARNING", logger="trainer"):
        assert _run(data, out, "--steps", "50", "--max-minutes", "0.0001", "--sample-every", "0") == 0
    assert load_style(out).meta["steps"] == 1
    assert load_checkpoint(out.parent / "checkpoint.pt")["step"] == 1
    assert any("--max-minutes" in r.getMessage() and "step 1 of 50" in r.getMessage() for r in caplog.records)
    photos, style = data
    assert fast.main(["--dataset", str(photos), "--style", str(style), "--out", str(out), "--resume",
                      "--steps", "3", "--workers", "0"]) == 0
    assert load_style(out).meta["steps"] == 3


def test_resume_refuses_a_different_architecture(data, tmp_path, capsys):
    out = tmp_path / "r" / "s.pt"
    assert _run(data, out, "--steps", "1") == 0
    capsys.readouterr()
    assert _run(data, out, "--steps", "2", "--resume", "--width", "16") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--width" in err and err.count("\n") == 1


EVERY_FLAG = [
    "--dataset", "--style", "--out", "--name", "--title", "--artist", "--year", "--variant",
    "--image-size", "--style-size", "--batch-size", "--epochs", "--steps", "--lr", "--content-weight",
    "--style-weight", "--tv-weight", "--loss-net", "--vgg-weights", "--seed", "--width", "--res-blocks",
    "--outer-kernel", "--separable", "--device", "--amp", "--threads", "--workers", "--checkpoint-every", "--resume",
    "--sample-every", "--log-every",
]


def test_help_mentions_every_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        fast.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in EVERY_FLAG:
        assert flag in text, flag
    for choice in ("efficientnet-lite0", "vgg19", "auto"):
        assert choice in text


@pytest.mark.parametrize("argv, words", [
    (["--style", "{style}"], "--dataset"),
    (["--dataset", "{photos}"], "--style"),
    (["--dataset", "{photos}", "--style", "{style}", "--steps", "0"], "--steps"),
    (["--dataset", "{photos}", "--style", "{style}", "--steps", "3", "--epochs", "1"], "not allowed with"),
    (["--dataset", "{photos}", "--style", "{style}", "--lr", "-1"], "--lr"),
    (["--dataset", "{photos}", "--style", "{style}", "--batch-size", "many"], "--batch-size"),
    (["--dataset", "{photos}", "--style", "{style}", "--outer-kernel", "4"], "odd"),
    (["--dataset", "{photos}", "--style", "{tmp}/missing.jpg"], "--style"),
    (["--dataset", "{tmp}/nowhere", "--style", "{style}"], "does not exist"),
    (["--dataset", "{tmp}/empty", "--style", "{style}"], "no image files"),
    (["--dataset", "{photos}", "--style", "{style}", "--batch-size", "50"], "fewer than one batch"),
    (["--dataset", "{photos}", "--style", "{style}", "--resume", "{tmp}/none.pt"], "no checkpoint"),
    (["--dataset", "{photos}", "--style", "{style}", "--loss-net", "vgg19", "--vgg-weights", "{tmp}/no.pth"],
     "no such file"),
    (["--dataset", "{photos}", "--style", "{style}", "--out", "{tmp}/afile/o.pt"], "--out: cannot create"),
    (["--dataset", "{photos}", "--style", "{style}", "--loss-net", "efficientnet-lite0",
      "--style-layers", "stem,nolayer"], "unknown layer(s) ['nolayer']"),
    (["--dataset", "{photos}", "--style", "{style}", "--style-layers", "stem:heavy"], "--style-layers"),
])
def test_bad_input_is_one_error_line_and_exit_2(data, tmp_path, capsys, argv, words):
    photos, style = data
    (tmp_path / "empty").mkdir()
    (tmp_path / "afile").write_text("a file where a folder should be")
    argv = [a.format(photos=photos, style=style, tmp=tmp_path) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "o" / "o.pt")]
    assert fast.main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and words in lines[-1], err
    assert sum(line.startswith("error:") for line in lines) == 1 and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_an_error(data, tmp_path, capsys):
    assert _run(data, tmp_path / "o.pt", "--device", "cuda") == 2
    assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.slow  # a fresh interpreter importing torch: up to ~10 s on a busy 2-core machine
def test_command_line_errors_exit_2_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "trainer.fast", "--dataset", str(tmp_path), "--style", str(tmp_path / "x.jpg")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=_env(),
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu_write_one_style_file(data, tmp_path):
    photos, style = data
    out = tmp_path / "ddp" / "s.pt"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(_free_port()), "-m", "trainer.fast", "--dataset", str(photos), "--style",
         str(style), "--out", str(out), "--steps", "3", "--device", "cpu", "--sample-every", "3", *TINY],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.parent.iterdir()) == ["checkpoint.pt", "s.pt", "samples"]
    meta = load_style(out).meta
    assert meta["world_size"] == 2 and meta["global_batch_size"] == 4 and meta["steps"] == 3
    assert proc.stderr.count("wrote ") == 1  # rank 0 alone reports
    assert load_checkpoint(out.parent / "checkpoint.pt")["data"]["world_size"] == 2


def _grey_photos(root: Path, n: int = 8) -> Path:
    """Low-saturation textured photos: grey scenes for a colourful painting to recolour."""
    for i in range(n):
        rng = np.random.default_rng(100 + i)
        yy, xx = np.mgrid[0:48, 0:48]
        grey = 128 + 60 * np.sin(xx / (3 + i) + yy / 5) + rng.normal(0, 10, (48, 48))
        arr = np.repeat(np.clip(grey, 0, 255)[..., None], 3, -1).astype(np.uint8)
        _save(root / f"g{i}.png", arr)
    return root


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_default_recipe_moves_colour_statistics_toward_the_painting(tmp_path):
    photos = _grey_photos(tmp_path / "photos")
    yy, xx = np.mgrid[0:64, 0:64]
    strokes = 40 * np.sin((xx + 2 * yy) / 3.0)[..., None]
    painting = np.clip(np.array([220, 110, 30]) + strokes, 0, 255).astype(np.uint8)  # orange brushwork
    _save(tmp_path / "painting.png", painting)
    out = tmp_path / "run" / "p.pt"
    # Only sizes and length are shrunk; every loss setting is the default recipe's.
    rc = fast.main(["--dataset", str(photos), "--style", str(tmp_path / "painting.png"), "--out", str(out),
                    "--image-size", "32", "--width", "8", "--res-blocks", "1", "--steps", "100",
                    "--workers", "0", "--sample-every", "0", "--log-every", "20"])
    assert rc == 0
    style = load_style(out)
    meta = style.meta
    assert meta["content_layer"] == "stage2" and meta["tv_weight"] == 0.0
    assert meta["style_layers"] == recipe.FAST_LOSS_DEFAULTS["efficientnet-lite0"]["style_layers"]
    auto = meta["style_weight_auto"]
    assert auto["budget"] == recipe.STYLE_BUDGET["efficientnet-lite0"]
    assert meta["style_weight"] == pytest.approx(auto["budget"] / auto["photo_style_loss"])
    photo = torch.from_numpy(np.asarray(Image.open(photos / "g0.png"), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        y = style.build()(photo).clamp(0, 1)
    target = torch.from_numpy(painting.astype(np.float32) / 255).permute(2, 0, 1)[None]

    def gap(t: torch.Tensor) -> float:  # distance of the per-channel means from the painting's
        return float((t.mean((0, 2, 3)) - target.mean((0, 2, 3))).norm())

    assert gap(y) < 0.6 * gap(photo)


def test_stability_loss_smoothing_and_anti_aliased_net_train_and_are_recorded(data, tmp_path, caplog):
    out = tmp_path / "stab" / "s.pt"
    with caplog.at_level("INFO", logger="trainer"):
        assert _run(data, out, "--steps", "3", "--stability-weight", "500", "--stability-shift", "1.5",
                    "--stability-rotate", "0", "--stability-noise", "0.01", "--blur-downsample",
                    "--upsample", "bilinear", "--smoothing", "4", "--sample-every", "0") == 0
    style = load_style(out)
    assert style.meta["smoothing"] == 4.0
    assert style.meta["stability"] == {"weight": 500.0, "shift": 1.5, "rotate": 0.0, "noise": 0.01}
    assert style.config.blur_downsample and style.config.upsample == "bilinear"
    assert any("stability" in r.getMessage() and "step 3/3" in r.getMessage() for r in caplog.records)
