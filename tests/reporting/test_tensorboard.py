"""TensorBoard event files: read back with TensorBoard's own loader they hold exactly history.csv (each
epoch once, also after a kill and a resume), the HParams session and the evaluation's pictures; and
``tensorboard --logdir`` serves them over HTTP, without TensorFlow."""

import importlib.util
import json
import math
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
from results import assert_events_match_history, read_events, scalars

from fmnist.reporting.events import STUDY_RUNS
from fmnist.store import artifacts
from fmnist.store.artifacts import read_rows


def _session(folder: Path) -> tuple[dict, str]:
    """The HParams values of the folder's session and its end status ('' while it runs)."""
    from tensorboard.plugins.hparams import api_pb2, metadata

    hparams, status = {}, ""
    for event in read_events(folder):
        for value in event.summary.value:
            if value.tag == metadata.SESSION_START_INFO_TAG:
                start = metadata.parse_session_start_info_plugin_data(value.metadata.plugin_data.content)
                hparams = {key: getattr(item, item.WhichOneof("kind")) for key, item in start.hparams.items()}
            elif value.tag == metadata.SESSION_END_INFO_TAG:
                end = metadata.parse_session_end_info_plugin_data(value.metadata.plugin_data.content)
                status = api_pb2.Status.Name(end.status)
    return hparams, status


def test_a_resumed_run_s_events_hold_its_history_once_its_session_and_its_evaluation(small_results):
    run = small_results.run
    history = artifacts.read_history(run / "history.csv")
    assert small_results.seen_on_resume[run] == [1, 2]  # the stray epoch 3 dropped when the run resumed
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert_events_match_history(run, history, 0.01)
    metrics = artifacts.read_json(run / "metrics.json")
    series = scalars(run)
    for tag in ("test_loss", "test_accuracy"):
        assert series[tag] == [(3, np.float32(metrics[tag]))]
    assert _session(run) == ({"method": "rescale", "optimizer": "sgd", "learning_rate": 0.01, "seed": 0,
                              "status": "ok"}, "STATUS_SUCCESS")
    from tensorboard.util import tensor_util

    images = {value.tag: tensor_util.make_ndarray(value.tensor) for event in read_events(run)
              for value in event.summary.value if value.metadata.plugin_data.plugin_name == "images"}
    assert sorted(images) == ["confusion_matrix", "mistakes"]
    for tag, stored in images.items():
        assert stored[2] == (run / f"{tag}.png").read_bytes()  # width, height, the PNG itself


def test_a_resumed_study_s_members_hold_each_epoch_once_with_their_settings_and_status(small_results):
    folder = small_results.compare
    history = read_rows(folder / "history.csv")
    members = {row["member"]: row for row in read_rows(folder / "members.csv")}
    assert sorted(path.name for path in (folder / STUDY_RUNS).iterdir()) == sorted(members)
    for name, member in members.items():
        events = folder / STUDY_RUNS / name
        assert small_results.seen_on_resume[events] == [1, 2], name
        rows = [{key: int(value) if key == "epoch" else value for key, value in row.items()}
                for row in history if row["member"] == name]
        assert_events_match_history(events, rows, 0.01)
        assert scalars(events)["test_accuracy"] == [(3, np.float32(member["test_accuracy"]))]
        hparams, status = _session(events)
        assert hparams == {"method": member["method"], "optimizer": "sgd", "learning_rate": 0.01,
                           "seed": member["seed"], "status": member["status"]}
        assert status == ("STATUS_SUCCESS" if member["status"] == "ok" else "STATUS_FAILURE")
    assert {member["status"] for member in members.values()} == {"ok", "stuck at chance"}


def _start_tensorboard(logdir: Path) -> tuple[subprocess.Popen, str, str]:
    """TensorBoard on 127.0.0.1 and a free port; its address and what it printed before it."""
    command = [str(Path(sys.executable).parent / "tensorboard"), "--logdir", str(logdir), "--host", "127.0.0.1",
               "--port", "0", "--reload_interval", "1"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ, HOME=str(logdir)))
    printed, selector, deadline = "", selectors.DefaultSelector(), time.monotonic() + 60
    selector.register(server.stdout, selectors.EVENT_READ)
    while " at http://127.0.0.1:" not in printed and time.monotonic() < deadline and server.poll() is None:
        if selector.select(timeout=1):
            printed += server.stdout.readline()
    address = printed.split(" at ")[-1].split()[0].rstrip("/") if " at http" in printed else ""
    assert address, printed
    return server, address, printed


def _get(address: str, route: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(address + route, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def test_tensorboard_serves_the_runs_members_and_hparams_over_http(small_results):
    """`tensorboard --logdir` on the run, the comparison and the sweep: scalars equal history.csv (to
    float32), and the HParams sessions can be filtered by method."""
    server, address, printed = _start_tensorboard(small_results.root)
    try:
        if importlib.util.find_spec("tensorflow") is None:
            assert "TensorFlow installation not found" in printed  # it runs without TensorFlow
        member = f"compare/{STUDY_RUNS}/standard-seed1"
        deadline = time.monotonic() + 60
        while not {"run", member} <= set(_get(address, "/data/runs")) and time.monotonic() < deadline:
            time.sleep(0.5)
        history = artifacts.read_history(small_results.run / "history.csv")
        query = urllib.parse.urlencode({"run": "run", "tag": "val_accuracy"})
        served = _get(address, f"/data/plugin/scalars/scalars?{query}")
        assert [(step, value) for _, step, value in served] == [
            (row["epoch"], float(np.float32(row["val_accuracy"]))) for row in history]
        query = urllib.parse.urlencode({"run": member, "tag": "loss"})
        assert [step for _, step, _ in _get(address, f"/data/plugin/scalars/scalars?{query}")] == [1, 2, 3]
        request = {"experimentName": "", "startIndex": 0, "sliceSize": 100,
                   "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
                   "colParams": [{"hparam": "method", "filterDiscrete": ["standard"]},
                                 {"metric": {"tag": "test_accuracy", "group": ""}}]}
        groups = _get(address, "/data/plugin/hparams/session_groups", request)["sessionGroups"]
        names = sorted(session["name"] for group in groups for session in group["sessions"])
        assert names == ["compare/tensorboard/standard-seed0", "compare/tensorboard/standard-seed1",
                         "sweep/tensorboard/standard-sgd-lr0.01-seed0", "sweep/tensorboard/standard-sgd-lr0.1-seed0"]
        finals = {group["name"]: group["metricValues"][0]["value"] for group in groups}
        assert not any(math.isnan(value) for value in finals.values())
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
