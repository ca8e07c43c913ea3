"""Signals emitted from Python threads, as every worker of the window does, must not crash Qt.

PySide6 6.12.0 aborts ("Fatal Python error: bool_dealloc ... refcount error in a C extension")
within some thousands of such emits; pyproject.toml keeps it out. Run in a subprocess so that a
crash fails this test instead of ending the suite."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import threading
    from PySide6.QtCore import QCoreApplication, QObject, Signal, Slot

    app = QCoreApplication([])
    N = 50000

    class Emitter(QObject):
        ints = Signal(int, int)

    class Receiver(QObject):
        def __init__(self):
            super().__init__()
            self.n = 0

        @Slot(int, int)
        def on(self, a, b):
            self.n += 1
            if self.n == N:
                app.quit()

    emitter, receiver = Emitter(), Receiver()
    emitter.ints.connect(receiver.on)
    worker = threading.Thread(target=lambda: [emitter.ints.emit(i, N) for i in range(N)])
    worker.start()
    app.exec()
    worker.join()
    print("received", receiver.n)
""")


@pytest.mark.slow
def test_many_signals_from_a_python_thread_arrive_without_a_crash() -> None:
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "received 50000"
