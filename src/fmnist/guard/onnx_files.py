"""Checking a ``.onnx`` file before onnxruntime runs it (``check_onnx``).

A parseable ONNX model, at most ``MAX_MODEL_BYTES``, only standard operators, no external data files
(their paths are where ONNX's path-traversal bugs lived), one input ``(batch, 28, 28)`` of uint8 or
float pixels and one output ``(batch, 10)``. Anything else is refused with one line naming the file
(``DataError``, exit code 2).
"""

from __future__ import annotations

from pathlib import Path

from fmnist.errors import DataError
from fmnist.guard.limits import (
    MAX_MODEL_BYTES as MAX_BYTES,  # the tutorial's model is 1.1 MB
)

STANDARD_DOMAINS = ("", "ai.onnx")  # the ONNX operator set; no custom operator libraries are loaded


def require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise DataError(f"{module} is not installed; ONNX support needs: pip install 'fmnist[onnx]'") from None


def check_onnx(path: Path, name: Path | None = None) -> bytes:
    """The file's bytes when it is an ONNX model fmnist can run; ``DataError`` naming it otherwise."""
    name = name or path
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{name}: empty file")
    if size > MAX_BYTES:
        raise DataError(f"{name}: {size:,} bytes; larger than the limit of {MAX_BYTES:,} for an .onnx model")
    onnx = require("onnx")
    payload = path.read_bytes()
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
    try:
        onnx.checker.check_model(proto)
    except Exception as error:
        raise DataError(f"{name}: invalid ONNX model ({str(error).splitlines()[0]})") from None
    _check_signature(proto, name, onnx)
    return payload


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
    if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
        return None
    return tuple(dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None)
                 for dim in value.type.tensor_type.shape.dim)


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
