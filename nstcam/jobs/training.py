"""One style training (trainer.fast) in a background process, for "New style…" in the window.

Why a process: training wants every core for minutes; in a child with its own thread budget
(half the cores) it cannot stall the live view's thread, and cancelling it can never leave the
app's state half-changed. It runs at normal priority (at nice 10, on a busy 2-core machine, a
step took ~20 s). The child runs `trainer.fast.main` ("spawn": never fork a process that has
threads and Qt) and sends its progress up a pipe: the step of each `--log-every` log line,
warnings, and the one-line error trainer.fast prints. A second pipe goes down: "cancel"
raises SIGINT in the child (trainer.fast stops after the current step and exits cleanly), and the
pipe closing, because the app went away, does the same, so an orphaned training never runs on
(and removes its own temporary folder).

The style file is trained into a temporary folder; only a finished, loadable file is copied into
the styles folder, atomically and never over an existing file. A cancelled or failed training
leaves nothing there; its temporary folder (checkpoint, sample grids) is removed.
"""
from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing as mp
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

log = logging.getLogger(__name__)

LOG_EVERY = 10  # steps between progress messages (one host sync each; negligible on a CPU)
SAMPLE_EVERY = 50  # steps between preview grids
CANCEL_SECONDS = 20.0  # to stop after "cancel" (the current step, the checkpoint), then again, then kill
INTERRUPTED_EXIT = 130  # trainer.fast's status when stopped by SIGINT


class TrainingError(RuntimeError):
    """The training did not produce a style: the message is trainer.fast's own one-line reason."""


@dataclass(frozen=True)
class Progress:
    """`step` of `total` (0 while the trainer prepares: dataset scan, loss net, style weight);
    `eta_seconds` from the rate so far (None until two steps are known); `sample`: the newest
    preview grid (inputs above, their stylization below), or None; `notice`: the last warning."""

    step: int
    total: int
    eta_seconds: float | None
    sample: Path | None
    notice: str = ""


