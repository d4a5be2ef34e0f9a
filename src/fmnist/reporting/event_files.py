"""TensorBoard event files laid out as Keras's TensorBoard callback lays them out, written without
TensorFlow: the layout, its tags, the events of one run or member and the writing of one folder's files
(events.py says which folder gets which events, and when).

The writer is TensorBoard's own (``tensorboard`` on PyPI needs no TensorFlow): its record writer, which
takes any file object, its protos and its HParams summaries; the same package reads the files back and
serves them (``tensorboard --logdir runs``). Keras's ``TensorBoard`` callback needs TensorFlow even on
the JAX backend (keras-team/keras#19121), so fmnist writes the events itself, in the callback's layout
(keras/src/callbacks/tensorboard.py), which Keras users know:

- ``train/`` and ``validation/``: sub-runs whose scalars share their tags, ``epoch_loss`` and
  ``epoch_accuracy`` (history.csv's ``val_loss`` is validation/epoch_loss), so TensorBoard draws a
  metric's training and validation curves in one chart, a colour per sub-run. train/ also holds
  ``epoch_learning_rate`` (the callback's name) and ``epoch_seconds`` (the epoch's wall time, where the
  callback puts its ``epoch_steps_per_second``). Step = history.csv's epoch (1, 2, …; the callback
  counts from 0), so the charts, history.csv and the progress lines give an epoch one number.
- ``test/``: the final test metrics under the same tags at the last epoch, one point at the end of the
  curves in the same charts (the callback has no test set; its ``model.evaluate`` writes into
  validation/, where test data would pass for one more validation epoch); after ``fmnist evaluate`` also
  the confusion matrix and the mistakes grid: pictures of the test set.
- the run's own folder: the HParams session alone (method, optimizer, learning_rate, seed and status:
  what the dashboard filters on), where ``hp.KerasCallback`` puts it beside the callback's sub-runs. The
  dashboard finds a session's metrics in its sub-runs: group "validation" and tag "epoch_accuracy" is the
  last validation accuracy. The trial id is the run's folder, or "member · study folder", unique so that
  TensorBoard never merges two studies' members; it infers the columns from the sessions (no experiment
  summary), so ``--logdir runs/`` over many studies offers every method that any of them trained.

Every folder holds one file, ``events.out.tfevents.fmnist``. Scalars are float32, as TensorBoard stores
them: history.csv's values rounded to float32. A rewrite (``write_events``) goes to a temporary name and
replaces its file in one rename, and removes the files of sub-runs it has nothing for (an earlier end's
test/, when a run is resumed for more epochs). fmnist's previous layout kept every scalar (``loss``,
``val_loss``, …) in the run folder's own file: a rewrite replaces it with the session alone (removes it
from a kept member's run folder, which has no session), or TensorBoard would show each epoch twice.
"""

from __future__ import annotations

import io
import math
import os
import time
from pathlib import Path

from fmnist.guard.text import printable
from fmnist.reporting.tables import Status

EVENTS = "events.out.tfevents.fmnist"  # TensorBoard reads any file whose name contains "tfevents"
SESSION, TRAIN, VALIDATION, TEST = "", "train", "validation", "test"  # a run's folder and its sub-runs
SUB_RUNS = (SESSION, TRAIN, VALIDATION, TEST)
# history.csv's columns (and metrics.json's test metrics): the sub-run and the tag Keras's callback gives
# them, "epoch_" + the name, with the "val_" prefix dropped in validation/
TAGS = {
    "loss": (TRAIN, "epoch_loss"),
    "accuracy": (TRAIN, "epoch_accuracy"),
    "epoch_seconds": (TRAIN, "epoch_seconds"),
    "learning_rate": (TRAIN, "epoch_learning_rate"),
    "val_loss": (VALIDATION, "epoch_loss"),
    "val_accuracy": (VALIDATION, "epoch_accuracy"),
    "test_loss": (TEST, "epoch_loss"),
    "test_accuracy": (TEST, "epoch_accuracy"),
}
EPOCH_COLUMNS = ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds", "learning_rate")
TEST_COLUMNS = ("test_loss", "test_accuracy")
DESCRIPTIONS = {
    "loss": "training loss (sparse categorical cross-entropy), mean over the epoch's batches",
    "accuracy": "training accuracy (fraction correct), mean over the epoch's batches",
    "val_loss": "validation loss after the epoch (cross-entropy)",
    "val_accuracy": "validation accuracy after the epoch (fraction correct)",
    "epoch_seconds": "wall seconds of the epoch (in a study: of its program, shared by its members)",
    "learning_rate": "the optimizer's learning rate (constant: fmnist has no schedule)",
    "test_loss": "test loss of the final model (cross-entropy, 10,000 test images), at its last epoch",
    "test_accuracy": "test accuracy of the final model (fraction correct), at its last epoch",
}
# HParams' own session statuses, which its dashboard filters on (Success / Failure / Running).
END_STATUS = {Status.OK: "STATUS_SUCCESS", Status.STUCK: "STATUS_FAILURE", Status.DIVERGED: "STATUS_FAILURE"}


def _event(step: int = 0, summary=None, wall_time: float | None = None):
    from tensorboard.compat.proto import event_pb2

    event = event_pb2.Event(step=step, wall_time=time.time() if wall_time is None else wall_time)
    if summary is not None:
        event.summary.CopyFrom(summary)
    return event


