"""TensorBoard event files, as Keras's TensorBoard callback lays them out: read back with TensorBoard's own
loader, train/ and validation/ share the tags epoch_loss and epoch_accuracy and hold exactly history.csv
(each epoch once, also after a kill and a resume), test/ the test metrics and the evaluation's pictures,
the run's own folder the HParams session; a rewrite leaves no file of the previous layout; and
``tensorboard --logdir`` serves them over HTTP, without TensorFlow, the HParams session with its metrics."""

import importlib.util
import json
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
from results import (
    assert_events_match_history,
    plant_previous_layout,
    read_events,
    scalars,
)

from fmnist.reporting import events
from fmnist.reporting.event_files import EVENTS
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


def _images(folder: Path, sub_run: str) -> dict:
    from tensorboard.util import tensor_util

    return {value.tag: tensor_util.make_ndarray(value.tensor) for event in read_events(folder, sub_run)
            for value in event.summary.value if value.metadata.plugin_data.plugin_name == "images"}


def _event_files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*tfevents*"))


def test_a_resumed_run_s_events_hold_its_history_once_its_session_and_its_evaluation(small_results):
    run = small_results.run
    history = artifacts.read_history(run / "history.csv")
    # the stray epoch 3 and the previous layout's scalars at the top dropped when the run resumed
    assert small_results.seen_on_resume[run] == {"": [], "train": [1, 2], "validation": [1, 2]}
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert _event_files(run) == [EVENTS, f"test/{EVENTS}", f"train/{EVENTS}", f"validation/{EVENTS}"]
    assert_events_match_history(run, history, 0.01)
    # the rewrite at the end keeps the epochs apart in time, by their own seconds (TensorBoard's "Relative")
    walls = [event.wall_time for event in read_events(run, "train") if event.summary.value]
    assert np.allclose(np.diff(walls), [row["epoch_seconds"] for row in history[1:]], atol=1e-3)
    metrics = artifacts.read_json(run / "metrics.json")
    assert scalars(run, "test") == {"epoch_loss": [(3, np.float32(metrics["test_loss"]))],
                                    "epoch_accuracy": [(3, np.float32(metrics["test_accuracy"]))]}
    assert _session(run) == ({"model": "mlp", "method": "rescale", "optimizer": "sgd", "learning_rate": 0.01, "seed": 0,
                              "status": "ok"}, "STATUS_SUCCESS")
    images = _images(run, "test")
    assert sorted(images) == ["confusion_matrix", "mistakes"]
    for tag, stored in images.items():
        assert stored[2] == (run / f"{tag}.png").read_bytes()  # width, height, the PNG itself
    assert not any(_images(run, sub_run) for sub_run in ("", "train", "validation"))


def test_a_resumed_study_s_members_hold_each_epoch_once_with_their_settings_and_status(small_results):
    folder = small_results.compare
    history = read_rows(folder / "history.csv")
    members = {row["member"]: row for row in read_rows(folder / "members.csv")}
    assert sorted(path.name for path in (folder / STUDY_RUNS).iterdir()) == sorted(members)
    for name, member in members.items():
        events_folder = folder / STUDY_RUNS / name
        assert small_results.seen_on_resume[events_folder] == {"": [], "train": [1, 2], "validation": [1, 2]}, name
        rows = [{key: int(value) if key == "epoch" else value for key, value in row.items()}
                for row in history if row["member"] == name]
        assert_events_match_history(events_folder, rows, 0.01)
        assert scalars(events_folder, "test")["epoch_accuracy"] == [(3, np.float32(member["test_accuracy"]))]
        hparams, status = _session(events_folder)
        assert hparams == {"model": "mlp", "method": member["method"], "optimizer": "sgd", "learning_rate": 0.01,
                           "seed": member["seed"], "status": member["status"]}
        assert status == ("STATUS_SUCCESS" if member["status"] == "ok" else "STATUS_FAILURE")
    assert {member["status"] for member in members.values()} == {"ok", "stuck at chance"}


def test_a_rewrite_leaves_nothing_of_the_previous_layout_or_of_an_earlier_end(small_results, tmp_path):
    """A run folder written by the previous version (every scalar in its own file) shows each epoch once
    after fmnist rewrites it; a kept member's run folder keeps only its pictures, in test/; a finished run
    resumed for more epochs loses its earlier test/."""
    run = shutil.copytree(small_results.run, tmp_path / "run")
    history = artifacts.read_history(run / "history.csv")
    plant_previous_layout(run, 3)
    events.write_run(run)  # as fmnist evaluate does
    assert_events_match_history(run, history, 0.01)
    assert _session(run)[1] == "STATUS_SUCCESS"
    settings = artifacts.read_json(run / "config.json")["settings"]
    events.start_run(run, settings, history[:2])  # as fmnist train --resume does
    assert _event_files(run) == [EVENTS, f"train/{EVENTS}", f"validation/{EVENTS}"]
    assert not (run / "test").exists()
    assert_events_match_history(run, history[:2], 0.01)

    kept = min(path for path in small_results.compare.iterdir() if (path / "model.keras").is_file())
    member = shutil.copytree(kept, tmp_path / "member")
    plant_previous_layout(member, 3)
    events.write_run(member)  # not evaluated: its epochs and session are in the study's tensorboard/
    assert _event_files(member) == []
    for name in ("evaluation.json", "confusion_matrix.png", "mistakes.png"):
        shutil.copy(small_results.run / name, member / name)  # newer than its model.keras
    events.write_run(member)
    assert _event_files(member) == [f"test/{EVENTS}"]
    assert sorted(_images(member, "test")) == ["confusion_matrix", "mistakes"]


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


