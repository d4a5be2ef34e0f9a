"""ONNX graphs for the ``inputs`` surface and the guard's tests: a hand-made seed like fmnist's exports, and
its mutations (an operator, an attribute, an initializer, the input's or output's shape, a node rewired
or dropped, its serialized bytes) and side branches that make large tensors or loop (the costs
``fmnist.guard.onnx_cost`` bounds: 31 kB of graph can ask onnxruntime for 3 GB). onnx is imported inside
the functions, as the fuzzer's other surfaces do not need it.
"""

from __future__ import annotations

import copy
import math
import random

import numpy as np

from fuzz.mutations import mutate

# Operators a mutation may put in a node's place: allowed ones and ones fmnist refuses.
OPERATOR_POOL = ("Add", "Cast", "Concat", "Div", "Expand", "Gather", "MatMul", "Mul", "ReduceSum", "Relu",
                 "Reshape", "Shape", "Softmax", "Sub", "Unsqueeze", "Identity", "Transpose", "Gemm", "Flatten",
                 "Neg", "Squeeze", "Loop", "Scan", "If", "ConstantOfShape", "Tile", "Range", "Pad", "Resize",
                 "OneHot", "NonZero", "Unique", "TopK", "RandomNormal", "StringNormalizer")
ATTRIBUTES = ("axis", "to", "keepdims", "transA", "transB", "allowzero", "perm", "axes", "noop_with_empty_axes")


