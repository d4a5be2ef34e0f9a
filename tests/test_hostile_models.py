"""Hostile and broken models (issue 10, items 1 and 12): a `.keras` archive is bounded before Keras reads
it (member sizes, ratio, count, the graph's size, the weights file's datasets), and a model that does not
give a probability vector per image is refused: each in one line, exit 2, nothing computed or written."""

import io
import json
import tracemalloc
import zipfile

import h5py
import keras
import numpy as np
import onnx
import pytest
from conftest import tiny_images
from onnx import TensorProto, helper, numpy_helper

from fmnist import normalization
from fmnist.cli import main
from fmnist.model import build_model


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
