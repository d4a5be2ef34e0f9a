"""Fixtures: tiny valid IDX files, written fresh for each test that needs them; what is made once per
session (the larger tiny data, the tutorial trained on the real data); and the session's JAX
compilation cache, which every process of the session shares."""

import contextlib
import dataclasses
import gzip
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from browser import browser, chromium  # noqa: F401  the headless-Chromium fixtures (tests/browser.py)
from results import small_results  # noqa: F401  a run, a comparison and a sweep on tiny data (tests/results.py)

os.environ.setdefault("KERAS_BACKEND", "jax")
# One persistent JAX compilation cache for the whole session, in a fresh temporary folder (removed at
# exit): this process and every `fmnist` process a test starts (they inherit the environment) reuse the
# programs compiled once, instead of recompiling them in each of the ~40 processes (2 to 5 s each on 2
# cores: the sweep of test_sweep_processes.py takes 12.8 s cold, 7.4 s warm). It holds the compiled
# form of identical programs, so no result changes; being new each session, it leaves nothing in
# ~/.cache and no test depends on what an earlier session compiled. JAX reads these variables when it
# is imported, which no module has done yet; fmnist's use_compilation_cache leaves a set
# JAX_COMPILATION_CACHE_DIR alone.
COMPILATION_CACHE = tempfile.TemporaryDirectory(prefix="fmnist-jax-cache-")
os.environ["JAX_COMPILATION_CACHE_DIR"] = COMPILATION_CACHE.name
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # every program, even the quick ones
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
os.environ["FMNIST_COMPILATION_CACHE"] = "off"  # and should a test drop the folder: still nothing in ~/.cache
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


@dataclasses.dataclass(frozen=True)
class TutorialRun:
    folder: Path  # read it; copy it (shutil.copytree) before changing anything in it
    printed: str  # what `fmnist train` printed on stdout


@pytest.fixture(scope="session")
def tutorial_run(tmp_path_factory, real_dir) -> TutorialRun:
    """The tutorial trained once per session on the real data, as `fmnist train --output-dir DIR` runs it
    (ten epochs, seed 0: about 10 s here), for every test that checks what that run wrote."""
    from fmnist.cli import main

    folder = tmp_path_factory.mktemp("tutorial") / "run"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(["train", "--output-dir", str(folder)]) == 0
    return TutorialRun(folder, printed.getvalue())


@pytest.fixture(scope="session")
def mid_dir(tmp_path_factory):
    """Tiny data with enough steps per epoch (3000 images, batch 8) that kills land inside epochs."""
    folder = tmp_path_factory.mktemp("mid")
    write_idx(folder, "train", *tiny_images(3000, seed=1))
    write_idx(folder, "t10k", *tiny_images(200, seed=2))
    return folder


def sample_images(count: int) -> np.ndarray:
    """The first ``count`` real test images when the dataset is installed, else generated ones."""
    folder = real_data_dir()
    if folder is not None:
        from fmnist import data

        return data.load(folder).x_test[:count]
    return tiny_images(count, seed=5)[0]


NOBODY = 65534


@contextlib.contextmanager
def as_nobody():
    """Permissions as an ordinary user sees them: root reads a chmod-000 file (and so would the test)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


LAYERS = Path(__file__).resolve().parent  # tests/<layer>/test_*.py mirrors src/fmnist/<layer>/


# The longest modules (minutes each, by --durations on 2 cores), started first: make test hands whole modules
# to its workers in this order, and a long one handed out last would leave the other worker idle at the end.
LONGEST_FIRST = ("training/test_sweep_processes.py", "docs/test_readme.py", "store/test_resume.py",
                 "training/test_integration.py")


def pytest_collection_modifyitems(items):
    """Each test is marked with its folder, the layer it tests: ``pytest -m serve`` runs that layer. The
    longest modules come first."""
    rank = {}
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if path.parent.parent == LAYERS:
            item.add_marker(path.parent.name)
        module = path.relative_to(LAYERS).as_posix() if path.is_relative_to(LAYERS) else ""
        rank[item] = LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)
    items.sort(key=rank.__getitem__)  # stable: the rest keep their order


def wait_for_change(path, since, deadline, child=None):
    """Whether ``path`` (a file's modification time, or a callable giving a stamp) changed from ``since``
    before ``deadline``; False as soon as ``child`` has exited (a resumed process past its last checkpoint
    writes none: waiting on would only wait out the deadline)."""
    stamp = path if callable(path) else lambda: path.stat().st_mtime_ns if path.exists() else None
    while time.monotonic() < deadline and (child is None or child.poll() is None):
        now = stamp()
        if now is not None and now != since:
            return True
        time.sleep(0.005)
    return False