def _hparams_groups(address: str, method: str) -> dict[str, dict]:
    """The HParams sessions of ``method``: session name -> {(group, tag): the metric's last value}."""
    request = {"experimentName": "", "startIndex": 0, "sliceSize": 100,
               "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
               "colParams": [{"hparam": "method", "filterDiscrete": [method]}]}
    groups = _get(address, "/data/plugin/hparams/session_groups", request)["sessionGroups"]
    assert all(len(group["sessions"]) == 1 for group in groups)  # the seed is an hparam: one session a group
    return {group["sessions"][0]["name"]: {(value["name"]["group"], value["name"]["tag"]): value["value"]
                                           for value in group["metricValues"]} for group in groups}


def test_tensorboard_serves_the_runs_members_and_hparams_over_http(small_results):
    """`tensorboard --logdir` on the run, the comparison and the sweep: a run's train/ and validation/
    share their tags (one chart per metric, a line per sub-run) with history.csv's values (to float32);
    the HParams sessions can be filtered by method and show the metrics of their sub-runs."""
    server, address, printed = _start_tensorboard(small_results.root)
    try:
        if importlib.util.find_spec("tensorflow") is None:
            assert "TensorFlow installation not found" in printed  # it runs without TensorFlow
        member = f"compare/{STUDY_RUNS}/standard-seed1"
        expected = {f"{folder}/{sub_run}" for folder in ("run", member) for sub_run in ("train", "validation", "test")}
        deadline = time.monotonic() + 60
        while not expected <= set(_get(address, "/data/runs")) and time.monotonic() < deadline:
            time.sleep(0.5)
        tags = {run: sorted(found) for run, found in _get(address, "/data/plugin/scalars/tags").items()}
        assert tags["run/train"] == ["epoch_accuracy", "epoch_learning_rate", "epoch_loss", "epoch_seconds"]
        assert tags["run/validation"] == tags["run/test"] == tags[f"{member}/validation"] == ["epoch_accuracy",
                                                                                              "epoch_loss"]
        assert "run" not in tags and member not in tags  # their own files: the HParams session alone
        history = artifacts.read_history(small_results.run / "history.csv")
        for sub_run, column in (("train", "accuracy"), ("validation", "val_accuracy")):
            query = urllib.parse.urlencode({"run": f"run/{sub_run}", "tag": "epoch_accuracy"})
            served = _get(address, f"/data/plugin/scalars/scalars?{query}")
            assert [(step, value) for _, step, value in served] == [
                (row["epoch"], float(np.float32(row[column]))) for row in history], sub_run
        query = urllib.parse.urlencode({"run": f"{member}/train", "tag": "epoch_loss"})
        assert [step for _, step, _ in _get(address, f"/data/plugin/scalars/scalars?{query}")] == [1, 2, 3]

        experiment = _get(address, "/data/plugin/hparams/experiment", {"experimentName": ""})
        found = {(info["name"]["group"], info["name"]["tag"]) for info in experiment["metricInfos"]}
        assert found == {("train", "epoch_accuracy"), ("train", "epoch_learning_rate"), ("train", "epoch_loss"),
                         ("train", "epoch_seconds"), ("validation", "epoch_accuracy"), ("validation", "epoch_loss"),
                         ("test", "epoch_accuracy"), ("test", "epoch_loss")}
        members = _hparams_groups(address, "standard")
        assert sorted(members) == ["compare/tensorboard/standard-seed0", "compare/tensorboard/standard-seed1",
                                   "sweep/tensorboard/standard-sgd-lr0.01-seed0",
                                   "sweep/tensorboard/standard-sgd-lr0.1-seed0"]
        assert all(set(values) == found and not any(map(math.isnan, values.values())) for values in members.values())
        metrics = artifacts.read_json(small_results.run / "metrics.json")
        (name, values), = _hparams_groups(address, "rescale").items()
        assert name == "run"
        assert values["validation", "epoch_accuracy"] == float(np.float32(history[-1]["val_accuracy"]))
        assert values["test", "epoch_accuracy"] == float(np.float32(metrics["test_accuracy"]))
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
