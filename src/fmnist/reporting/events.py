"""TensorBoard event files for runs and studies, written without TensorFlow.

The writer is TensorBoard's own (``tensorboard`` on PyPI needs no TensorFlow): its record writer, which
takes any file object, its protos and its HParams summaries; the same package reads the files back and
serves them (``tensorboard --logdir runs``). Keras's ``TensorBoard`` callback needs TensorFlow even on
the JAX backend (keras-team/keras#19121), so fmnist writes the events itself.

Layout: one file, ``events.out.tfevents.fmnist``, in each run folder, and in a study folder one per
member under ``tensorboard/<member>/``, so ``tensorboard --logdir runs/`` shows every run and every
member. Per epoch, at step = epoch: loss, accuracy, val_loss, val_accuracy, epoch_seconds,
learning_rate (float32, as TensorBoard stores scalars: history.csv's values rounded to float32); at the end test_loss and test_accuracy; after
``fmnist evaluate`` the confusion matrix and the mistakes grid as images; and an HParams session
(method, optimizer, learning_rate, seed and status: what the dashboard filters on; the trial id is the
run's folder, or "member · study folder", unique so that TensorBoard never merges two studies' members). TensorBoard infers the HParams columns from the sessions (no experiment summary), so
``--logdir runs/`` over many studies offers every method that any of them trained.

The event file is derived data: the checkpoint and history.csv (a study's programs/*/progress.json) are
the truth. An epoch is appended only after its checkpoint, so the events are never ahead of it; a
resumed run rewrites its file from the checkpointed history before training on, so epochs trained
after the last checkpoint of a killed process are dropped, never duplicated; the end of a run rewrites
it whole with its status and test metrics. Appends are plain ``open("ab")`` writes (about 0.3 KB
per member and epoch, no writer left open, no thread); rewrites go to a temporary name and replace
the file in one rename.
"""

from __future__ import annotations

import io
import math
import os
import time
from pathlib import Path

from fmnist.guard.text import printable
from fmnist.reporting.tables import Status, status_of
from fmnist.runtime import is_main_process
from fmnist.store import artifacts, runs

EVENTS = "events.out.tfevents.fmnist"  # TensorBoard reads any file whose name contains "tfevents"
STUDY_RUNS = "tensorboard"  # a study's members: <study>/tensorboard/<member name>/
EPOCH_TAGS = ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds", "learning_rate")
TEST_TAGS = ("test_loss", "test_accuracy")
IMAGES = {"confusion_matrix": "confusion_matrix.png", "mistakes": "mistakes.png"}
DESCRIPTIONS = {
    "loss": "training loss (sparse categorical cross-entropy), mean over the epoch's batches",
    "accuracy": "training accuracy (fraction correct), mean over the epoch's batches",
    "val_loss": "validation loss after the epoch (cross-entropy)",
    "val_accuracy": "validation accuracy after the epoch (fraction correct)",
    "epoch_seconds": "wall seconds of the epoch (in a study: of its program, shared by its members)",
    "learning_rate": "the optimizer's learning rate (constant: fmnist has no schedule)",
    "test_loss": "test loss of the final model (cross-entropy, 10,000 test images)",
    "test_accuracy": "test accuracy of the final model (fraction correct)",
}
# HParams' own session statuses, which its dashboard filters on (Success / Failure / Running).
END_STATUS = {Status.OK: "STATUS_SUCCESS", Status.STUCK: "STATUS_FAILURE", Status.DIVERGED: "STATUS_FAILURE"}


def _event(step: int = 0, summary=None, wall_time: float | None = None):
    from tensorboard.compat.proto import event_pb2

    event = event_pb2.Event(step=step, wall_time=time.time() if wall_time is None else wall_time)
    if summary is not None:
        event.summary.CopyFrom(summary)
    return event


def _scalars(step: int, values: dict, first: bool):
    """One event with a float32 scalar per tag (TensorBoard's default Rust loader reads no float64 scalar:
    measured, it shows none); the plugin metadata only on a file's first value of a tag (TensorBoard keeps
    the first it sees)."""
    from tensorboard.compat.proto import summary_pb2, tensor_pb2, types_pb2
    from tensorboard.plugins.scalar import metadata

    summary = summary_pb2.Summary()
    for tag, value in values.items():
        # the proto tensor_util.make_tensor_proto makes for a float32 scalar, built directly (5x faster)
        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[value])
        tensor.tensor_shape.SetInParent()
        entry = summary.value.add(tag=tag, tensor=tensor)
        if first:
            entry.metadata.CopyFrom(metadata.create_summary_metadata(display_name=tag,
                                                                     description=DESCRIPTIONS[tag]))
    return _event(step, summary)


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


def epoch_values(row: dict, learning_rate: float) -> dict:
    return {tag: row[tag] for tag in EPOCH_TAGS[:-1]} | {"learning_rate": learning_rate}


