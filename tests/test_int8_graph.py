"""int8 exports pad on uint8 (nstcam.engines.int8_graph): the same numbers, less float work."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from nstcam.engines.int8_graph import pad_in_uint8  # noqa: E402

SCALE, ZERO = 0.05, 7


def qdq_pad_graph(mode: str = "reflect", second_zero: int = ZERO) -> onnx.ModelProto:
    """x (float) -> Q -> DQ -> Pad -> Q -> DQ -> Add(the first DQ, cropped back) -> y: a residual
    block's shape as quantize_static writes it, the skip reading the DequantizeLinear too."""
    consts = [
        numpy_helper.from_array(np.array(SCALE, np.float32), "s"),
        numpy_helper.from_array(np.array(ZERO, np.uint8), "z"),
        numpy_helper.from_array(np.array(second_zero, np.uint8), "z2"),
        numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
        numpy_helper.from_array(np.array([1, 1], np.int64), "starts"),
        numpy_helper.from_array(np.array([-1, -1], np.int64), "ends"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        helper.make_node("Pad", ["xd", "pads"], ["p"], mode=mode),
        helper.make_node("QuantizeLinear", ["p", "s", "z2"], ["pq"]),
        helper.make_node("DequantizeLinear", ["pq", "s", "z2"], ["pd"]),
        helper.make_node("Slice", ["pd", "starts", "ends", "axes"], ["c"]),
        helper.make_node("Add", ["c", "xd"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 5, 6])], consts,
                              value_info=[helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 2, 7, 8]),
                                          helper.make_tensor_value_info("pq", TensorProto.UINT8, [1, 2, 7, 8])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("mode", ["reflect", "edge"])
def test_a_copying_pad_moves_to_uint8_and_gives_the_same_numbers(mode) -> None:
    x = np.random.default_rng(0).uniform(-1, 8, (1, 2, 5, 6)).astype(np.float32)
    before = qdq_pad_graph(mode)
    expected = run(before, x)
    after = qdq_pad_graph(mode)
    assert pad_in_uint8(after) == 1
    onnx.checker.check_model(after, full_check=True)  # types agree: the pad's output is uint8 now
    assert ops(after) == ["QuantizeLinear", "DequantizeLinear", "Pad", "DequantizeLinear", "Slice", "Add"]
    made = {name for node in after.graph.node for name in node.output}
    assert all(info.name in made for info in after.graph.value_info)  # no record of a removed tensor
    pad = next(n for n in after.graph.node if n.op_type == "Pad")
    assert pad.input[0] == "xq"  # the quantized tensor; its DequantizeLinear stays for the skip
    np.testing.assert_array_equal(run(after, x), expected)


def test_a_pad_that_changes_values_or_range_stays_in_float() -> None:
    for model in (qdq_pad_graph("constant"), qdq_pad_graph(second_zero=ZERO + 1)):
        kept = ops(model)
        assert pad_in_uint8(model) == 0 and ops(model) == kept
