"""Suite configuration: Qt runs offscreen so the suite needs no display; every fixture comes from
nstcam_fixtures; CUDA tests skip without a device; a test that starts a Python process is `slow`.

`-m "not slow"` is the quick run, so a test not marked slow that starts a Python interpreter
(subprocess, sys.executable, a console script) or a multiprocessing child fails, naming what it
started: mark it `@pytest.mark.slow`. Quick system tools (ldd, mount) do not count.
"""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import multiprocessing.process  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Generator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

pytest_plugins = ["nstcam_fixtures"]

_STARTED = pytest.StashKey[list[str]]()
_running: list[pytest.Item] = []  # the test being run, if any


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def _is_python(program: str) -> bool:
    """Whether `program` (argv[0]) is a Python interpreter or a script run by one."""
    found = shutil.which(program) or program
    if Path(found).name.startswith("python") or os.path.realpath(found) == os.path.realpath(sys.executable):
        return True
    try:
        with open(found, "rb") as f:
            first = f.readline(256)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


def _note_start(what: str) -> None:
    item = _running[-1] if _running else None
    if item is not None and item.get_closest_marker("slow") is None:
        item.stash.setdefault(_STARTED, []).append(what)


def _watch_process_starts() -> None:
    popen_init = subprocess.Popen.__init__
    process_start = multiprocessing.process.BaseProcess.start

    def watched_popen_init(self: subprocess.Popen, args: object, *rest: object, **kw: object) -> None:
        try:
            if isinstance(args, (str, bytes, os.PathLike)):
                text = os.fsdecode(args)
                argv = shlex.split(text) if kw.get("shell") else [text]
            else:
                argv = [os.fsdecode(a) for a in args]  # type: ignore[union-attr]
            program = os.fsdecode(kw["executable"]) if kw.get("executable") else (argv[0] if argv else "")
        except (TypeError, ValueError):  # Popen itself says what is wrong with its arguments
            program = ""
        if program and _is_python(program):
            _note_start(shlex.join(argv)[:200])
        popen_init(self, args, *rest, **kw)

    def watched_start(self: multiprocessing.process.BaseProcess) -> None:
        _note_start(f"multiprocessing {type(self).__name__} {self.name}")
        process_start(self)

    subprocess.Popen.__init__ = watched_popen_init  # type: ignore[method-assign]
    multiprocessing.process.BaseProcess.start = watched_start  # type: ignore[method-assign]


_watch_process_starts()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    _running.append(item)
    try:
        return (yield)
    finally:
        _running.pop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    started = item.stash.get(_STARTED, [])
    if call.when == "teardown" and started and report.passed:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} starts a Python process but is not marked slow; add "
                           f"@pytest.mark.slow (started: {'; '.join(started[:3])})")
    return report
