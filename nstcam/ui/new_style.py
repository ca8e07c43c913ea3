"""File -> New style…: train a style from a painting without leaving the window.

The user picks a painting and, optionally, a folder of photos (default: the generated scene set,
nstcam.jobs.scene_photos, which needs nothing of the user's). The training runs in a background
process (nstcam.jobs.training) watched by a TaskWorker, so the live view keeps running (slower:
they share the cores) and window shutdown cancels it like any other task. The dialog shows a
progress bar, the time left and the trainer's newest preview grid; Cancel stops it and nothing
is saved. A finished style is copied into the user's styles folder, added to the engine, the
registry and the gallery, and chosen.
"""
from __future__ import annotations

import importlib.util
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QProgressBar, QPushButton, QVBoxLayout, QWidget)

from nstcam.host import userdirs
from nstcam.jobs.training import Progress, TrainingError, TrainingJob, unique_style_name
from nstcam.ui.workers import TaskWorker

if TYPE_CHECKING:
    from nstcam.ui.context import WindowContext

POLL_SECONDS = 0.25  # the worker thread's wait for the training process's messages
SHOW_MS = 500  # the dialog's refresh of the progress
PREVIEW_WIDTH = 480
IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.bmp *.webp *.tif *.tiff);;All files (*)"
BUILT_IN = "built-in scenes (generated, no photos of yours needed)"


def scene_photos_dir() -> Path:
    """Where the generated training set is kept (made on first use, then reused)."""
    return userdirs.app_data_dir() / "scene_photos"


def training_missing() -> str | None:
    """Why this installation cannot train (the torch-free bundle), or None."""
    missing = [m for m in ("torch", "trainer") if importlib.util.find_spec(m) is None]
    if missing:
        return (f"Training a style needs {' and '.join(missing)}, which this installation lacks "
                "(the torch-free bundle plays styles only); install nstcam with PyTorch to train.")
    return None


def format_eta(seconds: float | None) -> str:
    """ "about 3 min 20 s left", "about 40 s left"; "" while unknown."""
    if seconds is None:
        return ""
    s = round(seconds)
    return f"about {s // 60} min {s % 60:02d} s left" if s >= 60 else f"about {s} s left"


