"""`fmnist sweep` on tiny data: the folder, the tables, members against `fmnist train`, failures as results."""

import csv
import dataclasses
import io
import json
import math

import keras
import numpy as np
import pytest

from fmnist import data, engines, normalization
from fmnist.cli import main
from fmnist.config import TrainConfig
from fmnist.engines.member_state import Member
from fmnist.engines.members import MembersEngine
from fmnist.engines.program import read_state
from fmnist.inference.load import load_model
from fmnist.model import build_model
from fmnist.reporting import tables
from fmnist.reporting.answer import answer
from fmnist.training.progress import Progress

METHODS = ("none", "rescale", "minmax", "standard", "per-pixel", "per-image")


def _csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _without(rows, *columns):
    return [{key: value for key, value in row.items() if key not in columns} for row in rows]


def _sweep(tiny_args, out, *options):
    return main(["sweep", *tiny_args, "--output-dir", str(out), *options])


def test_sweep_writes_the_study_folder(tmp_path, tiny_args, capsys):
    out = tmp_path / "sweep"
    code = _sweep(tiny_args, out, "--methods", "none,standard,per-image", "--learning-rates", "0.001,1e20",
                  "--optimizers", "sgd,adam", "--seeds", "2", "--extend-grid", "0")
    assert code == 0
    printed = capsys.readouterr().out
    assert "sweep: 24 members (3 methods x 2 learning rates x 2 optimizers x 2 seeds), 2 epochs" in printed
    assert "answer: sgd, each method at its own best learning rate" in printed
    members = _csv(out / "members.csv")
    assert [(r["optimizer"], r["method"], r["learning_rate"], r["seed"]) for r in members] == [
        (o, m, str(rate), str(s)) for o in ("sgd", "adam") for m in ("none", "standard", "per-image")
        for rate in (0.001, 1e20) for s in (0, 1)]
    # a learning rate of 1e20 diverges in the first epoch: recorded with its epoch, the others go on
    for row in members:
        if row["learning_rate"] == "1e+20":
            assert (row["status"], row["diverged_epoch"], row["epochs"]) == ("diverged", "1", "1")
            assert row["test_accuracy"] == "nan"
        else:
            assert row["status"] in ("ok", "stuck at chance") and row["epochs"] == "2"
    history = _csv(out / "history.csv")
    assert len(history) == 12 * 2 + 12 * 1
    assert all(math.isnan(float(row["loss"])) for row in history if row["learning_rate"] == "1e+20")
    summary = _csv(out / "summary.csv")
    assert len(summary) == 12 and {row["diverged"] for row in summary if row["learning_rate"] == "1e+20"} == {"2"}
    best = _csv(out / "best.csv")
    assert [(row["optimizer"], row["method"], row["learning_rate"]) for row in best] == [
        (o, m, "0.001") for o in ("sgd", "adam") for m in ("none", "standard", "per-image")]  # 1e20 never qualifies
    assert {row["baseline"] for row in best} == {"standard"}
    assert {row["pairs"] for row in best if row["method"] != "standard"} == {"2"}
    # 0.001 is the lowest rate tried, and --extend-grid 0 adds none: flagged, and no verdict
    assert {row["edge"] for row in best} == {"lowest"} and {row["verdict"] for row in best} == {"baseline", "not judged"}
    assert "not judged: none's best rate is the lowest tried; extend the grid" in printed
    for name in ("heatmap-sgd.png", "curves-sgd.png", "heatmap-adam.png", "curves-adam.png"):
        assert (out / name).stat().st_size > 0
    # --save-models best: one model per method x optimizer, at its best rate, first seed; it reloads in
    # safe mode and scores on raw pixels what members.csv says
    kept = [row for row in members if row["run_dir"]]
    assert [(row["optimizer"], row["method"], row["seed"]) for row in kept] == [
        (o, m, "0") for o in ("sgd", "adam") for m in ("none", "standard", "per-image")]
    test = data.load(tiny_args[1], verify=False)
    for row in kept:
        run_dir = out / row["run_dir"]
        config = json.loads((run_dir / "config.json").read_text())
        assert config["settings"]["optimizer"] == row["optimizer"] and config["settings"]["engine"] == "members"
        accuracy = (load_model(run_dir).predict(test.x_test, verbose=0).argmax(-1) == test.y_test).mean()
        assert accuracy == pytest.approx(float(row["test_accuracy"]), abs=1e-6)
    assert not list(out.glob("programs/*/state-*.npz"))  # a finished study keeps no program states


