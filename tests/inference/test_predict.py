"""`fmnist predict`, safe model loading, `evaluate`'s report and `data show`, on generated files."""

import csv
import json
import shutil
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import sample_images, write_idx
from PIL import Image

from fmnist import normalization
from fmnist.cli import main
from fmnist.inputs.read import read_inputs
from fmnist.model import build_model


@pytest.fixture(scope="module")
def images():
    """Real test images when the dataset is installed, else generated ones."""
    return sample_images(12)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, images):
    keras.utils.set_random_seed(0)
    model = build_model("standard", normalization.get("standard").fit(images))
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return path


def _expected(model_file, images):
    model = keras.saving.load_model(model_file, safe_mode=True)
    return model.predict(images, verbose=0).argmax(-1)


def _predict_json(args, capsys):
    code = main(["predict", *map(str, args), "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def _palette(a):
    picture = Image.frombytes("P", (28, 28), a.tobytes())
    picture.putpalette([v for value in range(256) for v in (value, value, value)])  # index = grey value
    return picture


def test_pngs_and_their_variants_predict_like_the_arrays(tmp_path, model_file, images, capsys):
    """28x28 pictures are taken as already converted: both conversions give their exact pixels back."""
    expected = _expected(model_file, images)
    variants = {
        "grey": lambda a: Image.fromarray(a),
        "rgb": lambda a: Image.fromarray(np.stack([a] * 3, axis=-1)),
        "16bit": lambda a: Image.fromarray(a.astype(np.uint16) * 257),
        "rgba": lambda a: Image.fromarray(np.dstack([a, a, a, np.full_like(a, 255)])),
        "palette": _palette,
        "photo": lambda a: Image.fromarray(255 - a),  # dark on light: --invert auto turns it back
        # larger: the simple conversion's area averaging undoes it exactly (the dataset's is in test_pictures)
        "upscaled": lambda a: Image.fromarray(a).resize((112, 112), Image.Resampling.NEAREST),
    }
    for name, make in variants.items():
        folder = tmp_path / name
        folder.mkdir()
        for index, image in enumerate(images):
            make(image).save(folder / f"{index:02d}.png")
        # the pixels themselves come back exactly
        for conversion in ("simple",) if name == "upscaled" else ("dataset", "simple"):
            read = read_inputs([str(folder)], conversion=conversion)
            assert np.array_equal(np.stack([item.image for item in read]), images), (name, conversion)
        code, results = _predict_json([model_file, folder, "--conversion", "simple"], capsys)
        assert code == 0
        assert [r["label"] for r in results] == expected.tolist(), name
        assert all(r["error"] is None and len(r["top3"]) == 3 for r in results)


def test_transparent_background_is_a_page_and_inverted(tmp_path, images):
    item = images[0]
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., :3] = 0  # a black item …
    rgba[..., 3] = item  # … whose opacity is the Fashion-MNIST intensity, on a transparent background
    Image.fromarray(rgba).save(tmp_path / "cutout.png")
    (read,) = read_inputs([str(tmp_path / "cutout.png")])
    assert np.abs(read.image.astype(int) - item).max() <= 1


def test_arrays_and_idx_files(tmp_path, model_file, images, capsys):
    expected = _expected(model_file, images)
    np.save(tmp_path / "many.npy", images)
    np.save(tmp_path / "one.npy", images[3].astype(np.float64))
    write_idx(tmp_path / "idx", "t10k", images, np.zeros(len(images)))
    code, results = _predict_json([model_file, tmp_path / "many.npy", tmp_path / "one.npy",
                                   tmp_path / "idx" / "t10k-images-idx3-ubyte.gz"], capsys)
    assert code == 0
    labels = [r["label"] for r in results]
    assert labels == expected.tolist() + [expected[3]] + expected.tolist()
    assert [r["index"] for r in results[:3]] == [0, 1, 2]


def test_bad_inputs_get_error_rows_and_the_good_ones_are_predicted(tmp_path, model_file, images, capsys):
    good = tmp_path / "good.png"
    Image.fromarray(images[0]).save(good)
    bomb = tmp_path / "bomb.png"
    Image.new("1", (10_000, 5_000)).save(bomb)  # 50 megapixels in a few kilobytes
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    text = tmp_path / "text.png"
    text.write_text("hello, I am not a picture")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    gif = tmp_path / "anim.gif"
    Image.fromarray(images[0]).save(gif)
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"run": "code"}], dtype=object), allow_pickle=True)
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((28, 28), np.nan))
    shape = tmp_path / "shape.npy"
    np.save(shape, np.zeros((32, 32), np.uint8))
    inputs = [good, bomb, truncated, text, empty, gif, objects, nan, shape, tmp_path / "missing.png", good]
    code, results = _predict_json([model_file, *inputs], capsys)
    assert code == 1
    errors = {r["input"].rsplit("/", 1)[-1]: r["error"] for r in results}
    assert errors["good.png"] is None and results[-1]["error"] is None and results[0]["label"] is not None
    assert "more than the limit" in errors["bomb.png"]
    assert "damaged PNG file" in errors["truncated.png"]
    assert "unsupported format" in errors["text.png"]
    assert errors["empty.png"] == "empty file"
    assert "unsupported format (GIF)" in errors["anim.gif"]
    assert "Python objects" in errors["objects.npy"]
    assert "NaN" in errors["nan.npy"]
    assert "(32, 32)" in errors["shape.npy"]
    assert errors["missing.png"] == "no such file"
    assert "Traceback" not in capsys.readouterr().err