def onnx_seed(hidden: int = 32):
    """A hand-made graph like fmnist's exports: cast, standardize, flatten to a shape computed from the
    input's, two dense layers, softmax. Pixels (batch, 28, 28) uint8 in, probabilities (batch, 10) out."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    constants = {"mean": np.float32(72.9), "std": np.float32(90.0), "zero_index": np.array(0, np.int64),
                 "minus_one": np.array([-1], np.int64), "axis0": np.array([0], np.int64),
                 "W1": (rng.normal(size=(784, hidden)) / 28).astype("f4"), "b1": np.zeros(hidden, "f4"),
                 "W2": (rng.normal(size=(hidden, 10)) / 6).astype("f4"), "b2": np.zeros(10, "f4")}
    node = helper.make_node
    nodes = [node("Cast", ["pixels"], ["x"], to=TensorProto.FLOAT), node("Sub", ["x", "mean"], ["centred"]),
             node("Div", ["centred", "std"], ["scaled"]), node("Shape", ["scaled"], ["shape"]),
             node("Gather", ["shape", "zero_index"], ["batch"], axis=0),
             node("Unsqueeze", ["batch", "axis0"], ["batch1"]),
             node("Concat", ["batch1", "minus_one"], ["flat_shape"], axis=0),
             node("Reshape", ["scaled", "flat_shape"], ["flat"]), node("MatMul", ["flat", "W1"], ["h"]),
             node("Add", ["h", "b1"], ["h1"]), node("Relu", ["h1"], ["h2"]), node("MatMul", ["h2", "W2"], ["l"]),
             node("Add", ["l", "b2"], ["logits"]), node("Softmax", ["logits"], ["probabilities"], axis=-1)]
    graph = helper.make_graph(
        nodes, "seed", [helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["batch", 28, 28])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        initializer=[numpy_helper.from_array(np.asarray(value), name) for name, value in constants.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def with_side(model, nodes, initializers=(), side: str = "side"):
    """``model`` with ``nodes`` computing ``side`` (any shape) before its Softmax, whose input becomes
    logits + 0 * sum(side): the graph still classifies, and onnxruntime must compute ``side`` to say so."""
    from onnx import helper, numpy_helper

    model = copy.deepcopy(model)
    graph = model.graph
    softmax = [node for node in graph.node if node.op_type == "Softmax"][-1]
    logits = softmax.input[0]
    graph.initializer.extend([numpy_helper.from_array(np.asarray(value), name) for name, value in initializers]
                             + [numpy_helper.from_array(np.float32(0), "side_zero")])
    added = [*nodes, helper.make_node("ReduceSum", [side], ["side_sum"], keepdims=0),
             helper.make_node("Mul", ["side_sum", "side_zero"], ["side_nothing"]),
             helper.make_node("Add", [logits, "side_nothing"], ["side_logits"])]
    at = list(graph.node).index(softmax)
    for offset, node in enumerate(added):
        graph.node.insert(at + offset, node)
    softmax.input[0] = "side_logits"
    return model


def side_branch(kind: str, size: int):
    """(nodes, initializers) computing "side", a tensor of about ``size`` values (or ``size`` loop trips)."""
    from onnx import TensorProto, helper, numpy_helper

    node, one = helper.make_node, ("one", np.ones(1, "f4"))
    shape = ("side_shape", np.array([size], np.int64))
    if kind == "ConstantOfShape":
        ones = numpy_helper.from_array(np.ones(1, "f4"))
        return [node("ConstantOfShape", ["side_shape"], ["side"], value=ones)], [shape]
    if kind == "Expand":  # the allowed operator, to a constant shape
        return [node("Expand", ["one", "side_shape"], ["side"])], [one, shape]
    if kind == "Tile":
        return [node("Tile", ["one", "side_shape"], ["side"])], [one, shape]
    if kind == "Range":
        return [node("Range", ["start", "limit", "delta"], ["side"])], [
            ("start", np.float32(0)), ("limit", np.float32(size)), ("delta", np.float32(1))]
    if kind == "Loop":  # ``size`` trips of a body that adds one
        body = helper.make_graph(
            [node("Identity", ["condition_in"], ["condition_out"]),
             node("Add", ["value_in", "body_one"], ["value_out"])],
            "body", [helper.make_tensor_value_info("trip", TensorProto.INT64, []),
                     helper.make_tensor_value_info("condition_in", TensorProto.BOOL, []),
                     helper.make_tensor_value_info("value_in", TensorProto.FLOAT, [])],
            [helper.make_tensor_value_info("condition_out", TensorProto.BOOL, []),
             helper.make_tensor_value_info("value_out", TensorProto.FLOAT, [])],
            initializer=[numpy_helper.from_array(np.float32(1), "body_one")])
        return [node("Loop", ["trips", "true", "start"], ["side"], body=body)], [
            ("trips", np.array(size, np.int64)), ("true", np.array(True)), ("start", np.float32(0))]
    if kind == "batch Expand":  # (batch, size): grows with the batch, ``size`` values per image
        return [node("Shape", ["pixels"], ["side_pixels_shape"]),
                node("Gather", ["side_pixels_shape", "side_index"], ["side_batch"], axis=0),
                node("Concat", ["side_batch", "side_shape"], ["side_target"], axis=0),
                node("Expand", ["one", "side_target"], ["side"])], [one, shape, ("side_index", np.array([0], np.int64))]
    if kind == "pixel-valued shape":  # a shape computed from the pixels' values: unknown until it runs
        return [node("ReduceMax", ["pixels"], ["side_max"], keepdims=1),
                node("Cast", ["side_max"], ["side_count"], to=TensorProto.INT64),
                node("Reshape", ["side_count", "side_flat"], ["side_dims"]),
                node("Expand", ["one", "side_dims"], ["side"])], [one, ("side_flat", np.array([1], np.int64))]
    if kind == "batch squared":  # (batch, batch)
        return [node("Cast", ["pixels"], ["side_x"], to=TensorProto.FLOAT),
                node("Flatten", ["side_x"], ["side_flat"], axis=1),
                node("Transpose", ["side_flat"], ["side_t"]), node("MatMul", ["side_flat", "side_t"], ["side"])], []
    if kind == "MatMul chain":  # ``size`` multiplications by one 1024 x 1024 matrix, once per run
        weights = np.full((1024, 1024), 1e-3, "f4")
        chain = [node("MatMul", ["side_in" if step == 0 else f"side_{step}", "side_weights"],
                      ["side" if step == size - 1 else f"side_{step + 1}"]) for step in range(size)]
        return chain, [("side_in", np.ones((1, 1024), "f4")), ("side_weights", weights)]
    raise ValueError(f"unknown side branch {kind!r}")


SIDE_KINDS = ("ConstantOfShape", "Expand", "Tile", "Range", "Loop", "batch Expand", "pixel-valued shape",
              "batch squared", "MatMul chain")


def mutate_onnx(seed, rng: random.Random) -> bytes:
    """The seed graph changed one way: an operator, an attribute, an initializer, the input's or output's
    shape, a side branch, an input rewired, a node dropped, or its serialized bytes."""
    from onnx import helper

    model = copy.deepcopy(seed)
    graph = model.graph
    node = rng.choice(graph.node)
    kind = rng.randrange(8)
    if kind == 0:
        node.op_type = rng.choice(OPERATOR_POOL)
    elif kind == 1:
        name = rng.choice(ATTRIBUTES)
        value = rng.choice((-(2**62), -3, -1, 0, 1, 2, 3, 7, 16, 2**31, 10**12))
        kept = [attribute for attribute in node.attribute if attribute.name != name]
        del node.attribute[:]
        node.attribute.extend(kept + [helper.make_attribute(name, [value, 0] if name in ("perm", "axes") else value)])
    elif kind == 2:
        tensor = rng.choice(graph.initializer)
        if tensor.data_type == 7 and rng.random() < 0.7:  # int64: the shapes and indices
            values = [rng.choice((-(2**62), -2, -1, 0, 1, 28, 784, 10**6, 10**9, 2**62))
                      for _ in range(math.prod(tensor.dims))]
            tensor.CopyFrom(helper.make_tensor(tensor.name, 7, list(tensor.dims), values))
        else:
            del tensor.dims[:]
            tensor.dims.extend(rng.choice(([10**9], [784, 10**6], [0], [3, 3], [2**31, 2**31])))
    elif kind == 3:
        value = rng.choice((graph.input[0], graph.output[0]))
        dims = value.type.tensor_type.shape.dim
        dim = dims[rng.randrange(len(dims))]
        choice = rng.choice((0, 1, 27, 10**9, "n", None))
        dim.Clear()
        if isinstance(choice, int):
            dim.dim_value = choice
        elif choice:
            dim.dim_param = choice
    elif kind == 4:
        side = rng.choice(SIDE_KINDS)
        size = rng.choice((1, 10, 1024, 10**6, 10**9)) if side != "MatMul chain" else rng.choice((1, 4, 300))
        model = with_side(model, *side_branch(side, size))
    elif kind == 5 and node.input:
        names = [value.name for value in graph.input] + [tensor.name for tensor in graph.initializer]
        names += [name for other in graph.node for name in other.output]
        node.input[rng.randrange(len(node.input))] = rng.choice(names)
    elif kind == 6:
        graph.node.remove(node)
    else:
        return mutate(model.SerializeToString(), rng)
    return model.SerializeToString()