def default_threads() -> int:
    """Half the cores for training (at least one), so the live view keeps the other half."""
    return max(1, (os.cpu_count() or 2) // 2)


def unique_style_name(stem: str, taken: Sequence[str], folder: Path) -> str:
    """A style name from a painting's file name ("Bal du moulin" -> "bal_du_moulin") that is
    neither a loaded style nor a file in `folder`; "_2", "_3", ... are appended as needed."""
    base = re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_") or "style"
    name, n = base, 1
    while name in taken or (folder / f"{name}.pt").exists():
        n += 1
        name = f"{base}_{n}"
    return name


class TrainingJob:
    """Train `painting` on the photos in `photos` into `<styles_dir>/<name>.pt`.

    Call `start`, then `poll` until it returns True (finished, failed or cancelled), from one
    thread; `cancel` may come in between. `result` is the published style file; `error` a
    TrainingError when the trainer failed. `trainer_args` are appended to the trainer's command
    line (e.g. `--steps 2000`); later flags win.
    """

    def __init__(self, painting: Path, photos: Path, styles_dir: Path, name: str,
                 trainer_args: Sequence[str] = (), threads: int | None = None) -> None:
        self.painting, self.photos, self.styles_dir, self.name = Path(painting), Path(photos), Path(styles_dir), name
        self.workdir = Path(tempfile.mkdtemp(prefix=f"nstcam-train-{name}-"))
        self.out = self.workdir / f"{name}.pt"
        self.argv = ["--dataset", str(self.photos), "--style", str(self.painting), "--out", str(self.out),
                     "--name", name, "--threads", str(threads or default_threads()),
                     "--log-every", str(LOG_EVERY), "--sample-every", str(SAMPLE_EVERY), *trainer_args]
        self.result: Path | None = None
        self.error: TrainingError | None = None
        self.cancelled = False
        self.final_grid: bytes | None = None  # the last preview grid (PNG), kept when the folder goes
        self._step, self._total, self._notice, self._error_line = 0, 0, "", ""
        self._rate_start: tuple[int, float] | None = None
        self._last: tuple[int, float] | None = None
        self._process: mp.process.BaseProcess | None = None
        self._up: Connection | None = None
        self._down: Connection | None = None
        self._exit: int | None = None

    # ------------------------------------------------------------------ running
    def start(self) -> None:
        ctx = mp.get_context("spawn")
        self._up, child_up = ctx.Pipe(duplex=False)
        child_down, self._down = ctx.Pipe(duplex=False)
        # Not a daemon: the trainer starts DataLoader worker processes. It still never outlives the
        # app: the down pipe closing stops it (`_watch`), and the window cancels it at shutdown.
        self._process = ctx.Process(target=_child_main, args=(self.argv, child_up, child_down, self.workdir),
                                    name=f"nstcam-train-{self.name}")
        self._process.start()
        child_up.close()
        child_down.close()
        log.info("training %s from %s on %s (pid %d)", self.name, self.painting, self.photos, self._process.pid)

    def poll(self, timeout: float = 0.0) -> bool:
        """Take the child's messages (waiting up to `timeout` for the first); True once it ended
        and the result is published, the error set, or the cancel completed."""
        assert self._up is not None and self._process is not None, "start() first"
        if self._exit is None:
            try:
                ready = self._up.poll(timeout)
                while ready:
                    self._take(self._up.recv())
                    ready = self._exit is None and self._up.poll()
            except (EOFError, OSError):  # the child ended without saying how (killed, crashed)
                self._process.join(CANCEL_SECONDS)
                self._exit = self._process.exitcode if self._process.exitcode is not None else -1
        if self._exit is None:
            return False
        self._process.join(CANCEL_SECONDS)
        self._finish()
        return True

    def cancel(self, timeout: float = CANCEL_SECONDS) -> bool:
        """Stop the training and remove its temporary folder; nothing reaches the styles folder.
        Asks twice (each SIGINT, within `timeout`), then kills. True if the child is gone."""
        self.cancelled = True
        if self._process is None:
            self._remove_workdir()
            return True
        for _ in range(2):
            if not self._process.is_alive():
                break
            self._send_cancel()
            self._process.join(timeout)
        if self._process.is_alive():
            log.warning("training %s did not stop within %.0f s; killing it", self.name, 2 * timeout)
            self._process.kill()
            self._process.join(timeout)
        self._exit = self._process.exitcode if self._exit is None else self._exit
        self._finish()
        return not self._process.is_alive()

    def progress(self) -> Progress:
        eta = None
        if self._rate_start and self._last and self._last[0] > self._rate_start[0] and self._total:
            (s0, t0), (s1, t1) = self._rate_start, self._last
            eta = max(0.0, (self._total - s1) * (t1 - t0) / (s1 - s0) - (time.monotonic() - t1))
        return Progress(self._step, self._total, eta, self.latest_sample(), self._notice)

    def latest_sample(self) -> Path | None:
        """The newest preview grid (trainer.fast writes them atomically: always whole)."""
        samples = sorted((self.workdir / "samples").glob("step_*.png"))
        return samples[-1] if samples else None

    # ------------------------------------------------------------------ internals
    def _take(self, msg: tuple) -> None:
        kind = msg[0]
        if kind == "progress":
            _, step, total, at = msg
            self._step, self._total = step, total
            if self._rate_start is None:
                self._rate_start = (step, at)
            self._last = (step, at)
        elif kind == "total":
            self._total = msg[1]
        elif kind == "notice":
            self._notice = msg[1]
        elif kind == "error":
            self._error_line = msg[1]
        elif kind == "exit":
            self._exit = msg[1]

    def _send_cancel(self) -> None:
        try:
            assert self._down is not None
            self._down.send("cancel")
        except (OSError, BrokenPipeError):
            pass  # the child is already gone

    def _finish(self) -> None:
        """Publish the style (exit 0, not cancelled), or record why not; then clean up."""
        if self.result is not None or self.error is not None:
            return
        try:
            if self.cancelled or self._exit == INTERRUPTED_EXIT:
                self.cancelled = True
            elif self._exit == 0 and self.out.is_file():
                sample = self.latest_sample()
                self.final_grid = sample.read_bytes() if sample else None
                try:
                    self.result = self._publish()
                except TrainingError as exc:
                    self.error = exc
            else:
                reason = self._error_line.removeprefix("error: ") or f"the trainer ended with status {self._exit}"
                self.error = TrainingError(reason)
        finally:
            for conn in (self._up, self._down):
                if conn is not None:
                    conn.close()
            self._remove_workdir()

    def _publish(self) -> Path:
        from trainer.fileio import atomic_write_bytes
        from trainer.stylefile import load_style

        try:
            load_style(self.out)
        except ValueError as exc:  # StyleFileError: the trainer wrote something unusable
            raise TrainingError(str(exc)) from None
        target = self.styles_dir / f"{self.name}.pt"
        try:
            atomic_write_bytes(target, self.out.read_bytes(), overwrite=False)
        except FileExistsError:
            raise TrainingError(f"{target} appeared while training; the new style was not saved over it") from None
        except OSError as exc:
            raise TrainingError(f"could not save the style to {target}: {exc}") from None
        log.info("new style %s saved to %s", self.name, target)
        return target

    def _remove_workdir(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


# ---------------------------------------------------------------------------- the child process


class _ProgressHandler(logging.Handler):
    """trainer.fast's log records, as messages up the pipe: the step of each "step N/M" line, the
    step count from the opening "training ..." line, and warnings."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(logging.INFO)
        self.conn = conn

    def emit(self, record: logging.LogRecord) -> None:
        msg, args = str(record.msg), record.args if isinstance(record.args, tuple) else ()
        try:
            if msg.startswith("step %d/%d") and len(args) >= 2:
                self.conn.send(("progress", int(args[0]), int(args[1]), time.monotonic()))
            elif msg.startswith("training %s: %d image(s), %d step(s)") and len(args) >= 3:
                self.conn.send(("total", int(args[2])))
            elif record.levelno >= logging.WARNING:
                self.conn.send(("notice", record.getMessage()))
        except (OSError, BrokenPipeError):
            pass  # the app went away; the watchdog stops the training


class _ErrorLines(io.TextIOBase):
    """The child's stderr: forwards trainer.fast's "error: ..." line, drops the rest (the tqdm
    bar, which the window draws itself)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for line in re.split(r"[\r\n]", text):
            if line.startswith("error: "):
                with contextlib.suppress(OSError, BrokenPipeError):
                    self.conn.send(("error", line.strip()))
        return len(text)


def _watch(down: Connection, orphaned: threading.Event) -> None:
    """Raise SIGINT in this process on "cancel", or when the app's end of the pipe closes (then
    `orphaned` is set: nobody is left to remove the temporary folder)."""
    while True:
        try:
            down.recv()
        except (EOFError, OSError):
            orphaned.set()
            signal.raise_signal(signal.SIGINT)
            return
        signal.raise_signal(signal.SIGINT)


def _child_main(argv: list[str], up: Connection, down: Connection, workdir: Path) -> None:
    code = 1
    orphaned = threading.Event()
    try:
        threading.Thread(target=_watch, args=(down, orphaned), name="cancel-watch", daemon=True).start()
        logging.getLogger().addHandler(_ProgressHandler(up))  # before trainer.fast's basicConfig
        from trainer import fast

        with contextlib.redirect_stderr(_ErrorLines(up)):
            code = fast.main(argv)
    except KeyboardInterrupt:  # cancelled before trainer.fast took over SIGINT
        code = INTERRUPTED_EXIT
    except Exception as exc:  # a bug, not bad input (trainer.fast reports that itself): say what
        traceback.print_exc(file=sys.__stderr__)
        with contextlib.suppress(OSError, BrokenPipeError):
            up.send(("error", f"error: {type(exc).__name__}: {exc}"))
    finally:
        with contextlib.suppress(OSError, BrokenPipeError):
            up.send(("exit", code))
        if orphaned.is_set():
            shutil.rmtree(workdir, ignore_errors=True)
