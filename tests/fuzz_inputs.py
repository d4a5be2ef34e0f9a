"""A bounded fuzzer for what users hand to fmnist: mutated PNG, JPEG, .npy, IDX (raw and gzip), .keras and
.onnx files, and checkpoints; study and run folders; HTTP requests.

Every mutated input must end as a prediction or an error row of ``fmnist predict`` (``images.read_inputs``
then ``predict.predict``), and every mutated ``.keras`` file (its bytes, or its zip headers: declared sizes
against the streams), ``.onnx`` graph (operators, shapes, attributes, initializers, side branches that
make large tensors or loop) and ``checkpoint.npz`` (its zip headers) as a loaded model (checkpoint) or a
``DataError``: anything else is a crash. It also feeds a few decompression bombs once. ``--surface``
chooses other surfaces: ``studies`` (a small sweep's files changed one at a time, then ``fmnist report``
and ``fmnist sweep --resume``), ``reports`` (an evaluated run's files, then ``fmnist report``) and
``http`` (requests to ``fmnist serve``); each function's docstring says what counts as a crash there.
Run by tests/guard/test_fuzz.py for a few seconds; run longer by hand for docs/benchmarks.md:

    .venv/bin/python tests/fuzz_inputs.py --seconds 600 --seed 1
    .venv/bin/python tests/fuzz_inputs.py --surface studies --seconds 600 --seed 1

It prints one JSON line: inputs (cases) tried, outcomes, crashes (with the first tracebacks), and the
process's peak memory (``VmHWM``).
"""

from __future__ import annotations

import argparse
import bz2
import contextlib
import copy
import csv
import dataclasses
import gzip
import http.client
import io
import json
import math
import os
import random
import resource
import shutil
import socket
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
    if len(payload) < 2:  # a request's body mutated twice may be this short
        return payload + bytes([rng.randrange(256)])
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


# -- study and run folders: one file changed, then `fmnist report` and `sweep --resume` on the folder ---

# Values a mutated JSON field or CSV cell takes: other types, paths, markup, NaN and infinity, huge numbers.
ODD_VALUES = (None, True, False, 0, -1, 1, 0.5, 2**31, 2**64, 10**400, 1e308, -1e308, math.nan, math.inf, -math.inf,
              "", "x", "nan", "1", "../x", "../../outside", "/etc/passwd", "a/b", "..", "<fz>", '"><fz a=1>', "\x00",
              "\u202e", [], {}, [None], {"": 0})
ODD_FIELDS = ("", "nan", "inf", "-inf", "1e999", "-1", "1e308", "0x10", " 1", "1_0", "x", "../x", "../../outside",
              "/etc/passwd", "<fz>", '"><fz a=1>', '"', "\n", "\x00", "\u202e", "True", "ok", "diverged")
MARKUP = "<fz"  # the mutations' markup: report.html must show it escaped, never as a tag
DEEP = "\x00deep\x00"  # a field to become 5,000 nested arrays once serialized
PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "main", "header", "h1", "h2", "h3", "p", "section",
             "div", "table", "thead", "tbody", "tr", "th", "td", "figure", "img", "figcaption", "details", "summary",
             "code", "strong", "small", "span", "ul", "li", "footer"}  # every tag reporting/ writes
PAGE_ATTRIBUTES = {"charset", "name", "content", "http-equiv", "lang", "class", "id", "scope", "src", "width", "height",
                   "alt"}
OUTSIDE_MARK = b"fz-outside-the-folder"  # in the pictures outside the folder that symlinks lead to


