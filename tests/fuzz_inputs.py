"""A bounded fuzzer for what users hand to fmnist: mutated PNG, JPEG, .npy, IDX (raw and gzip), .keras and
.onnx files, and checkpoints.

Every mutated input must end as a prediction or an error row of ``fmnist predict`` (``images.read_inputs``
then ``predict.predict``), and every mutated ``.keras`` file (its bytes, or its zip headers: declared sizes
against the streams), ``.onnx`` graph (operators, shapes, attributes, initializers, side branches that
make large tensors or loop) and ``checkpoint.npz`` (its zip headers) as a loaded model (checkpoint) or a
``DataError``: anything else is a crash. It also feeds a few decompression bombs once. Run by
tests/guard/test_fuzz.py for a few seconds; run longer by hand for docs/benchmarks.md:

    .venv/bin/python tests/fuzz_inputs.py --seconds 600 --seed 1

It prints one JSON line: inputs tried, rows, predictions, error rows, crashes (with the first tracebacks),
and the process's peak memory (``VmHWM``).
"""

from __future__ import annotations

import argparse
import bz2
import copy
import gzip
import io
import json
import math
import os
import random
import resource
import struct
import sys
import tempfile
import time
import traceback
import zipfile
import zlib
from pathlib import Path

import numpy as np

ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0xFE)
BIG = (0, 1, 6000, 2**16 - 1, 2**31 - 1, 2**32 - 1)


class StubModel:
    """A fixed softmax classifier in NumPy: predict's bookkeeping without Keras's start-up."""

    def __init__(self):
        self.weights = np.random.default_rng(0).normal(size=(784, 10)) / 784

    def predict(self, images, batch_size=None, verbose=0):
        logits = np.asarray(images, np.float64).reshape(len(images), -1) @ self.weights
        logits -= logits.max(axis=1, keepdims=True)
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def interlaced_png(pixels: np.ndarray) -> bytes:
    """An Adam7-interlaced grey PNG (Pillow writes none)."""
    height, width = pixels.shape
    raw = b"".join(b"\x00" + row.tobytes() for x, y, dx, dy in ADAM7
                   for row in pixels[y::dy, x::dx] if pixels[y::dy, x::dx].shape[1])
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 1))
            + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))


def flat_png(width: int, height: int, colour: int = 0) -> bytes:
    """A complete PNG of one colour: deflate's best ratio, about 1000:1 (a decompression bomb)."""
    row = b"\x00" + bytes(width * {0: 1, 2: 3, 6: 4}[colour])
    per_chunk = max(1, 2**20 // len(row))  # about 1 MB of rows at a time: the bomb is never held inflated
    compressor, parts = zlib.compressobj(9), []
    for start in range(0, height, per_chunk):
        parts.append(compressor.compress(row * min(per_chunk, height - start)))
    parts.append(compressor.flush())
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
            + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b""))


def seeds() -> dict[str, bytes]:
    """Small valid inputs of every kind, the material the mutations start from."""
    from PIL import Image

    rng = np.random.default_rng(0)
    item = np.zeros((28, 28), np.uint8)
    item[6:22, 9:19] = rng.integers(150, 255, (16, 10))
    photo = np.full((64, 48, 3), 235, np.uint8)
    photo[10:54, 12:36] = rng.integers(0, 90, (44, 24, 3))
    found = {}

    def save(name, image, **options):
        buffer = io.BytesIO()
        image.save(buffer, **options)
        found[name] = buffer.getvalue()

    save("grey.png", Image.fromarray(item), format="PNG")
    save("rgb.png", Image.fromarray(photo), format="PNG")
    save("rgba.png", Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)])), format="PNG")
    save("palette.png", Image.fromarray(photo).convert("P"), format="PNG", transparency=0)
    save("sixteen.png", Image.fromarray(item.astype(np.uint16) * 257), format="PNG")
    save("bits.png", Image.fromarray(item > 100), format="PNG")
    found["interlaced.png"] = interlaced_png(item)
    save("base.jpg", Image.fromarray(photo), format="JPEG", quality=90)
    save("progressive.jpg", Image.fromarray(photo), format="JPEG", quality=80, progressive=True)
    save("restart.jpg", Image.fromarray(photo), format="JPEG", restart_marker_blocks=1)
    exif = Image.Exif()
    exif[0x0112] = 6
    save("exif.jpg", Image.fromarray(item), format="JPEG", exif=exif)
    for name, array in (("many.npy", np.stack([item] * 3)), ("float.npy", item.astype(np.float64)),
                        ("fortran.npy", np.asfortranarray(item)), ("big-endian.npy", item.astype(">u2"))):
        buffer = io.BytesIO()
        np.save(buffer, array)
        found[name] = buffer.getvalue()
    idx = (0x803).to_bytes(4, "big") + (3).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + np.stack([item] * 3).tobytes()
    found["raw-idx3-ubyte"] = idx
    found["gz-idx3-ubyte.gz"] = gzip.compress(idx)
    return found


