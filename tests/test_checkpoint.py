"""trainer.checkpoint: loading refuses foreign and malicious files in its own words."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from trainer.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from trainer.transformer import TransformerConfig, TransformerNet


def _save(path: Path) -> None:
    net = TransformerNet(TransformerConfig(width=4, res_blocks=1, outer_kernel=3))
    save_checkpoint(path, model=net, optimizer=torch.optim.Adam(net.parameters()), scaler=None, step=3, epoch=0,
                    batch_in_epoch=3, batches_per_epoch=6, world_size=1, args={"seed": 0},
                    totals={"images": 12.0, "training_seconds": 1.5})


def test_a_checkpoint_round_trips(tmp_path: Path) -> None:
    _save(tmp_path / "checkpoint.pt")
    payload = load_checkpoint(tmp_path / "checkpoint.pt")
    assert payload["step"] == 3 and payload["totals"] == {"images": 12.0, "training_seconds": 1.5}


def test_a_malicious_checkpoint_is_refused_for_safety_and_runs_nothing(tmp_path: Path, capfd) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "checkpoint.pt"
    torch.save({"format": "nstcam-checkpoint", "version": 1, "x": Exploit()}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value) == (f"{path}: not a training checkpoint; refused for safety (it holds Python objects "
                               "other than tensors, and loading them could run code)")
    assert not marker.exists()
    assert "weights_only" not in capfd.readouterr().err


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign pickle"])
def test_damaged_or_foreign_files_name_the_problem_without_torchs_advice(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "checkpoint.pt"
    _save(path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    else:
        path.write_bytes(pickle.dumps({"a set": {1, 2}}, protocol=4))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    expected = "refused for safety" if damage == "foreign pickle" else "corrupt or truncated checkpoint"
    assert message.startswith(f"{path}: ") and expected in message
    assert "weights_only" not in message
