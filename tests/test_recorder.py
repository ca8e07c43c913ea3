"""Recorder: H.264 MP4 output, sizes, no overwrite, drop policy, crash safety under SIGKILL."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

import nstcam.live.recorder as recorder_module
from nstcam.live.recorder import Recorder
from nstcam_fixtures import read_all_frames

REPO = Path(__file__).resolve().parent.parent


def rgb_frame(i: int, w: int = 96, h: int = 64) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (i * 7) % 256
    cv2.circle(img, ((i * 5) % w, h // 2), 8, (255, 255, 0), -1)
    return img


def probe(path: Path) -> tuple[int, tuple[int, int], float]:
    """(frames counted by decoding them all, (w, h), fps) as OpenCV sees the file."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"OpenCV cannot open {path}"
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    frames = read_all_frames(path)
    size = (frames[0].shape[1], frames[0].shape[0]) if frames else (0, 0)
    return len(frames), size, fps


def test_writes_an_h264_mp4_with_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    rec = Recorder(path, fps=10, realtime=False)
    for i in range(25):
        assert rec.write(rgb_frame(i))
    rec.close()
    assert rec.path == path and rec.codec == "libx264"
    assert rec.frames_written == 25 and rec.frames_dropped == 0 and rec.error is None
    assert rec.elapsed_seconds == pytest.approx(2.5)
    assert probe(path) == (25, (96, 64), 10.0)


def test_colours_survive_the_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "colour.mp4"
    red = np.zeros((64, 96, 3), np.uint8)
    red[..., 0] = 220  # RGB red
    with Recorder(path, fps=5, realtime=False) as rec:
        for _ in range(3):
            rec.write(red)
    bgr = read_all_frames(path)[0]
    assert bgr[..., 2].mean() > 180 and bgr[..., 0].mean() < 40  # still red, so RGB was honoured


def test_a_colourful_picture_comes_back_close(tmp_path: Path) -> None:
    """Every hue and the chroma planes' order survive (U and V swapped, or a wrong range, cost
    tens of dB); the picture is what a style network paints: smooth colour fields."""
    path = tmp_path / "hues.mp4"
    y, x = np.mgrid[0:120, 0:160] / 160
    rgb = (255 * np.stack([np.sin(5 * x) ** 2, np.cos(3 * y + x) ** 2, x * y * 1.5], axis=2)).astype(np.uint8)
    with Recorder(path, fps=5, realtime=False) as rec:
        for _ in range(3):
            rec.write(rgb)
    back = cv2.cvtColor(read_all_frames(path)[-1], cv2.COLOR_BGR2RGB).astype(float)
    psnr = 10 * np.log10(255 ** 2 / np.mean((back - rgb) ** 2))
    assert psnr > 35, psnr


def test_size_is_fixed_by_the_first_frame_and_made_even(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    rec = Recorder(path, fps=8, realtime=False)
    rec.write(rgb_frame(0, 97, 65))   # odd: cropped to 96x64
    rec.write(rgb_frame(1, 200, 100))  # other size: resized
    rec.write(rgb_frame(2, 97, 65))
    rec.close()
    assert rec.size == (96, 64)
    assert probe(path)[:2] == (3, (96, 64))


def test_never_overwrites_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "take.mp4"
    path.write_bytes(b"precious")
    (tmp_path / "take-1.mp4").write_bytes(b"also precious")
    assert Recorder.unique_path(path) == tmp_path / "take-2.mp4"
    assert Recorder.unique_path(tmp_path / "fresh.mp4") == tmp_path / "fresh.mp4"
    with Recorder(path, fps=5, realtime=False) as rec:
        rec.write(rgb_frame(0))
    assert rec.path == tmp_path / "take-2.mp4"
    assert path.read_bytes() == b"precious"
    assert probe(rec.path)[0] == 1


def test_other_extensions_fall_back(tmp_path: Path) -> None:
    with Recorder(tmp_path / "clip.avi", fps=6, realtime=False) as avi:
        for i in range(4):
            avi.write(rgb_frame(i))
    assert avi.codec == "mjpg" and probe(avi.path)[:2] == (4, (96, 64))
    with Recorder(tmp_path / "clip.webm", fps=6, realtime=False) as odd:
        for i in range(4):
            odd.write(rgb_frame(i))
    assert odd.path == tmp_path / "clip.webm.mkv" and probe(odd.path)[:2] == (4, (96, 64))


def test_without_libx264_it_records_mpeg4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorder_module, "_libx264_available", lambda: False)
    with Recorder(tmp_path / "plain.mp4", fps=6, realtime=False) as rec:
        for i in range(5):
            rec.write(rgb_frame(i))
    assert rec.codec == "mpeg4" and rec.error is None
    assert probe(rec.path)[:2] == (5, (96, 64))


