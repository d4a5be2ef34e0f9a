"""Find, verify and parse the Fashion-MNIST IDX files.

Search order: a folder the user names (``--data-dir`` or ``FMNIST_DATA_DIR``), which is used or refused
and never replaced by another; then the Keras cache; then the folder Debian's ``dataset-fashion-mnist``
installs. Content is verified by the SHA-256 of the *decompressed* files, because Debian's gzip files
differ byte-wise from upstream's while the IDX bytes inside are identical.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import math
import os
import stat
import sys
import tempfile
from pathlib import Path

import numpy as np

from fmnist.errors import DataError, InputError
from fmnist.guard import safe_files
from fmnist.guard.limits import (
    MAX_DATASET_FILE_BYTES as MAX_DECOMPRESSED,  # stops a hostile gzip inflating without bound
)

CLASS_NAMES = (  # the labels 0..9, in order
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

# name -> (sha256 of the decompressed IDX file, its size in bytes): the Fashion-MNIST release's content.
PINNED = {
    "train-images-idx3-ubyte": ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47_040_016),
    "train-labels-idx1-ubyte": ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60_008),
    "t10k-images-idx3-ubyte": ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7_840_016),
    "t10k-labels-idx1-ubyte": ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10_008),
}
FILES = tuple(name + ".gz" for name in PINNED)
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
# The mirror Keras's own fashion_mnist.load_data() uses.
MIRROR = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801


@dataclasses.dataclass(frozen=True)
class Dataset:
    """The four arrays and where they came from."""

    x_train: np.ndarray  # (n, 28, 28) uint8
    y_train: np.ndarray  # (n,) uint8
    x_test: np.ndarray
    y_test: np.ndarray
    source: Path
    verified: bool  # True when every file matched the pinned SHA-256
    digests: dict = dataclasses.field(default_factory=dict)  # file name -> SHA-256 of its decompressed content


@dataclasses.dataclass(frozen=True)
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def sizes(self) -> dict:
        return {"train": len(self.y_train), "valid": len(self.y_valid), "test": len(self.y_test)}


def keras_cache_dir() -> Path:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets" / "fashion-mnist"


def _problem(folder: Path) -> str | None:
    """None when ``folder`` holds the four files as regular files; else what is wrong, naming the path."""
    try:
        if not stat.S_ISDIR(os.stat(folder).st_mode):
            return f"{folder}: data folder does not exist (not a folder)"
    except OSError as error:
        return f"{folder}: data folder does not exist" if error.errno == errno.ENOENT else f"{folder}: {safe_files.reason(error)}"
    for name in FILES:
        try:
            other = safe_files.kind(os.stat(folder / name).st_mode)
        except OSError as error:
            if error.errno == errno.ENOENT:
                return f"{folder / name}: missing (the folder needs {', '.join(FILES)})"
            return f"{folder / name}: {safe_files.reason(error)}"
        if other:
            return f"{folder / name}: not a regular file ({other})"
    return None


def _named(data_dir) -> Path | None:
    named = data_dir if data_dir is not None else os.environ.get("FMNIST_DATA_DIR") or None
    return None if named is None else Path(named)


def find_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder to read, by the documented search order; DataError when there is none."""
    return next(iter(_candidates(data_dir, quiet=True)))


def _candidates(data_dir, quiet: bool = False):
    """The folders to try in order: the named one (used or refused), else the Keras cache and Debian's
    folder that hold the four files. A cache entry the user never named that cannot be used is reported
    and skipped."""
    named = _named(data_dir)
    if named is not None:
        problem = _problem(named)
        if problem:
            raise DataError(problem)
        yield named
        return
    for folder in (keras_cache_dir(), DEBIAN_DIR):
        problem = _problem(folder)
        if problem is None:
            yield folder
        elif not quiet and os.path.lexists(folder):
            print(f"fmnist: warning: skipping {problem}", file=sys.stderr)
    raise DataError(
        "Fashion-MNIST not found: install Debian's package (apt-get install dataset-fashion-mnist), "
        "run `fmnist data download`, or name the folder that holds its four files", "data_dir"
    )


def decompress(path: Path) -> bytes:
    """The content of the gzip file ``path`` (a regular file), at most MAX_DECOMPRESSED once inflated."""
    try:
        payload = safe_files.read_input(path, MAX_DECOMPRESSED)  # a regular file, never a FIFO or a device
        if not payload:
            raise DataError(f"{path}: empty file")
        return safe_files.gunzip(payload, MAX_DECOMPRESSED)
    except InputError as problem:
        raise DataError(f"{path}: {problem}") from None


def _check_digest(path: Path, name: str, digest: str) -> None:
    if digest == PINNED[name][0]:
        return
    other = next((other for other, (pin, _) in PINNED.items() if pin == digest), None)
    if other:
        raise DataError(f"{path}: holds the content of {other}.gz (files swapped?)")
    raise DataError(
        f"{path}: content differs from the Fashion-MNIST release (sha256 {digest[:12]}…, "
        f"expected {PINNED[name][0][:12]}…); to use other IDX data on purpose, turn the check off", "verify"
    )


