"""`fmnist export --format onnx`: verified on export, nothing written when the check fails; `.onnx` models
in predict and evaluate (no Keras import), and the checks that refuse other files."""

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import onnx
import pytest
from conftest import tiny_images
from damaged_data import onnx_classifier
from onnx import TensorProto

import fmnist
from fmnist import CLASS_NAMES, normalization
from fmnist.cli import main
from fmnist.errors import DataError, ExportFailed
from fmnist.inference.export import export_onnx
from fmnist.inference.load import load_onnx
from fmnist.model import build_model

TEST_IMAGES = tiny_images(100, seed=2)[0]


def _model_file(folder, method="standard"):
    keras.utils.set_random_seed(0)
    model = build_model(method, normalization.get(method).fit(tiny_images(200, seed=1)[0]))
    path = folder / "model.keras"
    model.save(path)
    return path


@pytest.mark.parametrize("method", list(normalization.METHODS))
def test_every_method_exports_and_matches_keras(tmp_path, method):
    """Every normalization's layers convert (the custom per-image one too). Without normalization the
    untrained model's logits are in the thousands and float rounding reaches ~1e-5 in the probabilities:
    measured 1.1e-5 here, refused at the default limit, so that case is checked at 1e-4."""
    source = _model_file(tmp_path, method)
    tolerance = 1e-4 if method == "none" else 1e-5
    result = export_onnx(tmp_path, TEST_IMAGES, tolerance=tolerance)
    assert result.path == tmp_path / "model.onnx" and result.path.is_file()
    assert result.images == result.same_argmax == 100 and result.max_difference <= tolerance
    assert "jax2onnx" in result.converter and result.runtime.startswith("onnxruntime")
    expected = keras.saving.load_model(source, safe_mode=True).predict(TEST_IMAGES, verbose=0)
    found = load_onnx(result.path).predict(TEST_IMAGES)
    assert np.abs(found - expected).max() <= tolerance
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
    # the file alone says what it is: the classes in column order, the conventions, the normalization inside
    props = {prop.key: prop.value for prop in onnx.load(str(result.path)).metadata_props}
    assert json.loads(props["fmnist.classes"]) == list(CLASS_NAMES)
    assert props["fmnist.normalization"] == method and props["fmnist.version"] == fmnist.__version__
    assert props["fmnist.input"].startswith("pixels: uint8 (batch, 28, 28), raw 0..255")
    assert props["fmnist.converter"] == result.converter


def test_a_model_that_fails_the_check_is_not_written(tmp_path):
    _model_file(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"the previous file")
    with pytest.raises(ExportFailed, match=r"model.onnx: not written: .*same class for 100 of 100 .* max \|p_onnx - p_keras\|"):
        export_onnx(tmp_path, TEST_IMAGES, tolerance=-1.0)  # nothing can pass
    assert (tmp_path / "model.onnx").read_bytes() == b"the previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras", "model.onnx"]


def test_export_predict_and_evaluate_from_the_command_line(tmp_path, tiny_dir, capsys):
    data = ["--data-dir", str(tiny_dir), "--skip-checksum"]
    run = tmp_path / "run"
    assert main(["train", *data, "--valid-size", "100", "--epochs", "1", "--quiet", "--output-dir", str(run)]) == 0
    capsys.readouterr()
    assert main(["export", str(run), "--format", "onnx", *data]) == 0
    printed = capsys.readouterr().out
    assert "verified with onnxruntime" in printed and "same class for 100 of 100" in printed
    assert f"wrote {run / 'model.onnx'}" in printed
    np.save(tmp_path / "x.npy", TEST_IMAGES[:20])
    answers = {}
    for name in ("model.keras", "model.onnx"):
        assert main(["predict", str(run / name), str(tmp_path / "x.npy"), "--format", "json"]) == 0
        answers[name] = json.loads(capsys.readouterr().out)
    assert [a["label"] for a in answers["model.keras"]] == [a["label"] for a in answers["model.onnx"]]
    reports = {}
    for name in ("model.keras", "model.onnx"):
        assert main(["evaluate", str(run / name), *data]) == 0
        capsys.readouterr()
        reports[name] = json.loads((run / "evaluation.json").read_text())
    assert reports["model.onnx"]["test_accuracy"] == reports["model.keras"]["test_accuracy"]
    assert reports["model.onnx"]["test_loss"] == pytest.approx(reports["model.keras"]["test_loss"], abs=1e-5)


