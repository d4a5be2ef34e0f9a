"""Ways a Fashion-MNIST folder can be damaged, each with the one line fmnist must answer (test_data.py and
test_cli.py try them all)."""

import gzip
from pathlib import Path

import numpy as np
from conftest import tiny_images, write_idx


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