class Counts:
    """Outcomes by name, and crashes with the first of each kind (its last line) described, five kinds at most."""

    def __init__(self):
        self.outcomes: dict[str, int] = {}
        self.crashes = 0
        self.first_crashes: dict[str, str] = {}

    def add(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def crash(self, label: str, detail: str | None = None) -> None:
        self.crashes += 1
        detail = detail or traceback.format_exc(limit=-3)
        kind = detail.strip().splitlines()[-1][:200]
        if len(self.first_crashes) < 5 and kind not in self.first_crashes:
            self.first_crashes[kind] = f"{label}: {detail}"


def odd_value(rng: random.Random):
    draw = rng.random()
    if draw < 0.06:
        return "x" * rng.choice((1000, 2**17, 2**20))  # a huge field
    if draw < 0.09:
        return [0] * rng.choice((1000, 10**6))
    return DEEP if draw < 0.11 else rng.choice(ODD_VALUES)


def _slots(value, found: list) -> list:
    """Every (container, key) inside a JSON value."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in list(items):
        found.append((value, key))
        _slots(item, found)
    return found


def mutate_json(payload: bytes, rng: random.Random) -> bytes:
    """One field set to an odd value, removed, repeated, joined by an unknown one or its number scaled; or
    the text's bytes mutated."""
    try:
        value = json.loads(payload)
        slots = _slots(value, []) if isinstance(value, (dict, list)) else []
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's stack (DEEP, mutated again)
        slots = []
    kind = rng.randrange(6)
    if not slots or kind == 0:
        return mutate(payload, rng) if payload else b"{"
    container, key = rng.choice(slots)
    if kind == 1:
        del container[key]
    elif kind == 2 and isinstance(container, list):  # a row, member or program repeated
        container.insert(key, copy.deepcopy(container[key]))
    elif kind == 2:
        container[f"{key}x"] = odd_value(rng)  # an unknown field
    elif kind == 3 and isinstance(container[key], (int, float)):
        container[key] = container[key] * rng.choice((-1, 0, 10, 2**40)) + rng.choice((0, 1))
    else:
        container[key] = odd_value(rng)
    return json.dumps(value).replace(json.dumps(DEEP), "[" * 5000 + "]" * 5000).encode()


def mutate_csv(payload: bytes, rng: random.Random) -> bytes:
    """A cell set to odd text, a row repeated or removed, a column removed or renamed, a row with one field
    more or less, the rows shuffled or all but the header gone; or the bytes mutated."""
    rows = list(csv.reader(io.StringIO(payload.decode("utf-8", "replace"), newline="")))
    kind = rng.randrange(8)
    if len(rows) < 2 or not rows[0] or kind == 0:
        return mutate(payload, rng) if payload else b"x"
    line, column = rng.randrange(1, len(rows)), rng.randrange(len(rows[0]))
    if kind == 1:
        rows[line][column % len(rows[line])] = rng.choice(ODD_FIELDS + ("9" * 200_000,))  # over csv's field limit
    elif kind == 2:
        rows[line + 1: line + 1] = [list(rows[line])] * rng.choice((1, 1, 1000))
    elif kind == 3:
        del rows[line]
    elif kind == 4:
        for row in rows:
            del row[column: column + 1]
    elif kind == 5:
        rows[0][column] = rng.choice((rows[0][(column + 1) % len(rows[0])], "", "fz", rows[0][column].upper()))
    elif kind == 6:
        rows[line] = rows[line] + ["1"] if rng.random() < 0.5 else rows[line][:-1]
    else:
        rows[1:] = rng.sample(rows[1:], len(rows) - 1) if rng.random() < 0.5 else []
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def mutate_npz(payload: bytes, rng: random.Random) -> bytes:
    """A state file: its bytes, its zip headers, or one array cast, reshaped, given NaN or infinity,
    removed, or joined by another (a pickled object array among them)."""
    kind = rng.randrange(5)
    if kind == 0:
        return mutate(payload, rng)
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    if kind == 1:
        return mutate_zip(members, rng, [deflated_run(b" ", 2**20)])
    with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    name = rng.choice(sorted(arrays))
    array = arrays[name]
    if kind == 2:
        text = array.dtype.kind in "US"  # the study id and binding
        casts = ("U5", "S64", object) if text else ("f8", "f2", "i8", "u1", ">f4", "U5")
        arrays[name] = array.astype(rng.choice(casts))
    elif kind == 3 and array.dtype.kind == "f" and array.size:
        array = array.copy()
        array.reshape(-1)[rng.randrange(array.size)] = rng.choice((math.nan, math.inf, -math.inf, 3e38))
        arrays[name] = array
    elif kind == 3:
        flat = array.reshape(-1)
        arrays[name] = rng.choice((flat, flat[:-1], np.concatenate([flat, flat]), array[None]))
    elif rng.random() < 0.5:
        del arrays[name]
    else:
        arrays["fz"] = rng.choice((np.zeros(3, "f4"), np.array([{"a": 1}], dtype=object)))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def change_file(path: Path, rng: random.Random, outside: Path) -> str:
    """Change ``path`` one way; the way, in a word. A tenth of the changes are to the file itself: removed,
    emptied, a folder in its place, a link to a file outside the folder, or 2 GiB (sparse)."""
    if rng.random() < 0.1:
        way = rng.choice(("removed", "emptied", "a folder", "a link outside", "2 GiB"))
        target = outside / ("mark.png" if path.suffix == ".png" else f"copy{path.suffix}")
        if way == "a link outside" and path.suffix != ".png":
            target.write_bytes(path.read_bytes())  # another folder's file, as valid as this one
        path.unlink()
        if way == "emptied" or way == "2 GiB":
            with open(path, "wb") as handle:
                handle.truncate(2**31 if way == "2 GiB" else 0)
        elif way == "a folder":
            path.mkdir()
        elif way == "a link outside":
            path.symlink_to(target)
        return way
    change = {".json": mutate_json, ".csv": mutate_csv, ".npz": mutate_npz}.get(path.suffix, mutate)
    path.write_bytes(change(path.read_bytes(), rng))
    return "content"


def mark_png() -> bytes:
    """A valid PNG carrying OUTSIDE_MARK: embedded in a page, its base64 shows it came from outside."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("where", OUTSIDE_MARK.decode())
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def page_problems(path: Path) -> list[str]:
    """What a report page must not hold: a tag or attribute reporting/ never writes (markup from a file's
    field), a picture that is not embedded PNG data, or one from outside the folder."""
    import base64
    from html.parser import HTMLParser

    text = path.read_text(errors="replace")
    problems = [f"unescaped {MARKUP!r} in the page"] if MARKUP in text else []

    class Page(HTMLParser):
        def handle_starttag(self, tag, attributes):
            if tag not in PAGE_TAGS:
                problems.append(f"tag <{tag}>")
            for name, value in attributes:
                if name not in PAGE_ATTRIBUTES:
                    problems.append(f"attribute {name} of <{tag}>")
                elif name == "src" and not (value or "").startswith("data:image/png;base64,"):
                    problems.append(f"picture {str(value)[:80]!r} not embedded")
                elif name == "src" and OUTSIDE_MARK in base64.b64decode(value.partition(",")[2]):
                    problems.append("a picture from outside the folder")

    Page().feed(text)
    return problems


class Hang(Exception):
    """A command still running after its time limit."""


def attempt(command, counts: Counts, label: str, limit: float = 60) -> str:
    """Run ``command`` (stdout discarded) for at most ``limit`` seconds: "ok", "refused" (an FmnistError that
    the command line ends with exit 2 and one line) or "crash" (anything else, an exit 1 or a hang)."""
    import signal

    from fmnist.errors import FmnistError

    def hang(*_):
        raise Hang(f"still running after {limit:g} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            command()
        return "ok"
    except FmnistError as error:
        if error.exit_code == 2 and len(str(error)) < 4000:
            return "refused"
        counts.crash(label, f"{type(error).__name__}, exit {error.exit_code}: {str(error)[:300]}")
    except Exception:  # noqa: BLE001  Hang included: a crash is what the fuzzer looks for
        counts.crash(label)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return "crash"


def tiny_data(folder: Path) -> Path:
    """Learnable fake IDX files as the tests' conftest writes them: 200 training and 50 test images."""
    rng = np.random.default_rng(1)
    for prefix, count in (("train", 200), ("t10k", 50)):
        labels = rng.permutation(np.arange(count) % 10).astype(np.uint8)
        images = rng.integers(0, 60, size=(count, 28, 28))
        for index, label in enumerate(labels):
            images[index, 2 * label + 3: 2 * label + 7, 4:24] += 180
        images = images.clip(0, 255).astype(np.uint8)
        folder.mkdir(parents=True, exist_ok=True)
        header = (0x803).to_bytes(4, "big") + b"".join(int(size).to_bytes(4, "big") for size in images.shape)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))
        header = (0x801).to_bytes(4, "big") + count.to_bytes(4, "big")
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header + labels.tobytes()))
    return folder


