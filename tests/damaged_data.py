"""Ways a Fashion-MNIST folder can be damaged, each with the one line fmnist must answer (test_data.py and
test_cli.py try them all), and a hand-made ONNX classifier with the ways another converter's file can be odd."""

import gzip
from pathlib import Path

import numpy as np
import onnx
from conftest import tiny_images, write_idx
from onnx import TensorProto, helper, numpy_helper


def gz(path: Path, payload: bytes) -> None:
    with gzip.open(path, "wb", compresslevel=1) as stream:
        stream.write(payload)


def raw(path: Path) -> bytes:
    with gzip.open(path) as stream:
        return stream.read()


# Each damage: (what to do to the tiny folder, the words the one-line error must contain).
def _missing(folder):
    (folder / "train-labels-idx1-ubyte.gz").unlink()


def _empty(folder):
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"")


def _truncated_gzip(folder):
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-500])


def _not_gzip(folder):
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip at all")


def _short_idx(folder):
    path = folder / "train-images-idx3-ubyte.gz"
    gz(path, raw(path)[:-784])


def _swapped_kinds(folder):
    images, labels = folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
    payload = images.read_bytes()
    images.write_bytes(labels.read_bytes())
    labels.write_bytes(payload)


def _count_mismatch(folder):
    write_idx(folder, "t10k", tiny_images(100, 2)[0], tiny_images(90, 2)[1])


def _bad_label(folder):
    images, labels = tiny_images(100, 2)
    labels[5] = 10
    write_idx(folder, "t10k", images, labels)


def _wrong_size(folder):
    write_idx(folder, "t10k", np.zeros((10, 28, 27), np.uint8), np.zeros(10, np.uint8))


DAMAGES = {
    "missing": (_missing, "train-labels-idx1-ubyte.gz: missing"),
    "empty": (_empty, "t10k-images-idx3-ubyte.gz: empty file"),
    "truncated-gzip": (_truncated_gzip, "train-images-idx3-ubyte.gz: truncated"),
    "not-gzip": (_not_gzip, "train-images-idx3-ubyte.gz: not a valid gzip file"),
    "truncated-idx": (_short_idx, "train-images-idx3-ubyte.gz: 312832 bytes, but its header [400, 28, 28] needs 313616"),
    "swapped": (_swapped_kinds, "t10k-images-idx3-ubyte.gz: not an IDX image file"),
    "inconsistent": (_count_mismatch, "t10k-labels-idx1-ubyte.gz: 90 labels for 100 images"),
    "bad-label": (_bad_label, "t10k-labels-idx1-ubyte.gz: label 10 found"),
    "not-28x28": (_wrong_size, "t10k-images-idx3-ubyte.gz: images are 28x27"),
}


def onnx_classifier(input_shape=("batch", 28, 28), input_type=TensorProto.UINT8, classes=10, domain="",
                external=False, inputs=1) -> onnx.ModelProto:
    """A hand-made classifier (cast, flatten, one dense layer, softmax), as another converter might write."""
    weights = numpy_helper.from_array(np.random.default_rng(0).normal(size=(784, classes)).astype(np.float32) / 255, "W")
    if external:  # the tensor's bytes "live" in another file, the path traversal ONNX loaders have had bugs with
        weights.ClearField("raw_data")
        weights.data_location = TensorProto.EXTERNAL
        weights.external_data.add(key="location", value="../../../etc/passwd")
    nodes = [helper.make_node("Cast", ["pixels"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("Flatten", ["x"], ["flat"], axis=1),
             helper.make_node("MatMul", ["flat", "W"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1, domain=domain)]
    graph_inputs = [helper.make_tensor_value_info(f"pixels{'' if i == 0 else i}", input_type, list(input_shape))
                    for i in range(inputs)]
    graph = helper.make_graph(nodes, "classifier", graph_inputs,
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes])],
                              initializer=[weights])
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)
