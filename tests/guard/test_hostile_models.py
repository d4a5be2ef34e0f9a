"""Hostile and broken models (issue 10, items 1 and 12): a `.keras` archive is bounded before Keras reads
it (member sizes, ratio, count, the graph's size, the weights file's datasets), and a model that does not
give a probability vector per image is refused: each in one line, exit 2, nothing computed or written.
Then three classes an adversarial review found, each tried in several variants: zip members whose streams
go on past their declared sizes (.keras archives and checkpoints), ONNX graphs whose cost is unbounded
(operators, shapes, loops), and Keras models whose finite weights overflow."""

import bz2
import io
import json
import os
import subprocess
import sys
import tracemalloc
import zipfile
import zlib

import h5py
import keras
import numpy as np
import onnx
import pytest
from conftest import tiny_images
from fuzz.mutations import deflated, deflated_run, raw_zip
from fuzz.onnx_graphs import onnx_seed, side_branch, with_side
from fuzz.seeds import npz_seed
from onnx import TensorProto, helper, numpy_helper

import fmnist
from fmnist import normalization
from fmnist.cli import main
from fmnist.errors import DataError
from fmnist.inference.load import load_onnx
from fmnist.model import build_model
from fmnist.store import checkpoint


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    images = tiny_images(10, seed=6)[0]
    keras.utils.set_random_seed(0)
    build_model("standard", normalization.get("standard").fit(images)).save(folder / "model.keras")
    np.save(folder / "x.npy", images[:2])
    return folder