def mutate(payload: bytes, rng: random.Random) -> bytes:
    data = bytearray(payload)
    kind = rng.randrange(8)
    if kind == 0:  # flip bits
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # interesting bytes
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.choice(INTERESTING)
    elif kind == 2:  # truncate
        del data[rng.randint(1, len(data) - 1):]
    elif kind == 3:  # truncate inside, keep the end (an IEND or EOI after too little data)
        cut = rng.randint(1, max(1, len(data) - 13))
        data = data[:cut] + data[-12:]
    elif kind == 4:  # a header field claims something else
        at = rng.randrange(min(len(data), 96))
        data[at: at + 4] = rng.choice(BIG).to_bytes(4, rng.choice(("big", "little")))
    elif kind == 5:  # duplicate a slice
        start = rng.randrange(len(data))
        data[start:start] = data[start: start + rng.randint(1, 256)]
    elif kind == 6:  # delete a slice
        start = rng.randrange(len(data))
        del data[start: start + rng.randint(1, 64)]
    else:  # insert random bytes
        start = rng.randrange(len(data))
        data[start:start] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    return bytes(data)


class Tally:
    def __init__(self):
        self.inputs = self.rows = self.predictions = self.errors = self.crashes = 0
        self.models = self.models_loaded = self.models_refused = 0
        self.onnx = self.onnx_loaded = self.onnx_refused = 0
        self.checkpoints = self.checkpoints_loaded = self.checkpoints_refused = 0
        self.zip_headers = 0  # .keras and checkpoint files whose zip directory disagrees with a stream
        self.first_crashes: list[str] = []

    def tried(self) -> int:
        return self.inputs + self.models + self.onnx + self.checkpoints

    def crash(self, label: str) -> None:
        self.crashes += 1
        if len(self.first_crashes) < 5:
            self.first_crashes.append(f"{label}: {traceback.format_exc(limit=3)}")


def predict_one(path: Path, model, tally: Tally, label: str) -> None:
    from fmnist.inference.predict import predict
    from fmnist.inputs.read import read_inputs

    tally.inputs += 1
    try:
        results = predict(model, read_inputs([str(path)]))
    except Exception:  # noqa: BLE001  a crash is what the fuzzer looks for
        tally.crash(label)
        return
    if not results:
        tally.crash(f"{label}: no row")
    tally.rows += len(results)
    tally.errors += sum(result["error"] is not None for result in results)
    tally.predictions += sum(result["error"] is None for result in results)


