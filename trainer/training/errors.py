"""The two ways a training run fails on purpose, each reported as one `error: ...` line."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


class UsageError(Exception):
    """Bad input from the user: reported as one `error: ...` line and exit status 2."""


class OutputError(Exception):
    """An output could not be written (full disk, read-only folder): one `error: ...` line, exit 1."""


@contextlib.contextmanager
def writing(what: str, path: Path, then: str) -> Iterator[None]:
    """Turn an OSError while writing `what` to `path` into an OutputError saying what remains."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot write {what} {path}: {exc.strerror or exc}; {then}") from None