def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _archive(path, members, deflated=()):
    """Write ``members`` (name -> bytes, or a callable writing into the open member) as a .keras zip."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            method = zipfile.ZIP_DEFLATED if name in deflated else zipfile.ZIP_STORED
            if callable(content):
                with archive.open(zipfile.ZipInfo(name) if method == zipfile.ZIP_STORED else name, "w",
                                  force_zip64=True) as member:
                    content(member)
            else:
                archive.writestr(zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0)), content, compress_type=method)
    return path


def _config(good):
    return json.loads(_members(good / "model.keras")["config.json"])


def _with_config(good, path, change):
    config = _config(good)
    change(config)
    return _archive(path, _members(good / "model.keras") | {"config.json": json.dumps(config).encode()})


def _weights(datasets, **options):
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as weights:
        for name, make in datasets.items():
            make(weights, name)
    return buffer.getvalue()


def _refused(good, path, capsys):
    code = main(["predict", str(path), str(good / "x.npy")])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and captured.err.count("\n") == 1, captured
    assert captured.err.startswith(f"fmnist: error: {path}: ")
    return captured.err


def test_archive_bombs_are_refused_before_keras_reads_them(good, tmp_path, capsys):
    members = _members(good / "model.keras")
    spaces = _archive(tmp_path / "spaces.keras", members | {  # config.json with 100 MB of spaces: a 100 kB file
        "config.json": lambda member: [member.write(members["config.json"])] + [member.write(b" " * 2**20) for _ in range(100)]},
        deflated=("config.json",))
    many = _archive(tmp_path / "many.keras", members | {f"pad/{index}": b"" for index in range(100)})
    extra = _archive(tmp_path / "extra.keras", members | {"assets/run.sh": b"rm -rf ~"})
    zeros = _weights({"vars/0": lambda f, n: f.create_dataset(n, data=np.zeros(2**21, np.float32))})
    inflating = _archive(tmp_path / "inflating.keras", members | {"model.weights.h5": zeros},
                         deflated=("model.weights.h5",))
    claims = _weights({"vars/0": lambda f, n: f.create_dataset(n, shape=(2**20, 2**12), dtype="f4", chunks=(256, 256),
                                                              compression="gzip")})
    claiming = _archive(tmp_path / "claiming.keras", members | {"model.weights.h5": claims})
    outside = _weights({"vars/0": lambda f, n: f.create_dataset(n, shape=(10,), dtype="u1",
                                                               external=[("/etc/hostname", 0, 10)])})
    external = _archive(tmp_path / "external.keras", members | {"model.weights.h5": outside})
    huge = _with_config(good, tmp_path / "huge.keras",
                        lambda config: config["config"]["layers"][3]["config"].update(units=10**9))
    size = len(members["config.json"]) + 100 * 2**20
    cases = {spaces: f"config.json inflates to {size:,} bytes; over the limit of 4,194,304", many: "a zip of 103 files", extra: "holds 'assets/run.sh' besides",
             inflating: "model.weights.h5 inflates 999-fold (limit 200); refused as a decompression bomb", claiming: "claims 17,179,869,184 bytes of weights",
             external: "dataset vars/0 keeps its data in other files", huge: "a Dense layer of 1000000000 units"}
    tracemalloc.start()
    for path, words in cases.items():
        assert words in _refused(good, path, capsys), path
    assert tracemalloc.get_traced_memory()[1] < 64 * 2**20  # nothing was inflated
    tracemalloc.stop()


def test_models_that_do_not_give_probabilities_are_refused(good, tmp_path, capsys):
    two = keras.Input((28, 28)), keras.Input((28, 28))
    joined = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(keras.layers.Concatenate()(list(two))))
    keras.Model(list(two), joined).save(tmp_path / "two.keras")
    keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10)]).save(tmp_path / "linear.keras")
    nan = keras.saving.load_model(good / "model.keras")
    nan.set_weights([np.full_like(weight, np.nan) for weight in nan.get_weights()])
    nan.save(tmp_path / "nan.keras")
    assert "the model has 2 inputs" in _refused(good, tmp_path / "two.keras", capsys)
    assert "output layer (Dense) is not a softmax" in _refused(good, tmp_path / "linear.keras", capsys)
    assert "holds NaN or infinite values" in _refused(good, tmp_path / "nan.keras", capsys)
    # evaluate refuses it before reading the data or writing a file
    assert main(["evaluate", str(tmp_path / "nan.keras"), "--data-dir", str(tmp_path / "no-data")]) == 2
    assert "holds NaN or infinite values" in capsys.readouterr().err
    assert not (tmp_path / "evaluation.json").exists()


def test_an_onnx_model_without_softmax_is_refused(good, tmp_path, capsys):
    weights = numpy_helper.from_array(np.random.default_rng(0).normal(size=(784, 10)).astype(np.float32), "W")
    nodes = [helper.make_node("Cast", ["pixels"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("Flatten", ["x"], ["flat"], axis=1),
             helper.make_node("MatMul", ["flat", "W"], ["logits"])]
    graph = helper.make_graph(nodes, "linear", [helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["batch", 28, 28])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], initializer=[weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), tmp_path / "linear.onnx")
    assert "outputs are not probability vectors" in _refused(good, tmp_path / "linear.onnx", capsys)


def test_a_missing_model_says_so(good, capsys):
    assert main(["predict", "runs/does-not-exist", str(good / "x.npy")]) == 2
    assert capsys.readouterr().err == "fmnist: error: runs/does-not-exist: no such model file or run folder\n"


def _entries(members, name=None, method=8, stream=None, size=None, crc=None, *compressed):
    """``members`` as raw_zip entries, stored, but ``name`` as given (deflated by default)."""
    entries = [[key, 0, data, len(data), zlib.crc32(data)] for key, data in members.items()]
    for entry in entries:
        if entry[0] == name:
            data = entry[2]
            entry[1:] = [method, deflated(data) if stream is None else stream, len(data) if size is None else size,
                         zlib.crc32(data) if crc is None else crc, *compressed]
    return entries


def test_zip_members_are_read_in_bounded_steps(good, tmp_path, capsys):
    """A member whose directory entry declares its true size and checksum while its deflate stream goes on
    (2 MB whose config.json went on with 1 GiB of spaces cost 2.1 GB: zipfile's read() inflates the whole
    stream in one call): any member of a .keras archive or a checkpoint, any filler, or a stream that ends
    elsewhere than declared, another compression, a zip64 directory. Refused, exit 2, one line, and
    nothing near the filler's size is ever held."""
    members = _members(good / "model.keras")
    spaces, zeros = deflated_run(b" ", 128 * 2**20), deflated_run(b"\0", 128 * 2**20)  # 128 MiB each, 128 kB
    config, weights = members["config.json"], members["model.weights.h5"]
    cases = {
        "config.json inflates to more than its declared": _entries(members, "config.json", 8, deflated(config, spaces)),
        "model.weights.h5 inflates to more than its declared": _entries(members, "model.weights.h5", 8,
                                                                       deflated(weights, zeros)),
        "metadata.json inflates to more than its declared": _entries(members, "metadata.json", 8,
                                                                    deflated(members["metadata.json"], spaces)),
        "config.json: its deflate stream does not end within its declared": _entries(
            members, "config.json", 8, deflated(config, spaces), None, None, 200),
        "config.json: its compressed data goes on after its deflate stream ends": _entries(
            members, "config.json", 8, deflated(config) + bytes(64)),
        "config.json is compressed with method 12": _entries(members, "config.json", 12,
                                                             bz2.compress(config + b" " * 2**20)),
        "model.weights.h5 holds more than its declared": _entries(members, "model.weights.h5", 0,
                                                                 weights + bytes(4096)),
        "config.json fails its checksum": _entries(members, "config.json", 8, None, None, zlib.crc32(config) ^ 1),
    }
    paths = {}
    for index, (words, entries) in enumerate(cases.items()):
        paths[words] = tmp_path / f"variant-{index}.keras"
        paths[words].write_bytes(raw_zip(entries))
    paths["a zip64 archive"] = tmp_path / "zip64.keras"
    paths["a zip64 archive"].write_bytes(raw_zip(_entries(members), zip64_entries=10**9))
    arrays = npz_seed()
    claiming = io.BytesIO()  # a header claiming 1 GiB of float32, over 16 bytes
    np.lib.format.write_array_header_1_0(claiming, {"descr": "<f4", "fortran_order": False, "shape": (2**28,)})
    runs = {
        "meta.npy inflates to more than its declared": _entries(arrays, "meta.npy", 8,
                                                               deflated(arrays["meta.npy"], zeros)),
        "trainable_0.npy: .npy shape (268435456,) of float32 needs 1,073,741,824 bytes":
            _entries(arrays | {"trainable_0.npy": claiming.getvalue() + bytes(16)}),
        "optimizer_0.npy is compressed with method 12": _entries(arrays, "optimizer_0.npy", 12,
                                                                 bz2.compress(arrays["optimizer_0.npy"])),
        "a zip64 archive": (_entries(arrays), 2**40),
    }
    tracemalloc.start()
    for words, path in paths.items():
        err = _refused(good, path, capsys)
        assert words in err, (words, err)
    for index, (words, entries) in enumerate(runs.items()):
        run = tmp_path / f"run-{index}"
        run.mkdir()
        entries, zip64 = entries if isinstance(entries, tuple) else (entries, None)
        (run / checkpoint.FILE).write_bytes(raw_zip(entries, zip64_entries=zip64))
        with pytest.raises(DataError) as refused:
            checkpoint.load(run, "fuzz")
        message = str(refused.value)
        assert refused.value.exit_code == 2 and "\n" not in message, message
        assert message.startswith(f"{run / checkpoint.FILE}: damaged checkpoint (") and words in message, message
    assert tracemalloc.get_traced_memory()[1] < 32 * 2**20  # against 128 MiB of filler per variant
    tracemalloc.stop()