def load_one(path: Path, tally: Tally, label: str, load: bool, kind: str = "models") -> None:
    """``load``: through Keras (``load_model``); else only fmnist's own checks of the archive (``model_path``),
    all that runs before Keras would see the file (Keras's own failures are caught as a whole). ``kind``
    "onnx": ``load_model`` (the checks, onnxruntime, the probe); "checkpoints": ``safe_files.check_npz``."""
    from fmnist.errors import DataError
    from fmnist.guard import limits, safe_files
    from fmnist.inference.load import load_model, model_path

    setattr(tally, kind, getattr(tally, kind) + 1)
    try:
        if kind == "checkpoints":
            safe_files.check_npz(path, limits.MAX_MODEL_WEIGHTS_BYTES)
        elif load or kind == "onnx":
            model = load_model(path)
            assert np.asarray(model.predict(np.zeros((2, 28, 28), np.uint8), verbose=0)).shape == (2, 10)
        else:
            model_path(path)
        setattr(tally, f"{kind}_loaded", getattr(tally, f"{kind}_loaded") + 1)
    except DataError as error:
        assert "\n" not in str(error) and str(error).startswith(f"{path}: "), str(error)
        setattr(tally, f"{kind}_refused", getattr(tally, f"{kind}_refused") + 1)
    except Exception:  # noqa: BLE001
        tally.crash(label)


def keras_seed() -> bytes:
    """A .keras archive as Keras 3 writes it (Input, Rescaling, Flatten, Dense softmax), made without Keras."""
    import h5py

    def layer(kind, **config):
        return {"module": "keras.layers", "class_name": kind, "config": {"name": kind.lower(), **config},
                "registered_name": None}

    layers = [layer("InputLayer", batch_shape=[None, 28, 28], dtype="uint8"),
              layer("Rescaling", scale=1 / 255, offset=0.0), layer("Flatten"),
              layer("Dense", units=10, activation="softmax", use_bias=True)]
    layers[-1]["build_config"] = {"input_shape": [None, 784]}
    config = {"module": "keras", "class_name": "Sequential", "config": {"name": "seed", "layers": layers},
              "registered_name": None}
    weights = io.BytesIO()
    with h5py.File(weights, "w") as store:
        for name in ("rescaling", "flatten"):
            store.create_group(f"layers/{name}/vars")
        store.create_dataset("layers/dense/vars/0", data=np.random.default_rng(1).normal(size=(784, 10)).astype("f4"))
        store.create_dataset("layers/dense/vars/1", data=np.zeros(10, "f4"))
        store.create_group("vars")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as files:
        files.writestr("metadata.json", json.dumps({"keras_version": "3.15.1", "date_saved": "2026-01-01@00:00:00"}))
        files.writestr("config.json", json.dumps(config))
        files.writestr("model.weights.h5", weights.getvalue())
    return archive.getvalue()


# -- zip headers: what the directory declares against what the streams hold --------------------------


def raw_zip(entries, zip64_entries: int | None = None) -> bytes:
    """A zip written field by field, so that its directory can say what its streams are not. ``entries``:
    (name, method, stream, declared size, declared CRC[, declared compressed size]); method 0 stored,
    8 deflated, 12 bzip2. ``zip64_entries``: a zip64 end record claiming that many members."""
    out, central = bytearray(), bytearray()
    for name, method, stream, size, crc, *compressed in entries:
        offset, encoded = len(out), name.encode()
        fields = (method, 0, 0x21, crc & 0xFFFFFFFF, (compressed or [len(stream)])[0], size, len(encoded))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, *fields, 0) + encoded + stream
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, *fields, 0, 0, 0, 0, 0, offset) + encoded
    end = len(out) + len(central)
    if zip64_entries is not None:
        central += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, zip64_entries, zip64_entries,
                               len(central), len(out))
        central += struct.pack("<IIQI", 0x07064B50, 0, end, 1)
    return bytes(out + central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries),
                                             end - len(out), len(out), 0))


def deflated(data: bytes, tail: bytes = b"") -> bytes:
    """A raw deflate stream of ``data``, going on with ``tail`` (a finished raw deflate stream, such as
    ``deflated_run``'s) without a break: an inflater reads both as one stream."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    if not tail:
        return compressor.compress(data) + compressor.flush()
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH) + tail


def deflated_run(byte: bytes, size: int) -> bytes:
    """``size`` copies of ``byte`` as a finished raw deflate stream (about 1 kB per MiB), made 1 MiB at a time."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = byte * 2**20
    parts = [compressor.compress(block[: min(2**20, size - start)]) for start in range(0, size, 2**20)]
    return b"".join(parts) + compressor.flush()


