"""Smoke test of the lite desktop bundle: build it with packaging/build.sh, then run the frozen app.

Slow (the build takes minutes on 2 cores). Needs the build tools in this env: PyInstaller, and
torch + onnx + onnxruntime to export the styles; the bundle itself must run without torch.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import cv2
import numpy as np
import pytest

from nstcam.live.demo import DemoSource

ROOT = Path(__file__).resolve().parent.parent
# The decided size goal is the download: the bundle as .tar.gz. Measured 176 MiB (466 MB unpacked)
# with OpenCV 5.0 and 179 MiB (485 MB) with OpenCV 5.1; packaging/README.md says where it goes.
LITE_DOWNLOAD_BUDGET_MIB = 200
BUILD_TOOLS = ("PyInstaller", "onnx", "onnxruntime", "torch")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the bundle is built and tested on Linux only"),
    pytest.mark.skipif(shutil.which("bash") is None, reason="build.sh needs bash"),
]


def _missing_build_tools() -> list[str]:
    import importlib.util

    return [m for m in BUILD_TOOLS if importlib.util.find_spec(m) is None]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The lite bundle's folder (dist/lite/nstcam), built once for this module."""
    missing = _missing_build_tools()
    if missing:
        pytest.skip(f"building the bundle needs {', '.join(missing)} in this env")
    out = tmp_path_factory.mktemp("packaging")
    env = {**os.environ, "PYTHON": sys.executable, "NSTCAM_DIST_DIR": str(out / "dist"),
           "NSTCAM_BUILD_DIR": str(out / "build")}
    result = subprocess.run(["bash", str(ROOT / "packaging" / "build.sh"), "lite"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    folder = out / "dist" / "lite" / "nstcam"
    assert (folder / "nstcam").is_file()
    return folder


def _run(bundle: Path, *args: str, home: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """Run the frozen app as a user would: its own HOME, no venv on PATH, no PYTHONPATH."""
    clean = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **env}
    return subprocess.run([str(bundle / "nstcam"), *args], capture_output=True, text=True, timeout=timeout,
                          env=clean, cwd=home)


def _folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def _download_mib(folder: Path, archive: Path) -> float:
    """The folder as the .tar.gz a user downloads (gzip's usual level 6)."""
    import tarfile

    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        tar.add(folder, arcname=folder.name)
    return archive.stat().st_size / 2**20


def test_lite_bundle_has_no_torch_and_stays_small(bundle, tmp_path):
    internal = bundle / "_internal"
    assert not (internal / "torch").exists() and not list(internal.glob("libtorch*"))
    assert (internal / "onnxruntime").is_dir()
    assert list((internal / "styles").glob("*.onnx")) and not list((internal / "styles").glob("*.pt"))
    assert (bundle / "share" / "applications" / "io.github.nstcam.nstcam.desktop").is_file()
    download = _download_mib(bundle, tmp_path / "nstcam-lite.tar.gz")
    assert download <= LITE_DOWNLOAD_BUDGET_MIB, f"{download:.0f} MiB to download ({_folder_mb(bundle):.0f} MB unpacked)"


def test_frozen_app_prints_its_version(bundle, tmp_path):
    result = _run(bundle, "--version", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"nstcam {version('nstcam')}"


def test_frozen_app_renders_a_playable_clip_with_onnxruntime(bundle, tmp_path):
    clip, out = tmp_path / "clip.avi", tmp_path / "out.mp4"
    source = DemoSource(160, 120)
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    for i in range(6):
        writer.write(source.frame_at(i))
    writer.release()
    result = _run(bundle, "render", str(clip), "-o", str(out), "--style", "van_gogh",
                  "--backend", "onnxruntime", home=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    import av

    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 6 and frames[0].shape == (120, 160, 3)
    assert float(np.std(frames[-1])) > 5.0  # a painted frame, not a blank one


def test_frozen_app_makes_an_instant_style_from_a_picture(bundle, tmp_path):
    """Without torch or Pillow: the picture is read with OpenCV, encoded by the shipped ONNX export
    of MicroAST's style encoder and run on its frame graph; a bad picture is one line."""
    clip, out, picture = tmp_path / "clip.avi", tmp_path / "out.mp4", tmp_path / "Poster.png"
    source = DemoSource(160, 120)
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    for i in range(4):
        writer.write(source.frame_at(i))
    writer.release()
    rng = np.random.default_rng(7)
    cv2.imwrite(str(picture), cv2.resize(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), (160, 120),
                                         interpolation=cv2.INTER_NEAREST))
    result = _run(bundle, "render", str(clip), "-o", str(out), "--style", str(picture), home=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert [p.name for p in (tmp_path / ".local/share/nstcam/styles").iterdir()] == ["poster.instant"]
    import av

    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 4 and float(np.std(frames[-1])) > 5.0
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    result = _run(bundle, "render", str(clip), "-o", str(tmp_path / "bad.mp4"), "--style", str(bad), home=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--style notes.png: not a picture nstcam can read" in result.stderr


def test_frozen_app_opens_the_window_offscreen_for_two_seconds(bundle, tmp_path):
    result = _run(bundle, "--camera", "demo", "--backend", "onnxruntime", "--benchmark-seconds", "2",
                  home=tmp_path, QT_QPA_PLATFORM="offscreen")
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(l for l in result.stdout.splitlines() if l.startswith("BENCHMARK_JSON "))
    figures = json.loads(line.removeprefix("BENCHMARK_JSON "))
    assert figures["seconds"] >= 2.0 and figures["stylize_fps"] > 0
    assert "ONNX Runtime" in figures["device"]


def test_frozen_doctor_reports_the_app_can_run(bundle, tmp_path):
    result = _run(bundle, "doctor", "--cameras", "0", home=tmp_path, QT_QPA_PLATFORM="offscreen")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "onnxruntime" in result.stdout and "Traceback" not in result.stdout + result.stderr
