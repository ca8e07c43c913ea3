"""Reading weight files into loss networks with errors a user can act on.

`torch.load` reports a corrupt or foreign file with whatever exception its parser hits first
(RuntimeError, KeyError, EOFError, UnpicklingError, ...), and `load_state_dict` with a wall of
key names; both are turned into a `LossNetUnavailable` that names the file and the problem.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from trainer.fileio import CorruptFileError, UnsafeFileError, load_tensors

from .errors import LossNetUnavailable

_MAX_LISTED = 5


def read_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """Load a state dict (name -> tensor) from `path` safely (`weights_only`) onto the CPU.

    `what` describes the expected content for the error message, e.g. "VGG19 weights".
    """
    path = Path(path)
    if not path.is_file():
        reason = "is a directory, not a file" if path.is_dir() else "no such file"
        raise LossNetUnavailable(f"{what} file {path}: {reason}")
    try:
        obj = load_tensors(path)
    except UnsafeFileError as exc:
        raise LossNetUnavailable(f"{what} file {path}: not a weights file; {exc}") from None
    except CorruptFileError as exc:
        raise LossNetUnavailable(
            f"{what} file {path}: cannot be read as a PyTorch weights file; it may be truncated, "
            f"corrupt or not a torch.save() file ({exc})"
        ) from None
    if not isinstance(obj, Mapping) or not obj:
        kind = "an empty mapping" if isinstance(obj, Mapping) else f"a {type(obj).__name__}"
        raise LossNetUnavailable(
            f"{what} file {path}: expected a state dict (parameter name -> tensor), found {kind}"
        )
    not_tensors = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise LossNetUnavailable(
            f"{what} file {path}: expected a state dict (parameter name -> tensor), but "
            f"{_listing(not_tensors)} are not tensors"
        )
    return dict(obj)


def load_checked(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """`module.load_state_dict(state, strict=True)` after checking keys and shapes ourselves.

    `source` names where the weights came from (a file path or URL) for the error message.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
    if mismatched:
        problems.append(
            f"{len(mismatched)} shape mismatch(es) (file != model): {_listing(mismatched)}"
        )
    if problems:
        raise LossNetUnavailable(
            f"{source}: the weights do not fit the {type(module).__name__} architecture; "
            + "; ".join(problems)
        )
    module.load_state_dict(state, strict=True)


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f", ... ({len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else "")
