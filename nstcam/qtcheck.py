"""Can Qt open a window here? Checked before any PySide6 GUI module is imported.

On Linux, Qt draws through its xcb platform plugin (`libqxcb.so`), which links against a dozen
system libraries PySide6's wheel does not ship. When one is missing, Qt aborts the whole process
(SIGABRT, exit status 134) with a message that names `xcb-cursor0` whatever was really missing.
This module finds the plugin from the PySide6 package folder without importing PySide6, lists the
libraries that do not resolve (`ldd`, or `dlopen` through ctypes where ldd is absent), and turns
them into the packages to install on Debian/Ubuntu or Fedora, so the app can exit with one clear
line instead. Qt aborts the same way, with the same advice, when there is no X display to open the
window on (no DISPLAY, or one that does not answer: a shell over SSH without -X), which
`display_problem` finds by connecting to the display's socket.
"""
from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PLUGIN_NAME = "libqxcb.so"
LDD_TIMEOUT_S = 10.0
X11_SOCKETS = Path("/tmp/.X11-unix")  # display :N listens on X<N> here (and in Linux's abstract namespace)
X11_TCP_BASE = 6000  # display host:N listens on this port + N (SSH's X forwarding: localhost:10 and up)
CONNECT_TIMEOUT_S = 1.0

