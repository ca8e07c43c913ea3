"""Which styles exist: the bundled ones and the user's, each possibly in a "light" and a "full" variant.

A style is a name (e.g. "starry_night") with up to two trained variants: "light" (a slim network
for CPUs) and "full" (Johnson's network, for GPUs). `StyleRegistry.discover` loads every `*.pt` in
a list of folders; a folder may hold a `manifest.json` that orders its styles and adds metadata
(painting title, artist, year, training settings). The style file's own metadata wins where both
say something. Broken files are collected in `errors`, never raised: one bad download must not
stop the app.
"""
from __future__ import annotations

import importlib.util
import json
import logging
from importlib import resources
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.stylefile import StyleFileError, StyleModel, load_style

log = logging.getLogger(__name__)

VARIANTS = ("light", "full")
MANIFEST = "manifest.json"


@dataclass
class StyleEntry:
    """One loaded style file. `meta` is the manifest entry merged with the file's own metadata."""

    name: str
    title: str
    artist: str
    year: int | str | None
    variant: str
    path: Path
    model: StyleModel
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Human label, e.g. "The Starry Night — Vincent van Gogh (1889)"."""
        text = self.title
        if self.artist:
            text += f" — {self.artist}"
        if self.year:
            text += f" ({self.year})"
        return text


def bundled_styles_dir() -> Path:
    """Folder of the styles shipped with nstcam.

    Installed, they are the data package `nstcam.styles` (a regular package, or a namespace
    package when styles/ has no __init__.py); in a source checkout that package does not exist
    (the folder is the top-level `styles/`), so fall back to `<repo>/styles`.
    """
    try:
        files = resources.files("nstcam.styles")
        if isinstance(files, Path) and files.is_dir():
            return files
    except (ImportError, TypeError, ValueError, NotImplementedError):
        pass
    try:  # namespace package: importlib.resources gives a MultiplexedPath, the spec gives folders
        spec = importlib.util.find_spec("nstcam.styles")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        if Path(location).is_dir():
            return Path(location)
    return Path(__file__).resolve().parent.parent / "styles"


def _read_manifest(folder: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The manifest's style entries (possibly empty) and an error message if it is unusable."""
    path = folder / MANIFEST
    if not path.is_file():
        return [], None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [], f"unreadable manifest ({exc})"
    if not isinstance(data, dict):
        return [], "manifest is not a JSON object"
    styles = data.get("styles", [])
    if not isinstance(styles, list):
        return [], "manifest 'styles' is not a list"
    return [s for s in styles if isinstance(s, dict)], None


def _title_from_name(name: str) -> str:
    return name.replace("_", " ").replace("-", " ").strip().title() or name


class StyleRegistry:
    """All styles found, ordered: manifest order first, then the rest alphabetically."""

    def __init__(self, entries: Sequence[StyleEntry] = (), errors: Sequence[tuple[Path, str]] = (),
                 order: Sequence[str] = ()) -> None:
        self.errors: list[tuple[Path, str]] = list(errors)
        rank = {name: i for i, name in enumerate(dict.fromkeys(order))}
        self.entries: list[StyleEntry] = sorted(
            entries,
            key=lambda e: (rank.get(e.name, len(rank)), e.name if e.name not in rank else "",
                           VARIANTS.index(e.variant) if e.variant in VARIANTS else len(VARIANTS)),
        )

    @classmethod
    def discover(cls, dirs: Sequence[Path | str]) -> StyleRegistry:
        """Load every `*.pt` in `dirs`; a later folder's (name, variant) replaces an earlier one."""
        found: dict[tuple[str, str], StyleEntry] = {}
        errors: list[tuple[Path, str]] = []
        order: list[str] = []
        for folder in (Path(d).expanduser() for d in dirs):
            if not folder.is_dir():
                log.debug("style folder %s does not exist; skipped", folder)
                continue
            manifest, problem = _read_manifest(folder)
            if problem:
                errors.append((folder / MANIFEST, problem))
            by_file = {str(item.get("file")): item for item in manifest if item.get("file")}
            for pt in sorted(folder.glob("*.pt")):
                try:
                    model = load_style(pt)
                except StyleFileError as exc:
                    errors.append((pt, str(exc)))
                    log.warning("skipping style file: %s", exc)
                    continue
                except Exception as exc:  # anything else a hostile file may trigger
                    errors.append((pt, f"{pt}: could not be loaded ({exc})"))
                    log.warning("skipping style file %s: %r", pt, exc)
                    continue
                entry = _make_entry(pt, model, by_file.get(pt.name, {}))
                key = (entry.name, entry.variant)
                if key in found:
                    log.info("style %s (%s) from %s overrides %s", *key, pt, found[key].path)
                found[key] = entry
            order.extend(str(item["name"]) for item in manifest if item.get("name"))
        return cls(list(found.values()), errors, order)

    def names(self) -> list[str]:
        return list(dict.fromkeys(e.name for e in self.entries))

    def variants(self, name: str) -> list[StyleEntry]:
        return [e for e in self.entries if e.name == name]

    def choose(self, name: str, device_type: str) -> StyleEntry:
        """The variant to run on `device_type` ("cpu", "cuda", "cuda:0", ...)."""
        options = self.variants(name)
        if not options:
            raise KeyError(f"unknown style {name!r}; available: {', '.join(self.names()) or 'none'}")
        prefer = ("full", "light") if str(device_type).split(":")[0] == "cuda" else ("light", "full")
        for variant in prefer:
            for entry in options:
                if entry.variant == variant:
                    return entry
        return options[0]

    def select(self, device_type: str) -> dict[str, StyleModel]:
        """One model per style name, in display order, each the variant suited to `device_type`."""
        return {name: self.choose(name, device_type).model for name in self.names()}

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"StyleRegistry({len(self.entries)} files, {len(self.names())} styles, {len(self.errors)} errors)"


def _make_entry(path: Path, model: StyleModel, manifest_item: dict[str, Any]) -> StyleEntry:
    meta = {**manifest_item, **model.meta}  # the file's own metadata is authoritative
    name = str(meta.get("name") or path.stem)
    variant = str(meta.get("variant") or "full")
    if variant not in VARIANTS:
        log.warning("%s: unknown variant %r, treated as 'full'", path, variant)
        variant = "full"
    meta["name"], meta["variant"] = name, variant
    return StyleEntry(
        name=name,
        title=str(meta.get("title") or _title_from_name(name)),
        artist=str(meta.get("artist") or ""),
        year=meta.get("year"),
        variant=variant,
        path=path,
        model=model,
        meta=meta,
    )
