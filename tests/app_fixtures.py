"""The app tests' helpers, kept importable by this name: they live in nstcam_fixtures now (its
fixtures reach every test module through conftest.py, so nothing needs importing for them)."""
from nstcam_fixtures import (STYLE_TINTS, count_frames, make_style, make_styles_dir, make_video, pattern_image,
                             style_targets, styles_dir, video)

__all__ = ["STYLE_TINTS", "count_frames", "make_style", "make_styles_dir", "make_video", "pattern_image",
           "style_targets", "styles_dir", "video"]
