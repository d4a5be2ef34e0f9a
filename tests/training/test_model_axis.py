"""The study's model axis (``fmnist sweep --models``): a member of every network agrees with ``fmnist train
--model``, batch-normalization statistics included; the tables, figures, kept models and report carry the
model; a study written before models were an axis reads and resumes as the mlp's."""

import csv
import io
import json

import keras
import numpy as np
import pytest

from fmnist import data, engines, normalization
from fmnist.cli import main
from fmnist.config import MODELS, SweepConfig, TrainConfig
from fmnist.engines.member_state import Member
from fmnist.engines.members import MembersEngine
from fmnist.errors import UsageError
from fmnist.inference.load import load_model
from fmnist.model import build_model
from fmnist.training.grid import members_of, plan_programs
from fmnist.training.progress import Progress


def _csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("model", list(MODELS))
def test_a_member_of_each_model_agrees_with_fmnist_train(tiny_dir, model):
    """Two members (raw pixels, standardized; their own seeds) of one program of ``model`` against each
    trained alone by the fused engine, as ``fmnist train --model`` trains it: the same start, and after an
    epoch the same weights, the same moving statistics and the same metrics."""
    splits = data.split(data.load(tiny_dir, verify=False), 100)
    members = [Member("none", 0.01, 0), Member("standard", 0.01, 1)]
    stats = {method: normalization.get(method).fit(splits.x_train) for method in ("none", "standard")}
    engine = MembersEngine("sgd", members, stats, splits, 32, Progress(1, stream=io.StringIO(), live=False), model=model)
    metrics = engine.train_epoch(1)
    state = engine.local_state()
    for index, member in enumerate(members):
        config = TrainConfig(epochs=1, seed=member.seed, normalization=member.method, valid_size=100, verify=False,
                             model=model)
        keras.utils.set_random_seed(member.seed)
        alone = build_model(member.method, stats[member.method], 0.01, "sgd", model)
        row = engines.create("fused", alone, splits, config, Progress(1, stream=io.StringIO(), live=False)).train_epoch(1)
        trainable, non_trainable, _ = engine.member_state(state, index)
        for ours, theirs in zip(trainable, alone.trainable_variables, strict=True):
            # rtol too: raw pixels under SGD take weights to about 100, where float32's step is 7.6e-6 and the
            # two programs' sums in another order differed by 2.3e-5 (three steps) on one machine
            np.testing.assert_allclose(ours, np.asarray(theirs), atol=1e-5, rtol=1e-6, err_msg=f"{model} {member}")
        statistics = [np.asarray(v) for layer in alone.layers if isinstance(layer, keras.layers.BatchNormalization)
                      for v in layer.non_trainable_variables]
        assert len(statistics) == (4 if model == "mlp-bn" else 0)
        for ours, theirs in zip(non_trainable[len(non_trainable) - len(statistics):], statistics, strict=True):
            np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=1e-5)  # raw pixels: variances of hundreds
        for key, value in row.items():
            # rel too: raw pixels under SGD reach a loss near 680,000, where float32's step is 0.06
            assert metrics[key][index] == pytest.approx(value, rel=1e-6, abs=1e-4), (model, member, key)


def test_the_models_are_one_more_axis_of_the_grid():
    config = SweepConfig(methods=("none", "standard"), learning_rates=(0.01,), optimizers=("sgd", "adam"),
                         models=("mlp", "cnn"), seeds=2)
    members = members_of(config, "sweep")
    assert config.member_count == len(members) == 16
    assert [m.name for m in members[:2]] == ["none-sgd-lr0.01-seed0", "none-sgd-lr0.01-seed1"]  # the mlp's as before
    assert members[8].name == "cnn-none-sgd-lr0.01-seed0" and members[8].model == "cnn"
    programs = plan_programs(config, members)
    assert [(p["name"], p.get("model"), p["optimizer"]) for p in programs] == [
        ("sgd", None, "sgd"), ("adam", None, "adam"), ("cnn-sgd", "cnn", "sgd"), ("cnn-adam", "cnn", "adam")]
    with pytest.raises(UsageError, match="model 'vgg': unknown") as raised:
        SweepConfig(models=("mlp", "vgg"))
    assert raised.value.field == "model"
    with pytest.raises(UsageError, match="models: a value is named twice"):
        SweepConfig(models=("mlp-bn", "mlp-bn"))
    # a study written before models were an axis recorded its added cells without a model: the mlp's
    assert SweepConfig(learning_rates=(0.01,), extra_rates=(("sgd", "none", 0.001),)).extra_rates == (
        ("mlp", "sgd", "none", 0.001),)


