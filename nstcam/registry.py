"""Which styles exist: the bundled ones and the user's, each possibly in a "light" and a "full" variant.

A style is a name (e.g. "starry_night") with up to two trained variants: "light" (a slim network
for CPUs) and "full" (Johnson's network, for GPUs). `StyleRegistry.discover` loads every `*.pt` in
a list of folders; a folder may hold a `manifest.json` that orders its styles and adds metadata
(painting title, artist, year, training settings). The style file's own metadata wins where both
say something. Broken files are collected in `errors`, never raised: one bad download must not
stop the app. When a requested style then resolves to another file than the broken one would have
been (the bundled copy, the other variant), `choose` logs a warning naming the broken file, and
`fallbacks` gives that message to callers that report in their own words.
"""
from __future__ import annotations

import importlib.util
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainer.stylefile import StyleModel

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
    model: Any  # a trainer StyleModel (.pt) or an nstcam.engines.ort.OnnxStyle (.onnx, no torch)
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


@dataclass(frozen=True)
class BrokenStyle:
    """A style file that failed to load, and the style it was meant to be: name and variant from
    its manifest entry, else from its file name ("monet-light.pt"); variant None when unknown.
    `reason` does not repeat the path (as in `StyleRegistry.errors`)."""

    path: Path
    name: str
    variant: str | None
    reason: str


def _intended_style(path: Path, manifest_item: dict[str, Any]) -> tuple[str, str | None]:
    stem, variant = path.stem, manifest_item.get("variant")
    for candidate in VARIANTS:
        for sep in ("-", "_"):
            if stem.endswith(sep + candidate):
                stem, variant = stem[: -len(sep + candidate)], variant or candidate
    return str(manifest_item.get("name") or stem), (str(variant) if variant in VARIANTS else None)


