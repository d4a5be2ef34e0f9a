"""`fmnist compare` on tiny data: files, statistics, failures as results, usage errors."""

import csv
import math

import numpy as np
import pytest

from fmnist.cli import main
from fmnist.inference.load import load_model
from fmnist.reporting import tables


def _csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_compare_writes_table_files_and_reloadable_models(tmp_path, tiny_args, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "--methods", "none,standard", "--seeds", "2", *tiny_args, "--output-dir", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "[4/4] standard seed 1" in printed and "vs baseline" in printed
    runs = _csv(out / "runs.csv")
    assert [(row["method"], row["seed"]) for row in runs] == [
        (method, seed) for method in ("none", "standard") for seed in ("0", "1")]
    assert {row["status"] for row in runs if row["method"] == "none"} == {"stuck at chance"}
    summary = {row["method"]: row for row in _csv(out / "summary.csv")}
    # raw pixels stay at chance at this rate: no verdict, a hint instead; standard is the baseline
    assert (summary["none"]["verdict"], summary["none"]["why"]) == ("no rate learned", "try other rates")
    assert "no rate learned: try other rates" in printed
    assert (summary["standard"]["verdict"], summary["standard"]["pairs"]) == ("baseline", "0")
    assert float(summary["standard"]["test_accuracy_mean"]) > float(summary["none"]["test_accuracy_mean"])
    assert (out / "val_accuracy.png").stat().st_size > 0 and (out / "loss.png").stat().st_size > 0
    # every run's model reloads in safe mode and gives the accuracy it reported, from raw pixels
    from fmnist import data

    test = data.load(tiny_args[1], verify=False)
    for row in runs:
        model = load_model(out / row["run_dir"])
        accuracy = (model.predict(test.x_test, verbose=0).argmax(-1) == test.y_test).mean()
        assert accuracy == pytest.approx(float(row["test_accuracy"]), abs=1e-4)


def test_a_diverging_method_is_a_result_not_a_crash(tmp_path, tiny_args, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "--methods", "standard,rescale", "--seeds", "1", *tiny_args,
                 "--learning-rate", "1e20", "--output-dir", str(out)])
    assert code == 0
    runs = _csv(out / "runs.csv")
    assert [row["diverged"] for row in runs] == ["yes", "yes"]
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "options, message",
    [
        (["--methods", "standard,zscore"], "unknown normalization 'zscore'"),
        (["--seeds", "0"], "--seeds 0: must be an integer >= 1"),
        (["--methods", "none,rescale", "--baseline", "standard"], "--baseline 'standard' is not among the methods (none, rescale)"),
        (["--methods", "none,none,standard"], "a method is named twice"),
    ],
)
def test_usage_errors_exit_2(tmp_path, tiny_args, options, message, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", *tiny_args, *options, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_summary_statistics():
    rows = [
        {"method": m, "optimizer": "sgd", "learning_rate": 0.01, "seed": s, "status": "ok", "val_accuracy": v,
         "test_accuracy": t}
        for m, s, v, t in [("a", 0, 0.80, 0.81), ("a", 1, 0.82, 0.83), ("a", 2, 0.84, 0.85),
                           ("b", 0, 0.70, 0.71), ("b", 1, 0.71, 0.74), ("b", 2, 0.75, 0.72)]
    ]
    summary = {row["method"]: row for row in tables.best_rows(rows, tables.summary_rows(rows), ["a", "b"], ["sgd"], "a")}
    assert summary["a"]["test_accuracy_mean"] == pytest.approx(0.83)
    assert summary["a"]["test_accuracy_std"] == pytest.approx(0.02)
    # the 95% interval: Student-t on the logit scale, turned back
    logits = np.log(np.array([0.81, 0.83, 0.85]) / (1 - np.array([0.81, 0.83, 0.85])))
    half = 4.302653 * logits.std(ddof=1) / math.sqrt(3)
    expit = lambda z: 1 / (1 + math.exp(-z))
    assert summary["a"]["test_accuracy_low"] == pytest.approx(expit(logits.mean() - half), rel=1e-5)
    assert summary["a"]["test_accuracy_high"] == pytest.approx(expit(logits.mean() + half), rel=1e-5)
    diffs = np.array([0.71 - 0.81, 0.74 - 0.83, 0.72 - 0.85])
    assert summary["b"]["test_accuracy_diff_mean"] == pytest.approx(diffs.mean())
    t = diffs.mean() / (diffs.std(ddof=1) / math.sqrt(3))
    from scipy import stats

    assert summary["b"]["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), 2))
    assert (summary["b"]["verdict"], summary["b"]["why"]) == ("worse", f"p={summary['b']['p_value']:.2g}")
    assert math.isnan(summary["a"]["p_value"]) and summary["a"]["verdict"] == "baseline"


def test_an_interrupted_comparison_resumes_where_it_stopped(tmp_path, tiny_args, capsys, monkeypatch):
    import signal

    from fmnist.engines.members import MembersEngine

    out = tmp_path / "cmp"
    epochs = []
    real_epoch = MembersEngine.train_epoch

    def epoch_then_ctrl_c(self, epoch):
        epochs.append(epoch)
        result = real_epoch(self, epoch)
        if len(epochs) == 1:
            signal.raise_signal(signal.SIGINT)  # as if Ctrl-C arrived during the first epoch
        return result

    monkeypatch.setattr(MembersEngine, "train_epoch", epoch_then_ctrl_c)
    options = ["--methods", "none,standard", "--seeds", "2", *tiny_args]
    assert main(["compare", *options, "--output-dir", str(out)]) == 130
    assert f"Resume with: fmnist compare --resume {out}" in capsys.readouterr().err
    assert epochs == [1]
    assert main(["compare", "--resume", str(out)]) == 0
    assert epochs == [1, 2]  # only the epoch that had not been trained
    assert len(_csv(out / "runs.csv")) == 4
    assert main(["compare", "--resume", str(out), "--seeds", "1"]) == 2  # seeds may be added, not dropped