def mutate_zip(members: dict[str, bytes], rng: random.Random, tails: list[bytes]) -> bytes:
    """``members`` as a zip whose directory and streams disagree for one member, one way of many."""
    entries = [[name, 0, data, len(data), zlib.crc32(data)] for name, data in members.items()]
    entry = rng.choice(entries)
    data = entry[2]
    kind = rng.randrange(9)
    entry[1:3] = 8, deflated(data)
    if kind == 0:  # declares its true size and checksum, but the stream goes on (spaces, zeros)
        entry[2] = deflated(data, rng.choice(tails))
    elif kind == 1:  # bytes after the deflate stream's end, inside the declared compressed size
        entry[2] += bytes(rng.randint(1, 64))
    elif kind == 2:  # the stream cut short
        entry[2] = entry[2][: rng.randrange(len(entry[2]))]
    elif kind == 3:  # another size declared
        entry[3] = rng.choice((0, max(0, len(data) - 1), len(data) + 1, 2 * len(data), 2**31 - 1, 2**32 - 1))
    elif kind == 4:  # another checksum
        entry[4] ^= 1 << rng.randrange(32)
    elif kind == 5:  # bzip2 (zipfile inflates it without a bound per read)
        entry[1:3] = 12, bz2.compress(data + bytes(rng.choice((0, 2**20))))
    elif kind == 6:  # stored, with more bytes than declared
        entry[1:3] = 0, data + bytes(rng.randint(1, 4096))
    elif kind == 7:  # another compressed size declared
        entry.append(max(0, len(entry[2]) + rng.choice((-100, -1, 1, 100, 2**20))))
    else:  # a zip64 end record claiming many members
        return raw_zip(entries, zip64_entries=rng.choice((len(entries), 10**6, 2**40)))
    return raw_zip(entries)


def npz_seed() -> dict[str, bytes]:
    """The members of a small checkpoint.npz as ``np.savez`` writes them."""
    arrays = {"meta": np.array(json.dumps({"epoch": 1, "history": [], "run_id": "fuzz"})),
              "trainable_0": np.random.default_rng(2).normal(size=(784, 10)).astype("f4"),
              "trainable_1": np.zeros(10, "f4"), "optimizer_0": np.array(3, "i8")}
    members = {}
    for name, array in arrays.items():
        buffer = io.BytesIO()
        np.save(buffer, array)
        members[f"{name}.npy"] = buffer.getvalue()
    return members


# -- ONNX graphs: operators, shapes, attributes, and side branches that make large tensors or loop -----

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