def test_table_and_csv_output(tmp_path, model_file, images, capsys):
    Image.fromarray(images[0]).save(tmp_path / "a.png")
    assert main(["predict", str(model_file), str(tmp_path / "a.png"), str(tmp_path / "b.png")]) == 1
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["input", "class", "prob", "top"]
    assert "error: no such file" in table[2]
    assert main(["predict", str(model_file), str(tmp_path / "a.png"), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "input,index,label,class_name,probability,top3,error,warning" and len(lines) == 2


def _lambda_model(tmp_path):
    marker = tmp_path / "code-ran"
    function = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Lambda(function), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    path = tmp_path / "lambda.keras"
    model.save(path)
    marker.unlink(missing_ok=True)  # building the model ran it once, here; loading must not
    return path, marker


def _damaged_models(tmp_path, model_file):
    cases = {}
    cases["empty"] = (tmp_path / "empty.keras", "empty file")
    cases["empty"][0].write_bytes(b"")
    cases["truncated"] = (tmp_path / "truncated.keras", "not a .keras archive")
    cases["truncated"][0].write_bytes(model_file.read_bytes()[:2000])
    cases["text"] = (tmp_path / "text.keras", "not a .keras archive")
    cases["text"][0].write_text("{}")
    cases["no-config"] = (tmp_path / "noconfig.keras", "no config.json inside")
    with zipfile.ZipFile(cases["no-config"][0], "w") as archive:
        archive.writestr("hello.txt", "hi")
    cases["suffix"] = (tmp_path / "model.h5", "not a .keras file")
    cases["suffix"][0].write_bytes(b"x")
    cases["missing"] = (tmp_path / "absent.keras", "no such model file")
    wrong = keras.Sequential([keras.Input((32, 32)), keras.layers.Flatten(), keras.layers.Dense(10)])
    cases["shape"] = (tmp_path / "wrong.keras", "expected (28, 28) to (10,)")
    wrong.save(cases["shape"][0])
    return cases


def test_lambda_model_is_refused_without_running_its_code(tmp_path, images, capsys):
    path, marker = _lambda_model(tmp_path)
    np.save(tmp_path / "x.npy", images[:2])
    assert main(["predict", str(path), str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr().err
    # refused from its config.json before Keras builds anything (Keras's safe mode would refuse it next)
    assert err.startswith(f"fmnist: error: {path}: layer 'Lambda' is not one fmnist models are built from")
    assert not marker.exists()


def test_damaged_model_files_each_get_their_own_message(tmp_path, model_file, images, capsys):
    np.save(tmp_path / "x.npy", images[:2])
    for name, (path, message) in _damaged_models(tmp_path, model_file).items():
        assert main(["predict", str(path), str(tmp_path / "x.npy")]) == 2, name
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (name, err)


def test_evaluate_writes_the_report(tmp_path, tiny_dir, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data-dir", str(tiny_dir), "--skip-checksum", "--valid-size", "100", "--epochs", "1",
                 "--quiet", "--output-dir", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run / "model.keras"), "--data-dir", str(tiny_dir), "--skip-checksum"]) == 0
    printed = capsys.readouterr().out
    assert "Ankle boot" in printed and "precision" in printed
    report = json.loads((run / "evaluation.json").read_text())
    assert len(report["per_class"]) == 10 and sum(r["support"] for r in report["per_class"]) == 100
    for picture in ("confusion_matrix.png", "mistakes.png"):
        assert Image.open(run / picture).size[0] > 100


def test_data_show(tmp_path, tiny_dir, capsys, monkeypatch):
    out = tmp_path / "samples.png"
    assert main(["data", "show", "--data-dir", str(tiny_dir), "--skip-checksum", "--output", str(out)]) == 0
    assert Image.open(out).size[0] > 200
    assert main(["data", "show", "--data-dir", str(tiny_dir), "--skip-checksum", "--per-class", "0"]) == 2
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["data", "show", "--data-dir", str(tiny_dir), "--skip-checksum", "--split", "test"]) == 0
    assert sorted(path.name for path in Path.cwd().rglob("*")) == ["runs", "samples-test.png"]  # not beside your files


def test_jpeg_with_exif_orientation_is_turned_upright(tmp_path, images):
    upright = images[1]
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": store the picture turned the other way
    Image.fromarray(np.rot90(upright, k=1)).save(tmp_path / "phone.jpg", quality=100, exif=exif)
    (read,) = read_inputs([str(tmp_path / "phone.jpg")], invert="no")
    assert read.error is None
    assert np.abs(read.image.astype(int) - upright.astype(int)).mean() < 3  # JPEG is lossy, orientation is not


def test_other_sizes_keep_their_aspect_ratio(tmp_path):
    wide = np.zeros((40, 80), np.uint8)
    wide[10:30, 10:70] = 200
    Image.fromarray(wide).save(tmp_path / "wide.png")
    (read,) = read_inputs([str(tmp_path / "wide.png")], invert="no")
    rows = np.flatnonzero(read.image.max(axis=1) > 100)
    columns = np.flatnonzero(read.image.max(axis=0) > 100)
    assert len(columns) == pytest.approx(3 * len(rows), abs=3)  # the 60x20 bar stays 3:1 (about 21x7)
    assert read.image[:7].max() == 0 and read.image[-7:].max() == 0  # padded with black, centred


def test_a_study_folder_gives_its_best_model(small_results, tmp_path, capsys):
    """predict and evaluate take a sweep or comparison folder: its best model (highest mean validation
    accuracy among the kept ones, as best.csv / summary.csv name them), said in one line on stderr."""
    np.save(tmp_path / "x.npy", np.zeros((2, 28, 28), np.uint8))
    for folder, table, kind in ((small_results.compare, "summary.csv", "compare"), (small_results.sweep, "best.csv", "sweep")):
        rows = [row for row in csv.DictReader(open(folder / table)) if row["run_dir"]]
        best = max(rows, key=lambda row: float(row["val_accuracy_mean"]))
        assert main(["predict", str(folder), str(tmp_path / "x.npy"), "--format", "json"]) == 0
        err = capsys.readouterr().err
        assert err.startswith(f"fmnist: {folder} is a {kind}: using its best model, {best['run_dir']} ({best['method']}")
    sweep = shutil.copytree(small_results.sweep, tmp_path / "sweep")  # the session's study stays as it is
    assert main(["evaluate", str(sweep), *small_results.data]) == 0
    assert capsys.readouterr().err.count("using its best model") == 1
    assert (sweep / best["run_dir"] / "evaluation.json").is_file()  # the member's folder, as for a run
    assert not (sweep / "evaluation.json").exists()
    assert main(["export", str(sweep), "--format", "onnx", *small_results.data]) == 0
    assert capsys.readouterr().err.count("using its best model") == 1
    assert (sweep / best["run_dir"] / "model.onnx").is_file()  # beside the best model, as for a run
