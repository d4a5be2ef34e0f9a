"""Models by name (``fmnist train --model``): each trains through the command line on tiny data with both
engines alike, records its name, resumes as itself, and its saved model loads, predicts, exports and
serves (a real ``fmnist serve`` process) as the tutorial's does."""

import csv
import json
import shutil

import keras
import numpy as np
import pytest
from conftest import tiny_images, write_idx
from served import Server

import fmnist  # noqa: F401  registers fmnist's layers for plain keras.models.load_model
from fmnist import normalization
from fmnist.cli import main
from fmnist.config import MODELS, SweepConfig, TrainConfig
from fmnist.errors import UsageError
from fmnist.inference.export import _convert
from fmnist.inference.load import load_onnx
from fmnist.model import (
    TRAINABLE_PARAMETERS,
    build_model,
    logits_view,
    trainable_parameters,
)

TEST_IMAGES = tiny_images(100, seed=2)[0]
ENGINES = ("fused", "keras")


def _data(folder):
    write_idx(folder, "train", *tiny_images(400, seed=1))
    write_idx(folder, "t10k", *tiny_images(100, seed=2))
    return ["--data-dir", str(folder), "--skip-checksum"]


def _train(data, folder, *options, epochs=1):
    assert main(["train", *data, "--valid-size", "100", "--epochs", str(epochs), "--quiet", "--output-dir", str(folder),
                 *options]) == 0
    return folder


