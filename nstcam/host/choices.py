"""Measured choices remembered across launches: a small JSON file of entries in the user cache.

What the engines time once per machine and network (the CPU memory format, the fastest backend)
depends on things that do not change between launches, so later launches read the answer instead
of timing again. A missing, unreadable or damaged file only means timing again, and deleting it
makes the next launch time afresh (e.g. after measuring on a machine busy with other work). Two
launches at once may each time and keep one answer: the file is written whole.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from nstcam.host.userdirs import user_cache_dir
from trainer.fileio import atomic_write_bytes

log = logging.getLogger(__name__)

MAX_ENTRIES = 64  # oldest dropped first: sizes and styles come and go


class RememberedChoices:
    """The entries of `<cache>/nstcam/<name>.json`, each a dict under a string key."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def path(self) -> Path:
        return user_cache_dir() / f"{self.name}.json"

    def entries(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: no home folder to find the cache in
            log.info("ignoring the remembered %s (%s)", self.name.replace("_", " "), exc)
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries().get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Keep `entry` under `key` (newest last); a cache that cannot be written is logged, never an error."""
        entries = self.entries()
        entries.pop(key, None)
        entries[key] = entry
        entries = dict(list(entries.items())[-MAX_ENTRIES:])
        try:
            atomic_write_bytes(self.path, json.dumps(entries, indent=1).encode("utf-8"))
        except (OSError, RuntimeError) as exc:
            log.info("could not remember the %s (%s)", self.name.replace("_", " "), exc)