def test_a_slow_encoder_makes_live_writes_drop_not_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    real_write = recorder_module._AvWriter.write

    def slow_write(self, frame, index):
        gate.wait(10)
        real_write(self, frame, index)

    monkeypatch.setattr(recorder_module._AvWriter, "write", slow_write)
    rec = Recorder(tmp_path / "live.mp4", fps=10, queue_frames=2)
    accepted = sum(rec.write(rgb_frame(i)) for i in range(10))  # returns at once
    assert rec.frames_dropped == 10 - accepted and rec.frames_dropped >= 7
    gate.set()
    rec.close()
    assert rec.frames_written == accepted
    assert probe(rec.path)[0] == accepted


def test_close_is_idempotent_and_later_writes_are_ignored(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "x.mp4", fps=5, realtime=False)
    rec.write(rgb_frame(0))
    rec.close()
    rec.close()
    assert not rec.write(rgb_frame(1))
    assert rec.frames_written == 1 and rec.closed


def test_a_recording_without_frames_leaves_no_file(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "empty.mp4", fps=5)
    rec.close()
    assert not (tmp_path / "empty.mp4").exists()


def test_encoder_failures_are_reported_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(recorder_module, "_AvWriter", broken)
    errors: list[str] = []
    rec = Recorder(tmp_path / "bad.mp4", fps=5, on_error=errors.append, realtime=False)
    rec.write(rgb_frame(0))
    rec.close()
    assert errors and "disk on fire" in errors[0] and rec.error == errors[0]
    assert not rec.write(rgb_frame(1))
    other = Recorder(tmp_path / "y.mp4", fps=5)
    with pytest.raises(ValueError, match="RGB uint8"):
        other.write(np.zeros((4, 4), np.uint8))
    other.close()


CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from nstcam.live.recorder import Recorder

    rec = Recorder(sys.argv[1], fps=10, realtime=False)
    for i in range(int(sys.argv[2])):
        frame = np.zeros((96, 128, 3), np.uint8)
        frame[:, (i * 3) % 128] = 255
        frame[..., 1] = i
        rec.write(frame)
    rec.wait_idle()
    print(f"written {rec.frames_written}", flush=True)
    sys.stdin.read()  # wait to be killed
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_recording_leaves_a_playable_file(tmp_path: Path) -> None:
    path = tmp_path / "crash.mp4"
    fps, frames = 10, 35  # 3.5 s
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(frames)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )
    try:
        line = child.stdout.readline()  # blocks until the child has encoded everything
        assert line.strip() == f"written {frames}", line
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.stdout.close()
        child.stdin.close()
    assert child.returncode == -signal.SIGKILL
    count, size, file_fps = probe(path)
    assert count >= frames - fps, count  # (the loss is measured exactly below)
    assert size == (128, 96) and file_fps == pytest.approx(fps)


COUNTER_BITS, COUNTER_BLOCK = 12, 16


def draw_counter(rgb: np.ndarray, i: int) -> np.ndarray:
    """Write `i` into the frame as a row of black/white blocks that survive H.264."""
    for b in range(COUNTER_BITS):
        rgb[4:4 + COUNTER_BLOCK, 4 + b * COUNTER_BLOCK:4 + (b + 1) * COUNTER_BLOCK] = 255 * ((i >> b) & 1)
    return rgb


def read_counter(rgb: np.ndarray) -> int:
    m = COUNTER_BLOCK // 4  # the middle of each block, clear of ringing at its edges
    return sum(1 << b for b in range(COUNTER_BITS)
               if rgb[4 + m:4 + COUNTER_BLOCK - m, 4 + b * COUNTER_BLOCK + m:4 + (b + 1) * COUNTER_BLOCK - m].mean() > 128)