ONNX_PREDICT = """
import contextlib, io, json, sys
from fmnist.cli import main
rows = []
for path in sys.argv[2:]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["predict", path, sys.argv[1]])
    rows.append([path, code, err.getvalue()])
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0].split()[1]
print(json.dumps({"rows": rows, "peak_mb": int(peak) // 1024}))
"""


def test_onnx_graphs_are_bounded_before_they_run(good, tmp_path):
    """A 31 kB graph asked onnxruntime for 3.1 GB (ConstantOfShape [750M], then ReduceSum) and a Loop of
    10^10 trips hung predict. Operators outside a feed-forward classifier's (loops, tensors made from a
    count) are refused, and so is any graph whose shapes, inferred statically from the input's, are unknown
    somewhere, grow with the square of the batch, or add up to too many bytes or operations per image or per
    run. All in one process that never imports Keras: exit 2, one line each, and its peak memory is that of
    onnxruntime's import; graphs that convert a flatten other ways still run."""
    seed = onnx_seed()
    refused = {
        "ConstantOfShape": ("ConstantOfShape", 750_000_000, "uses the operator ConstantOfShape"),
        "Loop": ("Loop", 10**10, "uses the operator Loop"),
        "Tile": ("Tile", 10**9, "uses the operator Tile"),
        "Range": ("Range", 10**9, "uses the operator Range"),
        "Expand": ("Expand", 750_000_000, "bytes once per run (not per image); over the limit"),
        "batch-Expand": ("batch Expand", 10**7, "bytes per image; over the limit of 8,388,608"),
        "pixel-shape": ("pixel-valued shape", 0, "shape is not known before it runs"),
        "square": ("batch squared", 0, "costs the square of the batch size"),
        "matmuls": ("MatMul chain", 200, "operations once per run (not per image); over the limit"),
    }
    paths, words = [], {}
    for label, (kind, size, expected) in refused.items():
        path = tmp_path / f"{label}.onnx"
        onnx.save(with_side(seed, *side_branch(kind, size)), path)
        paths.append(path)
        words[str(path)] = expected
    lying = with_side(seed, *side_branch("Expand", 750_000_000))  # its annotations say the big tensor is small
    lying.graph.value_info.append(helper.make_tensor_value_info("side", TensorProto.FLOAT, [1]))
    paths.append(tmp_path / "lying.onnx")
    onnx.save(lying, paths[-1])
    words[str(paths[-1])] = "bytes once per run (not per image); over the limit"
    wrong = onnx_seed(hidden=32)  # declares (batch, 10) and computes (batch, 20)
    wrong.graph.initializer[-2].CopyFrom(numpy_helper.from_array(np.zeros((32, 20), "f4"), "W2"))
    wrong.graph.initializer[-1].CopyFrom(numpy_helper.from_array(np.zeros(20, "f4"), "b2"))
    paths.append(tmp_path / "wrong.onnx")
    onnx.save(wrong, paths[-1])
    words[str(paths[-1])] = "computes ('batch', 20) where it declares ('batch', 10)"
    for label, graph in _flattens(seed).items():  # other converters' flattens: they run
        paths.append(tmp_path / f"{label}.onnx")
        onnx.save(graph, paths[-1])
        words[str(paths[-1])] = None
    command = [sys.executable, "-c", ONNX_PREDICT, str(good / "x.npy"), *map(str, paths)]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, FMNIST_COMPILATION_CACHE="off"))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for path, code, err in summary["rows"]:
        if words[path] is None:
            assert code == 0 and err == "", (path, err)
            continue
        assert code == 2 and err.count("\n") == 1 and err.startswith(f"fmnist: error: {path}: "), (path, err)
        assert words[path] in err, (path, err)
    assert summary["peak_mb"] < 250, summary  # ConstantOfShape alone took 3,070 MB, the Loop for ever
    wide = tmp_path / "wide.onnx"  # 4 MB per image is allowed; predict then runs at most 256 MiB's worth at once
    onnx.save(with_side(seed, *side_branch("batch Expand", 10**6)), wide)
    model = load_onnx(wide)
    assert model.images_per_run == 66 and model.predict(np.zeros((70, 28, 28), np.uint8)).shape == (70, 10)


