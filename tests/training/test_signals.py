"""Signals and pipes with real processes (issue 10, items 13 and 14): a second SIGTERM during a compiled
epoch is not merged with the first and stops at once (when that epoch's program returns) with 143 and
the resume command, the last checkpoint whole; two SIGINTs during start-up exit 130 with the same; a
reader that goes away (`| head -1`) ends predict quietly."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import tiny_images, write_idx

pytestmark = pytest.mark.processes


def _train(data_dir, out, *options, env=None):
    return subprocess.Popen([sys.executable, "-m", "fmnist", "train", "--data-dir", str(data_dir), "--skip-checksum",
                             "--valid-size", "200", "--batch-size", "8", "--epochs", "50", "--output-dir", str(out),
                             *options], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_signal_is_never_merged_and_stops_at_once(tmp_path):
    # 24,000 images at batch 8: an epoch is one compiled program of 3,000 steps (1 to 4 s here, with load)
    write_idx(tmp_path / "data", "train", *tiny_images(24_000, seed=1))
    write_idx(tmp_path / "data", "t10k", *tiny_images(200, seed=2))
    run = tmp_path / "run"
    child = _train(tmp_path / "data", run, "--quiet")
    deadline = time.monotonic() + 120
    while not (run / "checkpoint.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # inside epoch 2's program, where Python runs no handler until it returns
    child.send_signal(signal.SIGTERM)
    time.sleep(0.05)  # two deliveries (the C-level handler counts each), not one the kernel merged
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 143, err
    assert err.strip().splitlines()[-1] == ("fmnist: error: stopped by SIGTERM at once by a second signal; checkpoint "
                                            f"kept. Resume with: fmnist train --resume {run}")
    assert "Traceback" not in err
    with np.load(run / "checkpoint.npz") as stored:
        assert json.loads(str(stored["meta"]))["epoch"] == 1  # epoch 2 was not finished, epoch 1 is whole
    assert len((run / "history.csv").read_text().splitlines()) == 2
    assert sorted(os.listdir(run)) == ["checkpoint.npz", "config.json", "events.out.tfevents.fmnist", "history.csv",
                                       "train", "validation"]


def test_two_ctrl_c_during_start_up_exit_130_with_the_resume_command(tmp_path, tiny_dir):
    run = tmp_path / "run"
    # Without the session's compilation cache (conftest.py): start-up is where the programs compile (well
    # over the 0.2 s between the signals); a program loaded from the cache would let epoch 1 end first.
    uncached = {key: value for key, value in os.environ.items() if key != "JAX_COMPILATION_CACHE_DIR"}
    child = _train(tiny_dir, run, "--valid-size", "100", env=uncached | {"FMNIST_COMPILATION_CACHE": "off"})
    for line in child.stdout:  # the run folder is made right after this line
        if line.startswith("scaled training range"):
            break
    while not (run / "config.json").exists():
        time.sleep(0.005)
    child.send_signal(signal.SIGINT)
    time.sleep(0.2)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert err.strip().splitlines()[-1] == (f"fmnist: error: stopped by SIGINT at once by a second signal; checkpoint "
                                            f"kept. Resume with: fmnist train --resume {run}")


def test_a_closed_pipe_ends_predict_quietly(tmp_path):
    import onnx
    from damaged_data import (
        onnx_classifier,  # a hand-made .onnx classifier: predict starts without Keras
    )

    onnx.save(onnx_classifier(), tmp_path / "model.onnx")
    np.save(tmp_path / "many.npy", tiny_images(1000, seed=3)[0])  # a table far larger than a pipe's buffer
    command = (f"{sys.executable} -m fmnist predict {tmp_path / 'model.onnx'} {tmp_path / 'many.npy'} --format csv "
               "| head -1; echo status ${PIPESTATUS[0]} >&2")
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert result.stdout == "input,index,label,class_name,probability,top3,error,warning\n"
    assert result.stderr == "status 141\n"  # 128 + SIGPIPE, as Unix tools end; no BrokenPipeError traceback
