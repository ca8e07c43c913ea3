"""trainer.fast under faults: kill -9 (workers, the resumed rate) and a NaN on one DDP rank.

Training runs the real EfficientNet-Lite0 loss net at 32 px with a tiny TransformerNet on one
thread (see test_fast.py); the kill and DDP tests run it in subprocesses.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from subprocess_helpers import wait_for_stderr
from trainer import checkpoint as ckpt
from trainer import fast
from trainer.stylefile import load_style

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--image-size", "32", "--width", "8", "--res-blocks", "1", "--batch-size", "2",
        "--workers", "0", "--log-every", "1", "--loss-net", "efficientnet-lite0", "--sample-every", "0"]


def train_args(data: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    photos, style = data
    return ["--dataset", str(photos), "--style", str(style), "--out", str(out), *TINY, *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped: a zombie holds no memory)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_kill_9_of_training_takes_its_data_loader_workers_with_it(training_data, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer.fast", *train_args(training_data, tmp_path / "k" / "s.pt", "--steps", "100000",
                                                            "--checkpoint-every", "0", "--workers", "2")],
        cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        wait_for_stderr(proc, "step 3/", timeout=120)
        workers = _children(proc.pid)
        assert len(workers) == 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        killed = time.monotonic()
        while any(_alive(w) for w in workers) and time.monotonic() - killed < 10:
            time.sleep(0.02)  # polling /proc: there is no event to wait on for a non-child
        lingered = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    # Before: torch's watchdog noticed the dead parent after 5 s or more (15-20 s seen).
    assert lingered < 1.0, f"workers outlived the killed trainer by {lingered:.1f} s"


def test_a_checkpoint_carries_the_training_time_so_far(training_data, tmp_path, monkeypatch):
    """After kill -9 the resumed run's images/s comes from the last checkpoint's totals: those
    must count the seconds with the images (they used to count the images only: 72 images/s
    reported for a real 22)."""
    saved = []
    real = ckpt.save_checkpoint
    monkeypatch.setattr(ckpt, "save_checkpoint", lambda path, **kw: (saved.append(dict(kw["totals"])),
                                                                       real(path, **kw)))
    out = tmp_path / "r" / "s.pt"
    assert fast.main(train_args(training_data, out, "--steps", "4", "--checkpoint-every", "2")) == 0
    mid, end = saved[0], saved[-1]
    assert mid["images"] == 4 and end["images"] == 8
    assert 0 < mid["training_seconds"] < end["training_seconds"]
    meta = load_style(out).meta
    assert meta["images_per_second"] == pytest.approx(8 / end["training_seconds"], rel=1e-3)


_NAN_ON_RANK_1 = textwrap.dedent("""
    import os, sys
    from trainer import fast

    real, calls = fast.train_step, [0]

    def train_step(*args, **kwargs):
        terms = real(*args, **kwargs)
        calls[0] += 1
        return terms * float("nan") if os.environ["RANK"] == "1" and calls[0] >= 2 else terms

    fast.train_step = train_step
    sys.exit(fast.main(sys.argv[1:]))
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_nan_on_one_ddp_rank_stops_every_rank(training_data, tmp_path):
    script = tmp_path / "nan_rank1.py"
    script.write_text(_NAN_ON_RANK_1)
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), *train_args(training_data, tmp_path / "ddp" / "s.pt", "--steps", "8",
                                                      "--log-every", "2", "--device", "cpu")],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**_env(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "WORLD_SIZE": "2",
                 "RANK": str(rank), "LOCAL_RANK": str(rank)},
        )
        for rank in (0, 1)
    ]
    try:
        results = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    stderr0 = results[0][1]
    assert [p.returncode for p in procs] == [2, 2], stderr0[-2000:]
    # Rank 0's own losses were finite: it stops because the check is collective, at the same step.
    assert "error: the loss became nan at step 2;" in stderr0
    assert "Traceback" not in stderr0 + results[1][1]