def test_a_diverging_member_changes_no_other_member(tmp_path, tiny_args):
    options = ["--methods", "rescale,standard", "--optimizers", "momentum", "--seeds", "2", "--save-models", "none"]
    assert _sweep(tiny_args, tmp_path / "with", *options, "--learning-rates", "0.05,1e20") == 0
    assert _sweep(tiny_args, tmp_path / "without", *options, "--learning-rates", "0.05") == 0
    with_them = [row for row in _csv(tmp_path / "with" / "history.csv") if row["learning_rate"] == "0.05"]
    assert _without(with_them, "epoch_seconds") == _without(_csv(tmp_path / "without" / "history.csv"), "epoch_seconds")


def test_programs_in_pieces_give_the_same_members(tmp_path, tiny_args, capsys):
    options = ["--methods", "none,per-pixel,per-image", "--learning-rates", "0.1,0.01", "--optimizers", "sgd",
               "--seeds", "2", "--save-models", "none"]
    assert _sweep(tiny_args, tmp_path / "whole", *options) == 0
    assert _sweep(tiny_args, tmp_path / "pieces", *options, "--members-per-program", "5") == 0
    assert "3 programs" in capsys.readouterr().out  # 12 members in pieces of at most 5: 4 + 4 + 4
    columns = ("seconds", "program", "epoch_seconds")
    for name in ("members.csv", "history.csv"):
        assert _without(_csv(tmp_path / "whole" / name), *columns) == _without(_csv(tmp_path / "pieces" / name), *columns)


def test_a_best_rate_on_the_edge_extends_the_grid_and_resume_keeps_it(tmp_path, tiny_args, capsys):
    out = tmp_path / "sweep"
    # on the tiny data raw pixels with Adam learn best at the lowest of these rates; 1e20 diverges
    assert _sweep(tiny_args, out, "--methods", "none,standard", "--learning-rates", "1e20,0.03,0.001",
                  "--optimizers", "adam", "--seeds", "1", "--extend-grid", "1", "--save-models", "none") == 0
    printed = capsys.readouterr().out
    assert "sweep: best rate on the edge of the rates tried, adding none adam lr 0.0003" in printed
    extra = [tuple(cell) for cell in json.loads((out / "study.json").read_text())["settings"]["extra_rates"]]
    assert ("mlp", "adam", "none", 0.0003) in extra and all(rate == 0.0003 for *_, rate in extra)  # one half-decade, once
    members = _csv(out / "members.csv")
    assert {(row["method"], row["learning_rate"]) for row in members[6:]} == {(m, "0.0003") for _, _, m, _ in extra}
    assert all(row["status"] in ("ok", "stuck at chance") for row in members[6:])
    best = {row["method"]: row for row in _csv(out / "best.csv")}
    for row in best.values():  # still on the edge after the one extension allowed: flagged, not judged
        if row["learning_rate"] == "0.0003":
            assert row["edge"] == "lowest" and row["verdict"] in ("baseline", "not judged")
    # resuming the finished study trains nothing and adds nothing: the same tables
    before = {name: (out / name).read_text() for name in ("members.csv", "summary.csv", "best.csv")}
    assert main(["sweep", "--resume", str(out)]) == 0
    assert "adding" not in capsys.readouterr().out
    assert {name: (out / name).read_text() for name in before} == before