def resume_study(folder: Path) -> None:
    """`fmnist sweep --resume FOLDER`, as the command line calls the library."""
    from fmnist.store.studies import read_study
    from fmnist.training.resume import resumed_study
    from fmnist.training.sweep import sweep

    sweep(resumed_study(folder, read_study(folder, "sweep"), {}), folder, resume=True, log=lambda *_: None)


def study_starts(root: Path, data: Path) -> list[Path]:
    """A sweep of two programs of one member each, two epochs: stopped after its first epoch (a progress
    file and a state), and the same finished with both models kept."""
    import signal

    from fmnist.config import SweepConfig
    from fmnist.errors import Interrupted
    from fmnist.training.sweep import sweep

    config = SweepConfig(methods=("none", "standard"), learning_rates=(0.01,), optimizers=("sgd",), seeds=1, epochs=2,
                         valid_size=50, extend_grid=0, save_models="all", members_per_program=1, data_dir=str(data),
                         verify=False)
    stopped, finished = root / "stopped", root / "finished"
    try:
        sweep(config, stopped, log=lambda *_: None, should_stop=lambda: signal.SIGINT)
    except Interrupted:
        pass
    shutil.copytree(stopped, finished, symlinks=True)
    resume_study(finished)
    return [stopped, finished]


def run_start(root: Path, data: Path) -> list[Path]:
    """`fmnist train` (two epochs) on the tiny data, then `fmnist evaluate`: every file the report reads."""
    from fmnist.cli import main

    run, options = root / "run", ["--data-dir", str(data), "--skip-checksum"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        codes = (main(["train", *options, "--valid-size", "50", "--epochs", "2", "--quiet", "--output-dir", str(run)]),
                 main(["evaluate", str(run), *options]))
    if codes != (0, 0):
        raise RuntimeError(f"the run to start from failed: {printed.getvalue()}")
    return [run]


def target(folder: Path, rng: random.Random) -> Path:
    """One of the files of ``folder`` that report and resume read: its JSON, tables and states three times
    as often as its pictures and models."""
    weights = {".json": 3, ".csv": 3, ".npz": 3, ".png": 1, ".keras": 1}
    files = sorted(path for path in folder.rglob("*") if path.is_file() and path.suffix in weights
                   and path.name != "checkpoint.npz")  # a run's checkpoint: train --resume reads it, not report
    return rng.choices(files, [weights[path.suffix] for path in files])[0]


def kind_of(relative: Path) -> str:
    """A file's name with the names of members and programs as words (its kind, for the tally)."""
    parts = list(relative.parts)
    if parts[0] == "programs":
        parts[1] = "PROGRAM"
    elif len(parts) > 1:
        parts[0] = "MEMBER"
    return "/".join(parts)


def snapshot(root: Path, skip: Path) -> dict:
    """Every path below ``root`` but ``skip`` with its size and time: a file written outside a case shows."""
    found = {}
    for path in root.rglob("*"):
        if path != skip and skip not in path.parents:
            info = path.lstat()
            found[str(path)] = (info.st_size, info.st_mtime_ns)
    return found


def fuzz_folders(surface: str, seconds: float, seed: int, count: int | None = None) -> dict:
    """``surface`` "studies": a stopped or finished small sweep, one file changed, then `fmnist report` and
    `fmnist sweep --resume` on it (in this process, the whole resume: training included); "reports": an
    evaluated run, one file changed, then `fmnist report`. Each command must end as success or a refusal
    in one line (exit 2), within its time limit, writing nothing outside the folder; each page written
    must show every field's markup escaped and embed no picture from outside the folder."""
    from fmnist.runtime import use_cpu_devices

    use_cpu_devices()  # as the command line does for a sweep, before JAX starts
    rng, counts, files, home = random.Random(seed), Counts(), {}, os.getcwd()
    set_up = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fmnist-fuzz-") as temporary:
        root = Path(temporary)
        for folder in ("outside", "cwd", "work"):
            (root / folder).mkdir()
        (root / "outside" / "mark.png").write_bytes(mark_png())
        os.chdir(root / "cwd")  # a file a command writes into the working folder shows in the snapshot
        try:
            starts = (study_starts if surface == "studies" else run_start)(root / "starts", tiny_data(root / "data"))
            started, cases = time.monotonic(), 0
            while time.monotonic() - started < seconds and (count is None or cases < count):
                cases += 1
                kind = folder_case(root, rng.choice(starts), surface, rng, counts, cases)
                files[kind] = files.get(kind, 0) + 1
        finally:
            os.chdir(home)
    return {"surface": surface, "cases": cases, "outcomes": counts.outcomes, "files": files, "crashes": counts.crashes,
            "first_crashes": counts.first_crashes, "set_up_seconds": round(started - set_up, 1),
            "seconds": round(time.monotonic() - started, 1), "seed": seed, "peak_rss_mb": peak_mb()}


def folder_case(root: Path, start: Path, surface: str, rng: random.Random, counts: Counts, number: int) -> str:
    """One case: a copy of ``start`` with one file changed, and the commands run on it; the file's kind."""
    from fmnist.reporting.report import write_report

    case = root / "work" / start.name
    shutil.copytree(start, case, symlinks=True)
    changed = target(case, rng)
    kind = kind_of(changed.relative_to(case))
    label = f"case {number}: {kind} of {start.name}, {change_file(changed, rng, root / 'outside')}"
    before = snapshot(root, case)
    commands = [("report", lambda: write_report(case))]
    if surface == "studies":
        commands.append(("resume", lambda: resume_study(case)))
    for name, command in commands:
        outcome = attempt(command, counts, f"{label}, {name}")
        counts.add(f"{name} {outcome}")
        problems = page_problems(case / "report.html") if outcome == "ok" else []
        if problems:
            counts.crash(f"{label}, {name}", "; ".join(problems[:3]))
    written = sorted(set(snapshot(root, case).items()) ^ set(before.items()))
    if written:
        counts.crash(label, f"wrote outside the folder: {written[:3]}")
    shutil.rmtree(case)
    return kind


# -- HTTP: the real server, requests mutated -----------------------------------------------------------

# What a mutated request's Content-Type, Content-Length, path, method, Host, version and added headers become.
ODD_CONTENT_TYPES = (None, "", "text/plain", "image/png", "image/jpeg", "application/json",
                     "application/json; charset=utf-16", "APPLICATION/JSON ;", "multipart/form-data",
                     "multipart/form-data; boundary=", "multipart/form-data; boundary=fz",
                     "application/x-www-form-urlencoded", "x" * 5000, "application/json\x7f")
ODD_LENGTHS = ("", "abc", "-1", "1e3", "0x10", " 5", "+5", "5, 5", "0", str(10**20), str(2**64), "9" * 40)
ODD_PATHS = ("/predict", "/predict/", "/PREDICT", "//predict", "/predict?invert=yes", "/predict?invert=bad",
             "/predict?fz=1", "/predict?pixels=1&conversion=simple", "/predict?invert=yes&invert=no",
             "/predict?%ff=%ff", "/%2e%2e/predict", "/../predict", "/predict%00", "/" + "a" * 10_000, "*",
             "http://fz.example/predict", "/predict#fz", "/health", "/", "/health?x=1", "", "predict", "/pr\x00edict")
ODD_METHODS = ("POST", "GET", "PUT", "HEAD", "OPTIONS", "DELETE", "FZ", "post", "")
ODD_HOSTS = (None, "", "fz.example", "a" * 5000, "127.0.0.1:99999", "[::1", "h\xe9", "two, hosts")
ODD_VERSIONS = ("HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9.9", "HTTP/1", "FZ")
ODD_HEADERS = ((b"Expect", b"100-continue"), (b"Connection", b"close"), (b"Connection", b"upgrade"),
               (b"Upgrade", b"websocket"), (b"X-Fz", b"x" * 20_000), (b"X-Fz", b"\x00"), (b"No colon", b""),
               (b"Transfer-Encoding", b"gzip, chunked"), (b"Transfer-Encoding", b"identity"), (b" X-Fz", b"folded"))


@dataclasses.dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list  # (name, value) bytes pairs; Content-Length is added on encoding unless ``length`` says
    body: bytes
    length: str | None = "auto"  # the Content-Length header: "auto" (the body's), None (none) or its text
    chunks: list | None = None  # a chunked body's raw chunks, when chunked

    def encode(self) -> bytes:
        headers = list(self.headers)
        if self.chunks is not None:
            headers.append((b"Transfer-Encoding", b"chunked"))
        if self.length is not None:
            length = str(len(self.body)) if self.length == "auto" else self.length
            headers.append((b"Content-Length", length.encode()))
        lines = [f"{self.method} {self.target} {self.version}".encode("latin-1", "replace")]
        lines += [name + b": " + value for name, value in headers]
        body = b"".join(self.chunks) if self.chunks is not None else self.body
        return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(body: bytes, rng: random.Random) -> list[bytes]:
    """``body`` as chunks of random sizes, with the last chunk; sometimes a chunk that lies or is missing."""
    sizes, at = [], 0
    while at < len(body):
        sizes.append(min(len(body) - at, rng.choice((1, 7, 100, 4096, 10**6))))
        at += sizes[-1]
    chunks, at = [], 0
    for size in sizes:
        chunks.append(f"{size:x}".encode() + b"\r\n" + body[at: at + size] + b"\r\n")
        at += size
    chunks.append(b"0\r\n\r\n")
    draw = rng.random()
    if draw < 0.1:
        chunks[0] = rng.choice((b"zz\r\n", b"-1\r\n", b"ffffffffffffffffff\r\n", b"1;ext=1\r\nx\r\n", b"\r\n"))
    elif draw < 0.15 and len(chunks) > 1:
        chunks.pop()  # no last chunk: the body never ends (408 after --timeout)
    return chunks


def request_starts() -> list[Request]:
    """Valid requests: a PNG and a JPEG body, one and three images as JSON, a multipart upload, /health, /."""
    pictures = seeds()
    item = np.zeros((28, 28), np.uint8)
    item[6:22, 9:19] = 200
    boundary = "fzboundary"
    upload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"grey.png\"\r\n"
              "Content-Type: image/png\r\n\r\n").encode() + pictures["grey.png"] + f"\r\n--{boundary}--\r\n".encode()
    host = (b"Host", b"127.0.0.1")

    def post(kind: str, body: bytes) -> Request:
        return Request("POST", "/predict", "HTTP/1.1", [host, (b"Content-Type", kind.encode())], body)

    return [post("image/png", pictures["grey.png"]), post("image/png", pictures["rgb.png"]),
            post("image/jpeg", pictures["base.jpg"]), post("application/json", json.dumps(item.tolist()).encode()),
            post("application/json", json.dumps([item.tolist()] * 3).encode()),
            post(f"multipart/form-data; boundary={boundary}", upload),
            Request("GET", "/health", "HTTP/1.1", [host], b"", None),
            Request("GET", "/", "HTTP/1.1", [host], b"", None)]