def last_counter_in(path: Path) -> int:
    """The highest frame counter that decodes from a (possibly truncated) recording; -1 if none."""
    import av

    last = -1
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                last = max(last, read_counter(frame.to_ndarray(format="rgb24")))
    except av.FFmpegError:  # the torn end of a killed recording
        pass
    return last


REALTIME_CHILD = textwrap.dedent(
    """
    import sys, time
    import cv2
    from nstcam.live.demo import DemoSource
    from nstcam.live.recorder import Recorder
    from test_recorder import draw_counter

    fps = 30.0
    source, rec = DemoSource(320, 180, fps), Recorder(sys.argv[1], fps=fps, realtime=True)
    start = time.perf_counter()
    for i in range(100_000):
        rec.write(draw_counter(cv2.cvtColor(source.frame_at(i), cv2.COLOR_BGR2RGB), i))
        print(i, flush=True)
        time.sleep(max(0.0, start + (i + 1) / fps - time.perf_counter()))  # a 30 fps camera
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_kill_9_while_recording_loses_at_most_half_a_second(tmp_path: Path, suffix: str) -> None:
    """Frames submitted vs the last frame counter that decodes after kill -9. The kill comes just
    before a whole second: the worst moment for one fragment per 1-s keyframe interval (1.03 s lost)."""
    path, fps, kill_after = tmp_path / f"crash{suffix}", 30, 89
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", REALTIME_CHILD, str(path)], stdout=subprocess.PIPE, text=True,
                             env=env, cwd=REPO)
    submitted = -1
    try:
        for line in child.stdout:
            submitted = int(line)
            if submitted >= kill_after:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    submitted = max([submitted, *(int(line) for line in child.stdout)])  # any printed meanwhile
    child.stdout.close()
    assert submitted >= kill_after
    survived = last_counter_in(path)
    lost_seconds = (submitted - survived) / fps
    assert survived > 0 and lost_seconds <= 0.5, f"{lost_seconds:.3f} s lost ({submitted} submitted, {survived} kept)"


def test_a_device_or_pipe_is_written_into_as_given(tmp_path: Path) -> None:
    """`-o /dev/null` used to create a regular file /dev/null.mkv; a FIFO gets a playable stream."""
    import av

    with Recorder(os.devnull, fps=12.0, realtime=False) as rec:
        for i in range(6):
            rec.write(rgb_frame(i))
    assert rec.error is None and rec.path == Path(os.devnull) and rec.frames_written == 6
    assert not Path(os.devnull + ".mkv").exists() and not Path(os.devnull + "-1").exists()
    assert Path(os.devnull).is_char_device()

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = bytearray()
    reader = threading.Thread(target=lambda: received.extend(fifo.read_bytes()))
    reader.start()
    with Recorder(fifo, fps=12.0, realtime=False) as rec:
        for i in range(6):
            rec.write(rgb_frame(i))
    reader.join(10)
    assert rec.error is None and sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]
    copy = tmp_path / "received.mkv"
    copy.write_bytes(bytes(received))
    with av.open(str(copy)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 6


def test_a_recording_whose_folder_is_deleted_stops_and_says_so(tmp_path: Path) -> None:
    """Writing into a deleted file succeeds on Linux: REC used to count on with nothing surviving."""
    import shutil

    folder = tmp_path / "D"
    failed = threading.Event()
    messages: list[str] = []
    rec = Recorder(folder / "rec.mp4", fps=30.0, on_error=lambda m: (messages.append(m), failed.set()))
    for i in range(5):
        rec.write(rgb_frame(i))
    assert rec.wait_idle(10) and rec.error is None
    shutil.rmtree(folder)
    i = 5
    while not failed.wait(0.02):  # frames keep coming, as from the camera
        assert i < 30 * 10, "the deletion was not noticed within 10 s"
        rec.write(rgb_frame(i))
        i += 1
    rec.close(10)
    assert messages == [rec.error]
    assert rec.error == (f"recording to {folder / 'rec.mp4'} failed: the file (or its folder {folder}) was "
                         "deleted or replaced while recording; recording stopped")
    assert not rec.write(rgb_frame(0))  # stopped