def test_export_refuses_bad_usage(tmp_path, tiny_dir, capsys):
    _model_file(tmp_path)
    data = ["--data-dir", str(tiny_dir), "--skip-checksum"]
    cases = {
        "output suffix": ([str(tmp_path), "--output", str(tmp_path / "model.txt"), *data], "give a .onnx file"),
        "no model": ([str(tmp_path / "absent.keras")], "no such model file"),
        "no data": ([str(tmp_path), "--data-dir", str(tmp_path / "nothing")], "nothing"),
    }
    # an output that cannot be written is said before the data load and the conversion (no data here)
    (tmp_path / "folder.onnx").mkdir()
    unwritable = {"a folder": (tmp_path / "folder.onnx", "is a folder"),
                  "an over-long name": (tmp_path / ("x" * 245 + ".onnx"), "file name too long"),
                  "a place no file can go": (Path("/proc/fmnist.onnx"), "cannot write"),
                  "a missing folder inside a file": (tmp_path / "model.keras" / "x.onnx", "give a .onnx file in an existing folder")}
    for name, (output, words) in unwritable.items():
        cases[name] = ([str(tmp_path), "--output", str(output), "--data-dir", str(tmp_path / "nothing")],
                       f"fmnist: error: {output}: ")
        cases[name + " (why)"] = cases[name][0], words
    for name, (args, words) in cases.items():
        assert main(["export", *args]) == 2, name
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, (name, err)


def test_predict_with_onnx_does_not_import_keras(tmp_path):
    _model_file(tmp_path)
    export_onnx(tmp_path, TEST_IMAGES)
    np.save(tmp_path / "x.npy", TEST_IMAGES[:3])
    code = ("import sys; from fmnist.cli import main; code = main(['predict', %r, %r]); "
            "print(code, sorted(m for m in ('keras', 'jax', 'tensorflow') if m in sys.modules))"
            % (str(tmp_path / "model.onnx"), str(tmp_path / "x.npy")))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "0 []", result.stderr
    # one image where a batch is expected: fmnist's entry points take it, and give one row back
    model = load_onnx(tmp_path / "model.onnx")
    assert np.allclose(model.predict(TEST_IMAGES[0]), model.predict(TEST_IMAGES[:1])[0])
    assert fmnist.predict_probabilities(model, TEST_IMAGES[0]).shape == (10,)


def test_a_model_from_another_converter_runs(tmp_path):
    path = tmp_path / "other.onnx"
    onnx.save(onnx_classifier(input_type=TensorProto.FLOAT), path)
    probabilities = load_onnx(path).predict(TEST_IMAGES[:4])
    assert probabilities.shape == (4, 10) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_unusable_onnx_files_are_refused_with_one_line(tmp_path, capsys):
    cases = {
        "empty": (b"", "empty file"),
        "text": (b"hello, I am not a model", "not an ONNX model"),
        "random": (np.random.default_rng(1).bytes(5000), "not an ONNX model"),
        "keras archive": (_model_file(tmp_path).read_bytes(), "not an ONNX model"),
        "input shape": (onnx_classifier(input_shape=("batch", 32, 32)), "expected one (batch, 28, 28)"),
        "classes": (onnx_classifier(classes=5), "to ('batch', 5)"),
        "two inputs": (onnx_classifier(inputs=2), "2 inputs"),
        "custom operator": (onnx_classifier(domain="com.example.evil"), "outside the ONNX standard (com.example.evil)"),
        "external data": (onnx_classifier(external=True), "external data files (W, …); refused"),
    }
    np.save(tmp_path / "x.npy", TEST_IMAGES[:2])
    for name, (content, words) in cases.items():
        path = tmp_path / f"{name.replace(' ', '-')}.onnx"
        path.write_bytes(content if isinstance(content, bytes) else content.SerializeToString())
        with pytest.raises(DataError, match=None):
            load_onnx(path)
        assert main(["predict", str(path), str(tmp_path / "x.npy")]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith(f"fmnist: error: {path}: ") and words in err and err.count("\n") == 1, (name, err)
