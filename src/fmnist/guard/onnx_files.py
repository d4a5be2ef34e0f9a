"""Checking a ``.onnx`` file before onnxruntime runs it (``check_onnx``).

A parseable ONNX model, at most ``MAX_MODEL_BYTES``, only standard operators, no external data files
(their paths are where ONNX's path-traversal bugs lived), one input ``(batch, 28, 28)`` of uint8 or
float pixels and one output ``(batch, 10)``. Then its cost, bounded by construction rather than by
watching it run: a graph of 31 kB can ask onnxruntime for 3 GB (ConstantOfShape [750M] then ReduceSum)
or for ever (a ``Loop`` of 10^10 iterations). So only the operators of a feed-forward classifier are run
(``OPERATORS``: no control flow, no operator that makes a tensor from a count or a shape it is given),
and every tensor's shape must follow from the input's by ONNX's static shape inference (with data
propagation, the file's own shape annotations dropped): no dimension unknown, none but the batch
symbolic, none growing with the square of the batch. From those shapes the bytes and operations per
image, and those of the part that does not depend on the images, are summed and bounded (``limits``).
fmnist's own exports (all six normalizations) have 17 to 47 nodes of 11 to 20 operators and cost at most
20.7 kB and 0.28 M operations per image; checking one takes 1 to 11 ms. Before, a 31 kB ConstantOfShape
graph peaked at 3,070 MB in onnxruntime and the Loop ran past a minute; now both are refused at 37 MB in
0.2 s. Anything else is refused with one line naming the file (``DataError``, exit code 2).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from fmnist.errors import DataError, InputError
from fmnist.guard import limits, safe_files
from fmnist.guard.limits import (
    MAX_MODEL_BYTES as MAX_BYTES,  # the tutorial's model is 1.1 MB
)

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
SMALL_INITIALIZER = 64  # elements: initializers up to this size keep their values for data propagation
MAX_INFERENCE_ROUNDS = 8  # shape inference again after sizing Reshape outputs (one round per chained Reshape)


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
    bytes_per_image, operations_per_image = _check_cost(proto, name, onnx)
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


def _check_cost(proto, name: Path, onnx) -> tuple[int, int]:
    """Bytes and operations per image, from the shapes of every tensor, bounded (see the module's docstring)."""
    batch, initializer_bytes = _strip(proto, name, onnx)
    if initializer_bytes > MAX_BYTES:  # their values are in the file, or onnxruntime refuses it
        raise DataError(f"{name}: its initializers claim {initializer_bytes:,} bytes; more than the file's limit of "
                        f"{MAX_BYTES:,}")
    types = _shapes(proto, batch, name, onnx)
    totals = {0: [0, 0], 1: [0, 0]}  # batch power -> [bytes, operations] of what the nodes compute
    largest = (0, "")
    for index, node in enumerate(proto.graph.node):
        where = f"{node.op_type} node {node.name or index!r}"
        ins = [_size(types.get(value), batch, name, where, onnx) for value in node.input if value]
        outs = [_size(types.get(value), batch, name, where, onnx) for value in node.output if value]
        work = [(elements, power) for elements, power, _ in ins + outs]
        if node.op_type in ("MatMul", "Gemm") and ins and outs:
            inner = _inner(types[node.input[0]], node)
            work.append((outs[0][0] * inner[0], outs[0][1] + inner[1]))
        if node.op_type == "Conv" and len(ins) > 1 and outs:  # every output sums one filter: weights / filters
            filters = (_dims(types.get(node.input[1])) or (1,))[0]
            per_output = ins[1][0] // filters if isinstance(filters, int) and filters > 0 else ins[1][0]
            work.append((outs[0][0] * per_output, outs[0][1] + ins[1][1]))
        if any(power > 1 for _, power in work):
            raise DataError(f"{name}: {where} costs the square of the batch size; refused")
        for elements, power in work:
            totals[power][1] += elements
        for elements, power, itemsize in outs:
            totals[power][0] += elements * itemsize
            described = f"{where}: {elements:,} values{' per image' if power else ''}"
            largest = max(largest, (elements * itemsize, described))
    output = _dims(types.get(proto.graph.output[0].name))
    expected = (batch or proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value, 10)
    if output != expected:
        raise DataError(f"{name}: computes {output} where it declares {expected}; refused")
    bounds = {0: (max(limits.MAX_ONNX_COMPUTED_BYTES, initializer_bytes), "once per run (not per image)"),
              1: (limits.MAX_ONNX_BYTES_PER_IMAGE, "per image")}
    for power, (bytes_limit, what) in bounds.items():
        size, operations = totals[power]
        if size > bytes_limit:
            raise DataError(f"{name}: its tensors hold {size:,} bytes {what}; over the limit of {bytes_limit:,} "
                            f"(the largest: {largest[1]})")
        if operations > limits.MAX_ONNX_OPERATIONS:
            raise DataError(f"{name}: needs {operations:,} operations {what}; over the limit of "
                            f"{limits.MAX_ONNX_OPERATIONS:,}")
    return totals[1][0], totals[1][1]


def _strip(proto, name: Path, onnx) -> tuple[str | None, int]:
    """Make ``proto`` (checked, no longer needed as it was) say nothing about shapes but its input's: the
    file's own annotations could understate what a node makes. Initializers larger than
    ``SMALL_INITIALIZER`` become inputs of their shape (their values decide no shape, and inference copies
    what it is given). The batch symbol (named, should the file leave it anonymous) and the initializers' bytes."""
    initializers = {tensor.name for tensor in proto.graph.initializer}
    pixels = next(value for value in proto.graph.input if value.name not in initializers)  # the one, checked
    first = pixels.type.tensor_type.shape.dim[0]
    if not first.HasField("dim_value") and not first.dim_param:
        first.dim_param = "batch"
    proto.graph.ClearField("value_info")
    for output in proto.graph.output:
        output.type.tensor_type.ClearField("shape")
    constant_bytes, inputs, kept = 0, {value.name for value in proto.graph.input}, []
    for tensor in proto.graph.initializer:
        elements = math.prod(max(dim, 0) for dim in tensor.dims)
        constant_bytes += elements * _itemsize(tensor.data_type, name, f"initializer {tensor.name!r}", onnx)
        if elements <= SMALL_INITIALIZER:
            kept.append(tensor)
        elif tensor.name not in inputs:
            proto.graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims))
    proto.graph.ClearField("initializer")
    proto.graph.initializer.extend(kept)
    return (None if first.HasField("dim_value") else first.dim_param), constant_bytes


