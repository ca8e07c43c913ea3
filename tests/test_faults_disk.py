"""Disk faults: a full disk and a read-only folder, for every file nstcam and the trainer write.

A real full disk is a tiny tmpfs (mounting needs root; without it those tests are skipped), a
real read-only folder a read-only tmpfs (root ignores file permissions). What is checked each
time: one clear message, the previous version of the file intact, no temp file left behind.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nstcam.engines.torch_engine import StyleEngine
from nstcam.live.recorder import RecorderError
from nstcam.live.render import render_video
from nstcam_fixtures import fill, write_video
from test_faults_training import train_args
from trainer import fast, gatys
from trainer.fileio import atomic_torch_save, atomic_write, atomic_write_bytes, check_writable


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp")


# ------------------------------------------------------------------------------------ fileio


def test_atomic_write_error_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="mid-write"):
        with atomic_write(target) as f:
            f.write(b"new, half")
            raise RuntimeError("mid-write")
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_atomic_write_without_overwrite_refuses_an_existing_name(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    atomic_write_bytes(target, b"first", overwrite=False)
    with pytest.raises(FileExistsError):
        atomic_write_bytes(target, b"second", overwrite=False)
    assert target.read_bytes() == b"first"
    assert leftovers(tmp_path) == []
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_atomic_torch_save_on_a_full_disk_is_one_plain_enospc(small_disk: Path) -> None:
    target = small_disk / "checkpoint.pt"
    atomic_torch_save({"w": torch.zeros(10)}, target)
    fill(small_disk)
    with pytest.raises(OSError) as info:
        atomic_torch_save({"w": torch.zeros(100_000)}, target)
    assert info.value.errno == errno.ENOSPC
    assert info.value.__cause__ is None and info.value.__context__ is None  # no "enforce fail" chain
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.zeros(10))
    assert leftovers(small_disk) == []


def test_check_writable_fails_on_a_read_only_folder(readonly_dir: Path) -> None:
    with pytest.raises(OSError) as info:
        check_writable(readonly_dir / "out.png")
    assert info.value.errno == errno.EROFS


# ------------------------------------------------------------------------------ trainer.fast


@pytest.mark.parametrize("first_write", ["checkpoint", "sample image"])
def test_training_on_a_full_disk_is_one_line_exit_1_and_keeps_the_checkpoint(
        training_data, small_disk: Path, capsys, first_write: str) -> None:
    out = small_disk / "s.pt"
    assert fast.main(train_args(training_data, out, "--steps", "2", "--checkpoint-every", "1")) == 0
    before = (small_disk / "checkpoint.pt").read_bytes()
    fill(small_disk)
    capsys.readouterr()
    extra = ["--checkpoint-every", "1"] if first_write == "checkpoint" else ["--checkpoint-every", "0",
                                                                             "--sample-every", "1"]
    assert fast.main(train_args(training_data, out, "--resume", "--steps", "4", *extra)) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    path = small_disk / ("checkpoint.pt" if first_write == "checkpoint" else "samples/step_000003.png")
    assert errors == [f"error: cannot write the {first_write} {path}: No space left on device; training stopped "
                      "at step 3; the previous checkpoint is kept (continue with --resume)"]
    assert "Traceback" not in err and "enforce" not in err
    assert (small_disk / "checkpoint.pt").read_bytes() == before
    assert leftovers(small_disk) == []


def test_training_into_a_read_only_folder_fails_before_training(training_data, readonly_dir: Path, capsys) -> None:
    assert fast.main(train_args(training_data, readonly_dir / "s.pt", "--steps", "2")) == 2
    err = capsys.readouterr().err
    assert f"error: --out: cannot create files in {readonly_dir} (Read-only file system)" in err
    assert "step 1/" not in err


# ---------------------------------------------------------------------------- trainer.gatys


def _gatys_images(folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    content, style = folder / "content.png", folder / "style.png"
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(content)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(style)
    return content, style


def test_gatys_into_a_read_only_folder_fails_before_optimising(tmp_path, readonly_dir: Path, capsys,
                                                                monkeypatch) -> None:
    content, style = _gatys_images(tmp_path)
    monkeypatch.setattr(gatys, "refine", lambda *a, **k: pytest.fail("optimised before checking the output"))
    assert gatys.main([str(content), str(style), "-o", str(readonly_dir / "out.png")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"python -m trainer.gatys: error: -o {readonly_dir / 'out.png'}: cannot create files in {readonly_dir} "
        "(Read-only file system)"]


def test_gatys_on_a_full_disk_is_one_line_exit_1_and_no_partial_image(tmp_path, small_disk: Path, capsys) -> None:
    content, style = _gatys_images(tmp_path)
    out = small_disk / "out.png"
    fill(small_disk)
    argv = [str(content), str(style), "-o", str(out), "--steps", "2", "--size", "32",
            "--loss-net", "efficientnet-lite0", "--device", "cpu"]
    assert gatys.main(argv) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert errors == [f"python -m trainer.gatys: error: cannot write {out}: No space left on device"]
    assert "Traceback" not in err
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


# ---------------------------------------------------------------------------- nstcam render


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_render_onto_a_disk_that_fills_fails_and_removes_the_unfinished_file(
        tmp_path: Path, small_disk: Path, style_models, suffix: str) -> None:
    """The OpenCV AVI writer never reports a short write, and the MP4 muxer's last flush can fail
    unseen: render used to say `wrote …: 240 frames` with 7 in the file."""
    clip = write_video(tmp_path / "clip.avi", frames=120, size=(160, 120))
    fill(small_disk)
    filler = small_disk / "filler"
    os.truncate(filler, filler.stat().st_size - 24 * 1024)  # room for a few frames, not all
    engine = StyleEngine(style_models, device="cpu", size=None, channels_last=False)
    out = small_disk / f"out{suffix}"
    with pytest.raises(RecorderError) as info:
        render_video(clip, out, engine)
    message = str(info.value)
    assert str(out) in message and "no space left on device" in message.lower(), message
    assert message.endswith(f"the unfinished {out.name} was removed")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]
