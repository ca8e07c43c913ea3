"""Shared fixtures. Qt runs offscreen so the suite needs no display."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import contextlib  # noqa: E402
import threading  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@contextlib.contextmanager
def _single_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run torch single-threaded during a test, then restore.

    The tests push tiny tensors through tiny networks, where torch's intra-op thread team costs
    more than it gives; on a shared, oversubscribed 2-core machine OpenMP's spinning barriers can
    slow a 1 ms forward pass a thousandfold (seen: ~1 s; a 96x64 frame 0.4-0.6 s with 2 threads
    against 1 ms with 1), which would make the timing-sensitive pipeline tests slow and flaky.
    """
    with _single_torch_thread():
        yield


@pytest.fixture(scope="module")
def one_torch_thread_module() -> Iterator[None]:
    """`one_torch_thread` for a whole module, so module-scoped fixtures run single-threaded too."""
    with _single_torch_thread():
        yield


@pytest.fixture(scope="session", autouse=True)
def private_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The window's remembered settings (QSettings) go to a temporary folder, never the user's."""
    try:
        from PySide6.QtCore import QSettings
    except ImportError:  # a machine without Qt (the GPU check) runs no window test
        return
    folder = str(tmp_path_factory.mktemp("settings"))
    for fmt in (QSettings.Format.IniFormat, QSettings.Format.NativeFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, folder)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The app's cache (ONNX exports, remembered memory formats) goes to a temporary folder, for
    this process and the app processes tests start, never the user's (on every platform)."""
    before = os.environ.get("NSTCAM_CACHE_DIR")
    os.environ["NSTCAM_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        del os.environ["NSTCAM_CACHE_DIR"]
    else:
        os.environ["NSTCAM_CACHE_DIR"] = before


@pytest.fixture
def no_leftover_threads() -> Iterator[None]:
    """Fails the test if it leaves a thread running (every worker must be joined)."""
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leftover, f"threads left running: {leftover}"
