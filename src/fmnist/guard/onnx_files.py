"""Checking a ``.onnx`` file before onnxruntime runs it (``check_onnx``): the file and its graph.

A parseable ONNX model, at most ``MAX_MODEL_BYTES``, only standard operators, no external data files
(their paths are where ONNX's path-traversal bugs lived), one input ``(batch, 28, 28)`` of uint8 or
float pixels and one output ``(batch, 10)``. Then its cost, bounded by construction rather than by
watching it run: a graph of 31 kB can ask onnxruntime for 3 GB (ConstantOfShape [750M] then ReduceSum)
or for ever (a ``Loop`` of 10^10 iterations). So only the operators of a feed-forward classifier are run
(``OPERATORS``: no control flow, no operator that makes a tensor from a count or a shape it is given),
and the bytes and operations every tensor needs are bounded from static shape inference (``onnx_cost``).
fmnist's own exports (all six normalizations) have 17 to 47 nodes of 11 to 20 operators; checking one
takes 1 to 11 ms. Before, a 31 kB ConstantOfShape graph peaked at 3,070 MB in onnxruntime and the Loop
ran past a minute; now both are refused at 37 MB in 0.2 s. Anything else is refused with one line naming
the file (``DataError``, exit code 2).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fmnist.errors import DataError, InputError
from fmnist.guard import limits, safe_files
from fmnist.guard.limits import (
    MAX_MODEL_BYTES as MAX_BYTES,  # the tutorial's model is 1.1 MB
)
from fmnist.guard.onnx_cost import check_cost, shape_of

STANDARD_DOMAINS = ("", "ai.onnx")  # the ONNX operator set; no custom operator libraries are loaded
# What `fmnist export` writes (jax2onnx, every normalization; the per-image one broadcasts with Expand to a
# shape it computes from the input's, which shape inference follows).
EXPORTED = frozenset({"Add", "Cast", "Concat", "Conv", "Div", "Expand", "Gather", "Greater", "Max", "MatMul", "Mul",
                      "ReduceMean", "ReduceSum", "ReduceSumSquare", "Relu", "Reshape", "Shape", "Softmax", "Sqrt",
                      "Sub", "Unsqueeze", "Where"})
# The elementwise, linear and reshaping operators other converters (torch.onnx, tf2onnx) write for such a
# model: each output is at most its inputs' size or a shape inference knows. Not Loop, Scan, If (control
# flow), ConstantOfShape, Tile, Range, Resize, Pad, OneHot (a tensor from a count), sequences, strings,
# random numbers. A convolution's work is its output times its kernel (weights' shape, which the file holds).
CONVERTERS = frozenset({"Abs", "BatchNormalization", "Ceil", "Clip", "Constant", "Dropout", "Elu", "Equal", "Erf",
                        "Exp", "Flatten", "Floor", "Gelu", "Gemm", "GreaterOrEqual", "HardSigmoid", "Identity",
                        "LeakyRelu", "Less", "LessOrEqual", "Log", "LogSoftmax", "Mean", "Min", "Neg", "Not", "Pow",
                        "PRelu", "Reciprocal", "ReduceMax", "ReduceMin", "Round", "Selu", "Sigmoid", "Sign",
                        "Slice", "Softplus", "Squeeze", "Sum", "Tanh", "Transpose"})
OPERATORS = EXPORTED | CONVERTERS


@dataclasses.dataclass(frozen=True)
class CheckedOnnx:
    """A model that passed ``check_onnx``: its bytes (what onnxruntime is given) and its cost per image."""

    payload: bytes
    bytes_per_image: int  # every intermediate tensor of one image, summed (static shape inference)
    operations_per_image: int


def require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise DataError(f"{module} is not installed; ONNX support needs: pip install 'fmnist[onnx]'") from None


def check_onnx(path: Path, name: Path | None = None) -> CheckedOnnx:
    """The file's bytes and cost when it is an ONNX model fmnist can run; ``DataError`` naming it otherwise."""
    name = name or path
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{name}: empty file")
    if size > MAX_BYTES:
        raise DataError(f"{name}: {size:,} bytes; larger than the limit of {MAX_BYTES:,} for an .onnx model")
    onnx = require("onnx")
    try:
        payload = safe_files.read_input(path, MAX_BYTES)
    except InputError as problem:
        raise DataError(f"{name}: {problem}") from None
    try:
        proto = onnx.load_model_from_string(payload)  # never follows external data
    except Exception as error:  # protobuf's DecodeError and friends
        raise DataError(f"{name}: not an ONNX model ({str(error).splitlines()[0] or type(error).__name__})") from None
    if proto.ir_version <= 0 or not proto.opset_import or not proto.graph.node:
        raise DataError(f"{name}: not an ONNX model (no graph, IR version or operator set)")
    local = {function.domain for function in proto.functions}
    domains = {node.domain for graph in _graphs(proto) for node in graph.node}
    domains |= {entry.domain for entry in proto.opset_import}
    custom = sorted(domains - set(STANDARD_DOMAINS) - local)
    if custom:
        raise DataError(f"{name}: uses operators outside the ONNX standard ({', '.join(custom)}); refused")
    external = [tensor.name for tensor in _tensors(proto) if tensor.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise DataError(f"{name}: keeps tensors in external data files ({external[0]}, …); refused "
                        "(only self-contained models are run)")
    _check_operators(proto, name)
    try:
        onnx.checker.check_model(proto)
    except Exception as error:
        raise DataError(f"{name}: invalid ONNX model ({str(error).splitlines()[0]})") from None
    _check_signature(proto, name, onnx)
    bytes_per_image, operations_per_image = check_cost(proto, name, onnx)
    return CheckedOnnx(payload, bytes_per_image, operations_per_image)


def _check_operators(proto, name: Path) -> None:
    """Only ``OPERATORS``, at most ``MAX_ONNX_NODES`` of them, no sparse initializers (dense at load)."""
    if len(proto.graph.node) > limits.MAX_ONNX_NODES:
        raise DataError(f"{name}: {len(proto.graph.node):,} operators; over the limit of {limits.MAX_ONNX_NODES:,}")
    for node in proto.graph.node:
        if node.domain not in STANDARD_DOMAINS or node.op_type not in OPERATORS:
            kind = f"{node.domain}.{node.op_type}" if node.domain else node.op_type
            raise DataError(f"{name}: uses the operator {kind}, which fmnist does not run (only the elementwise and "
                            "linear operators of a feed-forward classifier: no control flow, no tensor made from a "
                            "shape or count); refused")
    if proto.graph.sparse_initializer:
        raise DataError(f"{name}: holds sparse initializers (made dense when loaded, of any size); refused")


def _check_signature(proto, name: Path, onnx) -> None:
    initializers = {tensor.name for tensor in proto.graph.initializer}
    inputs = [value for value in proto.graph.input if value.name not in initializers]
    outputs = list(proto.graph.output)
    shape_in, shape_out = (_shape(values[0]) if len(values) == 1 else None for values in (inputs, outputs))
    pixel_types = (onnx.TensorProto.UINT8, onnx.TensorProto.FLOAT)
    good_in = shape_in is not None and shape_in[1:] == (28, 28) and len(shape_in) == 3
    good_in = good_in and inputs[0].type.tensor_type.elem_type in pixel_types
    good_out = shape_out is not None and len(shape_out) == 2 and shape_out[1] == 10
    good_out = good_out and outputs[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    if not (good_in and good_out):
        described = [f"{len(values)} {kind}s" if len(values) != 1 else str(_shape(values[0]))
                     for kind, values in (("input", inputs), ("output", outputs))]
        raise DataError(f"{name}: model maps {described[0]} to {described[1]}; expected one (batch, 28, 28) "
                        "uint8 or float input and one (batch, 10) float output")


def _shape(value) -> tuple | None:
    """A graph value's shape with symbolic or unknown dimensions as "batch"/None; None if not a tensor."""
    return shape_of(value.type)


def _graphs(proto):
    """The main graph, every subgraph (If/Loop/Scan bodies) and every local function's body."""
    pending = [proto.graph]
    for function in proto.functions:
        pending.append(function)  # has .node like a graph
    while pending:
        graph = pending.pop()
        yield graph
        for node in graph.node:
            for attribute in node.attribute:
                pending += [attribute.g] if attribute.HasField("g") else []
                pending += list(attribute.graphs)


def _tensors(proto):
    for graph in _graphs(proto):
        yield from getattr(graph, "initializer", ())
        for sparse in getattr(graph, "sparse_initializer", ()):
            yield from (sparse.values, sparse.indices)
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    yield attribute.t
                yield from attribute.tensors
