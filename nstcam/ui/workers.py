"""Bridges from the app's plain Python threads to Qt signals, and background tasks for the window.

The capture, stylize and recorder threads (nstcam.live.capture / pipeline / recorder) report through
callbacks that run on *their* threads. Each callback here only emits a Qt signal: the receiving
QObjects live in the GUI thread, so Qt queues the call there (AutoConnection across threads) and
no widget is ever touched from a worker thread.

Workers are `threading.Thread`s rather than QThreads, so "every thread was joined" can be checked
with `threading.enumerate()`, and none is ever killed: each has a cooperative stop and is joined
(`WorkerRegistry`, one deadline for all).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)


class Notifier(QObject):
    """Messages from worker threads: camera status text, engine notices, exceptions."""

    capture_status = Signal(str)
    engine_notice = Signal(str)
    stylize_error = Signal(object)  # the exception
    sink_error = Signal(object)  # the exception of a sink that failed (recorder, virtual camera)


class LatestResultBridge(QObject):
    """The display sink: hands stylized frames to the GUI thread, newest only.

    `offer` runs on the stylize thread. If the GUI has not yet taken the previous result, the new
    one replaces it and no second signal is queued, so a slow GUI (or a busy event loop) can never
    build a backlog of frames: it always paints the latest.
    """

    ready = Signal()
    name = "display"

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._item: Any = None
        self._pending = False

    def offer(self, item: Any) -> None:
        with self._lock:
            self._item = item
            if self._pending:
                return
            self._pending = True
        self.ready.emit()

    def take(self) -> Any:
        with self._lock:
            item, self._item = self._item, None
            self._pending = False
            return item

    def close(self, timeout: float) -> bool:
        self.take()
        return True


class TaskWorker(QObject):
    """Runs `fn(worker)` on a Python thread; `progress`, `finished` and `failed` arrive in the GUI.

    `fn` receives this worker and may call `report(...)` (emitted as `progress`) and poll
    `cancelled()`. `cancel()` only sets a flag; `join()` waits for the thread. Exactly one of
    `finished(result)` / `failed(exception)` is emitted at the end. A failure of an `expected`
    type (one whose message already tells the user what happened and what to do, e.g. a full or
    read-only folder) is logged as one line; any other is logged with its traceback (a bug).
    """

    progress = Signal(int, int, object)
    finished = Signal(object)
    failed = Signal(object)  # the exception object

    def __init__(self, fn: Callable[[TaskWorker], Any], name: str = "task",
                 parent: QObject | None = None, expected: tuple[type[Exception], ...] = ()) -> None:
        super().__init__(parent)
        self._fn = fn
        self._expected = expected
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.name = name
        self.result: Any = None
        self.error: Exception | None = None

    def start(self) -> TaskWorker:
        self._thread.start()
        return self

    def report(self, step: int, total: int, info: Any = None) -> None:
        self.progress.emit(int(step), int(total), dict(info) if isinstance(info, Mapping) else info)

    def cancel(self) -> None:
        self._cancel.set()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def is_running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread.ident is not None and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            self.result = self._fn(self)
        except Exception as exc:  # any failure of the task is the task's result: shown, not raised
            if isinstance(exc, self._expected):
                log.warning("%s failed: %s", self.name, exc)
            else:
                log.warning("task %s failed", self.name, exc_info=exc)
            self.error = exc
            self.failed.emit(exc)
        else:
            self.finished.emit(self.result)


class WorkerRegistry:
    """Every TaskWorker the window started, so shutdown can cancel and join them all under one
    deadline and report the ones that did not finish."""

    def __init__(self) -> None:
        self._workers: list[TaskWorker] = []

    def start(self, worker: TaskWorker) -> TaskWorker:
        self._workers = [w for w in self._workers if w.is_running()]
        self._workers.append(worker)
        return worker.start()

    def running(self) -> list[TaskWorker]:
        return [w for w in self._workers if w.is_running()]

    def shutdown(self, timeout: float) -> list[str]:
        """Cancel every worker, join each within what is left of `timeout`; names not joined."""
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.cancel()
        late = [w.name for w in self._workers if not w.join(max(0.0, deadline - time.monotonic()))]
        self._workers.clear()
        if late:
            log.warning("workers still running after %.1f s: %s", timeout, ", ".join(late))
        return late


def render_thumbnails(
    names: Sequence[str],
    stylize: Callable[[str], np.ndarray],
    emit: Callable[[str, np.ndarray], None],
    should_stop: Callable[[], bool],
) -> int:
    """`emit(name, stylize(name))` for each style name; one broken style does not stop the rest.

    The window passes a `stylize` that runs the live StyleEngine on a fixed demo frame at
    thumbnail size, so each thumbnail is rendered by the style's own network. Going through the
    engine serialises the thumbnails with the live frames (the engine's lock): two threads running
    torch at once oversubscribe a small CPU, and each slows the other down far more than 2x.
    """
    done = 0
    for name in names:
        if should_stop():
            break
        try:
            rgb = stylize(name)
        except Exception as exc:
            if should_stop():  # the window closed meanwhile, ending the style's export
                break
            log.warning("thumbnail of %s failed: %s", name, exc)
            continue
        emit(name, rgb)
        done += 1
    return done
