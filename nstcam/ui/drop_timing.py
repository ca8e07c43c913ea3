"""From dropping a picture on the window to its first stylized frame (issue #22: at most 1.5 s,
median of 5 pictures): `python -m nstcam.ui.drop_timing PICTURE...`, or through
`python -m nstcam.measure.instant --only drop`.

The window runs offscreen as a launch with the CPU defaults makes it (demo camera, 240 px, the
engine process, the stabilizer); once it shows frames steadily each picture is dropped as a file
manager drops it, and the time runs from sending the drop event to the first painted frame of the
new style. Run it on an idle machine, in a fresh XDG_DATA_HOME (a picture already made into a
style is reused, not timed).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

RESULT_TAG = "DROP_JSON "


def drop_mime(window, mime: QMimeData) -> bool:
    """Drag `mime` onto the window and drop it, as a file manager does; whether both were accepted."""
    enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    if not enter.isAccepted():
        return False
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, event)
    return event.isAccepted()


def _wait(condition: Callable[[], bool], timeout: float) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"no result within {timeout:g} s")
        QApplication.processEvents()
        time.sleep(0.001)


def time_drop(window, picture: Path, timeout: float = 120.0) -> float:
    """Seconds from dropping `picture` on `window` to the first painted frame of a style the
    window did not have before; TimeoutError if none comes, ValueError if the drop is refused."""
    before = set(window.engine.style_names)
    shown: list[float] = []

    def on_frame(result) -> None:
        if result.style not in before and not shown:
            shown.append(time.monotonic())

    window.frameShown.connect(on_frame)
    try:
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(Path(picture).resolve()))])
        t0 = time.monotonic()
        if not drop_mime(window, mime):
            raise ValueError(f"{picture}: the window refused the drop")
        _wait(lambda: bool(shown), timeout)
        return shown[0] - t0
    finally:
        window.frameShown.disconnect(on_frame)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nstcam.ui.drop_timing", description=__doc__.split("\n\n")[0])
    p.add_argument("pictures", nargs="+", type=Path, metavar="PICTURE", help="pictures to drop, one after another")
    p.add_argument("--size", type=int, default=None, metavar="N", help="processing size (default: the app's CPU default)")
    p.add_argument("--thread", action="store_true", help="run the torch engine in a thread of the app, not its process")
    p.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                   help="the engine: torch (default, in its process unless --thread) or onnxruntime (in a "
                   "thread, as the lite bundle runs it; without torch installed the picture is encoded on "
                   "ONNX Runtime too)")
    p.add_argument("--settle", type=int, default=30, metavar="N",
                   help="frames shown before the first drop and between drops (default: 30)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    missing = [str(p) for p in args.pictures if not p.is_file()]
    if missing:
        print(f"drop_timing: no such picture: {', '.join(missing)}", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication([])
    from nstcam.launch import DEFAULT_SIZE_CPU, build_engine, load_registry, resolve_device
    from nstcam.live.stabilize import FlowStabilizer
    from nstcam.ui.main_window import MainWindow, WindowOptions

    registry, _ = load_registry([], args.backend)
    engine = build_engine(registry, resolve_device("cpu", args.backend), args.size or DEFAULT_SIZE_CPU, "monet",
                          backend=args.backend)
    in_process = args.backend == "torch" and not args.thread
    if in_process:
        from nstcam.engines.process import ProcessEngine  # imports torch: not on the torch-free path

        engine = ProcessEngine(engine)
    window = MainWindow(engine, registry, WindowOptions(camera="demo", device_type="cpu"), stabilizer=FlowStabilizer())
    window.show()
    window.start()
    try:
        seconds = []
        for picture in args.pictures:
            _wait(lambda n=window.view.frames_shown: window.view.frames_shown >= n + args.settle, 300.0)
            seconds.append(time_drop(window, picture))
            print(f"{picture.name}: {seconds[-1]:.2f} s", flush=True)
    finally:
        window.shutdown()
        window.close()
    print(RESULT_TAG + json.dumps({"seconds": seconds, "median": statistics.median(seconds), "engine": engine.describe(),
                                   "process": in_process, "loadavg": [round(v, 2) for v in os.getloadavg()]}))
    app.processEvents()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
