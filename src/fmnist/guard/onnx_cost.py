"""The cost of an ONNX graph, bounded before onnxruntime runs it (``check_cost``, the last step of
``onnx_files.check_onnx``, which has checked the file, its operators and its signature first).

Every tensor's shape must follow from the input's by ONNX's static shape inference (with data
propagation, the file's own shape annotations dropped, as they could understate what a node makes): no
dimension unknown, none but the batch symbolic, none growing with the square of the batch. From those
shapes the bytes and operations per image, and those of the part that does not depend on the images,
are summed and bounded (``limits``). fmnist's own exports (all six normalizations) cost at most 20.7 kB
and 0.28 M operations per image; an allowed Expand of a constant to 10^9 values (4 GB; the fuzzer's side
branch on its 100 kB seed graph) is refused here in 11 ms, never run.
"""

from __future__ import annotations

import math
from pathlib import Path

from fmnist.errors import DataError
from fmnist.guard import limits
from fmnist.guard.limits import (
    MAX_MODEL_BYTES as MAX_BYTES,  # the tutorial's model is 1.1 MB
)

SMALL_INITIALIZER = 64  # elements: initializers up to this size keep their values for data propagation
MAX_INFERENCE_ROUNDS = 8  # shape inference again after sizing Reshape outputs (one round per chained Reshape)


def check_cost(proto, name: Path, onnx) -> tuple[int, int]:
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
            filters = (shape_of(types.get(node.input[1])) or (1,))[0]
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
    output = shape_of(types.get(proto.graph.output[0].name))
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


def shape_of(value_type) -> tuple | None:
    """A tensor type's dimensions, a symbolic one as its name, an unknown one as None; None if it is not a
    tensor with a shape."""
    if value_type is None or not value_type.HasField("tensor_type") or not value_type.tensor_type.HasField("shape"):
        return None
    return tuple(dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None)
                 for dim in value_type.tensor_type.shape.dim)
