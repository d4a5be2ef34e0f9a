"""Run folders: where they go, what ``config.json`` holds, and reopening one to resume it.

A run folder holds one model's files (``fmnist train``, or a member of a study whose model is kept):
config.json, history.csv, metrics.json, model.keras, learning_curves.png, checkpoint.npz, its
TensorBoard events and report.html. Study folders are ``store.studies``.

Each run has a random ``run_id`` in config.json that its checkpoint repeats, so a checkpoint copied in
from another run is refused instead of continued.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import sys
import uuid
from pathlib import Path

from fmnist.config import TrainConfig
from fmnist.engines import ENGINES
from fmnist.errors import DataError, UsageError
from fmnist.guard.safe_files import write_error
from fmnist.guard.text import printable
from fmnist.runtime import environment
from fmnist.store import artifacts

RESULT_SETTINGS = ("seed", "batch_size", "normalization", "learning_rate", "optimizer", "engine", "valid_size", "verify")


def new_folder(output_dir: str | os.PathLike | None, name: str, runs_root: str | os.PathLike = "runs") -> Path:
    """``output_dir`` if given (it must be new or empty), else a new runs/<UTC time>-<name>/."""
    if output_dir is not None:
        folder = Path(output_dir)
        try:
            if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
                raise UsageError(f"output_dir {folder}: exists and is not an empty folder; choose another", "output_dir")
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # read-only, no such parent, /proc, a name too long, ...
            raise write_error(f"output_dir {folder}", error, "output_dir") from None
        return folder
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    root = Path(runs_root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for attempt in range(1000):
            folder = root / (f"{stamp}-{name}" + (f"-{attempt}" if attempt else ""))
            try:
                folder.mkdir()
                return folder
            except FileExistsError:
                continue
    except OSError as error:
        raise write_error(root, error) from None
    raise UsageError(f"{root}: cannot create a new folder")


def data_record(dataset) -> dict:
    return {"source": str(dataset.source), "verified": dataset.verified, "digests": dataset.digests}


def create_run(config: TrainConfig, output_dir, runs_root, dataset, stats: dict, engine_name: str,
               extra: dict | None = None) -> tuple[Path, str]:
    """A new run folder with its config.json; returns the folder and its run id."""
    run_dir = new_folder(output_dir, config.name, runs_root)
    run_id = uuid.uuid4().hex
    artifacts.write_json(run_dir / "config.json", {
        "run_id": run_id,
        "settings": dataclasses.asdict(config) | {"engine": engine_name},
        "data": data_record(dataset), "normalization_stats": stats, "environment": environment(),
        "command": sys.argv, **(extra or {}),
    })
    return run_dir, run_id


def read_config(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / "config.json"
    if not os.path.lexists(path):
        raise UsageError(f"resume {run_dir}: not a run folder (no config.json)", "resume")
    recorded = artifacts.read_json(path)
    if not isinstance(recorded.get("settings"), dict) or not isinstance(recorded.get("data", {}), dict):
        raise DataError(f"{path}: damaged run configuration (no settings)")
    check_settings(recorded["settings"], TrainConfig, path)
    return recorded


def check_settings(settings: dict, config_class, path: Path) -> None:
    """Refuse recorded settings that the settings object would refuse (a number that is text, markup
    where a batch size belongs): whatever reads them, the report page included, gets valid values."""
    fields = {field.name for field in dataclasses.fields(config_class)}
    given = {key: tuple(value) if isinstance(value, list) else value for key, value in settings.items() if key in fields}
    if config_class is TrainConfig and given.get("engine") in ("auto", *ENGINES):
        given["engine"] = "auto"  # the engine that ran it; any of them trains the same settings
    try:
        config_class(**given)
    except (UsageError, TypeError, ValueError) as error:
        raise DataError(f"{path}: damaged settings ({printable(str(error))})") from None


def reopen_run(run_dir: Path, config: TrainConfig, dataset) -> str:
    """Check that ``dataset`` is the run's data; returns the run id. Nothing is written: the checkpoint is
    checked first (``record_epochs`` then records a raised ``epochs``)."""
    recorded = read_config(run_dir)
    if recorded["data"].get("digests") != dataset.digests:
        raise UsageError(f"resume {run_dir}: the data in {dataset.source} differ from the run's "
                         f"({recorded['data'].get('source')}); resuming refuses other data", "resume")
    artifacts.remove_temporaries(run_dir)  # left by a process killed while writing
    return recorded.get("run_id", "")


def record_epochs(run_dir: Path, config: TrainConfig) -> None:
    """config.json records a raised --epochs (once the checkpoint has been accepted)."""
    recorded = read_config(run_dir)
    if recorded["settings"].get("epochs") != config.epochs:
        recorded["settings"]["epochs"] = config.epochs
        artifacts.write_json(run_dir / "config.json", recorded)


def binding(run_dir: Path) -> str:
    """What a checkpoint must have been written under: the digest of config.json's run id, the settings
    that change the result and the data. A checkpoint of another run, or of this run's config.json edited
    since, does not match."""
    import hashlib
    import json

    recorded = read_config(run_dir)
    settings = {key: recorded["settings"].get(key) for key in RESULT_SETTINGS}
    text = json.dumps([recorded.get("run_id", ""), settings, recorded["data"].get("digests")], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


