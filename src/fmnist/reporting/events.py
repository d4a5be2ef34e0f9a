"""The TensorBoard events of runs and studies: what ``fmnist train``, ``fmnist evaluate`` and a study's
programs call to keep each folder's event files in step with its checkpoint (event_files.py holds the
layout, Keras's, and the writing).

A run is its run folder; a study's members are ``<study>/tensorboard/<member>/`` (a kept member's own
run folder gets only its test/ pictures), so ``tensorboard --logdir runs/`` shows every run and every
member.

The event files are derived data: the checkpoint and history.csv (a study's programs/*/progress.json)
are the truth. An epoch is appended only after its checkpoint, so the events are never ahead of it; a
resumed run rewrites its files from the checkpointed history before training on, so epochs trained
after the last checkpoint of a killed process are dropped, never duplicated; the end of a run rewrites
them whole with its status and test metrics. Appends are plain ``open("ab")`` writes (no writer left
open, no thread); each rewrite replaces its files in one rename (event_files.write_events).

A file per sub-run costs file creations; measured for the default sweep's 990 members on a shared 2-core
CPU (``benchmarks/tensorboard_events.py``, the one-file layout alongside): an epoch's appends 0.11 s for
all (0.06 s before), a program's finish 2.5 to 5 ms per member (0.8 to 1.5 ms), 3.7 kB per member
after 10 epochs: small next to an epoch of training.
"""

from __future__ import annotations

import math
from pathlib import Path

from fmnist.reporting.event_files import (
    EVENTS,
    TEST,
    TEST_COLUMNS,
    epoch_values,
    pictures,
    records,
    run_events,
    scalars,
    write_events,
)
from fmnist.reporting.tables import Status, status_of
from fmnist.runtime import is_main_process
from fmnist.store import artifacts, runs

STUDY_RUNS = "tensorboard"  # a study's members: <study>/tensorboard/<member name>/
IMAGES = {"confusion_matrix": "confusion_matrix.png", "mistakes": "mistakes.png"}  # in test/


def append_epoch(folder: Path, row: dict, learning_rate: float) -> None:
    """Add one epoch to a run's train/ and validation/ files (no fsync: derived data, rewritten at every
    resume)."""
    for sub_run, event in scalars(row["epoch"], epoch_values(row, learning_rate), first=row["epoch"] == 1).items():
        with open(Path(folder) / sub_run / EVENTS, "ab") as handle:
            handle.write(records([event]))


# -- run folders (fmnist train; evaluate) --------------------------------------------------------------
def run_hparams(settings: dict) -> dict:
    return {"model": settings.get("model", "mlp"), "method": settings["normalization"], "optimizer": settings["optimizer"],
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
    """A new or resumed run: its files hold exactly the checkpointed epochs."""
    write_events(run_dir, run_events(history, run_hparams(settings), run_dir.name))


def write_run(run_dir: Path) -> None:
    """A run folder's event files from its files: config.json, history.csv, metrics.json and the
    evaluation's pictures. A study member's run folder gets the pictures only (test/): its epochs and
    HParams session are in the study's tensorboard/ folder."""
    run_dir = Path(run_dir)
    config = runs.read_config(run_dir)  # checked: a damaged file is one line naming it
    history = artifacts.read_history(run_dir / "history.csv") if (run_dir / "history.csv").is_file() else []
    metrics = runs.read_metrics(run_dir / "metrics.json")
    images = evaluation_images(run_dir)
    if "study_member" in config:
        write_events(run_dir, {TEST: pictures(images, history)} if images else {})
        return
    status = run_status(history, config["settings"]["epochs"], metrics)
    test = metrics if Status(status).finished else None
    write_events(run_dir, run_events(history, run_hparams(config["settings"]), run_dir.name, status, test, images))


# -- study folders (fmnist compare, fmnist sweep): one run per member ----------------------------------
def member_hparams(member, config) -> dict:
    return {"model": member.model, "method": member.method, "optimizer": member.optimizer,
            "learning_rate": member.learning_rate, "seed": member.seed}


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
            test = test if test and all(math.isfinite(test[column]) for column in TEST_COLUMNS) else None
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
