"""Snapshot orchestration for the window: take the newest frame, refine it on a worker, show it.

On a CPU engine the live session pauses stylizing while the snapshot refines: both want every
core, and run together torch's thread teams oversubscribe the CPU and each crawls (far worse than
half speed). The pause waits for the current frame on the worker thread, never on the GUI thread;
the session resumes (and its processors restart) when the snapshot ends, however it ends.
The look in force when the snapshot is taken (strength, colours: nstcam.live.controls) is applied to
its stylized and refined images, as the live view, recordings and the virtual camera get it.
When a snapshot cannot be refined (no torch, a style without Gram targets) it saves the camera
frame and the stylized frame and the panel says what refinement needs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QPixmap

from nstcam.ui.snapshot_panel import make_snapshot_dock
from nstcam.ui.toolbar import new_action
from nstcam.ui.video_view import rgb_to_qimage
from nstcam.ui.workers import TaskWorker

if TYPE_CHECKING:
    from nstcam.live.controls import OutputControls
    from nstcam.ui.context import WindowContext


class SnapshotFlow(QObject):
    """One snapshot at a time; `take()` is the Space key and `action` (the toolbar button).
    Owns the snapshot `panel` and its `dock`; `started` asks the window to show the dock."""

    started = Signal()
    finished = Signal(object)  # SnapshotResult
    failed = Signal(object)  # the exception

    def __init__(self, ctx: WindowContext, controls: OutputControls) -> None:
        """`controls`: the session's output controls, whose look a snapshot gets."""
        super().__init__(ctx)
        self.ctx, self.controls = ctx, controls
        self.worker: TaskWorker | None = None
        self.paused_live = False
        self.last = None  # the last SnapshotResult
        self.not_refined_because: str | None = None  # snapshot.refine_unavailable of the one in flight
        self.action = new_action("Snapshot", "Take a refined snapshot (Space)", self, self.take)
        self.panel, self.dock = make_snapshot_dock(ctx.pictures_dir)
        self.panel.cancelRequested.connect(self.cancel)

    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.is_running()

    def _should_pause_live(self) -> bool:
        ctx = self.ctx
        if ctx.options.pause_live_while_refining is not None:
            return ctx.options.pause_live_while_refining
        device = getattr(ctx.engine, "device", None)
        return getattr(device, "type", str(device)) != "cuda"

    def take(self) -> None:
        from nstcam.jobs import snapshot

        ctx = self.ctx
        if ctx.closing:
            return
        if self.running:
            ctx.report("a snapshot is still being refined (Cancel it in the Snapshot panel)")
            return
        result = ctx.last_result
        if result is None:
            ctx.report("no camera frame yet to take a snapshot of", error=True)
            return
        style = result.style
        try:
            model = ctx.registry.trained_model(ctx.registry.choose(style, ctx.options.device_type))
        except KeyError as exc:
            ctx.report(f"snapshot: {exc}", error=True)
            return
        self.not_refined_because = snapshot.refine_unavailable(model)
        refine = self.not_refined_because is None
        steps = ctx.options.snapshot_steps or snapshot.DEFAULT_STEPS
        frame, engine, out_dir, session = result.raw_bgr, ctx.engine, ctx.pictures_dir(), ctx.session
        refine_side, look = ctx.options.snapshot_refine_side, self.controls.look
        self.paused_live = refine and self._should_pause_live()

        def job(worker: TaskWorker):
            if self.paused_live:
                session.pause()  # waits, here off the GUI thread, for the frame in progress
            from nstcam.live.controls import apply_look_to_files

            res = snapshot.take_snapshot(
                frame, engine, model, out_dir, steps=steps, refine=refine, refine_side=refine_side,
                style=style, progress=worker.report, should_stop=worker.cancelled,
            )
            apply_look_to_files(frame, [p for p in (res.stylized_path, res.refined_path) if p], look)
            return res

        self._show_started(result, style, refine, steps)
        self.worker = TaskWorker(job, name="snapshot", parent=self, expected=(snapshot.SnapshotError, OSError))
        self.worker.progress.connect(self._on_progress)
        self.worker.finished.connect(self._on_done)
        self.worker.failed.connect(self._on_failed)
        ctx.workers.start(self.worker)
        h, wd = frame.shape[:2]
        if self.paused_live:
            ctx.report(f"snapshot of a {wd}x{h} frame: refining; the live view is paused "
                       "meanwhile (the CPU cannot do both well)")
        else:
            ctx.report(f"snapshot of a {wd}x{h} frame: refining…" if refine else "snapshot…")

    def _why_not_refined(self) -> str:
        reason = self.not_refined_because or ""
        return reason[:1].upper() + reason[1:]

    def _show_started(self, result, style: str, refine: bool, steps: int) -> None:
        panel = self.panel
        panel.title.setText(f"Snapshot — {self.ctx.style_row(style)[1]}")
        panel.progress.setRange(0, steps if refine else 0)
        panel.progress.setValue(0)
        panel.progress.setFormat("stylizing at full resolution…")
        panel.cancel.setEnabled(True)
        panel.where.setText("" if refine else f"{self._why_not_refined()}: saving the camera frame and the stylized frame.")
        panel.set_stats("")
        panel.set_image(QPixmap.fromImage(rgb_to_qimage(np.ascontiguousarray(result.stylized_rgb))))
        self.started.emit()

    def cancel(self) -> None:
        if self.running:
            self.worker.cancel()
            self.panel.cancel.setEnabled(False)
            self.panel.progress.setFormat("cancelling…")

    def _resume_live(self) -> None:
        if self.paused_live:
            self.paused_live = False
            self.ctx.session.resume()

    def _on_progress(self, step: int, total: int, losses: Any) -> None:
        if self.ctx.closing or self.worker is None or self.worker.cancelled():
            return
        bar = self.panel.progress
        bar.setRange(0, total)
        bar.setValue(step)
        style = losses.get("style") if isinstance(losses, dict) else None
        bar.setFormat("refining %v/%m" + (f" · style loss {style:.3g}" if style is not None else ""))

    def _on_done(self, res) -> None:
        ctx, panel = self.ctx, self.panel
        self.last = res
        self._resume_live()
        panel.cancel.setEnabled(False)
        if not ctx.closing:
            panel.progress.setRange(0, 1)
            panel.progress.setValue(1)
            if res.cancelled:
                panel.progress.setFormat("refinement cancelled")
            elif res.refined_path is None:
                panel.progress.setFormat("saved (not refined)")
            else:
                panel.progress.setFormat(f"done in {res.seconds:.0f} s")
            pixmap = QPixmap(str(res.best_path))
            before = QPixmap(str(res.stylized_path)) if res.refined_path else None
            panel.set_image(pixmap if not pixmap.isNull() else None, before)
            panel.set_stats(refinement_summary(res))
            names = [p.name for p in (res.raw_path, res.stylized_path, res.refined_path) if p]
            why = f"{self._why_not_refined()}.\n" if self.not_refined_because else ""
            panel.where.setText(f"{why}Saved to {res.raw_path.parent}:\n" + "\n".join(names))
            panel.where.setToolTip(str(res.best_path))
            panel.open_folder.setEnabled(True)
            ctx.report(f"snapshot saved: {res.best_path}")
        self.finished.emit(res)

    def _on_failed(self, exc: Exception) -> None:
        ctx, panel = self.ctx, self.panel
        self._resume_live()
        panel.cancel.setEnabled(False)
        if not ctx.closing:
            panel.progress.setRange(0, 1)
            panel.progress.setValue(0)
            panel.progress.setFormat("failed")
            panel.where.setText(str(exc))
            ctx.report(f"snapshot failed: {exc}", error=True)
        self.failed.emit(exc)


def refinement_summary(res) -> str:
    """'style loss 2.1 → 0.9 (−57%) · mean change 14.0/255' for a refined SnapshotResult, else ''."""
    if res.refined_path is None:
        return ""
    parts = []
    before, after = res.style_loss_before, res.style_loss_after
    if before is not None and after is not None:
        change = f" ({(after - before) / before:+.0%})".replace("-", "−") if before > 0 else ""
        parts.append(f"style loss {before:.3g} → {after:.3g}{change}")
    if res.mean_change is not None:
        parts.append(f"mean change {res.mean_change:.1f}/255")
    return " · ".join(parts)