def _shapes(proto, batch: str | None, name: Path, onnx) -> dict:
    """Every value's type by ONNX's shape inference (strict, with data propagation). ONNX cannot size a
    Reshape's -1 against a symbolic batch ((batch, 28, 28) to [-1, 784], as converters write a flatten):
    such a dimension is worked out from the element count, which a Reshape keeps, and inference runs again."""
    for _ in range(MAX_INFERENCE_ROUNDS):
        try:
            inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
        except Exception as error:  # noqa: BLE001  InferenceError, ValidationError, …
            raise DataError(f"{name}: its tensors' shapes cannot be inferred ({str(error).splitlines()[0]})") from None
        types = {value.name: value.type for value in (*inferred.graph.input, *inferred.graph.value_info,
                                                       *inferred.graph.output)}
        types |= {tensor.name: onnx.helper.make_tensor_type_proto(tensor.data_type, tensor.dims)
                  for tensor in inferred.graph.initializer}
        solved = [_solve_reshape(node, types, batch, onnx) for node in inferred.graph.node if node.op_type == "Reshape"]
        solved = [value for value in solved if value is not None]
        if not solved:
            return types
        proto.graph.value_info.extend(solved)
    return types


def _solve_reshape(node, types: dict, batch: str | None, onnx):
    """The output of a Reshape with one unknown dimension, sized from its input's element count; else None."""
    source, target = _elements(types.get(node.input[0]), batch), types.get(node.output[0])
    if batch is None or source is None or target is None or not target.tensor_type.HasField("shape"):
        return None
    dims = list(target.tensor_type.shape.dim)
    unknown = [index for index, dim in enumerate(dims) if not dim.HasField("dim_value") and dim.dim_param != batch]
    known = math.prod(dim.dim_value for dim in dims if dim.HasField("dim_value"))
    power = source[1] - sum(dim.dim_param == batch for dim in dims)
    if len(unknown) != 1 or known == 0 or source[0] % known or power not in (0, 1) or (power and source[0] != known):
        return None
    shape = [dim.dim_value if dim.HasField("dim_value") else dim.dim_param for dim in dims]
    shape[unknown[0]] = batch if power else source[0] // known
    return onnx.helper.make_tensor_value_info(node.output[0], target.tensor_type.elem_type, shape)


def _elements(value_type, batch: str | None) -> tuple[int, int] | None:
    """(elements, how many dimensions are the batch) of a tensor; None unless every dimension is known."""
    if value_type is None or not value_type.HasField("tensor_type") or not value_type.tensor_type.HasField("shape"):
        return None
    elements, power = 1, 0
    for dim in value_type.tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            elements *= dim.dim_value
        elif batch is not None and dim.dim_param == batch:
            power += 1
        else:
            return None
    return elements, power


def _size(value_type, batch: str | None, name: Path, where: str, onnx) -> tuple[int, int, int]:
    """(elements, how many dimensions are the batch, bytes per element) of a tensor whose shape is known."""
    counted = _elements(value_type, batch)
    if counted is None:
        raise DataError(f"{name}: {where} makes a value whose shape is not known before it runs; refused (every "
                        "shape must follow from the input's)")
    return (*counted, _itemsize(value_type.tensor_type.elem_type, name, where, onnx))


def _itemsize(data_type: int, name: Path, where: str, onnx) -> int:
    try:
        if data_type not in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED):
            return onnx.helper.tensor_dtype_to_np_dtype(data_type).itemsize
    except (KeyError, ValueError, TypeError):
        pass
    raise DataError(f"{name}: {where} holds strings or values of unknown type ({data_type}); refused")


def _inner(value_type, node) -> tuple[int, int]:
    """The length summed over by a MatMul or Gemm (its first input's last, or transposed first, dimension)."""
    dims = list(value_type.tensor_type.shape.dim)
    transposed = node.op_type == "Gemm" and any(a.name == "transA" and a.i for a in node.attribute)
    dim = dims[0 if transposed else -1] if dims else None
    if dim is None:
        return 1, 0
    return (dim.dim_value, 0) if dim.HasField("dim_value") else (1, 1)


def _shape(value) -> tuple | None:
    """A graph value's shape with symbolic or unknown dimensions as "batch"/None; None if not a tensor."""
    return _dims(value.type)


def _dims(value_type) -> tuple | None:
    if value_type is None or not value_type.HasField("tensor_type") or not value_type.tensor_type.HasField("shape"):
        return None
    return tuple(dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None)
                 for dim in value_type.tensor_type.shape.dim)


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