def test_a_method_that_learns_at_no_rate_gets_a_hint_not_a_verdict(tmp_path, tiny_args, capsys):
    out = tmp_path / "sweep"
    assert _sweep(tiny_args, out, "--methods", "none,standard", "--learning-rates", "1e21,1e20", "--optimizers", "sgd",
                  "--seeds", "1", "--baseline", "none", "--save-models", "none") == 0
    best = _csv(out / "best.csv")
    assert [(row["method"], row["learning_rate"], row["verdict"], row["why"]) for row in best] == [
        ("none", "", "no rate learned", "try lower rates"), ("standard", "", "no rate learned", "try lower rates")]
    assert "answer: sgd: the baseline none learned at no rate (try lower rates); nothing to compare against" in \
        capsys.readouterr().out


def _members_engine(splits, members, optimizer, live=False):
    stats = {method: normalization.get(method).fit(splits.x_train) for method in {m.method for m in members}}
    progress = Progress(1, stream=io.StringIO(), live=live)
    return MembersEngine(optimizer, members, stats, splits, 32, progress), stats


def _train_alone(splits, member, optimizer, stats, epochs):
    config = TrainConfig(epochs=epochs, seed=member.seed, normalization=member.method, learning_rate=member.learning_rate,
                         optimizer=optimizer, valid_size=100, verify=False)
    keras.utils.set_random_seed(member.seed)
    model = build_model(member.method, stats[member.method], member.learning_rate, optimizer)
    engine = engines.create("fused", model, splits, config, Progress(epochs, stream=io.StringIO(), live=False))
    rows = [engine.train_epoch(epoch) for epoch in range(1, epochs + 1)]
    return [np.asarray(v) for v in model.trainable_variables], rows


@pytest.mark.parametrize("optimizer, rate, members", [
    ("sgd", 0.01, [(method, 0) for method in METHODS] + [("standard", 3)]),  # the tutorial's rate
    ("momentum", 0.01, [("standard", 1)]),
    ("nesterov", 0.01, [("per-image", 2)]),
    # Adam divides by sqrt(v): gradients near zero turn last-bit differences into steps of order the
    # learning rate, so Adam is held at its usual rate, where the members still agree within 1e-5.
    ("adam", 0.001, [("minmax", 0), ("standard", 4)]),
])
def test_a_member_agrees_with_fmnist_train(tiny_dir, optimizer, rate, members):
    splits = data.split(data.load(tiny_dir, verify=False), 100)
    members = [Member(method, rate, seed) for method, seed in members]
    engine, stats = _members_engine(splits, members, optimizer)
    for index, member in enumerate(members):  # each starts exactly where `fmnist train --seed` starts
        keras.utils.set_random_seed(member.seed)
        start = read_state(build_model(member.method, stats[member.method], rate, optimizer))[0]
        for ours, theirs in zip(engine.member_state(engine.local_state(), index)[0], start):
            np.testing.assert_array_equal(ours, np.asarray(theirs))
    metrics = engine.train_epoch(1)
    state = engine.local_state()
    for index, member in enumerate(members):
        weights, (row,) = _train_alone(splits, member, optimizer, stats, 1)
        for ours, theirs in zip(engine.member_state(state, index)[0], weights):
            np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0, err_msg=str(member))
        for key, value in row.items():
            assert metrics[key][index] == pytest.approx(value, abs=1e-4), (member, key)


def test_live_chunks_give_the_same_members(tiny_dir):
    splits = data.split(data.load(tiny_dir, verify=False), 100)
    members = [Member("standard", 0.05, seed) for seed in (0, 1, 2)]
    quiet, _ = _members_engine(splits, members, "sgd")
    live, _ = _members_engine(splits, members, "sgd", live=True)
    assert {key: list(v) for key, v in quiet.train_epoch(1).items()} == {key: list(v) for key, v in live.train_epoch(1).items()}
    for a, b in zip(quiet.local_state().values(), live.local_state().values()):
        np.testing.assert_array_equal(a, b)


