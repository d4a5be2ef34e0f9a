"""A run, a comparison and a sweep made once on tiny data for the TensorBoard and report tests
(``small_results``, session-wide: conftest.py imports it), and reading event files back with
TensorBoard's own loader.

The run and the comparison are each stopped as a killed process would be: right after the checkpoint
of epoch 2, before that epoch's events, with a stray later epoch planted in train/ and validation/ as a
writer ahead of its checkpoint would leave it, and the folder's own file replaced by one of fmnist's
previous layout (every scalar at the top); then resumed. While resuming, the event files are read just
before the next epoch is appended (``seen_on_resume``): they must hold the checkpointed epochs, once,
in train/ and validation/ only.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest


@dataclasses.dataclass
class Results:
    root: Path  # every folder below, for tensorboard --logdir
    run: Path
    compare: Path
    sweep: Path
    data: list[str]  # the data options
    seen_on_resume: dict  # folder -> {sub-run: the epochs its file held} when the resumed process appended its first


# history.csv's columns where keras.callbacks.TensorBoard puts them: (sub-run, tag). Spelled out here, not
# imported from fmnist.reporting.event_files, so that a change of the layout fails the tests.
KERAS_LAYOUT = {"loss": ("train", "epoch_loss"), "accuracy": ("train", "epoch_accuracy"),
                "epoch_seconds": ("train", "epoch_seconds"), "learning_rate": ("train", "epoch_learning_rate"),
                "val_loss": ("validation", "epoch_loss"), "val_accuracy": ("validation", "epoch_accuracy")}


def read_events(folder: Path, sub_run: str = "") -> list:
    """Every event of the event file of ``folder`` (or of its sub-run: "train", "validation", "test"), in
    order, through TensorBoard's EventFileLoader."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    from fmnist.reporting.event_files import EVENTS

    path = folder / sub_run / EVENTS
    assert path.is_file(), path
    return list(EventFileLoader(str(path)).Load())


