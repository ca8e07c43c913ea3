"""The int8 graph's reflection padding done on uint8, where the quantizer left it in float.

In the QDQ graph `quantize_static` writes, every TransformerNet convolution's reflection pad sits
between a DequantizeLinear and a QuantizeLinear with the same scale and zero point (padding copies
values, so calibration sees one range on both sides). ONNX Runtime fuses DequantizeLinear -> Conv
-> QuantizeLinear into one QLinearConv but leaves the pad as it is: 16 times a frame the uint8
activation is dequantized to float (four times the bytes), padded and quantized again. Padding the
uint8 tensor gives the very same numbers, since a reflection only copies values and quantizing
is elementwise. Bundled monet int8 at 320x240 on one thread, 6 interleaved rounds: 68.0 -> 47.7 ms
a frame (medians; 0.65-0.84x in every round), two frames in flight 29.2 -> 37.6 frames/s; the
pads' float work (dequantize, pad, quantize: 22 ms a frame in ONNX Runtime's profile) fell to 10.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

COPYING_MODES = (b"reflect", b"edge")  # pad modes that only copy values: exact on quantized data


def pad_in_uint8(model: onnx.ModelProto) -> int:
    """Rewrite `model` (an onnx.ModelProto in QDQ form) in place so that each
    QuantizeLinear -> DequantizeLinear -> Pad -> QuantizeLinear with one scale and zero point pads
    the quantized tensor instead; returns how many pads were moved. A DequantizeLinear that still
    feeds something else (a residual's skip) is kept for it."""
    from onnx import numpy_helper

    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def same_constant(a: str, b: str) -> bool:
        if a not in constants or b not in constants:
            return False
        x, y = numpy_helper.to_array(constants[a]), numpy_helper.to_array(constants[b])
        return x.dtype == y.dtype and x.shape == y.shape == () and np.array_equal(x, y)

    dropped: list = []
    moved = 0
    for pad in graph.node:
        if pad.op_type != "Pad" or _mode(pad) not in COPYING_MODES:
            continue
        dq, after = producer.get(pad.input[0]), consumers.get(pad.output[0], [])
        if dq is None or dq.op_type != "DequantizeLinear" or len(dq.input) != 3 or len(after) != 1:
            continue
        q = after[0]
        if (q.op_type != "QuantizeLinear" or len(q.input) != 3 or q.output[0] in outputs
                or not (same_constant(dq.input[1], q.input[1]) and same_constant(dq.input[2], q.input[2]))):
            continue
        pad.input[0] = dq.input[0]
        consumers[dq.output[0]].remove(pad)
        for node in consumers.get(q.output[0], []):
            node.input[:] = [pad.output[0] if name == q.output[0] else name for name in node.input]
        _retype(graph, pad.output[0], constants[q.input[2]].data_type)
        dropped.append(q)
        if not consumers[dq.output[0]]:
            dropped.append(dq)
        moved += 1
    gone = {name for node in dropped for name in node.output}
    for node in dropped:
        graph.node.remove(node)
    for info in [info for info in graph.value_info if info.name in gone]:
        graph.value_info.remove(info)
    log.debug("%d pads run on uint8", moved)
    return moved


def _mode(pad: onnx.NodeProto) -> bytes:
    return next((a.s for a in pad.attribute if a.name == "mode"), b"constant")


def _retype(graph: onnx.GraphProto, name: str, data_type: int) -> None:
    """The shape-inference record of `name`, if any, now holds `data_type` elements."""
    for info in graph.value_info:
        if info.name == name:
            info.type.tensor_type.elem_type = data_type
