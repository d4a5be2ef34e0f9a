"""Interrupted training: SIGKILL at any moment then --resume equals an uninterrupted run, bit for bit;
SIGINT/SIGTERM stop at a safe point; changed options are refused; fresh processes reproduce exactly."""

import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import tiny_images, wait_for_change, write_idx
from results import assert_events_match_history

from fmnist.cli import main
from fmnist.store.artifacts import read_history


def _command(mid_dir, *options):
    return [sys.executable, "-m", "fmnist", "train", "--data-dir", str(mid_dir), "--skip-checksum",
            "--valid-size", "200", "--batch-size", "8", "--quiet", *options]


def _weights(run_dir):
    with np.load(run_dir / "checkpoint.npz") as stored:
        checkpoint = {key: stored[key] for key in stored.files if key != "meta"}
    import keras

    model = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    return checkpoint, [np.asarray(w) for w in model.get_weights()]


def _history(run_dir):
    with open(run_dir / "history.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in csv.DictReader(handle)]


def _assert_same_run(run_dir, reference):
    checkpoint, weights = _weights(run_dir)
    ref_checkpoint, ref_weights = _weights(reference)
    assert checkpoint.keys() == ref_checkpoint.keys()
    for key in checkpoint:
        assert np.array_equal(checkpoint[key], ref_checkpoint[key]), key  # bit for bit
    for ours, theirs in zip(weights, ref_weights):
        assert np.array_equal(ours, theirs)
    assert _history(run_dir) == _history(reference)
    assert not [p.name for p in run_dir.iterdir() if ".tmp-" in p.name]
    assert_events_match_history(run_dir, read_history(run_dir / "history.csv"), 0.01)  # each epoch once



@pytest.mark.processes
@pytest.mark.parametrize("engine", ["fused", "keras"])
def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(tmp_path, mid_dir, engine):
    reference = tmp_path / "reference"
    subprocess.run(_command(mid_dir, "--epochs", "4", "--engine", engine, "--output-dir", str(reference)),
                   check=True, capture_output=True)
    run_dir = tmp_path / "killed"
    rng = random.Random(engine)
    kills, command = 0, _command(mid_dir, "--epochs", "4", "--engine", engine, "--output-dir", str(run_dir))
    for attempt in range(4):
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # first kill: somewhere in start-up or epoch 1; then: just after a checkpoint, inside the next epoch
        # or while a checkpoint, history or final artifact is being written
        watched = run_dir / ("config.json" if attempt == 0 else "checkpoint.npz")
        since = watched.stat().st_mtime_ns if watched.exists() else None
        if wait_for_change(watched, since, time.monotonic() + 60, child):
            time.sleep(rng.uniform(0, 0.1))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait()
        command = _command(mid_dir, "--resume", str(run_dir))
        if (run_dir / "metrics.json").exists():
            break
    if not (run_dir / "metrics.json").exists():
        subprocess.run(command, check=True, capture_output=True)
    assert kills >= 2
    _assert_same_run(run_dir, reference)


@pytest.mark.processes
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_stop_after_the_epoch_and_resume(tmp_path, mid_dir, sig, code):
    run_dir = tmp_path / "run"
    child = subprocess.Popen(_command(mid_dir, "--epochs", "200", "--output-dir", str(run_dir)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for_change(run_dir / "checkpoint.npz", None, time.monotonic() + 60)
    child.send_signal(sig)
    _, err = child.communicate(timeout=60)
    assert child.returncode == code
    assert f"Resume with: fmnist train --resume {run_dir}" in err and "Traceback" not in err
    with np.load(run_dir / "checkpoint.npz") as stored:
        import json

        epoch = json.loads(str(stored["meta"]))["epoch"]
    assert len(_history(run_dir)) == epoch < 200  # history.csv agrees with the checkpoint
    assert not (run_dir / "model.keras").exists()
    assert not [p.name for p in run_dir.iterdir() if ".tmp-" in p.name]


def test_raising_epochs_on_resume_equals_a_longer_run(tmp_path, tiny_args):
    short, long = tmp_path / "short", tmp_path / "long"
    assert main(["train", *tiny_args, "--quiet", "--output-dir", str(short)]) == 0  # 2 epochs
    assert main(["train", "--resume", str(short), "--epochs", "3", "--quiet"]) == 0
    options = [arg if arg != "2" else "3" for arg in tiny_args]
    assert main(["train", *options, "--quiet", "--output-dir", str(long)]) == 0
    _assert_same_run(short, long)


def test_resume_refuses_changes_that_alter_the_result(tmp_path, tiny_args, tiny_dir, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", *tiny_args, "--quiet", "--output-dir", str(run_dir)]) == 0
    capsys.readouterr()
    for option in (["--seed", "1"], ["--batch-size", "16"], ["--normalization", "rescale"],
                   ["--learning-rate", "0.1"], ["--engine", "keras"], ["--valid-size", "50"]):
        assert main(["train", "--resume", str(run_dir), *option]) == 2, option
        err = capsys.readouterr().err
        field = option[0].removeprefix("--").replace("-", "_")
        assert err.startswith(f"fmnist: error: --resume {run_dir}: {field} ") and "resuming refuses changes that alter the result" in err
    other = tmp_path / "other"
    shutil.copytree(tiny_dir, other)
    write_idx(other, "t10k", *tiny_images(100, seed=9))
    assert main(["train", "--resume", str(run_dir), "--data-dir", str(other), "--epochs", "3"]) == 2
    assert "resuming refuses other data" in capsys.readouterr().err
    assert main(["train", "--resume", str(run_dir), "--epochs", "1"]) == 2
    assert "has already trained 2 epochs" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "not a run folder" in capsys.readouterr().err


@pytest.mark.processes
def test_fresh_processes_and_cpu_counts_reproduce_bit_for_bit(tmp_path, mid_dir):
    first, second, one_cpu = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    options = ["--epochs", "2", "--batch-size", "32"]
    subprocess.run(_command(mid_dir, *options, "--output-dir", str(first)), check=True)
    subprocess.run(_command(mid_dir, *options, "--output-dir", str(second)), check=True)
    _assert_same_run(second, first)
    if shutil.which("taskset") and len(os.sched_getaffinity(0)) > 1:
        subprocess.run(["taskset", "-c", "0", *_command(mid_dir, *options, "--output-dir", str(one_cpu))],
                       check=True)
        _assert_same_run(one_cpu, first)
