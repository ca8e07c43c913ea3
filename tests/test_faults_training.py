"""trainer.fast under faults: kill -9 (workers, the resumed rate) and a NaN on one DDP rank.

Training runs the real EfficientNet-Lite0 loss net at 32 px with a tiny TransformerNet on one
thread (see test_fast.py); the kill and DDP tests run it in subprocesses.
"""
from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from subprocess_helpers import wait_for_stderr
from trainer import checkpoint as ckpt
from trainer import fast, gatys
from trainer.fileio import exclusive_lock
from trainer.stylefile import load_style
from trainer.training.loop import LOCK_NAME

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
    from trainer.training import step

    real, calls = step.train_step, [0]

    def train_step(*args, **kwargs):
        terms = real(*args, **kwargs)
        calls[0] += 1
        return terms * float("nan") if os.environ["RANK"] == "1" and calls[0] >= 2 else terms

    step.train_step = train_step
    sys.exit(fast.main(sys.argv[1:]))
""")


def _communicate_all(procs: list[subprocess.Popen], timeout: float) -> list[tuple[str, str]]:
    """Each process's (stdout, stderr) once it ends; any still running after a failure is killed."""
    try:
        return [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()


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
    results = _communicate_all(procs, timeout=240)
    stderr0 = results[0][1]
    assert [p.returncode for p in procs] == [2, 2], stderr0[-2000:]
    # Rank 0's own losses were finite: it stops because the check is collective, at the same step.
    assert "error: the loss became nan at step 2;" in stderr0
    assert "Traceback" not in stderr0 + results[1][1]


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert sum(line.startswith("error:") for line in lines) == 1 and "Traceback" not in err, err
    return lines[-1]


def test_a_second_run_into_the_same_out_folder_is_refused_while_one_runs(training_data, tmp_path, capsys):
    out = tmp_path / "same" / "s.pt"
    # The running trainer's lock, taken as it takes it (an flock is per open file, so it conflicts
    # within one process too).
    with exclusive_lock(out.parent / LOCK_NAME):
        assert fast.main(train_args(training_data, out, "--steps", "1")) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert f"process {os.getpid()}" in line and "is writing to" in line and str(out.parent) in line
        assert not out.exists() and not (out.parent / ckpt.FILENAME).exists()
    assert not (out.parent / LOCK_NAME).exists()  # released and removed with the run that held it


def test_a_lock_file_left_by_a_killed_run_does_not_block(training_data, tmp_path):
    out = tmp_path / "stale" / "s.pt"
    out.parent.mkdir()
    (out.parent / LOCK_NAME).write_text("999999999\n")  # its flock died with its process
    assert fast.main(train_args(training_data, out, "--steps", "1")) == 0
    assert load_style(out).meta["steps"] == 1 and not (out.parent / LOCK_NAME).exists()


@pytest.mark.slow
def test_two_trainings_at_once_into_one_out_keep_one_whole_style(training_data, tmp_path):
    """Two real runs of two paintings at once: one trains, the other is refused (by the lock if they
    overlap, else by the first one's style file), never both `wrote`."""
    photos, style = training_data
    other = tmp_path / "other.png"
    Image.open(style).transpose(Image.Transpose.ROTATE_90).save(other)
    out = tmp_path / "race" / "s.pt"
    paintings = (style, other)
    runs = [subprocess.Popen([sys.executable, "-m", "trainer.fast", *train_args((photos, p), out, "--steps", "30")],
                             cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for p in paintings]
    results = _communicate_all(runs, timeout=300)
    codes = [p.returncode for p in runs]
    assert sorted(codes) == [0, 2], results
    refused = results[codes.index(2)][1]
    assert "is writing to" in refused or "another painting" in refused, refused
    meta = load_style(out).meta
    assert meta["steps"] == 30 and meta["style_image"] == paintings[codes.index(0)].name


def test_out_naming_another_paintings_style_file_is_refused_unless_forced(training_data, tmp_path, capsys):
    photos, style = training_data
    out = tmp_path / "o" / "s.pt"
    assert fast.main(train_args(training_data, out, "--steps", "1")) == 0
    before = out.read_bytes()
    other = tmp_path / "munch.png"
    Image.open(style).transpose(Image.Transpose.ROTATE_90).save(other)
    capsys.readouterr()
    assert fast.main(train_args((photos, other), out, "--steps", "1")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "another painting" in line and "style.png" in line and "munch.png" in line and "--force" in line
    assert out.read_bytes() == before
    assert fast.main(train_args(training_data, out, "--steps", "2")) == 0  # the same painting again: fine
    assert fast.main(train_args((photos, other), out, "--steps", "1", "--force")) == 0
    assert load_style(out).meta["style_image"] == "munch.png"


def test_out_naming_a_file_that_is_not_a_style_file_is_refused(training_data, tmp_path, capsys):
    out = tmp_path / "notes.pt"
    out.write_text("my notes")
    assert fast.main(train_args(training_data, out, "--steps", "1")) == 2
    assert "not a style file" in _one_error_line(capsys.readouterr().err)
    assert out.read_text() == "my notes"


def test_out_naming_a_folder_is_refused_before_training(training_data, tmp_path, capsys):
    folder = tmp_path / "styles"
    folder.mkdir()
    assert fast.main(train_args(training_data, folder, "--steps", "1")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"--out {folder} is a folder" in line and "style.pt" in line
    assert list(folder.iterdir()) == [] and not (tmp_path / ckpt.FILENAME).exists()  # nothing in the parent


def test_resume_with_another_painting_names_both_and_is_refused_unless_forced(training_data, tmp_path, capsys):
    photos, style = training_data
    out = tmp_path / "r" / "s.pt"
    assert fast.main(train_args(training_data, out, "--steps", "1")) == 0
    other = tmp_path / "munch.png"
    Image.open(style).transpose(Image.Transpose.ROTATE_90).save(other)
    capsys.readouterr()
    assert fast.main(train_args((photos, other), out, "--steps", "2", "--resume")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "style.png" in line and "munch.png" in line and "--force" in line
    assert ckpt.load_checkpoint(out.parent / ckpt.FILENAME)["step"] == 1
    assert fast.main(train_args((photos, other), out, "--steps", "2", "--resume", "--force")) == 0
    assert load_style(out).meta["steps"] == 2


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width x height RGB pixels (no pixel data: PIL refuses at open)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def test_a_huge_painting_is_one_error_line_for_fast_and_gatys(training_data, tmp_path, capsys):
    photos, _ = training_data
    huge = _png_header(tmp_path / "huge.png", 20000, 20000)
    assert fast.main(train_args((photos, huge), tmp_path / "f" / "s.pt", "--steps", "1")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "huge.png" in line and "too large" in line
    content = next(photos.iterdir())
    assert gatys.main([str(content), str(huge), "-o", str(tmp_path / "g.png"), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "huge.png" in err and "too large" in err and "Traceback" not in err
    assert not (tmp_path / "g.png").exists()