def test_diverged_members_leave_the_program_and_the_others_go_on_alike(tiny_dir):
    """Retiring a diverged member (its rows leave the compiled program) leaves the other members' numbers:
    every epoch's metrics and every saved state as in a program that keeps computing it (equal here; with
    another row count per device XLA may pick other kernels, so the last bits are not promised), and the
    diverged members' last finite states exactly."""
    splits = data.split(data.load(tiny_dir, verify=False), 100)
    members = [Member("standard", 0.05, 0), Member("none", 1e3, 1), Member("none", 1e3, 2), Member("rescale", 0.05, 3),
               Member("per-image", 0.05, 4)]  # two diverge in epoch 1: the program goes from 6 rows to 4
    runs = {}
    for retire in (False, True):
        stats = {method: normalization.get(method).fit(splits.x_train) for method in {m.method for m in members}}
        engine = MembersEngine("sgd", members, stats, splits, 32, Progress(1, stream=io.StringIO(), live=False),
                               retire=retire)
        epochs = [engine.train_epoch(epoch) for epoch in (1, 2, 3)]
        runs[retire] = epochs, engine.test_metrics(), engine.local_state(), engine.alive.copy(), len(engine.layout)
    (kept_epochs, kept_test, kept_state, kept_alive, kept_rows), (epochs, test, state, alive, rows) = runs[False], runs[True]
    assert list(alive) == list(kept_alive) == [True, False, False, True, True]
    assert (kept_rows, rows) == (6, 4)
    living = np.flatnonzero(alive)
    for number, (ours, theirs) in enumerate(zip(epochs, kept_epochs), 1):
        for key in ours:
            np.testing.assert_allclose(ours[key][living], theirs[key][living], rtol=0, atol=1e-6)
            assert number == 1 or np.isnan(ours[key][~alive]).all()  # out of the program: nothing computed
    for key in test:
        np.testing.assert_allclose(test[key][living], kept_test[key][living], rtol=0, atol=1e-6)
    for key in state:
        np.testing.assert_allclose(state[key][living], kept_state[key][living], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(state[key][~alive], kept_state[key][~alive])  # the last finite state
    restored = MembersEngine("sgd", members, stats, splits, 32, Progress(1, stream=io.StringIO(), live=False))
    restored.load_state({m: {key: values[m] for key, values in state.items()} for m in range(len(members))}, alive)
    assert len(restored.layout) == 4
    resumed, uninterrupted = restored.train_epoch(4), engine.train_epoch(4)
    for key in resumed:
        np.testing.assert_array_equal(resumed[key], uninterrupted[key])


@pytest.mark.parametrize("options, message", [
    (["--learning-rates", "0.1,fast"], "--learning-rates '0.1,fast': 'fast' is not a number"),
    (["--learning-rates", "0.1,-1"], "--learning-rates: -1.0 is not a positive finite number"),
    (["--learning-rates", "0.1,1e-400"], "'1e-400' is beyond the range of a float"),  # not "0.0 is not positive"
    (["--learning-rates", "1e999"], "'1e999' is beyond the range of a float"),
    (["--learning-rates", "0.1,0.1"], "--learning-rates: a value is named twice"),
    (["--optimizers", "sgd,rmsprop"], "--optimizer 'rmsprop': unknown; choose from sgd, momentum, nesterov, adam"),
    (["--methods", "none,rescale", "--baseline", "standard"], "--baseline 'standard' is not among the methods (none, rescale)"),
    (["--methods", "zscore"], "unknown normalization 'zscore'"),
    (["--seeds", "0"], "--seeds 0: must be an integer >= 1"),
    (["--members-per-program", "0"], "--members-per-program 0: must be an integer >= 1"),
    (["--seed", "-1"], "--seed -1: must be an integer from 0 to"),
])
def test_usage_errors_exit_2_and_make_no_folder(tmp_path, tiny_args, options, message, capsys):
    out = tmp_path / "sweep"
    assert _sweep(tiny_args, out, *options) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_resume_refuses_other_settings_and_other_kinds(tmp_path, tiny_args, capsys):
    out = tmp_path / "sweep"
    assert _sweep(tiny_args, out, "--methods", "standard", "--learning-rates", "0.1", "--optimizers", "sgd",
                  "--seeds", "1", "--save-models", "none") == 0
    assert main(["sweep", "--resume", str(out), "--seed", "5"]) == 2
    assert f"--resume {out}: seed 5 differs from the sweep's 0; resuming refuses changes" in capsys.readouterr().err
    assert main(["sweep", "--resume", str(out), "--learning-rates", "0.1,0.01"]) == 2
    assert "learning_rates (0.1, 0.01) differs from the sweep's (0.1,)" in capsys.readouterr().err
    assert main(["compare", "--resume", str(out)]) == 2
    assert f"--resume {out}: a sweep folder, not a compare; resume it with fmnist sweep" in capsys.readouterr().err
    # what a process killed while writing leaves, anywhere in the study: resuming clears all of it
    stale = [out / ".members.tmp-7.csv", out / "programs" / "sgd" / ".progress.tmp-7.json",
             out / "tensorboard" / "standard-sgd-lr0.1-seed0" / ".events.tmp-7"]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    assert main(["sweep", "--resume", str(out), *tiny_args]) == 0  # the same settings again are fine; finished:
    # the tables are written again, nothing is trained
    assert "finished earlier: 1 members" in capsys.readouterr().out
    assert not list(out.rglob(".*.tmp-*"))
    # it may add seeds, as compare does: the new seed's members train, the finished ones are kept
    assert main(["sweep", "--resume", str(out), "--seeds", "2"]) == 0
    assert "finished earlier: 1 members" in capsys.readouterr().out
    assert [(row["seed"], row["status"]) for row in _csv(out / "members.csv")] == [("0", "ok"), ("1", "ok")]
    assert json.loads((out / "study.json").read_text())["settings"]["seeds"] == 2


def _row(method, rate, seed, val, test, status="ok"):
    return {"method": method, "optimizer": "sgd", "learning_rate": rate, "seed": seed, "status": status,
            "val_accuracy": val, "test_accuracy": test}


def test_best_rate_is_chosen_on_validation_and_tested_on_test_paired_by_seed():
    rows = [
        # the baseline: its best validation rate is 0.1, where test accuracy is lower than at 0.01
        *[_row("standard", 0.1, s, 0.90 + s / 100, 0.80 + s / 100) for s in range(3)],
        *[_row("standard", 0.01, s, 0.85, 0.95) for s in range(3)],
        # rescale: 1.0 has the best validation mean, but one seed diverged there, so 0.3 is chosen
        *[_row("rescale", 1.0, s, 0.99, 0.99) for s in range(2)], _row("rescale", 1.0, 2, math.nan, math.nan, "diverged"),
        *[_row("rescale", 0.3, s, 0.88, 0.78 + s / 50) for s in range(3)],
    ]
    summary = tables.summary_rows(rows)
    best = {row["method"]: row for row in tables.best_rows(rows, summary, ["standard", "rescale"], ["sgd"], "standard")}
    assert best["standard"]["learning_rate"] == 0.1 and best["rescale"]["learning_rate"] == 0.3
    assert best["standard"]["test_accuracy_mean"] == pytest.approx(0.81)
    diffs = np.array([0.78 - 0.80, 0.80 - 0.81, 0.82 - 0.82])
    assert best["rescale"]["test_accuracy_diff_mean"] == pytest.approx(diffs.mean())
    from scipy import stats

    assert best["rescale"]["p_value"] == pytest.approx(stats.ttest_rel(0.80 + np.arange(3) / 100 + diffs,
                                                                        0.80 + np.arange(3) / 100).pvalue)
    # both best rates sit on the edge of the rates their method tried: no verdict
    assert (best["rescale"]["edge"], best["standard"]["edge"]) == ("lowest", "highest")
    (line,) = answer(list(best.values()))
    assert line == ("sgd, each method at its own best learning rate (chosen on validation), test accuracy against "
                    "standard (0.8100 at lr 0.1*): rescale not judged (-1.00 points at lr 0.3; rescale's best rate is the "
                    "lowest tried; extend the grid)")
    # inside the rates tried, the same seeds are judged: three pairs, but seeds that could only have found
    # a difference of 3 points: inconclusive, not "no significant difference"
    rows += [_row("standard", 0.3, s, 0.5, 0.5) for s in range(3)] + [_row("rescale", 0.1, s, 0.5, 0.5) for s in range(3)]
    best = {row["method"]: row for row in tables.best_rows(rows, tables.summary_rows(rows), ["standard", "rescale"],
                                                           ["sgd"], "standard")}
    assert (best["rescale"]["edge"], best["standard"]["edge"]) == ("", "")
    assert best["rescale"]["verdict"] == "inconclusive"
    assert best["rescale"]["why"] == f"the seeds could only have detected a difference of " \
        f"{100 * (stats.t.ppf(0.975, 2) + stats.t.ppf(0.8, 2)) * diffs.std(ddof=1) / np.sqrt(3):.2f} points or more"


def test_programs_are_cut_to_what_memory_allows(monkeypatch):
    from fmnist.config import SweepConfig
    from fmnist.engines import member_state
    from fmnist.training.grid import members_of, plan_programs

    config = SweepConfig(methods=("standard", "rescale"), learning_rates=(0.1, 0.01, 0.001), optimizers=("sgd", "adam"),
                         seeds=2)
    members = members_of(config, "sweep")
    one = member_state.per_member_bytes(4 * 266_610, 32, 784 + 300 + 100 + 10)  # an SGD member of the mlp
    monkeypatch.setattr(member_state, "memory_budget", lambda: 3 * one)
    programs = plan_programs(config, members)
    # 12 members per optimizer; three SGD members fit, rounded down to whole devices (2): pieces of 2;
    # an Adam member (two more slots) is larger, but a program holds at least one member per device
    assert [(p["optimizer"], len(p["members"])) for p in programs] == [("sgd", 2)] * 6 + [("adam", 2)] * 6
    assert sorted(i for p in programs for i in p["members"]) == list(range(24))
    monkeypatch.setattr(member_state, "memory_budget", lambda: 10**15)
    assert [len(p["members"]) for p in plan_programs(config, members)] == [6, 6, 6, 6]  # at most 4 per CPU device
    assert [len(p["members"]) for p in plan_programs(dataclasses.replace(config, members_per_program=5), members)] \
        == [4, 4, 4] * 2  # at most 5, in even pieces


def test_with_no_model_kept_a_finished_programs_states_go_at_once(tmp_path, tiny_args, monkeypatch):
    """--save-models none: each program's state files are removed when it finishes, not kept to the end
    (about 1.7 GB for the default grid)."""
    from fmnist.store import program_files

    finish, seen = program_files.finish_program, []

    def finishing(folder, name, *args):
        seen.append(sorted(path.parent.name for path in (folder / "programs").glob("*/state-e*.npz")))
        return finish(folder, name, *args)

    monkeypatch.setattr(program_files, "finish_program", finishing)
    assert _sweep(tiny_args, tmp_path / "sweep", "--methods", "none,standard", "--learning-rates", "0.1,0.01",
                  "--optimizers", "sgd", "--seeds", "1", "--members-per-program", "2", "--extend-grid", "0",
                  "--save-models", "none") == 0
    assert len(seen) == 2 and seen == [["sgd-1"], ["sgd-2"]]  # only the program finishing now has states
