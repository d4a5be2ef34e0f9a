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
    assert "--engine fused needs the JAX backend" in capsys.readouterr().err