def _history(folder):
    with open(folder / "history.csv") as handle:
        return [{key: float(value) for key, value in row.items() if key != "epoch_seconds"} for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Every model, one epoch with each engine: {(model, engine): run folder}."""
    root = tmp_path_factory.mktemp("models")
    data = _data(root / "tiny")
    return {(model, engine): _train(data, root / f"{model}-{engine}", "--model", model, "--engine", engine)
            for model in MODELS for engine in ENGINES} | {"data": data}


def test_the_registry_and_its_parameter_counts():
    assert list(MODELS) == ["mlp", "mlp-bn", "mlp-ln", "cnn"]
    counts = {name: trainable_parameters(name) for name in MODELS}
    assert counts == {"mlp": 266_610, "mlp-bn": 267_410, "mlp-ln": 267_410, "cnn": 315_146}
    assert TRAINABLE_PARAMETERS == counts["mlp"]
    stats = {"mean": 72.9, "variance": 8000.0}
    for name in MODELS:
        model = build_model("standard", stats, model=name)
        first = normalization.get("standard").build(stats)
        assert [type(layer) for layer in model.layers[:len(first)]] == [type(layer) for layer in first]
        assert [layer.name for layer in model.layers[-2:]] == ["logits", "probabilities"]
        assert logits_view(model).output.shape == (None, 10)


def test_an_unknown_model_is_one_line_naming_the_option(capsys):
    with pytest.raises(UsageError, match="^model 'resnet': unknown; choose from mlp, mlp-bn, mlp-ln, cnn$") as error:
        TrainConfig(model="resnet")
    assert error.value.field == "model"
    assert main(["train", "--model", "resnet"]) == 2
    assert capsys.readouterr().err == "fmnist: error: --model 'resnet': unknown; choose from mlp, mlp-bn, mlp-ln, cnn\n"


def test_help_explains_every_model(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    printed = " ".join(capsys.readouterr().out.split()).replace("- ", "-")  # argparse wraps lines, at hyphens too
    assert "--model NAME" in printed
    for name, network in MODELS.items():
        assert f"{name}: {' '.join(network.summary.split())}" in printed


def test_run_names_say_the_model():
    assert TrainConfig().name == "tutorial" and TrainConfig(model="mlp").name == "tutorial"
    assert TrainConfig(model="cnn").name == "cnn"
    assert TrainConfig(model="mlp-bn", normalization="none").name == "mlp-bn-none"
    assert TrainConfig(model="cnn", optimizer="adam", learning_rate=0.001).name == "cnn-standard-adam-lr0.001"


@pytest.mark.parametrize("model", list(MODELS))
def test_each_model_trains_alike_with_both_engines(trained, model):
    fused, reference = (trained[model, engine] for engine in ENGINES)
    for ours, theirs in zip(_history(fused), _history(reference), strict=True):
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert ours[key] == pytest.approx(theirs[key], abs=1e-4), key
    recorded = json.loads((fused / "config.json").read_text())["settings"]
    assert recorded["model"] == model and recorded["engine"] == "fused"
    loaded = keras.models.load_model(fused / "model.keras")  # plain Keras, after `import fmnist`
    assert sum(int(np.prod(v.shape)) for v in loaded.trainable_variables) == trainable_parameters(model)


def test_batch_normalization_learns_its_statistics_and_evaluates_with_them(trained):
    models = {engine: keras.models.load_model(trained["mlp-bn", engine] / "model.keras") for engine in ENGINES}
    moving = {engine: [(v.name, v.numpy()) for v in model.non_trainable_variables] for engine, model in models.items()}
    assert [name for name, _ in moving["fused"]] == ["moving_mean", "moving_variance"] * 2
    for (name, value), (_, reference) in zip(moving["fused"], moving["keras"], strict=True):
        np.testing.assert_allclose(value, reference, atol=1e-5)  # the fused engine updates them as fit does
        assert np.abs(value - (0.0 if name == "moving_mean" else 1.0)).max() > 1e-3, name  # they moved
    model = models["fused"]
    images, labels = tiny_images(100, seed=2)
    inference = np.asarray(model(images, training=False))
    assert np.abs(inference - np.asarray(model(images, training=True))).max() > 1e-3  # batch statistics differ
    metrics = json.loads((trained["mlp-bn", "fused"] / "metrics.json").read_text())
    loss = keras.losses.sparse_categorical_crossentropy(labels, inference)
    assert metrics["test_loss"] == pytest.approx(float(np.mean(loss)), abs=1e-4)
    assert metrics["test_accuracy"] == pytest.approx(float(np.mean(inference.argmax(1) == labels)))


def test_batch_normalization_learns_from_raw_pixels_where_the_mlp_cannot(trained, tmp_path):
    """Raw 0..255 pixels at SGD 0.01, one epoch (seeds 0, 1, 2 measured): the mlp blows up to a training
    loss of 7e5 to 1e12 and stays at chance (val_accuracy 0.07 to 0.12); with BatchNormalization its
    training accuracy is 0.58 to 0.71 (val_accuracy 0.24 to 0.75: the moving statistics, after 10 steps at
    momentum 0.99, are still far from the raw pixels' own)."""
    last = {model: _history(_train(trained["data"], tmp_path / model, "--model", model, "--normalization", "none",
                                   "--engine", "keras"))[-1] for model in ("mlp", "mlp-bn")}
    assert last["mlp"]["val_accuracy"] <= 0.2 and last["mlp"]["loss"] > 1e3
    assert last["mlp-bn"]["accuracy"] >= 0.5 and last["mlp-bn"]["val_accuracy"] >= 0.5


@pytest.mark.parametrize("model", list(MODELS))
def test_each_model_converts_to_onnx_and_agrees_with_keras(trained, tmp_path, model):
    """Keras's ONNX export (jax2onnx) of each trained model, run by onnxruntime (the check `fmnist export`
    makes, without its guard): within 1e-5 of Keras, the same class for every image."""
    loaded = keras.models.load_model(trained[model, "keras"] / "model.keras")
    path = tmp_path / "model.onnx"
    _convert(loaded, path, path)
    expected = loaded.predict(TEST_IMAGES, verbose=0)
    found = load_onnx(path).predict(TEST_IMAGES)  # through fmnist's ONNX guard, as predict and serve run it
    assert np.abs(found - expected).max() <= 1e-5
    assert (found.argmax(1) == expected.argmax(1)).all()


@pytest.mark.parametrize("model", list(MODELS))
def test_export_predict_and_evaluate_each_model(trained, tmp_path, model, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained[model, "fused"], run)
    data = trained["data"]
    assert main(["export", str(run), "--format", "onnx", *data]) == 0
    assert "same class for 100 of 100" in capsys.readouterr().out
    np.save(tmp_path / "x.npy", TEST_IMAGES[:20])
    labels = {}
    for name in ("model.keras", "model.onnx"):
        assert main(["predict", str(run / name), str(tmp_path / "x.npy"), "--format", "json"]) == 0
        labels[name] = [answer["label"] for answer in json.loads(capsys.readouterr().out)]
        assert main(["evaluate", str(run / name), *data]) == 0
        capsys.readouterr()
    assert labels["model.keras"] == labels["model.onnx"]


@pytest.mark.parametrize("model", list(MODELS))
def test_each_model_serves_what_predict_prints(trained, tmp_path, model, capsys):
    """A real ``fmnist serve`` process on loopback, for the run folder of each model: JSON pixels in, the
    same labels and probabilities as ``fmnist predict`` of the same model."""
    run = trained[model, "fused"]
    np.save(tmp_path / "x.npy", TEST_IMAGES[:8])
    assert main(["predict", str(run), str(tmp_path / "x.npy"), "--format", "json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    server = Server(run)
    try:
        status, served, _ = server.call("/predict", json.dumps(TEST_IMAGES[:8].tolist()).encode(),
                                        {"content-type": "application/json"})
    finally:
        code, _ = server.stop()
    assert status == 200 and code == 143
    assert [row["label"] for row in served] == [row["label"] for row in expected]
    assert [row["probability"] for row in served] == pytest.approx([row["probability"] for row in expected], abs=1e-6)


def test_a_run_resumes_as_its_model_and_refuses_another(trained, tmp_path, capsys):
    run = _train(trained["data"], tmp_path / "ln", "--model", "mlp-ln", "--engine", "keras")
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 0
    assert json.loads((run / "config.json").read_text())["settings"]["model"] == "mlp-ln"
    assert len(_history(run)) == 2
    assert any(isinstance(layer, keras.layers.LayerNormalization)
               for layer in keras.models.load_model(run / "model.keras").layers)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "3", "--model", "cnn"]) == 2
    assert "model 'cnn' differs from the run's 'mlp-ln'" in capsys.readouterr().err


def test_a_run_written_before_models_had_names_resumes_as_the_mlp(trained, tmp_path, capsys):
    run = tmp_path / "old"
    shutil.copytree(trained["mlp", "keras"], run)
    recorded = json.loads((run / "config.json").read_text())
    del recorded["settings"]["model"]
    (run / "config.json").write_text(json.dumps(recorded))
    assert main(["train", "--resume", str(run), "--epochs", "3", "--model", "cnn"]) == 2
    assert "model 'cnn' differs from the run's 'mlp'" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--epochs", "2", "--model", "mlp", "--quiet"]) == 0
    assert len(_history(run)) == 2


def test_a_comparison_trains_every_model_it_names(trained, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", *trained["data"], "--valid-size", "100", "--epochs", "1", "--models", "mlp,mlp-ln",
                 "--methods", "none,standard", "--seeds", "1", "--output-dir", str(out)]) == 0
    assert "mlp-ln standard seed 0: ok" in capsys.readouterr().out
    with open(out / "runs.csv") as handle:
        runs = list(csv.DictReader(handle))
    assert [(row["model"], row["method"], row["run_dir"]) for row in runs] == [
        ("mlp", "none", "none-seed0"), ("mlp", "standard", "standard-seed0"),
        ("mlp-ln", "none", "mlp-ln-none-seed0"), ("mlp-ln", "standard", "mlp-ln-standard-seed0")]
    assert json.loads((out / "mlp-ln-none-seed0" / "config.json").read_text())["settings"]["model"] == "mlp-ln"
    assert main(["compare", "--resume", str(out), "--seeds", "2"]) == 0  # the models are recorded
    with open(out / "runs.csv") as handle:
        assert [row["model"] for row in csv.DictReader(handle)] == ["mlp"] * 4 + ["mlp-ln"] * 4
    from fmnist.training.compare import compare

    with pytest.raises(UsageError, match="one learning rate and one optimizer"):
        compare(SweepConfig(learning_rates=(0.1, 0.01)), tmp_path / "two-rates")
