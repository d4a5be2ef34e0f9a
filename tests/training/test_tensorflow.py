"""The tutorial's own backend: `make test-tensorflow` runs these with KERAS_BACKEND=tensorflow."""

import json

import keras
import pytest

from fmnist.cli import main

pytestmark = [
    pytest.mark.tensorflow,
    pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="run by `make test-tensorflow`"),
]


def test_train_and_evaluate_with_keras_fit_on_tensorflow(tmp_path, tiny_args, capsys):
    out = tmp_path / "run"
    assert main(["train", *tiny_args, "--output-dir", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["environment"]["backend"] == "tensorflow" and config["settings"]["engine"] == "keras"
    metrics = json.loads((out / "metrics.json").read_text())
    assert main(["evaluate", str(out), "--data-dir", tiny_args[1], "--skip-checksum"]) == 0
    assert f"accuracy {metrics['test_accuracy']:.4f}" in capsys.readouterr().out


def test_fused_engine_is_refused_on_tensorflow(tiny_args, capsys):
    assert main(["train", *tiny_args, "--engine", "fused"]) == 2
    assert "--engine 'fused' needs the JAX backend" in capsys.readouterr().err


@pytest.mark.integration
def test_raw_pixels_train_alike_on_tensorflow_and_jax(tmp_path, real_dir):
    """The loss is computed from logits on every backend: raw 0..255 pixels, Adam 1e-5, 2 epochs end at the
    same place on TensorFlow (Keras fit) and on JAX (the fused engine). With Keras's loss of a softmax
    output, JAX computed it from clipped probabilities and reached 0.368 against TensorFlow's 0.759."""
    import os
    import subprocess
    import sys

    options = ["train", "--normalization", "none", "--optimizer", "adam", "--learning-rate", "0.00001", "--epochs", "2",
               "--quiet"]
    assert main([*options, "--output-dir", str(tmp_path / "tensorflow")]) == 0
    env = dict(os.environ, KERAS_BACKEND="jax")
    subprocess.run([sys.executable, "-m", "fmnist", *options, "--output-dir", str(tmp_path / "jax")], env=env,
                   check=True, capture_output=True)
    results = {name: json.loads((tmp_path / name / "metrics.json").read_text())["test_accuracy"]
               for name in ("tensorflow", "jax")}
    # measured (test accuracy): TensorFlow 0.7477 and 0.7402 for seeds 0 and 1, JAX 0.7300, 0.7356 and 0.7387
    # for seeds 0 to 2: the backends differ by about what seeds do (the initial weights differ between them)
    assert abs(results["tensorflow"] - results["jax"]) < 0.04, results
    assert min(results.values()) > 0.6, results
