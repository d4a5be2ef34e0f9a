"""Fixtures: tiny valid IDX files, written fresh for each test that needs them."""

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from browser import browser  # noqa: F401  the headless-Chromium fixture (tests/browser.py)
from results import small_results  # noqa: F401  a run, a comparison and a sweep on tiny data (tests/results.py)

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("FMNIST_COMPILATION_CACHE", "off")  # tests leave nothing in ~/.cache
# Two CPU devices, as `fmnist sweep` makes on this 2-core machine: sweeps in the tests shard their
# members over a real two-device mesh (set before JAX starts, whichever test runs first).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Write gzip IDX files the way the Fashion-MNIST release does."""
    folder.mkdir(parents=True, exist_ok=True)
    header = IMAGE_MAGIC.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in images.shape)
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as stream:
        stream.write(header + images.astype(np.uint8).tobytes())
    header = LABEL_MAGIC.to_bytes(4, "big") + len(labels).to_bytes(4, "big")
    with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as stream:
        stream.write(header + labels.astype(np.uint8).tobytes())


def tiny_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable fake items: each class lights its own band of rows, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(count, 28, 28))
    for index, label in enumerate(labels):
        images[index, 2 * label + 3: 2 * label + 7, 4:24] += 180
    return images.clip(0, 255).astype(np.uint8), labels.astype(np.uint8)


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    write_idx(folder, "train", *tiny_images(400, seed=1))
    write_idx(folder, "t10k", *tiny_images(100, seed=2))
    return folder


@pytest.fixture
def tiny_args(tiny_dir: Path) -> list[str]:
    """Options that make `fmnist train` fast on the tiny data."""
    return ["--data-dir", str(tiny_dir), "--skip-checksum", "--valid-size", "100", "--epochs", "2"]


def real_data_dir():
    from fmnist import data

    try:
        return data.find_data_dir(None)
    except Exception:
        return None


@pytest.fixture(scope="session")
def real_dir():
    folder = real_data_dir()
    if folder is None:
        pytest.skip("the real Fashion-MNIST is not installed (make test installs it where apt is usable)")
    return folder


@pytest.fixture(scope="session")
def mid_dir(tmp_path_factory):
    """Tiny data with enough steps per epoch (3000 images, batch 8) that kills land inside epochs."""
    folder = tmp_path_factory.mktemp("mid")
    write_idx(folder, "train", *tiny_images(3000, seed=1))
    write_idx(folder, "t10k", *tiny_images(200, seed=2))
    return folder


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """A compilation cache shared by the subprocesses, so each starts faster (results do not change)."""
    return tmp_path_factory.mktemp("cache")


def sample_images(count: int) -> np.ndarray:
    """The first ``count`` real test images when the dataset is installed, else generated ones."""
    folder = real_data_dir()
    if folder is not None:
        from fmnist import data

        return data.load(folder).x_test[:count]
    return tiny_images(count, seed=5)[0]