class StyleRegistry:
    """All styles found, ordered: manifest order first, then the rest alphabetically.

    `folders` is the search order of `discover` (later folders override earlier ones); with
    `broken` it tells which requested styles fall back from a broken file to another one.
    `errors` pairs each file that failed with why, the reason without the path (callers name it once).
    """

    def __init__(self, entries: Sequence[StyleEntry] = (), errors: Sequence[tuple[Path, str]] = (),
                 order: Sequence[str] = (), broken: Sequence[BrokenStyle] = (),
                 folders: Sequence[Path] = ()) -> None:
        self.errors: list[tuple[Path, str]] = list(errors)
        self.broken: list[BrokenStyle] = list(broken)
        self._folders = list(folders)
        self._warned: set[tuple[str, Path]] = set()
        rank = {name: i for i, name in enumerate(dict.fromkeys(order))}
        self.entries: list[StyleEntry] = sorted(
            entries,
            key=lambda e: (rank.get(e.name, len(rank)), e.name if e.name not in rank else "",
                           VARIANTS.index(e.variant) if e.variant in VARIANTS else len(VARIANTS)),
        )

    @classmethod
    def discover(cls, dirs: Sequence[Path | str], runtime: str = "torch") -> StyleRegistry:
        """Load every style in `dirs`; a later folder's (name, variant) replaces an earlier one.

        `runtime` "torch" loads the style files (`*.pt`); "onnx" their fp32 ONNX exports
        (`*.onnx`, nstcam.engines.onnx_export), for the torch-free runtime."""
        found: dict[tuple[str, str], StyleEntry] = {}
        errors: list[tuple[Path, str]] = []
        broken: list[BrokenStyle] = []
        order: list[str] = []
        folders = [Path(d).expanduser() for d in dirs]
        for folder in folders:
            try:
                if not folder.is_dir():
                    log.debug("style folder %s does not exist; skipped", folder)
                    continue
                files, load = _files_and_loader(folder, runtime)
                manifest, problem = _read_manifest(folder)
            except OSError as exc:  # a folder this user may not list or enter: the others still count
                errors.append((folder, f"unreadable styles folder ({exc.strerror or exc}); check its permissions"))
                log.warning("skipping style folder %s: %s", folder, exc)
                continue
            if problem:
                errors.append((folder / MANIFEST, problem))
            by_file = {str(item.get("file")): item for item in manifest if item.get("file")}
            # In parallel: loading validates each network on the CPU, which is what start-up waits on.
            with ThreadPoolExecutor(max_workers=min(4, len(files) or 1)) as pool:
                loaded = list(pool.map(lambda path: _load_or_error(load, path), files))
            for pt, (model, exc) in zip(files, loaded):
                if isinstance(exc, ValueError):  # StyleFileError, or an ONNX file that is no style
                    errors.append((pt, str(exc).removeprefix(f"{pt}: ")))
                    log.warning("skipping style file: %s", exc)
                elif exc is not None:
                    errors.append((pt, f"could not be loaded ({exc})"))
                    log.warning("skipping style file %s: %r", pt, exc)
                else:
                    entry = _make_entry(pt, model, by_file.get(pt.name, {}))
                    key = (entry.name, entry.variant)
                    if key in found:
                        log.info("style %s (%s) from %s overrides %s", *key, pt, found[key].path)
                    found[key] = entry
                    continue
                broken.append(BrokenStyle(pt, *_intended_style(pt, by_file.get(pt.name, {})), errors[-1][1]))
            order.extend(str(item["name"]) for item in manifest if item.get("name"))
        return cls(list(found.values()), errors, order, broken, folders)

    def add(self, path: Path, model: Any) -> StyleEntry:
        """Rediscover one style file that appeared while the app runs (a style trained in the
        window), already loaded as `model`: it replaces a loaded style of the same name and
        variant, and its folder joins the search order last (so it wins, as the user folder does)."""
        path = Path(path)
        manifest, _ = _read_manifest(path.parent)
        entry = _make_entry(path, model, next((m for m in manifest if m.get("file") == path.name), {}))
        self.entries = [e for e in self.entries if (e.name, e.variant) != (entry.name, entry.variant)] + [entry]
        if path.parent not in self._folders:
            self._folders.append(path.parent)
        return entry

    def names(self) -> list[str]:
        return list(dict.fromkeys(e.name for e in self.entries))

    def variants(self, name: str) -> list[StyleEntry]:
        return [e for e in self.entries if e.name == name]

    def choose(self, name: str, device_type: str) -> StyleEntry:
        """The variant to run on `device_type` ("cpu", "cuda", "cuda:0", ...). Logs a warning (once)
        when a broken file of this style would have been chosen instead (see `fallbacks`)."""
        entry = self._pick(name, device_type)
        for message in self.fallbacks(name, device_type):
            if (message, entry.path) not in self._warned:
                self._warned.add((message, entry.path))
                log.warning("%s", message)
        return entry

    def fallbacks(self, name: str, device_type: str) -> list[str]:
        """One message per broken file that `name` would have resolved to on `device_type` had it
        loaded, naming it, why it failed and the file used instead; empty when there is none."""
        entry = self._pick(name, device_type)
        prefer = _preference(device_type)
        messages = []
        for bad in self.broken:
            if bad.name != name:
                continue
            same_slot = bad.variant == entry.variant and self._rank(bad.path) >= self._rank(entry.path)
            better_variant = bad.variant in prefer and entry.variant in prefer and \
                prefer.index(bad.variant) < prefer.index(entry.variant)
            if bad.variant is None or same_slot or better_variant:
                messages.append(f"style {name!r}: {bad.path}: {bad.reason}; using {entry.path} instead")
        return messages

    def _pick(self, name: str, device_type: str) -> StyleEntry:
        options = self.variants(name)
        if not options:
            raise KeyError(f"unknown style {name!r}; available: {', '.join(self.names()) or 'none'}")
        for variant in _preference(device_type):
            for entry in options:
                if entry.variant == variant:
                    return entry
        return options[0]

    def _rank(self, path: Path) -> int:
        """Position of `path`'s folder in the search order (later folders override earlier)."""
        return self._folders.index(path.parent) if path.parent in self._folders else -1

    def select(self, device_type: str) -> dict[str, StyleModel]:
        """One model per style name, in display order, each the variant suited to `device_type`
        (without fallback warnings: those come when a style is chosen)."""
        return {name: self._pick(name, device_type).model for name in self.names()}

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"StyleRegistry({len(self.entries)} files, {len(self.names())} styles, {len(self.errors)} errors)"


def _preference(device_type: str) -> tuple[str, ...]:
    return ("full", "light") if str(device_type).split(":")[0] == "cuda" else ("light", "full")


def _files_and_loader(folder: Path, runtime: str) -> tuple[list[Path], Callable[[Path], Any]]:
    """The folder's style files, and how to load one; OSError if the folder cannot be listed
    (iterdir raises where glob would quietly find nothing)."""
    if runtime == "onnx":
        from nstcam.engines.ort import export_quantization, read_style

        return [p for p in _listing(folder, ".onnx") if export_quantization(p) == "fp32"], read_style
    from trainer.stylefile import load_style  # torch: only the torch runtime needs it

    return _listing(folder, ".pt"), load_style


def _listing(folder: Path, suffix: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == suffix)


def _load_or_error(load: Callable[[Path], Any], path: Path) -> tuple[Any, Exception | None]:
    try:
        return load(path), None
    except Exception as exc:  # StyleFileError, or anything else a hostile file may trigger
        return None, exc


def _make_entry(path: Path, model: Any, manifest_item: dict[str, Any]) -> StyleEntry:
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