def _set_header(request: Request, name: bytes, value) -> None:
    request.headers = [pair for pair in request.headers if pair[0].lower() != name.lower()]
    if value is not None:
        request.headers.append((name, value.encode("latin-1", "replace") if isinstance(value, str) else value))


def mutate_request(request: Request, rng: random.Random) -> str:
    """Change ``request`` one way; the way, in a word."""
    kind = rng.choice(("body", "json", "content type", "length", "chunked", "path", "method", "host", "version",
                       "header"))
    if kind == "body":
        request.body = mutate(request.body, rng) if request.body else bytes(rng.randrange(256) for _ in range(64))
    elif kind == "json":
        request.body = mutate_json(request.body or b"[]", rng)
        _set_header(request, b"Content-Type", "application/json")
    elif kind == "content type":
        _set_header(request, b"Content-Type", rng.choice(ODD_CONTENT_TYPES))
    elif kind == "length":  # declared longer than sent: the server waits --timeout, then 408
        size = len(request.body)
        request.length = rng.choice(ODD_LENGTHS + (None, str(size + 10), str(max(0, size - 10))))
    elif kind == "chunked":
        request.chunks, request.length = chunked(request.body, rng), rng.choice((None, None, None, "auto"))
    elif kind == "path":
        request.target = rng.choice(ODD_PATHS)
    elif kind == "method":
        request.method = rng.choice(ODD_METHODS)
    elif kind == "host":
        _set_header(request, b"Host", rng.choice(ODD_HOSTS))
        if rng.random() < 0.2:
            request.headers.append((b"Host", b"fz.example"))  # twice
    elif kind == "version":
        request.version = rng.choice(ODD_VERSIONS)
    else:
        for _ in range(rng.choice((1, 1, 200))):
            request.headers.append(rng.choice(ODD_HEADERS))
    return kind