def run_events(history: list[dict], hparams: dict, trial_id: str, status: str | None = None,
               test: dict | None = None, images: dict[str, Path] | None = None, scalars: bool = True) -> list:
    """Every event of one run or member, in order: header, HParams session, epochs, test metrics, images."""
    events = [_event()]
    events[0].file_version = "brain.Event:2"
    if scalars:
        events += _hparams(hparams, trial_id, status)
        events += [_scalars(row["epoch"], epoch_values(row, hparams["learning_rate"]), first=number == 0)
                   for number, row in enumerate(history)]
        if test and history:
            events.append(_scalars(history[-1]["epoch"], {tag: test[tag] for tag in TEST_TAGS}, first=True))
    step = history[-1]["epoch"] if history else 0
    events += [_image(tag, path, step) for tag, path in (images or {}).items()]
    return events


def _records(events) -> bytes:
    from tensorboard.summary.writer.record_writer import RecordWriter

    buffer = io.BytesIO()
    writer = RecordWriter(buffer)
    for event in events:
        writer.write(event.SerializeToString())
    return buffer.getvalue()


def write_events(folder: Path, events: list) -> None:
    """Replace ``folder``'s event file in one rename. Not artifacts.atomic_path: its temporary carries the
    final name, and TensorBoard would read a half-written file whose name contains "tfevents"."""
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".events.tmp-{os.getpid()}"  # artifacts.remove_temporaries clears a killed one
    try:
        temporary.write_bytes(_records(events))
        os.replace(temporary, folder / EVENTS)
    finally:
        temporary.unlink(missing_ok=True)


def append_epoch(folder: Path, row: dict, learning_rate: float) -> None:
    """Add one epoch to an existing event file (no fsync: derived data, rewritten at every resume)."""
    with open(folder / EVENTS, "ab") as handle:
        handle.write(_records([_scalars(row["epoch"], epoch_values(row, learning_rate), first=row["epoch"] == 1)]))


# -- run folders (fmnist train; evaluate) --------------------------------------------------------------
def run_hparams(settings: dict) -> dict:
    return {"method": settings["normalization"], "optimizer": settings["optimizer"],
            "learning_rate": float(settings["learning_rate"]), "seed": settings["seed"]}


def run_status(history: list[dict], epochs: int, metrics: dict | None) -> str:
    tested = bool(metrics) and not metrics.get("diverged") and metrics.get("test_accuracy") is not None
    return status_of(history, epochs, tested)[0]


def evaluation_images(run_dir: Path) -> dict[str, Path]:
    """The evaluation's pictures, when they are of the run's current model (not older than model.keras:
    a run resumed for more epochs keeps the pictures of its earlier model until evaluated again)."""
    model, evaluation = run_dir / "model.keras", run_dir / "evaluation.json"
    if not evaluation.is_file() or (model.is_file() and evaluation.stat().st_mtime_ns < model.stat().st_mtime_ns):
        return {}
    return {tag: run_dir / name for tag, name in IMAGES.items() if (run_dir / name).is_file()}


def start_run(run_dir: Path, settings: dict, history: list[dict]) -> None:
    """A new or resumed run: its file holds exactly the checkpointed epochs."""
    write_events(run_dir, run_events(history, run_hparams(settings), run_dir.name))


def write_run(run_dir: Path) -> None:
    """A run folder's event file from its files: config.json, history.csv, metrics.json and the
    evaluation's pictures. A study member's run folder gets the pictures only: its epochs and HParams
    session are in the study's tensorboard/ folder."""
    run_dir = Path(run_dir)
    config = runs.read_config(run_dir)  # checked: a damaged file is one line naming it
    history = artifacts.read_history(run_dir / "history.csv") if (run_dir / "history.csv").is_file() else []
    metrics = runs.read_metrics(run_dir / "metrics.json")
    images = evaluation_images(run_dir)
    if "study_member" in config:
        if images:
            write_events(run_dir, run_events(history, {}, "", images=images, scalars=False))
        return
    status = run_status(history, config["settings"]["epochs"], metrics)
    test = metrics if Status(status).finished else None
    write_events(run_dir, run_events(history, run_hparams(config["settings"]), run_dir.name, status, test, images))


# -- study folders (fmnist compare, fmnist sweep): one sub-run per member ------------------------------
def member_hparams(member, config) -> dict:
    return {"method": member.method, "optimizer": member.optimizer, "learning_rate": member.learning_rate,
            "seed": member.seed}


def write_members(folder: Path, config, members, indices, histories, tests: dict | None = None) -> None:
    """Rewrite the members' files from their histories (the checkpointed truth); with ``tests`` (their
    program finished) also their status and test metrics. Process 0 only."""
    if not is_main_process():
        return
    for index in indices:
        member, history = members[index], histories[index]
        status = test = None
        if tests is not None:
            status = status_of(history, config.epochs, index in tests)[0]
            test = tests.get(index) if Status(status).finished else None
            test = test if test and all(math.isfinite(test[tag]) for tag in TEST_TAGS) else None
        artifacts.remove_temporaries(Path(folder) / STUDY_RUNS / member.name)  # left by a killed process
        write_events(Path(folder) / STUDY_RUNS / member.name,
                     run_events(history, member_hparams(member, config), f"{member.name} · {Path(folder).name}",
                                status, test))


def append_members(folder: Path, members, indices, histories, epoch: int) -> None:
    """The rows of ``epoch`` of the members that trained it (process 0 only)."""
    if not is_main_process():
        return
    for index in indices:
        history = histories[index]
        if history and history[-1]["epoch"] == epoch:
            append_epoch(Path(folder) / STUDY_RUNS / members[index].name, history[-1], members[index].learning_rate)