def scalars(folder: Path, sub_run: str = "") -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of the scalars in ``folder``'s (or its sub-run's) event file."""
    from tensorboard.util import tensor_util

    found: dict[str, list] = {}
    for event in read_events(folder, sub_run):
        for value in event.summary.value:
            if value.metadata.plugin_data.plugin_name == "scalars" or value.tag in found:
                found.setdefault(value.tag, []).append((event.step, tensor_util.make_ndarray(value.tensor).item()))
    return found


def assert_events_match_history(folder: Path, history: list[dict], learning_rate: float) -> None:
    """Each epoch of ``history`` once, in order, as Keras's callback lays it out: train/ and validation/
    share the tags epoch_loss and epoch_accuracy (one chart each in TensorBoard), train/ also has
    epoch_learning_rate and epoch_seconds; values as TensorBoard stores scalars (float32). The folder's
    own file holds the HParams session and no scalar (the previous layout's are gone)."""
    series = {sub_run: scalars(folder, sub_run) for sub_run in ("", "train", "validation")}
    assert series[""] == {}, folder
    assert sorted(series["train"]) == ["epoch_accuracy", "epoch_learning_rate", "epoch_loss", "epoch_seconds"], folder
    assert sorted(series["validation"]) == ["epoch_accuracy", "epoch_loss"], folder
    for column, (sub_run, tag) in KERAS_LAYOUT.items():
        stored = series[sub_run][tag]
        assert [step for step, _ in stored] == [row["epoch"] for row in history], (folder, sub_run, tag)
        for (_, value), row in zip(stored, history):
            expected = np.float32(learning_rate if column == "learning_rate" else row[column])
            assert value == expected or math.isnan(expected) and math.isnan(value), (folder, tag, row["epoch"])


def assert_study_events_match_history(folder: Path) -> None:
    """Every member of a study folder: its event files hold its rows of history.csv, each epoch once."""
    from fmnist.reporting.events import STUDY_RUNS
    from fmnist.store.artifacts import read_rows

    history = read_rows(folder / "history.csv")
    for member in read_rows(folder / "members.csv"):
        rows = [row | {"epoch": int(row["epoch"])} for row in history if row["member"] == member["member"]]
        assert_events_match_history(folder / STUDY_RUNS / member["member"], rows, float(member["learning_rate"]))


def plant_previous_layout(folder: Path, epochs: int) -> None:
    """The run folder's own event file as fmnist's previous version wrote it: every scalar at the top
    (loss, val_loss, …), which a rewrite must not leave beside train/ and validation/."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb
    from tensorboard.summary.writer.record_writer import RecordWriter

    from fmnist.reporting.event_files import EVENTS

    with open(folder / EVENTS, "wb") as handle:
        writer = RecordWriter(handle)
        writer.write(event_pb2.Event(wall_time=1.0, file_version="brain.Event:2").SerializeToString())
        for epoch in range(1, epochs + 1):
            for tag in ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds", "learning_rate"):
                event = event_pb2.Event(wall_time=1.0, step=epoch, summary=scalar_pb(tag, 0.5))
                writer.write(event.SerializeToString())


def _kill_after_checkpoint(patch, name: str, epoch: int) -> None:
    """The process dies after epoch ``epoch``'s checkpoint, before its events: ``fmnist.reporting.events.name``
    raises KeyboardInterrupt there (the CLI answers 130, as for Ctrl-C)."""
    from fmnist.reporting import events

    real = getattr(events, name)

    def dying(*args):
        if (args[1]["epoch"] if name == "append_epoch" else args[-1]) == epoch:
            raise KeyboardInterrupt
        return real(*args)

    patch.setattr(events, name, dying)


def _watch_resume(patch, name: str, seen: dict, folders) -> None:
    """Record the epochs in each of ``folders``' event files (by sub-run, "" the folder's own) when the
    resumed process first appends."""
    from fmnist.reporting import events

    real = getattr(events, name)

    def watching(*args):
        for folder in folders:
            if folder not in seen:
                seen[folder] = {sub_run: sorted({step for series in scalars(folder, sub_run).values()
                                                 for step, _ in series}) for sub_run in ("", "train", "validation")}
        return real(*args)

    patch.setattr(events, name, watching)


def _plant_stray_epoch(folder: Path, epoch: int) -> None:
    from fmnist.reporting import events

    row = {"epoch": epoch, "loss": 99.0, "accuracy": 0.5, "val_loss": 99.0, "val_accuracy": 0.5, "epoch_seconds": 1.0}
    events.append_epoch(folder, row, 0.01)


@pytest.fixture(scope="session")
def small_results(tmp_path_factory) -> Results:
    from conftest import tiny_images, write_idx  # here: conftest imports this module

    from fmnist.cli import main
    from fmnist.reporting.events import STUDY_RUNS

    data_dir = tmp_path_factory.mktemp("results-data")
    write_idx(data_dir, "train", *tiny_images(400, seed=1))
    write_idx(data_dir, "t10k", *tiny_images(100, seed=2))
    data = ["--data-dir", str(data_dir), "--skip-checksum"]
    root = tmp_path_factory.mktemp("results")
    run, compare, sweep, seen = root / "run", root / "compare", root / "sweep", {}

    with pytest.MonkeyPatch.context() as patch:
        _kill_after_checkpoint(patch, "append_epoch", 2)
        assert main(["train", *data, "--valid-size", "100", "--epochs", "3", "--normalization", "rescale", "--quiet",
                     "--output-dir", str(run)]) == 130  # rescale: a model that still makes mistakes to show
    _plant_stray_epoch(run, 3)
    plant_previous_layout(run, 3)
    with pytest.MonkeyPatch.context() as patch:
        _watch_resume(patch, "append_epoch", seen, [run])
        assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert main(["evaluate", str(run), *data]) == 0

    compare_options = ["compare", "--methods", "none,standard", "--seeds", "2", "--epochs", "3", "--valid-size", "100"]
    with pytest.MonkeyPatch.context() as patch:
        _kill_after_checkpoint(patch, "append_members", 2)
        assert main([*compare_options, *data, "--output-dir", str(compare)]) == 130
    members = sorted((compare / STUDY_RUNS).iterdir())
    for member in members:
        _plant_stray_epoch(member, 3)
        plant_previous_layout(member, 3)
    with pytest.MonkeyPatch.context() as patch:
        _watch_resume(patch, "append_members", seen, members)
        assert main(["compare", "--resume", str(compare)]) == 0

    assert main(["sweep", "--methods", "none,standard", "--learning-rates", "0.01,0.1", "--optimizers", "sgd",
                 "--seeds", "1", "--epochs", "2", "--valid-size", "100", "--extend-grid", "0", *data,
                 "--output-dir", str(sweep)]) == 0
    return Results(root, run, compare, sweep, data, seen)