def exchange(address, payload: bytes, method: str, timeout: float) -> tuple[int, dict, bytes | None]:
    """Send ``payload`` on a new connection, then read (as curl and http.client do); (status, headers, body)
    of the answer, the body None when a reset cut it. Raises when there is no answer: the connection
    closed or reset without one, or nothing within ``timeout``."""
    with socket.create_connection(address, timeout=timeout) as connection:
        try:
            connection.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):  # answered before the whole body was sent: read on
            pass
        response = http.client.HTTPResponse(connection, method=method)
        response.begin()
        headers = {key.lower(): value for key, value in response.getheaders()}
        try:
            return response.status, headers, response.read()
        except ConnectionResetError:
            return response.status, headers, None





def fuzz_http(seconds: float, seed: int, count: int | None = None) -> dict:
    """`fmnist serve` (the ONNX seed model, --timeout 1, --max-body-mb 1) in its own process; each case one
    valid request changed one to three ways, on a new connection. The answer must be a 2xx, or a 4xx or
    503 with a JSON error (or the HTTP parser's own 400 for what is not HTTP/1.1); never a 5xx otherwise,
    a connection closed without an answer or no answer within 5 s; and /health must answer 200 within a
    second after every case. The server must stop on SIGTERM with 143 and no traceback."""
    import signal
    import subprocess

    rng, counts, statuses, slowest = random.Random(seed), Counts(), {}, 0.0
    set_up = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fmnist-fuzz-") as temporary, \
            open(Path(temporary) / "server.log", "w+") as log:
        server, address = start_server(Path(temporary), log)
        try:
            starts, started, cases = request_starts(), time.monotonic(), 0
            while time.monotonic() - started < seconds and (count is None or cases < count) and server.poll() is None:
                cases += 1
                request = copy.deepcopy(rng.choice(starts))
                slowest = max(slowest, http_case(address, request, rng, counts, statuses, cases))
            if server.poll() is not None:
                counts.crash("the server", f"exited {server.returncode} while serving")
            server_peak = process_peak_mb(server.pid)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                code = server.wait(60)
            except subprocess.TimeoutExpired:  # a server that does not stop is a crash too
                server.kill()
                code = server.wait()
        log.seek(0)
        server_stderr(log.read(), code, counts)
    return {"surface": "http", "cases": cases, "outcomes": counts.outcomes, "statuses": statuses,
            "crashes": counts.crashes, "first_crashes": counts.first_crashes, "health_slowest_s": round(slowest, 3),
            "set_up_seconds": round(started - set_up, 1), "seconds": round(time.monotonic() - started, 1),
            "seed": seed, "peak_rss_mb": peak_mb(), "server_peak_rss_mb": server_peak}