def bombs(folder: Path, model, tally: Tally, every: bool = True) -> None:
    """Decompression bombs and lying headers, each once: what peak memory is about. The costliest is the
    40-megapixel RGBA picture; ``every``: the others too."""
    cases = {"bomb-rgba.png": flat_png(6324, 6324, 6)}  # 40 megapixels in 155 kB
    if not every:
        (folder / "bomb-rgba.png").write_bytes(cases["bomb-rgba.png"])
        predict_one(folder / "bomb-rgba.png", model, tally, "bomb-rgba.png")
        return
    cases["bomb-tall.png"] = flat_png(1, 16_700_000)  # 1 x 16.7 M pixels
    cases["liar.png"] = flat_png(16_700_000, 1)[:70]  # 70 bytes that claim 16.7 M pixels
    header = b"{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000, 28, 28), }"
    cases["liar.npy"] = b"\x93NUMPY\x01\x00" + (len(header) + 1).to_bytes(2, "little") + header + b"\n" + bytes(1000)
    for name, payload in cases.items():
        (folder / name).write_bytes(payload)
        predict_one(folder / name, model, tally, name)
    sparse = folder / "sparse-idx3-ubyte"
    with open(sparse, "wb") as handle:  # 1.4 GB as its size says, 16 bytes on disk
        handle.write((0x803).to_bytes(4, "big") + (1_800_000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
        handle.truncate(16 + 1_800_000 * 784)
    predict_one(sparse, model, tally, "sparse IDX")


def run(seconds: float, seed: int, keras_share: float = 0.1, keras_load: bool = False, every_bomb: bool = True,
        count: int | None = None, onnx_share: float = 0.1) -> dict:
    """Fuzz for ``seconds`` (after the bombs and the seeds are made) or ``count`` inputs, whichever comes
    first; the summary as a dict. A fixed seed and count try the same inputs on any machine. Of the model
    files (``keras_share``), half are .keras bytes mutated, a quarter .keras zip headers, a quarter
    checkpoint zip headers; ``onnx_share`` are ONNX graphs mutated."""
    rng = random.Random(seed)
    model, tally = StubModel(), Tally()
    with tempfile.TemporaryDirectory(prefix="fmnist-fuzz-") as temporary:
        folder = Path(temporary)
        corpus = seeds()
        bombs(folder, model, tally, every_bomb)
        keras_bytes = keras_seed()
        (folder / "seed.keras").write_bytes(keras_bytes)
        load_one(folder / "seed.keras", tally, "the seed", keras_load)  # it loads: mutations start from a model
        with zipfile.ZipFile(io.BytesIO(keras_bytes)) as archive:
            keras_members = {name: archive.read(name) for name in archive.namelist()}
        npz_members = npz_seed()
        (folder / "seed.npz").write_bytes(raw_zip([[name, 0, data, len(data), zlib.crc32(data)]
                                                   for name, data in npz_members.items()]))
        load_one(folder / "seed.npz", tally, "the checkpoint seed", False, "checkpoints")
        graph = onnx_seed()
        (folder / "seed.onnx").write_bytes(graph.SerializeToString())
        load_one(folder / "seed.onnx", tally, "the ONNX seed", True, "onnx")
        tails = [deflated_run(b" ", 2**20), deflated_run(b"\0", 64 * 2**20)]  # 1 MiB of spaces, 64 MiB of zeros
        names = sorted(corpus)
        started = time.monotonic()
        while time.monotonic() - started < seconds and (count is None or tally.tried() < count):
            draw = rng.random()
            if draw < keras_share:
                part = rng.random()
                if part < 0.5:
                    path, kind, payload = folder / "mutated.keras", "models", mutate(keras_bytes, rng)
                else:
                    kind = "models" if part < 0.75 else "checkpoints"
                    path = folder / ("headers.keras" if kind == "models" else "headers.npz")
                    payload = mutate_zip(keras_members if kind == "models" else npz_members, rng, tails)
                    tally.zip_headers += 1
                path.write_bytes(payload)
                load_one(path, tally, f"{kind} {path.name}", keras_load, kind)
                continue
            if draw < keras_share + onnx_share:
                path = folder / "mutated.onnx"
                path.write_bytes(mutate_onnx(graph, rng))
                load_one(path, tally, "onnx", True, "onnx")
                continue
            name = rng.choice(names)
            path = folder / f"m-{name}"
            path.write_bytes(mutate(corpus[name], rng))
            predict_one(path, model, tally, name)
    summary = {key: value for key, value in vars(tally).items()}
    summary |= {"seconds": round(time.monotonic() - started, 1), "seed": seed, "peak_rss_mb": peak_mb()}
    return summary


def peak_mb() -> int:
    """This process's peak resident memory. Linux's VmHWM belongs to the process image; ru_maxrss also
    counts the parent's memory at fork (kept across exec), which is pytest's when a test starts us."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--inputs", type=int, help="stop after this many inputs (the same ones for a given --seed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keras-share", type=float, default=0.1,
                        help="share of the inputs that are .keras files and checkpoints")
    parser.add_argument("--onnx-share", type=float, default=0.1, help="share of the inputs that are ONNX graphs")
    parser.add_argument("--keras-load", action="store_true",
                        help="load the .keras files that pass fmnist's checks with Keras too (imports Keras; slower)")
    parser.add_argument("--one-bomb", action="store_true", help="only the costliest decompression bomb")
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    summary = run(args.seconds, args.seed, args.keras_share, args.keras_load, not args.one_bomb, args.inputs,
                  args.onnx_share)
    print(json.dumps(summary))
    return 1 if summary["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
