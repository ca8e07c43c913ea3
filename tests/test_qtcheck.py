"""The xcb platform-plugin check: a plugin whose libraries cannot load is caught and explained."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nstcam import qtcheck
from nstcam.qtcheck import PluginCheck

REPO = Path(__file__).resolve().parents[1]
REAL_PLUGIN = qtcheck.find_xcb_plugin()
needs_linux_plugin = pytest.mark.skipif(
    REAL_PLUGIN is None or not sys.platform.startswith("linux"),
    reason="needs PySide6's libqxcb.so on Linux",
)
# The offscreen plugin, which the suite itself draws through, so its libraries load wherever the
# suite runs: a copy of it with one DT_NEEDED entry renamed is a plugin with exactly one library
# missing, whatever this machine has installed (a copy of libqxcb.so would also miss what the
# machine lacks, e.g. the xcb libraries of a fresh Debian).
OFFSCREEN_PLUGIN = REAL_PLUGIN.with_name("libqoffscreen.so") if REAL_PLUGIN else None
RENAMED = (b"libxkbcommon.so.0\0", b"libnstcam-fake.so\0")  # same length: a valid ELF stays valid
FAKE_LIBRARY = "libnstcam-fake.so"


def _plugin_copy(root: Path, source: Path | None = OFFSCREEN_PLUGIN, with_qt_libs: bool = True,
                 rename: bool = True) -> Path:
    """A copy of a Qt platform plugin as libqxcb.so in a PySide6-like tree (Qt/plugins/platforms, Qt/lib).

    `rename` rewrites one DT_NEEDED entry to a library no system has; `with_qt_libs` False leaves
    out Qt/lib, so the plugin's own Qt libraries (found through its $ORIGIN rpath) are missing.
    """
    assert source is not None and REAL_PLUGIN is not None
    data = source.read_bytes()
    if rename:
        assert data.count(RENAMED[0]) == 1
        data = data.replace(*RENAMED)
    plugin = root / "Qt" / "plugins" / "platforms" / qtcheck.PLUGIN_NAME
    plugin.parent.mkdir(parents=True)
    plugin.write_bytes(data)
    if with_qt_libs:
        (root / "Qt" / "lib").symlink_to(REAL_PLUGIN.parents[2] / "lib", target_is_directory=True)
    return plugin


@pytest.fixture(scope="module")
def host_missing() -> list[str]:
    """What the real plugin cannot load on this machine, as ldd itself says (the oracle the check is
    held to); .ci/run also runs this module with an ldd that hides two xcb libraries."""
    if REAL_PLUGIN is None or shutil.which("ldd") is None:
        pytest.skip("needs ldd and PySide6's libqxcb.so")
    out = subprocess.run(["ldd", str(REAL_PLUGIN)], capture_output=True, text=True, check=False).stdout
    return sorted({line.split()[0] for line in out.splitlines() if "=> not found" in line})


@needs_linux_plugin
def test_the_installed_plugin_loads_here(host_missing):
    if host_missing:
        pytest.skip(f"this machine lacks {', '.join(host_missing)}, so the xcb plugin cannot load here")
    check = qtcheck.check_xcb(REAL_PLUGIN)
    assert check.ok, check
    assert qtcheck.describe(check) == ""


@needs_linux_plugin
def test_the_check_names_what_this_machine_lacks(host_missing):
    check = qtcheck.check_xcb(REAL_PLUGIN)
    assert sorted(check.missing) == host_missing and check.ok == (not host_missing)


@needs_linux_plugin
def test_plugin_with_a_library_that_cannot_load(tmp_path):
    plugin = _plugin_copy(tmp_path)
    assert qtcheck.find_xcb_plugin(tmp_path) == plugin
    check = qtcheck.check_xcb(plugin)
    assert not check.ok
    assert check.missing == (FAKE_LIBRARY,)
    line = qtcheck.describe(check, distro="debian")
    assert "\n" not in line and FAKE_LIBRARY in line and "find the package" in line


@needs_linux_plugin
def test_dlopen_fallback_names_the_missing_library_without_ldd(tmp_path):
    plugin = _plugin_copy(tmp_path)
    assert qtcheck.missing_libraries(plugin, ldd=None) == [FAKE_LIBRARY]
    assert qtcheck.missing_libraries(plugin, ldd=str(tmp_path / "no-such-ldd")) == [FAKE_LIBRARY]


@needs_linux_plugin
def test_missing_qt_libraries_mean_a_broken_pyside6_install(tmp_path):
    plugin = _plugin_copy(tmp_path, REAL_PLUGIN, with_qt_libs=False, rename=False)
    check = qtcheck.check_xcb(plugin)
    assert "libQt6XcbQpa.so.6" in check.missing
    assert "reinstall" in qtcheck.describe(check, distro="debian")


@pytest.mark.slow
def test_the_window_command_names_what_this_machine_lacks_in_one_line(host_missing):
    if not host_missing:
        pytest.skip("this machine has every library the xcb plugin needs (.ci/run also runs this with two hidden)")
    result = subprocess.run([sys.executable, "-m", "nstcam", "--camera", "demo"], cwd=REPO, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "xcb"})
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert all(name in line for name in host_missing) and "install" in line


def test_a_file_that_is_no_library_is_a_problem_not_a_crash(tmp_path):
    bogus = tmp_path / qtcheck.PLUGIN_NAME
    bogus.write_bytes(b"not an ELF file")
    check = qtcheck.check_xcb(bogus, ldd=None)
    assert not check.ok and "does not load" in check.problem


def _fake_ldd(tmp_path: Path, missing: list[str]) -> str:
    lines = ["\tlibQt6Gui.so.6 => /opt/Qt/lib/libQt6Gui.so.6 (0x1)"]
    lines += [f"\t{name} => not found" for name in missing]
    script = tmp_path / "ldd"
    script.write_text("#!/bin/sh\ncat <<'EOF'\n" + "\n".join(lines) + "\nEOF\n")
    script.chmod(0o755)
    return str(script)


def test_missing_xcb_libraries_map_to_the_debian_and_fedora_packages(tmp_path):
    # The libraries a fresh Debian lacked when the README's run command crashed (issue 14).
    ldd = _fake_ldd(tmp_path, ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-icccm.so.4"])
    plugin = tmp_path / qtcheck.PLUGIN_NAME
    plugin.write_bytes(b"")
    check = qtcheck.check_xcb(plugin, ldd=ldd)
    assert check.missing == ("libxcb-icccm.so.4", "libxcb-keysyms.so.1")
    assert qtcheck.install_command(check.missing, "debian") == "sudo apt-get install libxcb-icccm4 libxcb-keysyms1"
    assert qtcheck.install_command(check.missing, "fedora") == "sudo dnf install xcb-util-wm xcb-util-keysyms"
    debian = qtcheck.describe(check, distro="debian")
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1" in debian
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1" in debian and "dnf" not in debian
    both = qtcheck.describe(check, distro=None)
    assert "apt-get install libxcb-icccm4" in both and "dnf install xcb-util-wm" in both


@pytest.mark.parametrize(("text", "family"), [
    ('ID=ubuntu\nID_LIKE=debian\n', "debian"),
    ('ID=debian\n', "debian"),
    ('ID="fedora"\n', "fedora"),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "fedora"),
    ('ID=arch\n', None),
])
def test_detect_distro(tmp_path, text, family):
    release = tmp_path / "os-release"
    release.write_text(text)
    assert qtcheck.detect_distro(release) == family


def test_no_check_needed_for_other_platforms():
    assert qtcheck.xcb_needed({"QT_QPA_PLATFORM": "offscreen"}, "linux") == "QT_QPA_PLATFORM=offscreen"
    assert qtcheck.xcb_needed({}, "darwin").startswith("not Linux")
    assert qtcheck.xcb_needed({"QT_QPA_PLATFORM": "wayland;xcb"}, "linux") == ""
    assert qtcheck.check_xcb(environ={"QT_QPA_PLATFORM": "offscreen"}).skipped
    assert qtcheck.startup_message({"QT_QPA_PLATFORM": "offscreen"}) == ""


def test_pyside6_missing_is_reported_not_raised(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(qtcheck.importlib.util, "find_spec",
                        lambda name, *a: None if name == "PySide6" else real_find_spec(name, *a))
    monkeypatch.delattr(sys, "_MEIPASS", raising=False)
    check = qtcheck.check_xcb(environ={}) if sys.platform.startswith("linux") else None
    if check is not None:
        assert check.plugin is None and "PySide6 is not installed" in check.problem
    assert qtcheck.pyside6_dir() is None


@pytest.mark.slow
def test_importing_the_check_loads_no_qt_module():
    code = ("import sys, nstcam.qtcheck as q; q.startup_message(); "
            "print(sorted(m for m in sys.modules if m.startswith('PySide6')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "QT_QPA_PLATFORM": "xcb"})
    assert out.stdout.strip() == "[]"


def test_describe_of_a_passing_check_is_empty():
    assert qtcheck.describe(PluginCheck(plugin=Path("x"))) == ""


def test_no_display_is_said_instead_of_qt_aborting(tmp_path):
    problem = qtcheck.display_problem({}, sockets=tmp_path)
    if not sys.platform.startswith("linux"):
        assert problem == ""
        return
    assert "DISPLAY is not set" in problem and "nstcam render" in problem
    assert qtcheck.display_problem({"DISPLAY": ":57"}, sockets=tmp_path).endswith(
        "the X display :57 does not answer; run nstcam in a desktop session (over SSH: ssh -X), "
        "or use `nstcam render` for video files")
    assert qtcheck.display_problem({"WAYLAND_DISPLAY": "wayland-0"}, sockets=tmp_path) == ""  # Qt may use Wayland
    assert qtcheck.display_problem({"QT_QPA_PLATFORM": "offscreen"}, sockets=tmp_path) == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X displays are checked on Linux")
def test_a_display_that_listens_passes(tmp_path):
    import socket

    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "X57"))
        server.listen()
        assert qtcheck.display_problem({"DISPLAY": ":57.0"}, sockets=tmp_path) == ""
    with socket.socket() as server:  # a forwarded display (ssh -X): host:N is TCP port 6000 + N
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        if port >= qtcheck.X11_TCP_BASE:
            assert qtcheck.display_problem({"DISPLAY": f"127.0.0.1:{port - qtcheck.X11_TCP_BASE}"}) == ""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X displays are checked on Linux")
def test_the_window_command_without_a_display_exits_with_one_line(host_missing):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([sys.executable, "-m", "nstcam", "--camera", "demo"], cwd=REPO, capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert ("missing system libraries" if host_missing else "DISPLAY is not set") in line