def start_server(root: Path, log) -> tuple:
    """`fmnist serve` of the ONNX seed model on a free loopback port, its stderr to ``log``; the process and
    its address once it answers."""
    import select
    import subprocess

    (root / "model.onnx").write_bytes(onnx_seed().SerializeToString())
    server = subprocess.Popen([sys.executable, "-m", "fmnist", "serve", str(root / "model.onnx"), "--port", "0",
                               "--timeout", "1", "--max-body-mb", "1", "--max-pixels", "4000000"],
                              stdout=subprocess.PIPE, stderr=log, text=True, cwd=root)
    line = server.stdout.readline() if select.select([server.stdout], [], [], 180)[0] else ""
    if "serving" not in line:
        server.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    host, port = line.split(" at http://")[1].split("/")[0].rsplit(":", 1)
    return server, (host, int(port))


def http_case(address, request: Request, rng: random.Random, counts: Counts, statuses: dict, number: int) -> float:
    """``request`` changed one to three ways and sent, its answer tallied, then /health asked; the seconds
    /health took."""
    ways = [mutate_request(request, rng) for _ in range(rng.randint(1, 3))]
    label = f"case {number}: {request.method} {request.target[:40]!r}, {', '.join(ways)}"
    try:
        status, headers, body = exchange(address, request.encode(), request.method, 5)
    except Exception:  # noqa: BLE001  no answer: what the fuzzer looks for
        counts.add("no answer")
        counts.crash(label)
    else:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        counts.add(http_outcome(status, headers, body, request.method, counts, label))
    asked = time.monotonic()
    try:
        health = exchange(address, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "GET", 1)[0]
    except Exception:  # noqa: BLE001  none within the second
        health = None
    if health != 200:
        counts.crash(label, f"/health answered {health} after it")
    return time.monotonic() - asked


