"""The CPU memory-format choice is timed once per machine/net/size and remembered across engines
(launches), and a damaged or unwritable cache only means timing again."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from nstcam.engines import memory_formats
from nstcam.host.choices import MAX_ENTRIES
from nstcam.engines.torch_engine import StyleEngine
from nstcam_fixtures import TINY_CONFIG, video_frame
from trainer.transformer import TransformerNet


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NSTCAM_CACHE_DIR", str(tmp_path / "cache"))
    return memory_formats.cache_file()


def first_frame_passes(style_models, size: int = 48) -> tuple[StyleEngine, int]:
    """A fresh engine (channels_last left to measure) and how many forward passes its first frame ran."""
    engine = StyleEngine(style_models, device="cpu", size=size)
    calls = []
    handle = engine._nets[engine.style].register_forward_hook(lambda *_: calls.append(1))
    engine.stylize(video_frame(0, (96, 64)))
    handle.remove()
    return engine, len(calls)


def test_the_choice_is_timed_once_then_remembered(style_models, cache: Path) -> None:
    first, passes = first_frame_passes(style_models)
    assert passes == 7  # 3 rounds of both layouts, then the frame itself
    entries = json.loads(cache.read_text())
    assert len(entries) == 1
    (entry,) = entries.values()
    assert entry["channels_last"] is first.channels_last and entry["contiguous_ms"] > 0
    second, passes = first_frame_passes(style_models)
    assert passes == 1 and second.channels_last is first.channels_last


def test_another_frame_size_is_timed_again(style_models, cache: Path) -> None:
    first_frame_passes(style_models, size=48)
    _, passes = first_frame_passes(style_models, size=32)
    assert passes == 7
    assert len(json.loads(cache.read_text())) == 2


def test_the_remembered_choice_is_used_even_when_timing_would_differ(style_models, cache: Path) -> None:
    first, _ = first_frame_passes(style_models)
    key = next(iter(json.loads(cache.read_text())))
    memory_formats.remember(key, not first.channels_last, {})
    second, passes = first_frame_passes(style_models)
    assert passes == 1 and second.channels_last is (not first.channels_last)


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"k": {"channels_last": "yes"}}', b"\xff\xfe"])
def test_a_damaged_cache_means_timing_again_and_is_replaced(style_models, cache: Path, content: bytes) -> None:
    cache.parent.mkdir(parents=True)
    cache.write_bytes(content)
    engine, passes = first_frame_passes(style_models)
    assert passes == 7 and engine.channels_last in (True, False)
    assert any(e["channels_last"] is engine.channels_last for e in json.loads(cache.read_text()).values())


def test_an_unwritable_cache_does_not_stop_the_engine(style_models, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("NSTCAM_CACHE_DIR", str(blocker))
    engine, passes = first_frame_passes(style_models)
    assert passes == 7 and engine.stylize(video_frame(1, (96, 64))).shape == (48, 72, 3)


def test_no_home_folder_to_find_the_cache_in_does_not_stop_the_engine(style_models, monkeypatch) -> None:
    """A service account without a home: Path.home() raises RuntimeError."""
    for name in ("NSTCAM_CACHE_DIR", "XDG_CACHE_HOME", "LOCALAPPDATA"):
        monkeypatch.delenv(name, raising=False)

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", no_home)
    engine, passes = first_frame_passes(style_models)
    assert passes == 7 and engine.channels_last in (True, False)


@pytest.mark.parametrize("change", [{"upsample": "bilinear"}, {"blur_downsample": True}, {"bounded_output": False}])
def test_networks_that_compute_differently_have_their_own_choice(change) -> None:
    """Same parameter shapes, different layers: the key must tell them apart."""
    x = torch.zeros(1, 3, 32, 48)
    plain = TransformerNet(TINY_CONFIG)
    other = TransformerNet(dataclasses.replace(TINY_CONFIG, **change))
    assert memory_formats.choice_key(plain, x) != memory_formats.choice_key(other, x)
    assert memory_formats.choice_key(plain, x) == memory_formats.choice_key(TransformerNet(TINY_CONFIG), x)
    assert memory_formats.choice_key(plain, x) != memory_formats.choice_key(plain, torch.zeros(1, 3, 48, 32))


def test_the_cache_keeps_only_the_newest_entries(cache: Path) -> None:
    for i in range(MAX_ENTRIES + 5):
        memory_formats.remember(f"key {i}", bool(i % 2), {"contiguous_ms": 1.0})
    entries = json.loads(cache.read_text())
    assert len(entries) == MAX_ENTRIES
    assert "key 0" not in entries and memory_formats.recall(f"key {MAX_ENTRIES + 4}") is False
    assert memory_formats.recall("key 0") is None
    assert all(isinstance(e["channels_last"], bool) for e in entries.values())