def _header(path: Path, raw: bytes, magic: int, dims: int) -> list[int]:
    size = 4 * (dims + 1)
    if len(raw) < size:
        raise DataError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        kind = "image" if magic == IMAGE_MAGIC else "label"
        raise DataError(f"{path}: not an IDX {kind} file (magic number {found:#010x}, expected {magic:#010x})")
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    expected = size + math.prod(shape)  # Python integers: NumPy's product of three 32-bit sizes can wrap
    if len(raw) != expected:
        raise DataError(f"{path}: {len(raw)} bytes, but its header {shape} needs {expected} (truncated or padded)")
    return shape


def parse_images(path: Path, raw: bytes) -> np.ndarray:
    count, rows, cols = _header(path, raw, IMAGE_MAGIC, 3)
    if (rows, cols) != (28, 28):
        raise DataError(f"{path}: images are {rows}x{cols}, expected 28x28")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, rows, cols)


def parse_labels(path: Path, raw: bytes) -> np.ndarray:
    (count,) = _header(path, raw, LABEL_MAGIC, 1)
    labels = np.frombuffer(raw, dtype=np.uint8, offset=8)
    if labels.size and labels.max() > 9:
        raise DataError(f"{path}: label {int(labels.max())} found; labels must be 0-9")
    return labels


def _read_pair(folder: Path, prefix: str, verify: bool, digests: dict) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for kind, parse in (("images-idx3-ubyte", parse_images), ("labels-idx1-ubyte", parse_labels)):
        name = f"{prefix}-{kind}"
        path = folder / (name + ".gz")
        raw = decompress(path)
        digests[name] = hashlib.sha256(raw).hexdigest()
        if verify:
            _check_digest(path, name, digests[name])
        arrays.append(parse(path, raw))
    images, labels = arrays
    if len(images) != len(labels):
        raise DataError(f"{folder / (prefix + '-labels-idx1-ubyte.gz')}: {len(labels)} labels for {len(images)} images")
    if len(images) == 0:
        raise DataError(f"{folder / (prefix + '-images-idx3-ubyte.gz')}: holds no images")
    return images, labels


def load(data_dir: str | os.PathLike | None = None, verify: bool = True) -> Dataset:
    """Read and check the four files; every failure is a DataError naming the file. A folder found (not
    named) that turns out unusable is reported and the next one tried."""
    named = _named(data_dir) is not None
    for folder in _candidates(data_dir):
        digests: dict = {}
        try:
            x_train, y_train = _read_pair(folder, "train", verify, digests)
            x_test, y_test = _read_pair(folder, "t10k", verify, digests)
        except DataError as error:
            if named:
                raise
            print(f"fmnist: warning: skipping {error}", file=sys.stderr)
            continue
        return Dataset(x_train, y_train, x_test, y_test, source=folder, verified=verify, digests=digests)
    raise AssertionError("unreachable: _candidates raises when it runs out")


def split(dataset: Dataset, valid_size: int = 5000) -> Splits:
    """The tutorial's split: the first ``valid_size`` training images are validation."""
    if not 0 < valid_size < len(dataset.y_train):
        raise DataError(
            f"valid_size {valid_size}: must be between 1 and {len(dataset.y_train) - 1} "
            f"(the training file holds {len(dataset.y_train)} images)", "valid_size"
        )
    x, y = dataset.x_train, dataset.y_train
    return Splits(x[valid_size:], y[valid_size:], x[:valid_size], y[:valid_size], dataset.x_test, dataset.y_test)


def download(cache_dir: Path | None = None) -> Path:
    """Fetch the four files from the upstream mirror into the Keras cache, verified, atomically.

    Each file is downloaded into a temporary folder beside the cache, its decompressed content checked
    against the pin, and only then moved into place; a failure leaves the cache as it was.
    """
    import keras  # deferred: the only network use in the package

    target = Path(cache_dir) if cache_dir else keras_cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target, prefix=".download-") as staging:
        for name in FILES:
            if (target / name).is_file():
                continue
            fetched = Path(keras.utils.get_file(fname=name, origin=MIRROR + name, cache_dir=staging, cache_subdir="."))
            _check_digest(fetched, name[: -len(".gz")], hashlib.sha256(decompress(fetched)).hexdigest())
            os.replace(fetched, target / name)
    return target


def describe(dataset: Dataset) -> dict:
    """What `fmnist data info` prints: source, counts, and the pixel statistics of the tutorial's step 3."""
    pixels = dataset.x_train
    return {
        "source": str(dataset.source),
        "verified": dataset.verified,
        "train_images": len(dataset.y_train),
        "test_images": len(dataset.y_test),
        "pixel_max": int(pixels.max()),
        "pixel_min": int(pixels.min()),
        "pixel_mean": float(pixels.mean(dtype=np.float64)),
        "pixel_std": float(pixels.std(dtype=np.float64)),
        "train_class_counts": np.bincount(dataset.y_train, minlength=10).tolist(),
    }
