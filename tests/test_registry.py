"""StyleRegistry: discovery, manifest order and metadata, variants per device, broken files."""
from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from nstcam.registry import StyleRegistry, bundled_styles_dir
from nstcam_fixtures import deny_access, make_style_file, spoil_weights


@pytest.fixture
def bundled(tmp_path: Path) -> Path:
    """A bundled-style folder: two styles in light+full, a manifest ordering "zebra" first."""
    folder = tmp_path / "bundled"
    folder.mkdir()
    make_style_file(folder / "zebra-light.pt", "zebra", seed=1, variant="light")
    make_style_file(folder / "zebra-full.pt", "zebra", seed=2, variant="full")
    make_style_file(folder / "apple-light.pt", "apple", seed=3, variant="light", title="The Apple")
    manifest = {
        "styles": [
            {"name": "zebra", "title": "Stripes", "artist": "Anon", "year": 1901, "public_domain": True,
             "variant": "light", "file": "zebra-light.pt", "loss_net": "vgg19", "training": {"steps": 10}},
            {"name": "zebra", "variant": "full", "file": "zebra-full.pt"},
            {"name": "apple", "title": "Manifest title loses", "year": 1888, "variant": "light",
             "file": "apple-light.pt"},
        ]
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def user(tmp_path: Path) -> Path:
    folder = tmp_path / "user"
    folder.mkdir()
    make_style_file(folder / "mango.pt", "mango", seed=4, variant="full")
    make_style_file(folder / "banana.pt", "banana", seed=5, variant="light")
    (folder / "broken.pt").write_bytes(b"this is not a zip file")
    good = (folder / "mango.pt").read_bytes()
    (folder / "truncated.pt").write_bytes(good[: len(good) // 2])
    (folder / "notes.txt").write_text("ignored")
    return folder


def test_discover_orders_manifest_first_then_alphabetical(bundled: Path, user: Path) -> None:
    reg = StyleRegistry.discover([bundled, user])
    assert reg.names() == ["zebra", "apple", "banana", "mango"]
    assert [(e.name, e.variant) for e in reg.entries] == [
        ("zebra", "light"), ("zebra", "full"), ("apple", "light"), ("banana", "light"), ("mango", "full"),
    ]


def test_metadata_merges_manifest_and_file(bundled: Path) -> None:
    reg = StyleRegistry.discover([bundled])
    zebra = reg.choose("zebra", "cpu")
    # The style file's own meta (title "Zebra", artist "Artist 1") wins over the manifest's.
    assert (zebra.title, zebra.artist) == ("Zebra", "Artist 1")
    assert zebra.year == 1901 and zebra.meta["training"] == {"steps": 10} and zebra.meta["loss_net"] == "vgg19"
    apple = reg.choose("apple", "cpu")
    assert apple.title == "The Apple" and apple.year == 1888
    assert apple.path == bundled / "apple-light.pt"
    assert apple.model.name == "apple"
    assert "The Apple" in apple.label and "1888" in apple.label


def test_variant_choice_per_device(bundled: Path, user: Path) -> None:
    reg = StyleRegistry.discover([bundled, user])
    assert reg.choose("zebra", "cpu").variant == "light"
    assert reg.choose("zebra", "cuda").variant == "full"
    assert reg.choose("zebra", "cuda:1").variant == "full"
    assert reg.choose("mango", "cpu").variant == "full"  # the only one there is
    assert reg.choose("banana", "cuda").variant == "light"
    assert [e.variant for e in reg.variants("zebra")] == ["light", "full"]
    models = reg.select("cuda")
    assert list(models) == reg.names()
    assert models["zebra"] is reg.choose("zebra", "cuda").model


def test_unknown_style_lists_the_available_ones(bundled: Path) -> None:
    reg = StyleRegistry.discover([bundled])
    with pytest.raises(KeyError, match="zebra, apple"):
        reg.choose("monet", "cpu")


def test_broken_files_are_reported_not_raised(bundled: Path, user: Path) -> None:
    (bundled / "manifest.json").write_text("{not json")
    reg = StyleRegistry.discover([bundled, user, user / "missing-folder"])
    broken = {path.name: message for path, message in reg.errors}
    assert broken["broken.pt"].startswith("corrupt or truncated style file")  # the path is its key, not repeated
    assert "truncated.pt" in broken and "corrupt" in broken["truncated.pt"]
    assert "manifest.json" in broken
    assert "broken" not in reg.names()
    assert sorted(reg.names()) == ["apple", "banana", "mango", "zebra"]  # alphabetical without a manifest


def test_later_folders_override_same_name_and_variant(bundled: Path, tmp_path: Path) -> None:
    override = tmp_path / "override"
    override.mkdir()
    make_style_file(override / "my-zebra.pt", "zebra", seed=9, variant="light", title="My zebra")
    reg = StyleRegistry.discover([bundled, override])
    light = reg.choose("zebra", "cpu")
    assert light.path == override / "my-zebra.pt" and light.title == "My zebra"
    assert reg.choose("zebra", "cuda").path == bundled / "zebra-full.pt"
    assert reg.names()[0] == "zebra"  # keeps its manifest position


def test_empty_registry() -> None:
    reg = StyleRegistry.discover([])
    assert reg.names() == [] and reg.errors == [] and reg.select("cpu") == {}


def test_bundled_styles_dir_points_at_the_styles_folder() -> None:
    folder = bundled_styles_dir()
    assert folder.is_dir()
    assert (folder / "manifest.json").is_file()


def test_bundled_styles_dir_handles_a_namespace_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    from types import SimpleNamespace

    import nstcam.registry as registry_module

    def no_regular_package(name: str):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(registry_module.resources, "files", no_regular_package)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: SimpleNamespace(submodule_search_locations=[str(tmp_path)]))
    assert bundled_styles_dir() == tmp_path


def test_a_broken_user_file_that_falls_back_is_warned_about(bundled: Path, tmp_path: Path, caplog) -> None:
    user = tmp_path / "mine"
    user.mkdir()
    (user / "zebra-light.pt").write_bytes(b"not a zip")  # meant to replace the bundled zebra-light
    (user / "apple_full.pt").write_bytes(b"not a zip")  # a full apple: preferred on CUDA only
    (user / "kiwi-light.pt").write_bytes(b"not a zip")  # no such style anywhere
    reg = StyleRegistry.discover([bundled, user])
    caplog.set_level("WARNING", logger="nstcam.registry")
    caplog.clear()

    assert reg.choose("zebra", "cpu").path == bundled / "zebra-light.pt"
    [message] = reg.fallbacks("zebra", "cpu")
    assert message.startswith(f"style 'zebra': {user / 'zebra-light.pt'}: corrupt or truncated")
    assert message.endswith(f"using {bundled / 'zebra-light.pt'} instead")
    assert [r.getMessage() for r in caplog.records] == [message]
    reg.choose("zebra", "cpu")
    assert len(caplog.records) == 1  # once per fallback, not on every switch

    assert reg.fallbacks("zebra", "cuda") == []  # the bundled full one is what CUDA picks anyway
    assert reg.fallbacks("apple", "cpu") == []  # light is preferred on CPU: the full one is not missed
    assert "apple_full.pt" in reg.fallbacks("apple", "cuda")[0]
    assert [b.name for b in reg.broken] == ["apple", "kiwi", "zebra"]
    assert "kiwi" not in reg.names()


def test_a_broken_file_in_an_earlier_folder_is_not_a_fallback(bundled: Path, tmp_path: Path) -> None:
    (bundled / "zebra-light.pt").write_bytes(b"broken bundled copy")
    user = tmp_path / "mine"
    user.mkdir()
    make_style_file(user / "zebra-light.pt", "zebra", seed=7, variant="light")
    reg = StyleRegistry.discover([bundled, user])
    assert reg.choose("zebra", "cpu").path == user / "zebra-light.pt"
    assert reg.fallbacks("zebra", "cpu") == []


def test_a_malicious_pickle_is_refused_for_safety_and_runs_nothing(tmp_path: Path, capfd) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    folder = tmp_path / "styles"
    folder.mkdir()
    torch.save({"format": "nstcam-style", "payload": Exploit()}, folder / "evil.pt")
    with open(folder / "foreign.pt", "wb") as f:
        pickle.dump({"a set": {1, 2}}, f, protocol=4)  # protocol 4: torch warns about it
    reg = StyleRegistry.discover([folder])
    assert not marker.exists()
    reasons = dict(reg.errors)
    for name in ("evil.pt", "foreign.pt"):
        assert reasons[folder / name] == ("not a style file; refused for safety (it holds "
                                          "Python objects other than tensors, and loading them could run code)")
    assert "weights_only" not in capfd.readouterr().err


@pytest.mark.parametrize("content", [b"not a zip", b"\x80\x04garbage", b""])
def test_garbage_is_corrupt_and_torchs_unsafe_advice_is_never_quoted(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "junk.pt").write_bytes(content)
    [(path, reason)] = StyleRegistry.discover([tmp_path]).errors
    assert reason.startswith("corrupt or truncated style file")
    assert "weights_only" not in reason and "refused" not in reason


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_weights_with_nan_or_inf_are_refused_at_load_and_the_bundled_copy_is_used(
        bundled: Path, tmp_path: Path, value: float) -> None:
    user = tmp_path / "mine"
    user.mkdir()
    spoiled = spoil_weights(make_style_file(user / "zebra-light.pt", "zebra", seed=7), value)
    reg = StyleRegistry.discover([bundled, user])
    assert dict(reg.errors)[spoiled] == "weights contain NaN/Inf; retrain or restore it"
    assert reg.choose("zebra", "cpu").path == bundled / "zebra-light.pt"
    [message] = reg.fallbacks("zebra", "cpu")
    assert "weights contain NaN/Inf" in message and str(spoiled) in message


@pytest.mark.parametrize("spoil, detail", [
    (lambda p: p["state_dict"].pop("encoder.0.1.weight"), 'Missing key(s) in state_dict: "encoder.0.1.weight".'),
    (lambda p: p["state_dict"].update(extra=torch.zeros(1)), 'Unexpected key(s) in state_dict: "extra".'),
    (lambda p: p.pop("config"), "no 'config' entry"),
], ids=["missing key", "unexpected key", "no config"])
def test_a_wrong_architecture_names_what_does_not_match(tmp_path: Path, spoil: Callable[[dict], object],
                                                         detail: str) -> None:
    path = make_style_file(tmp_path / "odd.pt", "odd", seed=1)
    payload = torch.load(path, weights_only=True)
    spoil(payload)
    torch.save(payload, path)
    [(_, reason)] = StyleRegistry.discover([tmp_path]).errors
    assert reason == f"weights do not match the stored architecture ({detail})"


def test_an_unreadable_styles_folder_is_one_error_and_the_other_folders_load(
        bundled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked, closed = tmp_path / "locked", tmp_path / "closed"
    (closed / "styles").mkdir(parents=True)
    locked.mkdir()
    make_style_file(locked / "kiwi.pt", "kiwi", seed=6)
    make_style_file(closed / "styles" / "fig.pt", "fig", seed=8)
    deny_access(monkeypatch, locked)
    deny_access(monkeypatch, closed)  # its styles folder cannot even be looked at
    reg = StyleRegistry.discover([bundled, locked, closed / "styles"])
    reason = "unreadable styles folder (Permission denied); check its permissions"
    assert reg.errors == [(locked, reason), (closed / "styles", reason)]
    assert reg.names() == ["zebra", "apple"]


def test_files_declaring_one_style_are_chosen_by_precedence_loaded_once_and_said_once(
        bundled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import trainer.stylefile as stylefile

    mine = tmp_path / "mine"
    mine.mkdir()
    make_style_file(mine / "zebra-light.pt", "zebra", seed=11, variant="light", title="Mine")
    for i in range(30):  # "a-copy-..." sorts before "zebra-light.pt"
        shutil.copy(mine / "zebra-light.pt", mine / f"a-copy-{i:02d}.pt")
    loaded: list[Path] = []
    load_style = stylefile.load_style
    monkeypatch.setattr(stylefile, "load_style", lambda path: loaded.append(path) or load_style(path))
    reg = StyleRegistry.discover([bundled, mine])
    assert reg.choose("zebra", "cpu").path == mine / "zebra-light.pt" and reg.choose("zebra", "cpu").title == "Mine"
    assert reg.duplicates == [f"32 files declare the style 'zebra' (light); using {mine / 'zebra-light.pt'}"]
    assert sorted(loaded) == sorted([mine / "zebra-light.pt", bundled / "zebra-full.pt", bundled / "apple-light.pt"])
    assert reg.errors == [] and reg.names() == ["zebra", "apple"]


def test_a_broken_copy_of_a_style_falls_back_to_the_next_one_by_file_name(tmp_path: Path) -> None:
    spoiled = spoil_weights(make_style_file(tmp_path / "a.pt", "kiwi", seed=1), float("nan"))
    make_style_file(tmp_path / "b.pt", "kiwi", seed=2)
    make_style_file(tmp_path / "c.pt", "kiwi", seed=3)
    reg = StyleRegistry.discover([tmp_path])
    assert reg.choose("kiwi", "cpu").path == tmp_path / "b.pt"
    assert reg.errors == [(spoiled, "weights contain NaN/Inf; retrain or restore it")]
    assert reg.duplicates == [f"3 files declare the style 'kiwi' (light); using {tmp_path / 'b.pt'}"]
    [message] = reg.fallbacks("kiwi", "cpu")
    assert message.startswith(f"style 'kiwi': {spoiled}: weights contain NaN/Inf")


def test_an_onnx_export_leads_back_to_its_trained_style_for_refinement(tmp_path: Path) -> None:
    """A launch that chose ONNX Runtime holds exports without Gram targets; snapshot refinement
    gets the trained style they were exported from, in the registry's folders."""
    pytest.importorskip("onnxruntime")
    from nstcam.engines.onnx_export import export_style
    from nstcam_fixtures import make_style

    styles, cache = tmp_path / "styles", tmp_path / "cache"
    styles.mkdir()
    style = make_style(styles / "aa-light.pt", "aa")
    export_style(style, cache / "aa-light-0123.onnx")
    registry = StyleRegistry.discover([cache, styles], runtime="onnx")
    entry = registry.choose("aa", "cpu")
    assert entry.path.suffix == ".onnx" and not getattr(entry.model, "style_targets", None)
    trained = registry.trained_model(entry)
    assert trained.style_targets["efficientnet-lite0"]
    style.unlink()  # the style file is gone: the export is all there is
    assert registry.trained_model(entry) is entry.model


@pytest.mark.slow
def test_style_files_found_as_their_exports_without_torch(tmp_path: Path) -> None:
    """A torch-free launch reads the style files' headers and finds their exports: the current
    one, or one to make on the style's first frame; either leads back to the trained style."""
    pytest.importorskip("onnxruntime")
    from nstcam.engines.onnx_export import ensure_onnx
    from nstcam.engines.ort import LateExport, OnnxStyle
    from nstcam_fixtures import make_style

    shown = make_style(tmp_path / "aa-light.pt", "aa", title="Shown Once")
    make_style(tmp_path / "bb-light.pt", "bb", seed=2, title="Never Shown")
    ensure_onnx(shown)
    (tmp_path / "cc-light.pt").write_bytes(b"not a style")
    registry = StyleRegistry.discover([tmp_path], runtime="export")
    aa, bb = registry.choose("aa", "cpu"), registry.choose("bb", "cpu")
    assert type(aa.model) is OnnxStyle and aa.model.path == tmp_path / "aa-light.onnx" and aa.path == shown
    assert isinstance(bb.model, LateExport) and bb.title == "Never Shown" and bb.path == tmp_path / "bb-light.pt"
    assert bb.model.meta["source_sha256"] and not bb.model.path.exists()
    assert [bad.path.name for bad in registry.broken] == ["cc-light.pt"]
    for entry in (aa, bb):
        assert registry.trained_model(entry).style_targets["efficientnet-lite0"]
    assert bb.model.make() == tmp_path / "bb-light.onnx"
    again = StyleRegistry.discover([tmp_path], runtime="export").choose("bb", "cpu")
    assert type(again.model) is OnnxStyle and again.title == "Never Shown"