def test_a_sweep_over_models_answers_within_and_across_them(tmp_path, tiny_args, capsys):
    """The issue's command on the tiny data: raw pixels learn with mlp-bn; every table has the model; the
    kept mlp-bn member's model carries its moving statistics (it scores its own test accuracy)."""
    out = tmp_path / "study"
    assert main(["sweep", *tiny_args, "--epochs", "1", "--output-dir", str(out), "--models", "mlp,mlp-bn",
                 "--methods", "none,standard", "--learning-rates", "0.01", "--optimizers", "sgd", "--seeds", "2"]) == 0
    printed = capsys.readouterr().out
    assert "sweep: 8 members (2 models x 2 methods x 1 learning rate x 1 optimizer x 2 seeds)" in printed
    assert "answer: mlp-bn sgd, each method at its own best learning rate" in printed
    assert "answer: sgd, none, each model at its own best rate, test accuracy: mlp " in printed
    members = _csv(out / "members.csv")
    assert [(row["model"], row["method"], row["seed"]) for row in members] == [
        (model, method, str(seed)) for model in ("mlp", "mlp-bn") for method in ("none", "standard") for seed in (0, 1)]
    assert all(row["status"] == "ok" for row in members if row["model"] == "mlp-bn")  # raw pixels learn too
    assert {row["program"] for row in members} == {"sgd", "mlp-bn-sgd"}
    best = _csv(out / "best.csv")
    assert [(row["model"], row["method"]) for row in best] == [
        ("mlp", "none"), ("mlp", "standard"), ("mlp-bn", "none"), ("mlp-bn", "standard")]
    assert {row["model"] for row in _csv(out / "summary.csv")} == {"mlp", "mlp-bn"}
    for name in ("heatmap-sgd.png", "heatmap-mlp-bn-sgd.png", "curves-mlp-bn-sgd.png"):
        assert (out / name).is_file(), name
    kept = next(row for row in members if row["model"] == "mlp-bn" and row["method"] == "none" and row["run_dir"])
    run = out / kept["run_dir"]
    assert json.loads((run / "config.json").read_text())["settings"]["model"] == "mlp-bn"
    model = load_model(run)
    moving = [v.numpy() for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
              for v in layer.non_trainable_variables]
    assert len(moving) == 4 and np.abs(moving[0]).max() > 1e-3  # the member's statistics, not a fresh start
    test = data.load(tiny_args[1], verify=False)
    accuracy = float(np.mean(model.predict(test.x_test, verbose=0).argmax(1) == test.y_test))
    assert accuracy == pytest.approx(float(kept["test_accuracy"]), abs=1e-6)
    page = (out / "report.html").read_text()
    assert "mlp-bn-sgd: validation accuracy per method" in page and "2 models ×" in page
    assert main(["sweep", "--resume", str(out)]) == 0  # finished: nothing to train, the same tables
    assert _csv(out / "members.csv") == members


def test_a_finished_study_adds_a_model_on_resume_and_trains_only_its_members(tmp_path, tiny_args, capsys):
    out = tmp_path / "grow"
    options = ["--methods", "none,standard", "--learning-rates", "0.01", "--optimizers", "sgd", "--seeds", "1"]
    assert main(["sweep", *tiny_args, "--epochs", "1", "--output-dir", str(out), *options]) == 0
    before = _csv(out / "members.csv")
    capsys.readouterr()
    assert main(["sweep", "--resume", str(out), "--models", "mlp-bn"]) == 2
    assert "models ('mlp-bn',) differs from the sweep's ('mlp',)" in capsys.readouterr().err
    assert main(["sweep", "--resume", str(out), "--models", "mlp,mlp-bn"]) == 0
    printed = capsys.readouterr().out
    assert "[sgd 1/2] finished earlier: 2 members" in printed and "[mlp-bn-sgd 2/2] epoch 1/1" in printed
    after = _csv(out / "members.csv")
    assert [row["model"] for row in after] == ["mlp", "mlp", "mlp-bn", "mlp-bn"]
    assert [{k: v for k, v in row.items() if k != "run_dir"} for row in after[:2]] == [
        {k: v for k, v in row.items() if k != "run_dir"} for row in before]
    assert [row["model"] for row in _csv(out / "best.csv")] == ["mlp", "mlp", "mlp-bn", "mlp-bn"]


def test_a_study_written_before_models_were_an_axis_resumes_and_reports_as_the_mlp(tmp_path, tiny_args, capsys):
    out = tmp_path / "old"
    assert main(["sweep", *tiny_args, "--epochs", "1", "--output-dir", str(out), "--methods", "none,standard",
                 "--learning-rates", "0.01", "--optimizers", "sgd", "--seeds", "1", "--save-models", "none"]) == 0
    study = json.loads((out / "study.json").read_text())
    del study["settings"]["models"]
    (out / "study.json").write_text(json.dumps(study))
    for name in ("members.csv", "summary.csv", "best.csv"):  # the tables as they were written then
        rows = _csv(out / name)
        with open(out / name, "w", newline="") as handle:
            writer = csv.DictWriter(handle, [key for key in rows[0] if key != "model"], extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    assert main(["report", str(out)]) == 0
    capsys.readouterr()
    assert main(["sweep", "--resume", str(out), "--seeds", "2"]) == 0  # its program files still bind
    printed = capsys.readouterr().out
    assert "finished earlier" in printed and "answer: sgd, each method" in printed
    assert [row["model"] for row in _csv(out / "members.csv")] == ["mlp"] * 4