# soname -> (Debian/Ubuntu package, Fedora package): the libraries the xcb plugin and Qt's GUI
# library load from the system (`ldd libqxcb.so` with PySide6 6.12, Debian 12).
SYSTEM_PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libXau.so.6": ("libxau6", "libXau"),
    "libXdmcp.so.6": ("libxdmcp6", "libXdmcp"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libGLX.so.0": ("libglx0", "libglvnd-glx"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGLdispatch.so.0": ("libglvnd0", "libglvnd"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libpng16.so.16": ("libpng16-16", "libpng"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
}

DISTROS = ("debian", "fedora")
_INSTALL = {"debian": "sudo apt-get install {}", "fedora": "sudo dnf install {}"}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$")
_DLOPEN_MISSING = re.compile(r"(\S+?\.so[.\d]*): cannot open shared object file")


@dataclass(frozen=True)
class PluginCheck:
    """Outcome of `check_xcb`. `missing`: sonames that do not load. `problem`: why the check could
    not run or the plugin is unusable, in words ("" when it ran)."""

    plugin: Path | None
    missing: tuple[str, ...] = ()
    problem: str = ""
    skipped: str = ""  # why no check was needed (another platform plugin, not Linux)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.problem


def pyside6_dir() -> Path | None:
    """The PySide6 package folder, found without importing PySide6 (None when not installed)."""
    try:
        spec = importlib.util.find_spec("PySide6")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        if Path(location).is_dir():
            return Path(location)
    frozen_root = getattr(sys, "_MEIPASS", None)  # a PyInstaller bundle keeps it under _internal
    if frozen_root and (Path(frozen_root) / "PySide6").is_dir():
        return Path(frozen_root) / "PySide6"
    return None


def find_xcb_plugin(package_dir: Path | None = None) -> Path | None:
    """Path of `libqxcb.so` in the PySide6 wheel (Qt/plugins in 6.x wheels, plugins in old ones)."""
    root = package_dir if package_dir is not None else pyside6_dir()
    if root is None:
        return None
    for sub in ("Qt/plugins/platforms", "plugins/platforms"):
        candidate = root / sub / PLUGIN_NAME
        if candidate.is_file():
            return candidate
    return None


def missing_libraries(plugin: Path, ldd: str | None = "auto") -> list[str]:
    """Sonames `plugin` needs that do not resolve, in ldd's order; [] when all load.

    `ldd` "auto" looks it up on PATH; None (or an ldd that cannot run) falls back to dlopen via
    ctypes, which only ever names the first missing library. Raises OSError when the plugin
    itself cannot be loaded for another reason (wrong architecture, corrupt file).
    """
    tool = shutil.which("ldd") if ldd == "auto" else ldd
    if tool:
        try:
            result = subprocess.run([tool, str(plugin)], capture_output=True, text=True,
                                    timeout=LDD_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.info("ldd failed on %s (%s); trying dlopen", plugin, exc)
        else:
            missing = [m.group(1) for line in result.stdout.splitlines() if (m := _NOT_FOUND.match(line))]
            if missing or result.returncode == 0:
                return list(dict.fromkeys(missing))
            log.info("ldd %s: status %d (%s); trying dlopen", plugin, result.returncode, result.stderr.strip())
    return _dlopen_missing(plugin)


def _dlopen_missing(plugin: Path) -> list[str]:
    try:
        ctypes.CDLL(str(plugin), mode=os.RTLD_LAZY | os.RTLD_LOCAL)
    except OSError as exc:
        match = _DLOPEN_MISSING.search(str(exc))
        if match and Path(match.group(1)).name != plugin.name:
            return [match.group(1)]
        raise
    return []


def detect_distro(os_release: Path = Path("/etc/os-release")) -> str | None:
    """"debian" (Debian, Ubuntu, Mint, ...), "fedora" (Fedora, RHEL, ...) or None."""
    try:
        text = os_release.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip('"').lower()
    family = [fields.get("ID", ""), *fields.get("ID_LIKE", "").split()]
    for name in family:
        if name in ("debian", "ubuntu"):
            return "debian"
        if name in ("fedora", "rhel", "centos"):
            return "fedora"
    return None


def packages_for(missing: Sequence[str], distro: str) -> tuple[list[str], list[str]]:
    """(packages to install on `distro`, sonames no known package provides), each de-duplicated."""
    column = DISTROS.index(distro)
    packages: list[str] = []
    unknown: list[str] = []
    for soname in missing:
        pair = SYSTEM_PACKAGES.get(soname)
        (packages if pair else unknown).append(pair[column] if pair else soname)
    return list(dict.fromkeys(packages)), list(dict.fromkeys(unknown))


def install_command(missing: Sequence[str], distro: str) -> str:
    """The command line that installs what provides `missing` on `distro` ("" if none is known)."""
    packages, _ = packages_for(missing, distro)
    return _INSTALL[distro].format(" ".join(packages)) if packages else ""


def describe(check: PluginCheck, distro: str | None = "auto") -> str:
    """One line for the user: what is missing and how to install it ("" when the check passed)."""
    if check.ok:
        return ""
    if check.problem:
        return f"the Qt window cannot open: {check.problem}"
    qt_own = [s for s in check.missing if s.startswith("libQt6") or s.startswith("libicu")]
    if qt_own:
        return (f"the Qt window cannot open: PySide6's own {', '.join(qt_own)} did not load; "
                "the PySide6 install is incomplete: reinstall it (pip install --force-reinstall PySide6-Essentials)")
    family = detect_distro() if distro == "auto" else distro
    text = f"the Qt window cannot open: missing system libraries {', '.join(check.missing)}"
    if family is None:
        debian = install_command(check.missing, "debian")
        fedora = install_command(check.missing, "fedora")
        hint = f"; install them (Debian/Ubuntu: {debian}; Fedora: {fedora})" if debian else ""
    else:
        command = install_command(check.missing, family)
        hint = f"; install them with: {command}" if command else ""
    _, unknown = packages_for(check.missing, "debian")
    if unknown:
        hint += f"; find the package that provides {', '.join(unknown)}"
    return text + hint + " (or run with QT_QPA_PLATFORM=offscreen for no window)"


def xcb_needed(environ: Mapping[str, str] = os.environ, platform: str = sys.platform) -> str:
    """"" when Qt will try xcb here, else the reason it will not (so no check is needed)."""
    if not platform.startswith("linux"):
        return f"not Linux ({platform})"
    requested = environ.get("QT_QPA_PLATFORM", "").strip()
    if requested and "xcb" not in requested.split(";"):
        return f"QT_QPA_PLATFORM={requested}"
    return ""


def check_xcb(plugin: Path | None | str = "auto", environ: Mapping[str, str] = os.environ,
              ldd: str | None = "auto") -> PluginCheck:
    """Whether Qt's xcb plugin will load; never raises."""
    skipped = xcb_needed(environ)
    if skipped and plugin == "auto":
        return PluginCheck(plugin=None, skipped=skipped)
    path = find_xcb_plugin() if plugin == "auto" else plugin
    if path is None:
        where = pyside6_dir()
        problem = ("PySide6 is not installed (pip install PySide6-Essentials)" if where is None
                   else f"PySide6 at {where} has no {PLUGIN_NAME}; reinstall PySide6-Essentials")
        return PluginCheck(plugin=None, problem=problem)
    path = Path(path)
    try:
        missing = missing_libraries(path, ldd)
    except OSError as exc:
        return PluginCheck(plugin=path, problem=f"{path} does not load ({exc})")
    return PluginCheck(plugin=path, missing=tuple(missing))


def display_problem(environ: Mapping[str, str] = os.environ, sockets: Path = X11_SOCKETS) -> str:
    """Why Qt's xcb plugin will find no X display for the window, in one line; "" when it will,
    or when Qt will not use xcb (another platform, or a Wayland session, whose plugin Qt may take)."""
    if xcb_needed(environ) or environ.get("WAYLAND_DISPLAY"):
        return ""
    display = environ.get("DISPLAY", "").strip()
    advice = "run nstcam in a desktop session (over SSH: ssh -X), or use `nstcam render` for video files"
    if not display:
        return f"the Qt window cannot open: there is no display (DISPLAY is not set); {advice}"
    if not _answers(display, sockets):
        return f"the Qt window cannot open: the X display {display} does not answer; {advice}"
    return ""


def _answers(display: str, sockets: Path) -> bool:
    """Whether X display `display` ([host]:N[.screen]) accepts a connection; True for a form this
    does not know (Qt may)."""
    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit() or "/" in host:
        return True
    if host not in ("", "unix"):
        try:
            socket.create_connection((host, X11_TCP_BASE + int(number)), CONNECT_TIMEOUT_S).close()
            return True
        except OSError:
            return False
    path = str(sockets / f"X{number}")
    for address in (path, "\0" + path):  # the file, then the abstract name (a sandbox may hide /tmp)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(CONNECT_TIMEOUT_S)
            try:
                client.connect(address)
                return True
            except OSError:
                continue
    return False


def startup_message(environ: Mapping[str, str] = os.environ) -> str:
    """The one line to print, then exit 2, before opening the window; "" when Qt can go ahead."""
    return describe(check_xcb(environ=environ)) or display_problem(environ)