def server_stderr(printed: str, code: int, counts: Counts) -> None:
    """The server's exit status after SIGTERM (143) and its stderr: no traceback."""
    raised = [next(line for line in block.splitlines()[1:] if line and not line[0].isspace())  # the exception
              for block in printed.split("Traceback (most recent call last):")[1:]
              if "above exception" not in block]  # chained: the last of the chain says what happened
    if code != 143 or raised:
        counts.crash("the server", f"exit {code}; stderr: {raised[:3]} {printed[-300:]}")


def http_outcome(status: int, headers: dict, body: bytes | None, method: str, counts: Counts, label: str) -> str:
    """The answer's outcome in words; a crash recorded when it is not one of the documented ones."""
    json_answer = "json" in headers.get("content-type", "")
    try:
        answer = json.loads(body) if body and json_answer else None
    except ValueError:
        answer = None
    if body == b"" and method == "HEAD" and (json_answer or status < 300):
        return "answered" if status < 300 else "refused"  # a HEAD answer has no body
    if body is not None and 200 <= status < 300 and (answer is not None or not json_answer):
        return "answered"  # JSON that parses, or the page
    if status in (400, 404, 405, 408, 413, 415, 422, 503) and isinstance(answer, dict) and "error" in answer:
        return "refused" if status != 503 else "busy"
    if body is not None and status in (400, 501) and not json_answer:
        return "refused by the HTTP parser"  # h11's answer to what is not HTTP/1.1 the application could be given
    counts.crash(label, f"{status} {headers.get('content-type')!r}: {(body or b'')[:200]!r}")
    return "crash"


def process_peak_mb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(round(int(line.split()[1]) / 1024) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None


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
    parser.add_argument("--surface", choices=("inputs", "studies", "reports", "http"), default="inputs",
                        help="inputs: files predict and load read (default); studies: study folders under report "
                        "and resume; reports: run folders under report; http: requests to fmnist serve")
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    if args.surface == "inputs":
        summary = run(args.seconds, args.seed, args.keras_share, args.keras_load, not args.one_bomb, args.inputs,
                      args.onnx_share)
    elif args.surface == "http":
        summary = fuzz_http(args.seconds, args.seed, args.inputs)
    else:
        summary = fuzz_folders(args.surface, args.seconds, args.seed, args.inputs)
    print(json.dumps(summary))
    return 1 if summary["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
