"""Which styles exist: the bundled ones and the user's, each possibly in a "light" and a "full" variant.

A style is a name (e.g. "starry_night") with up to two trained variants: "light" (a slim network
for CPUs) and "full" (Johnson's network, for GPUs), or is an "instant" style made from a picture
(`*.instant`, nstcam.engines.instant). `StyleRegistry.discover` loads every `*.pt` and `*.instant` in
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

VARIANTS = ("light", "full", "instant")  # instant: a picture's MicroAST code (nstcam.engines.instant)
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
    `errors` pairs each file that failed with why, the reason without the path (callers name it once);
    `duplicates` has one line per style that more than one file declares, naming the file used.
    """

    def __init__(self, entries: Sequence[StyleEntry] = (), errors: Sequence[tuple[Path, str]] = (),
                 order: Sequence[str] = (), broken: Sequence[BrokenStyle] = (),
                 folders: Sequence[Path] = (), duplicates: Sequence[str] = ()) -> None:
        self.errors: list[tuple[Path, str]] = list(errors)
        self.duplicates: list[str] = list(duplicates)
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

        Files that declare the same style (name and variant): the first by `_Candidate.precedence`
        that loads is used and the others are not loaded (their headers tell the style, cheaply);
        `duplicates` says so, once per style. `runtime` "torch" loads the style files (`*.pt`);
        "onnx" their fp32 ONNX exports (`*.onnx`, nstcam.engines.onnx_export), for the torch-free
        runtime (no header to read there: every file is loaded); "export" the style files as
        their exports (`exported_style`: the current one, or one made on the style's first
        frame), for a launch that runs ONNX Runtime where torch is installed but not yet imported;
        all load the instant styles (`*.instant`)."""
        errors: list[tuple[Path, str]] = []
        order: list[str] = []
        candidates: list[_Candidate] = []
        load, declared = _loader(runtime)
        folders = [Path(d).expanduser() for d in dirs]
        for rank, folder in enumerate(folders):
            try:
                if not folder.is_dir():
                    log.debug("style folder %s does not exist; skipped", folder)
                    continue
                files = _style_files(folder, runtime)
                manifest, problem = _read_manifest(folder)
            except OSError as exc:  # a folder this user may not list or enter: the others still count
                errors.append((folder, f"unreadable styles folder ({exc.strerror or exc}); check its permissions"))
                log.warning("skipping style folder %s: %s", folder, exc)
                continue
            if problem:
                errors.append((folder / MANIFEST, problem))
            by_file = {str(item.get("file")): item for item in manifest if item.get("file")}
            for path in files:
                item = by_file.get(path.name, {})
                candidates.append(_Candidate(path, rank, item, declared(path, item)))
            order.extend(str(item["name"]) for item in manifest if item.get("name"))

        groups: dict[tuple[str, str], list[_Candidate]] = {}
        for candidate in candidates:
            if candidate.style is not None:
                groups.setdefault(candidate.style, []).append(candidate)
        jobs = [sorted(group, key=_Candidate.precedence) for group in groups.values()]
        jobs += [[candidate] for candidate in candidates if candidate.style is None]
        # In parallel: loading validates each network on the CPU, which is what start-up waits on.
        with ThreadPoolExecutor(max_workers=min(4, len(jobs) or 1)) as pool:
            attempts = [attempt for tried in pool.map(lambda job: _load_first(load, job), jobs) for attempt in tried]

        found: dict[tuple[str, str], tuple[_Candidate, StyleEntry]] = {}
        failed: list[tuple[_Candidate, str]] = []
        for candidate, model, exc in attempts:
            if exc is not None:
                failed.append((candidate, _reason(candidate.path, exc)))
                continue
            entry = _make_entry(candidate.path, model, candidate.manifest_item)
            key = (entry.name, entry.variant)
            if key not in found or candidate.precedence() < found[key][0].precedence():
                found[key] = (candidate, entry)
        position = {candidate.path: i for i, candidate in enumerate(candidates)}
        failed.sort(key=lambda f: position[f[0].path])
        errors += [(candidate.path, reason) for candidate, reason in failed]
        broken = [BrokenStyle(c.path, *(c.style or _intended_style(c.path, c.manifest_item)), reason)
                  for c, reason in failed]
        duplicates = [f"{len(group)} files declare the style {key[0]!r} ({key[1]}); using {found[key][1].path}"
                      for key, group in groups.items() if len(group) > 1 and key in found]
        for message in duplicates:
            log.warning("%s", message)
        return cls([entry for _, entry in found.values()], errors, order, broken, folders, duplicates)

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

    def remove(self, path: Path) -> None:
        """Forget the style loaded from `path` (an instant style the user deleted)."""
        self.entries = [e for e in self.entries if e.path != Path(path)]

    def names(self) -> list[str]:
        return list(dict.fromkeys(e.name for e in self.entries))

    def variants(self, name: str) -> list[StyleEntry]:
        return [e for e in self.entries if e.name == name]

    def trained_model(self, entry: StyleEntry) -> Any:
        """The trained style (torch) behind `entry`'s ONNX export, from the style file it was exported
        from in this registry's folders: a launch that chose ONNX Runtime never loaded torch, but
        snapshot refinement needs the style's Gram targets. `entry.model` itself when it is no export,
        torch is not installed or the style file is gone or unusable."""
        source = getattr(entry.model, "meta", {}).get("source")
        graph = Path(getattr(entry.model, "path", None) or entry.path)
        if not source or graph.suffix != ".onnx" or importlib.util.find_spec("torch") is None:
            return entry.model
        from trainer.stylefile import StyleFileError, load_style

        for folder in dict.fromkeys([entry.path.parent, graph.parent, *self._folders]):
            candidate = folder / source
            if candidate.is_file():
                try:
                    return load_style(candidate)
                except StyleFileError as exc:
                    log.warning("%s: %s", candidate, exc)
        return entry.model

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


@dataclass(frozen=True)
class _Candidate:
    """A style file found, not yet loaded: its folder's place in the search order, its manifest
    entry, and the (name, variant) its header declares (None: known only once loaded)."""

    path: Path
    rank: int
    manifest_item: dict[str, Any]
    style: tuple[str, str] | None

    def precedence(self) -> tuple[int, bool, str]:
        """Sort key, first wins: the later folder (--styles-dir, then the user styles folder, then
        the bundled styles); within a folder the file named for its style ("monet-light.pt" over
        "monet-light (copy).pt"), then by file name."""
        named_for = self.style is not None and _intended_style(self.path, {})[0] == self.style[0]
        return -self.rank, not named_for, self.path.name


def _loader(runtime: str) -> tuple[Callable[[Path], Any], Callable[[Path, dict[str, Any]], tuple[str, str] | None]]:
    """How to load a style file, and how to tell the style it declares without loading it."""
    from nstcam.engines.instant import SUFFIX, load_instant

    if runtime == "onnx":  # instant styles too: the ONNX Runtime engine runs them on MicroAST's graph
        from nstcam.engines.ort import read_style

        return (lambda path: load_instant(path) if path.suffix == SUFFIX else read_style(path)), lambda path, item: None
    from nstcam.engines.style_files import load_exported_style, load_torch_style
    from trainer.styleheader import StyleFileError, read_style_meta

    def declared(path: Path, item: dict[str, Any]) -> tuple[str, str] | None:
        if path.suffix == SUFFIX:  # a few KB: loading it is how its style is told
            return None
        try:
            return _identity(path, {**item, **read_style_meta(path)})
        except StyleFileError:  # loading it will say what is wrong
            return None

    return (load_exported_style if runtime == "export" else load_torch_style), declared


def _style_files(folder: Path, runtime: str) -> list[Path]:
    """The folder's style files; OSError if it cannot be listed (iterdir raises where glob would
    quietly find nothing)."""
    from nstcam.engines.instant import SUFFIX

    suffixes = (".onnx", SUFFIX) if runtime == "onnx" else (".pt", SUFFIX)
    files = sorted(p for p in folder.iterdir() if p.suffix in suffixes)
    if runtime == "onnx":
        from nstcam.engines.ort import export_quantization

        return [p for p in files if p.suffix == SUFFIX or export_quantization(p) == "fp32"]
    return files


def _load_first(load: Callable[[Path], Any], job: list[_Candidate]) -> list[tuple[_Candidate, Any, Exception | None]]:
    """Load the candidates of one style in order until one loads; every attempt, with its error."""
    attempts = []
    for candidate in job:
        try:
            attempts.append((candidate, load(candidate.path), None))
            break
        except Exception as exc:  # StyleFileError, or anything else a hostile file may trigger
            attempts.append((candidate, None, exc))
    return attempts


def _reason(path: Path, exc: Exception) -> str:
    """Why `path` failed to load, without repeating the path; logged as a warning."""
    if isinstance(exc, ValueError):  # StyleFileError, or an ONNX file that is no style
        reason = str(exc).removeprefix(f"{path}: ")
    else:
        reason = f"could not be loaded ({exc})"
    log.warning("skipping style file %s: %s", path, reason)
    return reason


def _identity(path: Path, meta: dict[str, Any]) -> tuple[str, str]:
    """The (name, variant) a style file stands for: its metadata's, else its file name and "full"."""
    variant = str(meta.get("variant") or "full")
    return str(meta.get("name") or path.stem), variant if variant in VARIANTS else "full"


def _make_entry(path: Path, model: Any, manifest_item: dict[str, Any]) -> StyleEntry:
    meta = {**manifest_item, **model.meta}  # the file's own metadata is authoritative
    name, variant = _identity(path, meta)
    if str(meta.get("variant") or "full") != variant:
        log.warning("%s: unknown variant %r, treated as 'full'", path, meta.get("variant"))
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
