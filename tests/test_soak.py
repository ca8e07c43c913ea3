"""The soak run, 2 minutes: memory flat, threads steady, the recording whole and in real time."""
from __future__ import annotations

import threading

import pytest

from nstcam.measure.soak import soak


@pytest.mark.slow
def test_two_minute_soak_stays_flat_and_records_everything(tmp_path, no_leftover_threads) -> None:
    result = soak(minutes=2.0, out_dir=tmp_path, switch_seconds=1.0, sample_seconds=2.0)
    assert result["not_stopped"] == []
    assert result["style_switches"] >= 100
    assert result["rss_slope_mb_per_min"] < 8.0  # no leak of a frame (0.2 MB) per second
    assert result["threads_end"] <= result["threads_start"] + 2
    assert result["recording_decode_errors"] == 0
    assert result["recording_frames_decoded"] == result["recording_frames_written"] > 0
    assert 0.97 <= result["recording_vs_captured"] <= 1.01  # real time: every captured frame is there
    assert result["virtual_camera_frames"] > 0
    assert result["fps_last_minute"] > 0
    assert not [t for t in threading.enumerate() if t.name in ("stylize", "virtualcam")]
