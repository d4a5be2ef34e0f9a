"""The library API: `import fmnist` chooses JAX, stays cheap, and `load_model` / `predict_probabilities`
work as documented, in fresh processes with a clean environment (as a new user's shell is)."""

import subprocess
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import tiny_images

import fmnist
from fmnist import normalization
from fmnist.inference.evaluation import cross_entropy
from fmnist.model import build_model

HOMES = tempfile.TemporaryDirectory(prefix="fmnist-homes-")  # fresh HOME folders, removed at exit


def run_python(code: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    """``code`` in this virtual environment's Python, with only HOME (a new, empty folder) and PATH set:
    no ~/.keras/keras.json, no KERAS_BACKEND, unless ``env`` adds them."""
    home = tempfile.mkdtemp(prefix="home-", dir=HOMES.name)
    clean = {"HOME": home, "PATH": "/usr/bin:/bin"} | (env or {})
    return subprocess.run([sys.executable, "-c", code], env=clean, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = build_model("per-image", normalization.get("per-image").fit(tiny_images(100, seed=1)[0]))
    folder = tmp_path_factory.mktemp("api") / "run"
    folder.mkdir()
    model.save(folder / "model.keras")
    return folder


def test_import_is_cheap_and_chooses_jax():
    result = run_python("import os, sys, fmnist; print(os.environ['KERAS_BACKEND'], "
                        "[m for m in ('keras', 'jax', 'numpy', 'onnxruntime') if m in sys.modules])")
    assert result.stdout.split() == ["jax", "[]"], result.stderr


def test_an_explicit_backend_wins_and_a_missing_one_says_what_to_do(run_dir):
    code = f"import fmnist; fmnist.load_model({str(run_dir)!r})"
    result = run_python(code, {"KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("fmnist.errors.BackendUnavailable: Keras cannot import its backend: "
                           "KERAS_BACKEND=tensorflow needs the module 'tensorflow'")
    assert "pip install tensorflow-cpu" in last and "KERAS_BACKEND=jax" in last


def test_keras_json_saying_tensorflow_is_overridden(run_dir):
    """The issue's case: ~/.keras/keras.json names TensorFlow, which is not installed."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=HOMES.name))
    (home / ".keras").mkdir()
    (home / ".keras" / "keras.json").write_text('{"backend": "tensorflow"}')
    code = ("import numpy as np, fmnist; m = fmnist.load_model(%r); "
            "print(fmnist.predict_probabilities(m, np.zeros((2, 28, 28), np.uint8)).shape)" % str(run_dir))
    result = run_python(code, {"HOME": str(home)})
    assert result.stdout.strip() == "(2, 10)", result.stderr


def test_keras_imported_first_keeps_its_backend():
    # Keras chooses its backend from ~/.keras/keras.json here; fmnist, imported after it, leaves that alone
    code = ("import json, os; os.makedirs(os.path.expanduser('~/.keras')); "
            "open(os.path.expanduser('~/.keras/keras.json'), 'w').write(json.dumps({'backend': 'jax'})); "
            "import keras, fmnist; print(os.environ.get('KERAS_BACKEND'), keras.backend.backend())")
    result = run_python(code)
    assert result.stdout.split() == ["None", "jax"], result.stderr  # fmnist does not pretend otherwise


def test_load_model_and_predict_probabilities(run_dir):
    model = fmnist.load_model(run_dir)  # the per-image model: its custom layer is registered by load_model
    batch = tiny_images(6, seed=2)[0]
    probabilities = fmnist.predict_probabilities(model, batch)
    assert probabilities.shape == (6, 10) and probabilities.dtype == np.float32
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    expected = keras.saving.load_model(run_dir / "model.keras", safe_mode=True).predict(batch, verbose=0)
    assert np.allclose(probabilities, expected, atol=1e-6)
    assert np.allclose(fmnist.predict_probabilities(model, batch[0]), probabilities[0], atol=1e-6)  # (28, 28) -> (10,)
    assert np.allclose(fmnist.predict_probabilities(model, batch.astype(np.float64)), probabilities, atol=1e-6)


@pytest.mark.parametrize("images, words", [
    (np.zeros((2, 28, 27), np.uint8), "shape (2, 28, 27)"),
    (np.zeros((0, 28, 28), np.uint8), "shape (0, 28, 28)"),
    (np.full((1, 28, 28), 0.5), "not raw pixels"),  # scaled: refused, never rounded to 0 or 1
    (np.full((1, 28, 28), 256), "not raw pixels"),
    (np.full((1, 28, 28), np.nan), "not raw pixels"),
])
def test_predict_probabilities_refuses_what_is_not_raw_pixels(run_dir, images, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        fmnist.predict_probabilities(fmnist.load_model(run_dir), images)


def test_cross_entropy_is_keras_loss():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(10) * 0.3, size=500).astype(np.float32)
    probabilities[0] = np.eye(10)[3]  # 0 and 1 exactly: clipped as Keras clips
    labels = rng.integers(0, 10, 500)
    expected = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
    assert np.allclose(cross_entropy(probabilities, labels), np.asarray(expected), rtol=1e-6, atol=1e-6)


def test_training_from_python_writes_what_the_command_writes(tmp_path, tiny_dir):
    """A Python caller gets the run folder `fmnist train` writes, report.html included, and errors that
    name the setting as Python spells it (``field``), with no command-line option in them."""
    from fmnist.config import TrainConfig
    from fmnist.errors import UsageError
    from fmnist.training.train import train

    config = TrainConfig(epochs=1, valid_size=100, data_dir=str(tiny_dir), verify=False, name="api")
    result = train(config, tmp_path / "run", progress=None)
    assert result.report == tmp_path / "run" / "report.html" and result.report.is_file()
    assert {"config.json", "history.csv", "metrics.json", "model.keras", "learning_curves.png"} <= {
        path.name for path in result.run_dir.iterdir()}
    with pytest.raises(UsageError) as refused:
        train(config, tmp_path / "run")  # the folder is not empty
    assert refused.value.field == "output_dir" and "--" not in str(refused.value)
    assert str(refused.value).startswith(f"output_dir {tmp_path / 'run'}: exists")


@pytest.mark.parametrize("first", ["fmnist", "keras"])
def test_plain_keras_loads_a_per_image_model_after_import_fmnist(run_dir, first):
    """`import fmnist` is all plain `keras.models.load_model` needs for a model with fmnist's own layer,
    whichever of the two is imported first; fmnist alone still imports no Keras."""
    second = "keras" if first == "fmnist" else "fmnist"
    code = (f"import sys; import {first}; print('keras' in sys.modules); import {second}; import keras; "
            f"model = keras.models.load_model({str(run_dir / 'model.keras')!r}); "
            "print(type(model.layers[0]).__name__)")
    result = run_python(code, env={"KERAS_BACKEND": "jax"} if first == "keras" else None)  # Keras's default: TensorFlow
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(first == "keras"), "PerImageStandardization"]


def test_read_images_turns_pictures_into_model_inputs(run_dir, tmp_path):
    """The README's Python route: files in, the arrays predict_probabilities takes out, as `fmnist predict`
    converts them; an unreadable input raises InputError naming it."""
    from fmnist.errors import InputError
    from fmnist.inputs.read import read_inputs

    examples = Path(__file__).resolve().parents[2] / "docs" / "examples"
    paths = [examples / "trousers.npy", examples / "sneaker.png", examples / "tshirt-on-beige.jpg"]
    images = fmnist.read_images(paths)
    expected = [item.image for item in read_inputs([str(path) for path in paths])]
    assert images.dtype == np.uint8 and images.shape == (len(expected), 28, 28)
    assert np.array_equal(images, np.stack(expected))
    assert fmnist.predict_probabilities(fmnist.load_model(run_dir), images).shape == (len(expected), 10)
    assert np.array_equal(fmnist.read_images(str(paths[1])), images[len(expected) - 2:len(expected) - 1])
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match=f"^{tmp_path / 'empty.png'}: empty file$"):
        fmnist.read_images([paths[1], tmp_path / "empty.png"])
