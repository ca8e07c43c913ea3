"""The exported frame graph takes BGR without flipping it (nstcam.engines.input_flip): the flip is
in the first convolution's weights, and the frames are the same."""
from __future__ import annotations

import logging

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch import nn  # noqa: E402

from nstcam.engines.input_flip import fold_flip_in_file, fold_input_flip, same_frames  # noqa: E402
from nstcam.engines.onnx_export import INPUT, trace_frame_net  # noqa: E402
from trainer.transformer import TransformerConfig, TransformerNet  # noqa: E402


def frame(h: int = 24, w: int = 32) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (1, h, w, 3), dtype=np.uint8)


def torch_frames(net: nn.Module, bgr: np.ndarray) -> np.ndarray:
    """What the graph must give: the network on the RGB frame in [0, 1], as uint8 RGB."""
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(0, 3, 1, 2).float() / 255
        return net(x).clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def run(path, bgr: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {INPUT: bgr})[0]


def readers_of_input(path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node if INPUT in n.input]


def test_a_style_network_is_exported_without_a_flip_and_gives_the_same_frames(tmp_path) -> None:
    torch.manual_seed(0)
    net = TransformerNet(TransformerConfig(width=4, res_blocks=1, outer_kernel=3)).eval()
    path = tmp_path / "net.onnx"
    trace_frame_net(net, path)
    assert readers_of_input(path) == ["Transpose"]  # no Slice: the frame goes straight in
    bgr = frame()
    assert np.abs(run(path, bgr).astype(int) - torch_frames(net, bgr)).max() <= 1


class ReadsTheFrameTwice(nn.Module):
    """The frame feeds a convolution and is added back: the flip cannot go into the weights."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * self.conv(x)


def test_a_network_that_reads_the_frame_twice_keeps_its_flip(tmp_path) -> None:
    torch.manual_seed(0)
    net = ReadsTheFrameTwice().eval()
    path = tmp_path / "twice.onnx"
    trace_frame_net(net, path)
    assert readers_of_input(path) == ["Slice"]
    bgr = frame()
    assert np.abs(run(path, bgr).astype(int) - torch_frames(net, bgr)).max() <= 1


def channel_shifting_graph() -> onnx.ModelProto:
    """Flip, NCHW, a pad that crops the first channel and adds one after the last, then a
    convolution over 3 channels: the shape the fold looks for, but a flip that cannot move."""
    consts = [
        numpy_helper.from_array(np.array([-1], np.int64), "starts"),
        numpy_helper.from_array(np.array([-(2 ** 63) + 1], np.int64), "ends"),
        numpy_helper.from_array(np.array([-1], np.int64), "axes"),
        numpy_helper.from_array(np.array([-1], np.int64), "steps"),
        numpy_helper.from_array(np.array([0, -1, 0, 0, 0, 1, 0, 0], np.int64), "pads"),
        numpy_helper.from_array(np.random.default_rng(2).normal(size=(2, 3, 1, 1)).astype(np.float32), "w"),
    ]
    nodes = [
        helper.make_node("Slice", [INPUT, "starts", "ends", "axes", "steps"], ["flipped"]),
        helper.make_node("Transpose", ["flipped"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Cast", ["nchw"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Pad", ["x", "pads"], ["padded"]),
        helper.make_node("Conv", ["padded", "w"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "shift", [helper.make_tensor_value_info(INPUT, TensorProto.UINT8, [1, "h", "w", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], consts)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_fold_that_would_change_the_frames_is_found_out(tmp_path, caplog) -> None:
    before = channel_shifting_graph()
    folded = channel_shifting_graph()
    assert fold_input_flip(folded, INPUT)  # by its shape it qualifies ...
    assert not same_frames(before.SerializeToString(), folded, INPUT, side=8)  # ... by its frames not
    path = tmp_path / "shift.onnx"
    onnx.save(before, str(path))
    with caplog.at_level(logging.WARNING):
        assert not fold_flip_in_file(path, INPUT)
    assert readers_of_input(path) == ["Slice"] and "changed its frames" in caplog.text
