"""The command line end to end on tiny generated data."""

import csv
import json
import re
import subprocess
import sys

import pytest
from damaged_data import DAMAGES

from fmnist.cli import main

RUN_FILES = {"config.json", "history.csv", "metrics.json", "model.keras", "model_summary.txt", "learning_curves.png",
             "checkpoint.npz",
             "events.out.tfevents.fmnist", "train", "validation", "test", "report.html"}


def _history(run_dir):
    with open(run_dir / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_train_writes_the_run_folder(tmp_path, tiny_args, capsys):
    out = tmp_path / "run"
    assert main(["train", *tiny_args, "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "scaled training range (standard):" in printed
    assert "Epoch 2/2 - " in printed and "val_accuracy:" in printed
    assert f"files in {out}" in printed
    assert {path.name for path in out.iterdir()} == RUN_FILES  # and no temporary files left
    assert "Trainable params: 266,610" in (out / "model_summary.txt").read_text()  # the tutorial's model.summary()
    history = _history(out)
    assert list(history[0]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds"]
    assert [row["epoch"] for row in history] == ["1", "2"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split_sizes"] == {"train": 300, "valid": 100, "test": 100}
    assert metrics["diverged"] is False and 0 <= metrics["test_accuracy"] <= 1
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["epochs"] == 2 and config["settings"]["engine"] == "fused"
    assert {"python", "keras", "backend", "numpy", "device"} <= set(config["environment"])
    # a fresh process, safe mode, raw uint8 pixels: the same test accuracy
    script = (
        "import sys, numpy as np, keras\n"
        "from fmnist import data\n"
        "model = keras.saving.load_model(sys.argv[1], safe_mode=True)\n"
        "d = data.load(sys.argv[2], verify=False)\n"
        "print((model.predict(d.x_test, verbose=0).argmax(-1) == d.y_test).mean())\n"
    )
    fresh = subprocess.run([sys.executable, "-c", script, str(out / "model.keras"), tiny_args[1]],
                           capture_output=True, text=True, check=True)
    assert float(fresh.stdout.strip().splitlines()[-1]) == pytest.approx(metrics["test_accuracy"], abs=1e-4)
    # and `fmnist evaluate` agrees
    assert main(["evaluate", str(out), "--data-dir", tiny_args[1], "--skip-checksum"]) == 0
    assert f"accuracy {metrics['test_accuracy']:.4f}" in capsys.readouterr().out


def test_same_seed_same_history_other_seed_differs(tmp_path, tiny_args):
    runs = {}
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert main(["train", *tiny_args, "--seed", seed, "--quiet", "--output-dir", str(tmp_path / name)]) == 0
        runs[name] = [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in _history(tmp_path / name)]
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_data_exits_2_with_one_line_and_no_run(tmp_path, tiny_args, damage, capsys):
    DAMAGES[damage][0](tmp_path / "tiny")
    out = tmp_path / "run"
    assert main(["train", *tiny_args, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fmnist: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert DAMAGES[damage][1] in err
    assert not out.exists()


@pytest.mark.parametrize(
    "options, message",
    [
        (["--epochs", "0"], "--epochs 0: must be an integer >= 1"),
        (["--normalization", "zscore"], "unknown normalization 'zscore'"),
        (["--learning-rate", "-1"], "--learning-rate -1.0"),
        (["--valid-size", "400"], "--valid-size 400"),
        (["--data-dir", "/nonexistent"], "/nonexistent: data folder does not exist"),
    ],
)
def test_bad_options_exit_2(tiny_args, options, message, capsys):
    assert main(["train", *tiny_args, *options]) == 2
    assert message in capsys.readouterr().err


def test_other_data_are_refused_with_the_option_that_accepts_them(tiny_dir, capsys):
    assert main(["train", "--data-dir", str(tiny_dir), "--valid-size", "100", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz: content differs from the Fashion-MNIST release" in err
    assert err.endswith("; to use other IDX data on purpose, turn the check off (--skip-checksum)\n")


def test_output_dir_in_use_is_refused(tmp_path, tiny_args, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.keras").write_bytes(b"a good model")
    assert main(["train", *tiny_args, "--output-dir", str(out)]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert (out / "model.keras").read_bytes() == b"a good model"
    for command in (["train"], ["compare", "--seeds", "1"], ["sweep", "--seeds", "1"]):  # before the data load:
        assert main([*command, "--data-dir", str(tmp_path / "no-data"), "--output-dir", str(out)]) == 2  # no data
        assert f"--output-dir {out}: exists and is not an empty folder" in capsys.readouterr().err, command


def test_divergence_exits_1_and_saves_no_model(tmp_path, tiny_args, capsys):
    out = tmp_path / "run"
    assert main(["train", *tiny_args, "--learning-rate", "1e20", "--output-dir", str(out)]) == 1
    assert "diverged" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text())["diverged"] is True
    assert not (out / "model.keras").exists()


def test_data_info(tiny_dir, capsys):
    assert main(["data", "info", "--data-dir", str(tiny_dir), "--skip-checksum"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^train_images: +400$", printed, re.MULTILINE) and re.search(r"^pixel_max: +\d+$", printed, re.MULTILINE)


def test_evaluate_refuses_a_non_model(tmp_path, capsys):
    bogus = tmp_path / "model.keras"
    bogus.write_text("not a zip")
    assert main(["evaluate", str(bogus)]) == 2
    assert "not a .keras archive" in capsys.readouterr().err


def test_debug_shows_the_traceback(tiny_args):
    with pytest.raises(Exception, match="unknown normalization"):
        main(["--debug", "train", *tiny_args, "--normalization", "zscore"])
    with pytest.raises(Exception, match="unknown normalization"):
        main(["train", *tiny_args, "--normalization", "zscore", "--debug"])


def test_help_lists_every_normalization(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    printed = capsys.readouterr().out
    for method in ("none", "rescale", "minmax", "standard", "per-pixel", "per-image"):
        assert re.search(rf"^  {method} +\S", printed, re.MULTILINE)


def test_version_lists_the_libraries_as_the_tutorial_does():
    """`fmnist --version` as a user runs it: fmnist, Python, the backend and each library with its
    version, one per line, without importing Keras or JAX."""
    import importlib.metadata
    import platform

    done = subprocess.run([sys.executable, "-m", "fmnist", "--version"], capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    assert lines[:3] == [f"fmnist {importlib.metadata.version('fmnist')}", f"python {platform.python_version()}",
                         "backend jax"]
    for package in ("keras", "jax", "numpy", "scikit-learn", "matplotlib"):
        assert f"{package} {importlib.metadata.version(package)}" in lines


def test_a_run_is_named_for_what_differs_from_the_tutorial(tmp_path, tiny_args, monkeypatch, capsys):
    """Without --name a run folder says what it is: `tutorial` for the tutorial's settings, else the
    settings that differ (normalization first), so variants can be told apart in runs/ and TensorBoard."""
    monkeypatch.chdir(tmp_path)
    for options, name in (([], "tutorial"), (["--normalization", "per-image"], "per-image"),
                          (["--optimizer", "adam", "--learning-rate", "0.001"], "standard-adam-lr0.001")):
        assert main(["train", *tiny_args, "--epochs", "1", "--quiet", *options]) == 0
        capsys.readouterr()
        (folder,) = [path for path in (tmp_path / "runs").iterdir() if path.name.endswith(f"Z-{name}")]
        assert json.loads((folder / "config.json").read_text())["settings"]["name"] == name


def test_early_stopping_keeps_the_best_epochs_model(tmp_path, tiny_args, monkeypatch, capsys):
    """--early-stopping 2: the run stops two epochs after its best validation loss, and model.keras, the
    test metrics and metrics.json are the best epoch's (Keras's restore_best_weights)."""
    import keras
    import numpy as np

    from fmnist import engines

    scripted = {1: 1.0, 2: 0.8, 3: 0.9, 4: 0.95, 5: 0.7}  # epoch -> val_loss: best at 2, no better at 3 and 4
    weights = {}
    create = engines.create

    def scripted_engine(*args, **kwargs):
        engine = create(*args, **kwargs)
        model, train_epoch = args[1], engine.train_epoch

        def epoch(number):
            metrics = train_epoch(number) | {"val_loss": scripted[number]}
            weights[number] = [np.array(value) for value in model.get_weights()]
            return metrics

        engine.train_epoch = epoch
        return engine

    monkeypatch.setattr(engines, "create", scripted_engine)
    out = tmp_path / "run"
    assert main(["train", *tiny_args, "--epochs", "5", "--early-stopping", "2", "--quiet", "--output-dir", str(out)]) == 0
    capsys.readouterr()
    assert [row["epoch"] for row in _history(out)] == ["1", "2", "3", "4"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model_epoch"] == 2 and metrics["stopped_epoch"] == 4 and metrics["status"] == "ok"
    saved = keras.saving.load_model(out / "model.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(saved, weights[2]))
    assert not all(np.array_equal(a, b) for a, b in zip(saved, weights[4]))
    assert main(["train", "--resume", str(out), "--early-stopping", "3"]) == 2  # it changes the result
    assert f"--resume {out}: early_stopping 3 differs from the run's 2" in capsys.readouterr().err
    assert main(["train", *tiny_args, "--early-stopping", "0"]) == 2
    assert "--early-stopping 0: the patience must be an integer >= 1" in capsys.readouterr().err
