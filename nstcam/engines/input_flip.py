"""The frame graph's BGR -> RGB flip folded into its first convolution's weights.

The exported graph takes OpenCV's BGR frame and reverses its channels for the network (a Slice
with step -1 on the last axis). ONNX Runtime runs that Slice element by element: 0.8 ms of a 44 ms
int8 frame at 320x240 on one thread (bundled monet, its profiler), 0.75 of 79 ms in fp32. Moving
the flip after the NHWC -> NCHW transpose makes it a copy of whole planes in fp32, but in int8
the layout optimizer moves it back to the last axis. Reversing the input channels of the first
convolution's weights instead gives the same sums with no flip at all.

The fold is made only where nothing but the convolution sees the flipped frame, through steps
that treat every channel alike (transpose, cast, scaling by one number, padding); the exporter
checks the folded graph's frames against the original's (`fold_flip_in_file`), since a pad's
widths are computed in the graph and could, in some other network, pad the channels.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

UNIFORM_OPS = {"Transpose", "Cast", "Pad", "Div", "Mul", "Sub", "Add"}  # treat every channel alike
SCALAR_OPS = {"Div", "Mul", "Sub", "Add"}  # ... when the other operand is one number


def fold_input_flip(model: onnx.ModelProto, input_name: str) -> bool:
    """Remove the channel flip of `input_name` (N, H, W, 3) from `model` in place, reversing the
    first convolution's input channels instead; False (and `model` unchanged) where the graph
    does not have that shape."""
    from onnx import numpy_helper

    graph = model.graph
    constants = _constants(graph)
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def only_consumer(name: str):
        after = consumers.get(name, [])
        return after[0] if len(after) == 1 and name not in outputs else None

    flip = only_consumer(input_name)
    if flip is None or not _reverses_last_of_four(flip, constants):
        return False
    tensor, channel_axis, node = flip.output[0], 3, only_consumer(flip.output[0])
    while node is not None and node.op_type in UNIFORM_OPS:
        if node.op_type == "Transpose":
            perm = list(next(a.ints for a in node.attribute if a.name == "perm"))
            channel_axis = perm.index(channel_axis)
        elif node.op_type in SCALAR_OPS:
            other = [name for name in node.input if name != tensor]
            if len(other) != 1 or other[0] not in constants or constants[other[0]].size != 1:
                return False
        elif node.input[0] != tensor:  # a Pad must pad the frame, not use it as its widths
            return False
        tensor, node = node.output[0], only_consumer(node.output[0])
    conv = node
    weights = _weights(conv, tensor, channel_axis, graph, consumers)
    if weights is None:
        return False
    weights.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(numpy_helper.to_array(weights)[:, ::-1]),
                                             weights.name))
    after = consumers[flip.output[0]][0]
    after.input[:] = [input_name if name == flip.output[0] else name for name in after.input]
    graph.node.remove(flip)
    unused = {name for name in flip.input[1:] if consumers[name] == [flip]}  # the flip's bounds
    for bound in [n for n in graph.node if n.op_type == "Constant" and n.output[0] in unused]:
        graph.node.remove(bound)  # ONNX Runtime warns of constants nothing reads
    for value in [t for t in graph.initializer if t.name in unused]:
        graph.initializer.remove(value)
    log.debug("the input's channel flip is folded into %s", conv.name)
    return True


def fold_flip_in_file(path: Path, input_name: str) -> bool:
    """Fold the channel flip of the graph at `path` (one input, `input_name`) and save it, unless
    that changes its frames (said); whether it did."""
    import onnx

    before = path.read_bytes()
    model = onnx.load_from_string(before)
    if len(model.graph.input) != 1 or not fold_input_flip(model, input_name):
        return False
    if not same_frames(before, model, input_name):
        log.warning("%s: folding the channel flip changed its frames; it keeps the flip", path.name)
        return False
    onnx.save(model, str(path))
    return True


def same_frames(before: bytes, after: onnx.ModelProto, input_name: str, side: int = 32) -> bool:
    """Whether `after` gives `before`'s frames (within one level: the sums run in another order)
    for a random frame of `side` x `side`."""
    import onnxruntime as ort

    frame = np.random.default_rng(0).integers(0, 256, (1, side, side, 3), dtype=np.uint8)
    results = [ort.InferenceSession(graph, providers=["CPUExecutionProvider"]).run(None, {input_name: frame})[0]
               for graph in (before, after.SerializeToString())]
    return results[0].shape == results[1].shape and float(np.abs(results[0].astype(np.float64) - results[1]).max()) <= 1


def _reverses_last_of_four(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> bool:
    """A Slice that reverses the last axis of a 4-d tensor whole: starts -1, ends before the start."""
    if node.op_type != "Slice" or len(node.input) != 5 or not all(name in constants for name in node.input[1:]):
        return False
    starts, ends, axes, steps = (constants[name].reshape(-1).tolist() for name in node.input[1:])
    return starts == [-1] and steps == [-1] and axes in ([-1], [3]) and len(ends) == 1 and ends[0] <= -4


def _weights(conv, tensor: str, channel_axis: int, graph: onnx.GraphProto, consumers: dict[str, list]):
    """The initializer of `conv`'s weights if it is a plain convolution of `tensor` over its 3
    channels (axis 1) and nothing else reads them; else None."""
    if conv is None or conv.op_type != "Conv" or conv.input[0] != tensor or channel_axis != 1:
        return None
    if next((a.i for a in conv.attribute if a.name == "group"), 1) != 1 or len(consumers.get(conv.input[1], [])) != 1:
        return None
    weights = next((t for t in graph.initializer if t.name == conv.input[1]), None)
    return weights if weights is not None and len(weights.dims) == 4 and weights.dims[1] == 3 else None


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """The values of the graph's initializers and Constant nodes, by name."""
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values