def _flattens(seed) -> dict:
    """The seed with its flatten written as other converters write it: Reshape to a constant [-1, 784],
    Reshape to [0, -1], Flatten; with Gemm for the first layer; and with an anonymous batch dimension."""
    graphs = {}
    for label, shape in (("minus-one", [-1, 784]), ("zero", [0, -1])):
        graph = onnx.ModelProto()
        graph.CopyFrom(seed)
        graph.graph.initializer.append(numpy_helper.from_array(np.array(shape, np.int64), "constant_shape"))
        [reshape] = [node for node in graph.graph.node if node.op_type == "Reshape"]
        reshape.input[1] = "constant_shape"
        graphs[label] = graph
    flatten = onnx.ModelProto()
    flatten.CopyFrom(seed)
    [reshape] = [node for node in flatten.graph.node if node.op_type == "Reshape"]
    reshape.CopyFrom(helper.make_node("Flatten", ["scaled"], ["flat"], axis=1))
    [matmul] = [node for node in flatten.graph.node if node.input[:1] == ["flat"]]
    matmul.CopyFrom(helper.make_node("Gemm", ["flat", "W1", "b1"], ["h1"]))
    bias = next(node for node in flatten.graph.node if node.op_type == "Add" and node.output[0] == "h1")
    flatten.graph.node.remove(bias)  # Gemm adds it
    flatten.graph.input[0].type.tensor_type.shape.dim[0].Clear()  # anonymous batch
    flatten.graph.output[0].type.tensor_type.shape.dim[0].Clear()
    graphs["flatten-gemm-anonymous"] = flatten
    return graphs


def test_keras_models_whose_weights_overflow_are_refused_at_load(good, tmp_path, capsys):
    """Finite weights can still overflow float32 (±3e38): such a model gave NaN rows, so predict exited 1
    per input and serve answered 200 with error rows. Probed at load like ONNX models: every weight huge,
    only a hidden layer's bias, only the first kernel, or the normalization's statistics in config.json.
    (±3e38 in the logits' bias alone is no such model: softmax takes the difference, and the rows are
    probabilities.)"""
    source = keras.saving.load_model(good / "model.keras")
    weights = source.get_weights()
    def huge(weight):  # ±3e38, alternating: finite float32
        return np.where(np.indices(weight.shape).sum(0) % 2, 3e38, -3e38).astype(weight.dtype)

    variants = {
        "all": [huge(weight) for weight in weights],
        "bias": weights[:1] + [np.full_like(weights[1], 3e38)] + weights[2:],  # the first hidden layer's
        "kernel": [huge(weights[0])] + weights[1:],
    }
    for label, values in variants.items():
        source.set_weights(values)
        source.save(tmp_path / f"{label}.keras")
    _with_config(good, tmp_path / "normalization.keras",
                 lambda config: config["config"]["layers"][1]["config"].update(mean=3e38, variance=1e-14))
    for label in (*variants, "normalization"):
        err = _refused(good, tmp_path / f"{label}.keras", capsys)
        assert "outputs are not probability vectors (NaN or infinite" in err, (label, err)
    assert main(["evaluate", str(tmp_path / "bias.keras"), "--data-dir", str(tmp_path / "no-data")]) == 2
    assert "not probability vectors" in capsys.readouterr().err
    with pytest.raises(DataError, match="not probability vectors"):
        fmnist.load_model(tmp_path / "kernel.keras")
    assert fmnist.load_model(good / "model.keras") is not None  # the probe passes a working model
