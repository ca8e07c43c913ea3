"""scripts/gpu_check.sh --dry-run: every step of the GPU check on the CPU, as the bare GPU machine
would run it (PySide6 and PyAV made unimportable)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_passes_without_qt_and_pyav(tmp_path: Path) -> None:
    blocker = tmp_path / "block"
    for module in ("PySide6", "av"):
        (blocker / module).mkdir(parents=True)
        (blocker / module / "__init__.py").write_text('raise ImportError("not on the GPU machine")\n')
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_PYTHONPATH": str(blocker)}
    run = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run", str(out)], env=env,
                         capture_output=True, text=True, timeout=600)
    summary = (out / "summary.txt").read_text()
    assert run.returncode == 0, summary + run.stderr
    for step in ("env", "tests", "bench", "snapshot"):
        assert f"{step} rc=0" in summary
    assert json.loads((out / "env.json").read_text())["device"] == "cpu"
    bench = json.loads((out / "bench_cpu.json").read_text())
    assert bench  # the benchmark wrote its figures
    snap = json.loads((out / "snapshot.json").read_text())
    assert snap["steps"] == 3 and snap["seconds"] > 0 and snap["style_loss_after"] < snap["style_loss_before"]
    if "train skipped" not in summary:  # the training photos are there (../shared)
        assert "train_monet rc=0" in summary and list((out / "styles").glob("monet*.pt"))
