"""`fmnist sweep` as real processes: one or two devices, two processes joined on loopback, SIGKILL at
random moments then --resume, SIGTERM and Ctrl-C."""

import csv
import os
import random
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import wait_for_change
from results import assert_study_events_match_history

pytestmark = pytest.mark.processes

GRID = ["--methods", "none,standard,per-image", "--learning-rates", "0.01,1e20", "--optimizers", "sgd,momentum",
        "--seeds", "2"]
TIMES = ("seconds", "epoch_seconds")  # wall times: the only columns allowed to differ


def _command(data_dir, *options):
    return [sys.executable, "-m", "fmnist", "sweep", "--data-dir", str(data_dir), "--skip-checksum",
            "--valid-size", "200", "--batch-size", "8", *options]


def _env(devices=2):
    """This environment (with the session's compilation cache, conftest.py) on ``devices`` CPU devices."""
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


def _table(folder, name):
    with open(folder / name, newline="") as handle:
        return [{key: value for key, value in row.items() if key not in TIMES} for row in csv.DictReader(handle)]


def _weights(run_dir):
    from fmnist.inference.load import load_model

    return [np.asarray(weight) for weight in load_model(run_dir).get_weights()]


def _assert_same_study(folder, reference):
    for name in ("members.csv", "history.csv", "summary.csv", "best.csv"):
        assert _table(folder, name) == _table(reference, name), name  # bit for bit, but the wall times
    kept = [row["run_dir"] for row in _table(reference, "members.csv") if row["run_dir"]]
    assert kept
    for run_dir in kept:
        for ours, theirs in zip(_weights(folder / run_dir), _weights(reference / run_dir)):
            assert np.array_equal(ours, theirs), run_dir
    assert not list(folder.rglob(".*.tmp-*"))
    assert_study_events_match_history(folder)  # each member's checkpointed epochs once, after kills too


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mid_dir):
    """The sweep uninterrupted, in one process with two devices."""
    folder = tmp_path_factory.mktemp("reference") / "sweep"
    subprocess.run(_command(mid_dir, *GRID, "--epochs", "2", "--output-dir", str(folder)), env=_env(),
                   check=True, capture_output=True)
    return folder


def test_one_and_two_devices_train_the_same_members(tmp_path, mid_dir, reference):
    """Across device counts XLA may pick other kernels, so the last bits may differ (at the tutorial's
    rate they stay within 1e-5 here; at rates where training is chaotic they grow): the same members,
    settings and statuses exactly, and the numbers within 1e-4."""
    one = tmp_path / "one"
    subprocess.run(_command(mid_dir, *GRID, "--epochs", "2", "--output-dir", str(one)), env=_env(devices=1),
                   check=True, capture_output=True)
    exact = ("member", "method", "optimizer", "learning_rate", "seed", "status", "diverged_epoch", "epochs", "run_dir")
    for ours, theirs in zip(_table(one, "members.csv"), _table(reference, "members.csv")):
        assert {key: ours[key] for key in exact} == {key: theirs[key] for key in exact}
        for key in ("val_accuracy", "val_loss", "test_accuracy", "test_loss"):
            assert float(ours[key]) == pytest.approx(float(theirs[key]), abs=1e-4, nan_ok=True), (ours["member"], key)
    assert len(_table(one, "history.csv")) == len(_table(reference, "history.csv"))


def _free_port():
    with socket.socket() as probe:  # loopback only
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_on_loopback_equal_one_process(tmp_path, mid_dir, reference):
    folder = tmp_path / "joined"
    address = f"127.0.0.1:{_free_port()}"
    children = [
        subprocess.Popen(_command(mid_dir, *GRID, "--epochs", "2", "--output-dir", str(folder),
                                  "--coordinator-address", address, "--num-processes", "2", "--process-id", str(index)),
                         env=_env(devices=1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for index in (0, 1)
    ]
    outputs = [child.communicate(timeout=600) for child in children]
    assert [child.returncode for child in children] == [0, 0], [err[-2000:] for _, err in outputs]
    assert "on 2 cpu devices in 2 processes" in outputs[0][0]
    others = [line for line in outputs[1][0].splitlines() if not line.startswith("[Gloo]")]  # gloo's own notice
    assert "answer: sgd" in outputs[0][0] and others == []  # process 0 reports, the other one works
    _assert_same_study(folder, reference)


def _checkpoints(folder):
    """The programs' progress files and when each was last written: a new program checkpoint changes it."""
    found = sorted((path.parent.name, path.stat().st_mtime_ns) for path in folder.glob("programs/*/progress.json"))
    return tuple(found) or None


def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(tmp_path, mid_dir, reference):
    folder = tmp_path / "killed"
    rng = random.Random(9)
    command = _command(mid_dir, *GRID, "--epochs", "2", "--output-dir", str(folder))
    kills = 0
    for attempt in range(5):
        child = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # first kill: during start-up or the first epoch; then just after a program checkpoint: inside the
        # next epoch, or while state, progress, tables or the kept models are being written
        watched = folder / "study.json" if attempt == 0 else (lambda: _checkpoints(folder))
        since = (watched.stat().st_mtime_ns if watched.exists() else None) if attempt == 0 else _checkpoints(folder)
        if wait_for_change(watched, since, time.monotonic() + 120, child):
            time.sleep(rng.uniform(0, 0.3))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait()
        assert child.returncode in (0, -signal.SIGKILL)
        command = _command(mid_dir, "--resume", str(folder))
        if child.returncode == 0:
            break
    else:
        subprocess.run(command, env=_env(), check=True, capture_output=True)
    assert kills >= 3
    _assert_same_study(folder, reference)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_stop_after_the_epoch_and_resume(tmp_path, mid_dir, reference, sig, code):
    folder = tmp_path / "stopped"
    child = subprocess.Popen(_command(mid_dir, *GRID, "--epochs", "2", "--output-dir", str(folder)), env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for_change(folder / "members.csv", None, time.monotonic() + 120, child)  # after the first checkpoint
    child.send_signal(sig)
    _, err = child.communicate(timeout=120)
    assert child.returncode == code, err[-2000:]
    assert f"Resume with: fmnist sweep --resume {folder}" in err and "Traceback" not in err
    assert not (folder / "best.csv").exists()
    subprocess.run(_command(mid_dir, "--resume", str(folder)), env=_env(), check=True, capture_output=True)
    _assert_same_study(folder, reference)