class NewStyleDialog(QDialog):
    """One per window (nstcam.ui.menus makes it on first use); closing it does not stop a
    training, Cancel does. `trainer_args` go to trainer.fast after the dialog's own (tests pass
    tiny settings). A trained style goes into the engine and the registry, then `styleAdded`."""

    styleAdded = Signal(str)  # noqa: N815 - the new style's name

    def __init__(self, ctx: WindowContext, parent: QWidget, trainer_args: Sequence[str] = ()) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.trainer_args = list(trainer_args)
        self.worker: TaskWorker | None = None
        self.result_path: Path | None = None
        self.photos: Path | None = None  # None: the built-in scenes
        self._sample: Path | None = None
        self._busy = False
        # The worker thread leaves its newest Progress here and the GUI thread's timer shows it:
        # no signal per update (PySide6 6.12 crashed, refcount errors, after some thousands of
        # cross-thread emissions in a stress test; a training sends one every 0.25 s for minutes).
        self._latest: deque[Progress] = deque(maxlen=1)
        self._show_timer = QTimer(self)
        self._show_timer.setInterval(SHOW_MS)
        self._show_timer.timeout.connect(self._show_latest)
        self.setWindowTitle("New style")
        self.setModal(False)

        self.painting_edit = QLineEdit()
        self.painting_edit.setPlaceholderText("a painting (jpg, png, …)")
        self.painting_edit.textChanged.connect(self._suggest_name)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self.choose_painting)
        self.photos_label = QLabel(BUILT_IN)
        folder = QPushButton("Folder…")
        folder.setToolTip("Train on your own photos: 20 or more varied photos give a better style")
        folder.clicked.connect(self.choose_photos)
        built_in = QPushButton("Built-in")
        built_in.clicked.connect(lambda: self.set_photos(None))
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("style name (from the painting's file name)")

        form = QFormLayout()
        form.addRow("Painting", _row(self.painting_edit, browse))
        form.addRow("Photos", _row(self.photos_label, folder, built_in))
        form.addRow("Name", self.name_edit)

        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.status_label = QLabel("Pick a painting, then Start. Training takes minutes; the live view keeps running.")
        self.status_label.setWordWrap(True)
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumHeight(120)

        buttons = QDialogButtonBox()
        self.start_button = buttons.addButton("Start", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = buttons.addButton("Cancel training", QDialogButtonBox.ButtonRole.RejectRole)
        self.close_button = buttons.addButton("Close", QDialogButtonBox.ButtonRole.DestructiveRole)
        self.start_button.clicked.connect(lambda: self.start())
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.hide)
        self.cancel_button.setEnabled(False)

        col = QVBoxLayout(self)
        col.addLayout(form)
        col.addWidget(self.bar)
        col.addWidget(self.status_label)
        col.addWidget(self.preview, 1)
        col.addWidget(buttons)
        self.resize(560, 420)

    # ------------------------------------------------------------------ choices
    def choose_painting(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Painting to learn", str(self.ctx.pictures_dir().parent),
                                              IMAGE_FILTER)
        if path:
            self.painting_edit.setText(path)

    def choose_photos(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of photos to train on",
                                                  str(self.ctx.pictures_dir().parent))
        if folder:
            self.set_photos(Path(folder))

    def set_photos(self, folder: Path | None) -> None:
        self.photos = folder
        self.photos_label.setText(BUILT_IN if folder is None else str(folder))

    def _suggest_name(self, text: str) -> None:
        self.name_edit.setPlaceholderText(self._name_for(Path(text)) if text.strip() else "style name")

    def _name_for(self, painting: Path) -> str:
        taken = [*self.ctx.engine.style_names, *self.ctx.registry.names()]
        return unique_style_name(self.name_edit.text().strip() or painting.stem, taken, userdirs.user_styles_dir())

    @property
    def running(self) -> bool:
        """From Start until the dialog has shown the outcome (done, cancelled or failed)."""
        return self._busy

    # ------------------------------------------------------------------ training
    def start(self) -> bool:
        """Check the choices and start the training; False (and a message) when one is unusable."""
        if self.running:
            return False
        if (missing := training_missing()) is not None:
            return self._problem(missing)
        from trainer.images import ImageLoadError, load_image

        text = self.painting_edit.text().strip()
        if not text:
            return self._problem("Pick a painting first (Browse…).")
        painting = Path(text).expanduser()
        try:
            load_image(painting)
        except ImageLoadError as exc:
            return self._problem(f"The painting cannot be used: {exc}. Pick a JPEG or PNG image.")
        if self.photos is not None and not self.photos.is_dir():
            return self._problem(f"The photo folder {self.photos} does not exist; pick another or use the built-in scenes.")
        name = self._name_for(painting)
        engine, photos, args = self.ctx.engine, self.photos, self.trainer_args

        def job(worker: TaskWorker):
            return _train(worker, painting, photos, name, args, engine, self._latest.append)

        self.result_path, self._sample = None, None
        self.preview.clear()
        self.worker = TaskWorker(job, name=f"new style {name}", parent=self, expected=(TrainingError,))
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self._set_running(True, f"Preparing {name}: reading the photos, measuring the painting…")
        self.bar.setRange(0, 0)  # busy until the first step
        self.ctx.workers.start(self.worker)
        return True

    def cancel(self) -> None:
        if self.running:
            self.worker.cancel()
            self.cancel_button.setEnabled(False)
            self.status_label.setText("Cancelling…")

    def _show_latest(self) -> None:
        if self._latest:
            self._on_progress(self._latest[-1])

    def _on_progress(self, info: Progress) -> None:
        step, total = info.step, info.total
        if total:
            self.bar.setRange(0, total)
            self.bar.setValue(step)
            eta = format_eta(info.eta_seconds)
            self.status_label.setText(f"Training: step {step} of {total}" + (f" · {eta}" if eta else "")
                                      + (f"\n{info.notice}" if info.notice else ""))
        self._show_sample(info.sample)

    def _show_sample(self, sample: Path | None) -> None:
        if sample is not None and sample != self._sample:
            pixmap = QPixmap(str(sample))
            if not pixmap.isNull():
                self._sample = sample
                self.preview.setPixmap(pixmap.scaledToWidth(min(PREVIEW_WIDTH, pixmap.width()),
                                                            Qt.TransformationMode.SmoothTransformation))

    def _on_finished(self, result: tuple[Path, str, object, bytes | None] | None) -> None:
        if result is None:
            self._set_running(False, "Cancelled: nothing was saved.")
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
            return
        path, name, model, grid = result
        self.result_path = path
        final = QPixmap()
        if grid and final.loadFromData(grid):  # the trained network on the preview photos
            self.preview.setPixmap(final.scaledToWidth(min(PREVIEW_WIDTH, final.width()),
                                                       Qt.TransformationMode.SmoothTransformation))
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        if model is None or self.ctx.closing:
            self._set_running(False, f"Saved to {path}; restart nstcam to use it.")
            return
        self.ctx.registry.add(path, model)
        self.styleAdded.emit(name)
        self._set_running(False, f"Done: the style {name} is in the gallery and saved to {path}.")

    def _on_failed(self, exc: Exception) -> None:
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self._set_running(False, f"Training failed: {exc}", error=True)

    def _problem(self, text: str) -> bool:
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #d33;")
        return False

    def _set_running(self, on: bool, text: str, error: bool = False) -> None:
        self._busy = on
        if on:
            self._latest.clear()
            self._show_timer.start()
        else:
            self._show_timer.stop()
        self.start_button.setEnabled(not on)
        self.cancel_button.setEnabled(on)
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #d33;" if error else "")


def _train(worker: TaskWorker, painting: Path, photos: Path | None, name: str, trainer_args: Sequence[str],
           engine, show: Callable[[Progress], None]) -> tuple[Path, str, object, bytes | None] | None:
    """The TaskWorker's job: train (`show` gets each Progress), and on success load the style
    and add it to the engine.
    Returns (style file, name, model or None where the engine cannot add styles, the final preview
    grid as PNG bytes), None if cancelled."""
    from nstcam.jobs.scene_photos import ensure_scene_photos
    from trainer.stylefile import load_style

    if photos is None:
        photos = ensure_scene_photos(scene_photos_dir())
    if worker.cancelled():
        return None
    job = TrainingJob(painting, photos, userdirs.user_styles_dir(), name, trainer_args)
    job.start()
    try:
        while not job.poll(POLL_SECONDS):
            show(job.progress())
            if worker.cancelled():
                job.cancel()
                return None
    finally:
        if job.result is None and not job.cancelled and job.error is None:
            job.cancel()  # an exception on this thread: never leave the child running
    if job.error is not None:
        raise job.error
    if job.result is None:
        return None
    model = load_style(job.result)
    add = getattr(engine, "add_style", None)
    if add is None:
        return job.result, name, None, job.final_grid
    add(name, model)
    return job.result, name, model, job.final_grid


def _row(*widgets: QWidget) -> QWidget:
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    for i, widget in enumerate(widgets):
        row.addWidget(widget, 1 if i == 0 else 0)
    return box
