"""ONNX metadata read without the onnx package: the same as onnx reads, {} for anything else."""
from __future__ import annotations

from pathlib import Path

import pytest

from nstcam.engines.onnx_metadata import read_metadata

onnx = pytest.importorskip("onnx")


def write_model(path: Path, meta: dict[str, str]) -> Path:
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                              initializer=[helper.make_tensor("w", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])])
    model = helper.make_model(graph, producer_name="nstcam-test", doc_string="a model")
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    path.write_bytes(model.SerializeToString())
    return path


def test_metadata_matches_what_onnx_reads(tmp_path) -> None:
    meta = {"format": "nstcam-style", "name": "Zürich nights", "source_sha256": "ab" * 32, "empty": ""}
    path = write_model(tmp_path / "m.onnx", meta)
    assert read_metadata(path) == meta == {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert read_metadata(write_model(tmp_path / "bare.onnx", {})) == {}


def test_files_that_are_no_onnx_model_give_no_metadata(tmp_path) -> None:
    path = write_model(tmp_path / "m.onnx", {"format": "nstcam-style"})
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(path.read_bytes()[:-3])
    text = tmp_path / "text.onnx"
    text.write_text("not a model\n" * 10)
    assert read_metadata(truncated) == {}
    assert read_metadata(text) == {}
    assert read_metadata(tmp_path / "missing.onnx") == {}