def scalars(step: int, values: dict, first: bool, wall_time: float | None = None) -> dict:
    """One event per sub-run with a float32 scalar per column of ``values`` (TensorBoard's default Rust
    loader reads no float64 scalar: measured, it shows none); the plugin metadata only on a file's first
    value of a tag (TensorBoard keeps the first it sees)."""
    from tensorboard.compat.proto import summary_pb2, tensor_pb2, types_pb2
    from tensorboard.plugins.scalar import metadata

    summaries: dict = {}
    for column, value in values.items():
        sub_run, tag = TAGS[column]
        # the proto tensor_util.make_tensor_proto makes for a float32 scalar, built directly (5x faster)
        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[value])
        tensor.tensor_shape.SetInParent()
        entry = summaries.setdefault(sub_run, summary_pb2.Summary()).value.add(tag=tag, tensor=tensor)
        if first:
            entry.metadata.CopyFrom(metadata.create_summary_metadata(display_name=tag,
                                                                     description=DESCRIPTIONS[column]))
    return {sub_run: _event(step, summary, wall_time) for sub_run, summary in summaries.items()}


def _hparams(hparams: dict, trial_id: str, status: str | None) -> list:
    """The HParams session: its start (the settings and the status) and, once finished, its end."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import (
        api_pb2,
        metadata,
        plugin_data_pb2,
        summary_v2,
    )

    # names come from the file system: a byte that is not UTF-8 is written as its escape (protobuf strings
    # must be UTF-8)
    shown = {key: printable(value) if isinstance(value, str) else value for key, value in hparams.items()}
    events = [_event(0, summary_v2.hparams_pb(shown | {"status": str(status or Status.TRAINING)}, trial_id=printable(trial_id)))]
    if status in END_STATUS:
        end = plugin_data_pb2.HParamsPluginData(session_end_info=plugin_data_pb2.SessionEndInfo(
            status=api_pb2.Status.Value(END_STATUS[status]), end_time_secs=time.time()))
        summary = summary_pb2.Summary()
        summary.value.add(tag=metadata.SESSION_END_INFO_TAG, metadata=metadata.create_summary_metadata(end),
                          tensor=metadata.NULL_TENSOR)
        events.append(_event(0, summary))
    return events


def _image(tag: str, path: Path, step: int):
    from PIL import Image
    from tensorboard.compat.proto import summary_pb2

    payload = path.read_bytes()
    with Image.open(io.BytesIO(payload)) as picture:
        width, height = picture.size
        colorspace = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}.get(picture.mode, 3)
    summary = summary_pb2.Summary()
    summary.value.add(tag=tag, image=summary_pb2.Summary.Image(height=height, width=width, colorspace=colorspace,
                                                               encoded_image_string=payload))
    return _event(step, summary)


def pictures(images: dict[str, Path], history: list[dict]) -> list:
    """The evaluation's pictures, at the last epoch (the step of the test metrics)."""
    step = history[-1]["epoch"] if history else 0
    return [_image(tag, path, step) for tag, path in images.items()]


def epoch_values(row: dict, learning_rate: float) -> dict:
    """history.csv's row and the learning rate, by column."""
    return {column: row[column] for column in EPOCH_COLUMNS[:-1]} | {"learning_rate": learning_rate}


def run_events(history: list[dict], hparams: dict, trial_id: str, status: str | None = None,
               test: dict | None = None, images: dict[str, Path] | None = None) -> dict[str, list]:
    """Every event of one run or member by sub-run, in order: the HParams session in the run's own folder;
    the epochs in train/ and validation/; the test metrics and the pictures in test/."""
    events: dict[str, list] = {SESSION: _hparams(hparams, trial_id, status), TRAIN: [], VALIDATION: []}
    for number, (row, ended) in enumerate(zip(history, _ends(history))):
        values = epoch_values(row, hparams["learning_rate"])
        for sub_run, event in scalars(row["epoch"], values, number == 0, ended).items():
            events[sub_run].append(event)
    if test and history:
        test_values = {column: test[column] for column in TEST_COLUMNS}
        events[TEST] = [scalars(history[-1]["epoch"], test_values, first=True)[TEST]]
    if images:
        events[TEST] = events.get(TEST, []) + pictures(images, history)
    return events


def _ends(history: list[dict]) -> list[float]:
    """When each epoch ended, counted back from now by the epochs' own seconds: a rewrite keeps the epochs
    apart in TensorBoard's wall-time axis and "Relative" column (the time between epochs is not kept)."""
    now, ends = time.time(), []
    for row in reversed(history):
        ends.append(now)
        seconds = row.get("epoch_seconds")
        now -= seconds if isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0 else 0.0
    return ends[::-1]


def records(events) -> bytes:
    from tensorboard.summary.writer.record_writer import RecordWriter

    buffer = io.BytesIO()
    writer = RecordWriter(buffer)
    for event in events:
        writer.write(event.SerializeToString())
    return buffer.getvalue()


def _replace(folder: Path, events: list) -> None:
    """Replace ``folder``'s event file in one rename. Not artifacts.atomic_path: its temporary carries the
    final name, and TensorBoard would read a half-written file whose name contains "tfevents"."""
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
    header = _event()
    header.file_version = "brain.Event:2"
    temporary = folder / f".events.tmp-{os.getpid()}"  # artifacts.remove_temporaries clears a killed one
    try:
        temporary.write_bytes(records([header, *events]))
        os.replace(temporary, folder / EVENTS)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_events(folder: Path, events: dict[str, list]) -> None:
    """Replace the event files of ``folder`` and its sub-runs with ``events`` (sub-run -> its events); a
    sub-run it does not name loses its file, and its folder when that is left empty."""
    folder = Path(folder)
    for sub_run in SUB_RUNS:
        if sub_run in events:
            _replace(folder / sub_run, events[sub_run])
        else:
            (folder / sub_run / EVENTS).unlink(missing_ok=True)
            if sub_run and (folder / sub_run).is_dir() and not any((folder / sub_run).iterdir()):
                (folder / sub_run).rmdir()
