"""Run folders: where they go, what ``config.json`` holds, reopening one to resume it, and its
config.json, metrics.json and evaluation.json read back field by field (a damaged one is a DataError
naming it, whoever reads it: resuming, the report page).

A run folder holds one model's files (``fmnist train``, or a member of a study whose model is kept):
config.json, history.csv, metrics.json, model.keras, learning_curves.png, checkpoint.npz, its
TensorBoard events and report.html. Study folders are ``store.studies``.

Each run has a random ``run_id`` in config.json that its checkpoint repeats, so a checkpoint copied in
from another run is refused instead of continued. A study member's run folder carries, in its
``study_member`` record, the digest of what it was written under (``member_binding``), so a study never
adopts a member folder whose config.json was edited since.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
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

RESULT_SETTINGS = ("seed", "batch_size", "normalization", "learning_rate", "optimizer", "engine", "valid_size", "verify",
                   "early_stopping", "monitor", "model")


def check_new_folder(output_dir: str | os.PathLike) -> Path:
    """Refuse an ``output_dir`` that exists and is not an empty folder (before any work, and again when it
    is made)."""
    folder = Path(output_dir)
    try:
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise UsageError(f"output_dir {folder}: exists and is not an empty folder; choose another", "output_dir")
    except OSError as error:
        raise write_error(f"output_dir {folder}", error, "output_dir") from None
    return folder


def new_folder(output_dir: str | os.PathLike | None, name: str, runs_root: str | os.PathLike = "runs") -> Path:
    """``output_dir`` if given (it must be new or empty), else a new runs/<UTC time>-<name>/."""
    if output_dir is not None:
        folder = check_new_folder(output_dir)
        try:
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
    recorded = {
        "run_id": run_id,
        "settings": dataclasses.asdict(config) | {"engine": engine_name},
        "data": data_record(dataset), "normalization_stats": stats, "environment": environment(),
        "command": sys.argv, **(extra or {}),
    }
    if isinstance(recorded.get("study_member"), dict):  # what the study checks before adopting the folder
        recorded["study_member"] = recorded["study_member"] | {"binding": member_binding(recorded)}
    artifacts.write_json(run_dir / "config.json", recorded)
    return run_dir, run_id


def read_config(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / "config.json"
    if not os.path.lexists(path):
        raise UsageError(f"resume {run_dir}: not a run folder (no config.json)", "resume")
    recorded = artifacts.read_json(path)
    if not isinstance(recorded.get("settings"), dict):
        raise DataError(f"{path}: damaged run configuration (no settings)")
    if not isinstance(recorded.get("data"), dict):
        raise DataError(f"{path}: damaged run configuration (no data record)")
    check_settings(recorded["settings"], TrainConfig, path)
    missing = [field.name for field in dataclasses.fields(TrainConfig)
               if field.name not in recorded["settings"] and field.name not in LATER_SETTINGS]
    if missing:  # every run records every setting but those added since (which take their defaults)
        raise DataError(f"{path}: damaged settings (no {missing[0]})")
    check_record(recorded, path, {"run_id": str, "environment": dict, "study_member": dict})
    return recorded


def check_record(recorded: dict, path: Path, types: dict) -> None:
    """The parts of a config.json or study.json besides its settings: each of ``types`` absent or of its
    type, and the data record a source with digests (file name -> SHA-256 text)."""
    for key, kind in types.items():
        if key in recorded and not isinstance(recorded[key], kind):
            raise DataError(f"{path}: damaged {key} (not a JSON {'object' if kind is dict else 'string'})")
    data = recorded.get("data", {})
    digests = data.get("digests", {})
    if not isinstance(digests, dict) or not all(isinstance(value, str) for value in digests.values()) \
            or not isinstance(data.get("source", ""), str):
        raise DataError(f"{path}: damaged data record (a source and the SHA-256 of each file)")


def check_settings(settings: dict, config_class, path: Path) -> None:
    """Refuse recorded settings that the settings object would refuse (a number that is text, markup
    where a batch size belongs): whatever reads them, the report page included, gets valid values."""
    fields = {field.name for field in dataclasses.fields(config_class)}
    for key, value in settings.items():
        if not _fits(value):  # JSON's integers have no bound; the page shows a rate as a float
            raise DataError(f"{path}: damaged settings ({key} {brief(value, 40)}: larger than any float)")
    given = {key: tuple(value) if isinstance(value, list) else value for key, value in settings.items() if key in fields}
    if config_class is TrainConfig and given.get("engine") in ("auto", *ENGINES):
        given["engine"] = "auto"  # the engine that ran it; any of them trains the same settings
    try:
        config_class(**given)
    except (UsageError, TypeError, ValueError, AttributeError) as error:  # AttributeError: a name that is a list
        raise DataError(f"{path}: damaged settings ({brief(error)})") from None
    if not isinstance(settings.get("verify", True), bool):
        raise DataError(f"{path}: damaged settings (verify {brief(settings['verify'])}: must be true or false)")
    if not isinstance(settings.get("data_dir"), (str, type(None))):
        raise DataError(f"{path}: damaged settings (data_dir {brief(settings['data_dir'])}: must be text or null)")


def brief(value, limit: int = 200) -> str:
    """``value`` as printable text of at most about ``limit`` characters, for a one-line message about a
    file's content (which may hold anything, markup and megabytes included)."""
    shown = printable(str(value))
    return shown if len(shown) <= limit else shown[:limit] + "…"


def read_metrics(path: Path) -> dict | None:
    """A run folder's metrics.json (None when there is none): diverged true or false, the test numbers
    numbers (or null), the split sizes whole numbers; DataError naming it otherwise."""
    if not Path(path).is_file():
        return None
    metrics = artifacts.read_json(path, "metrics file")
    sizes = metrics.get("split_sizes", {})
    if not isinstance(metrics.get("diverged", False), bool) or not isinstance(sizes, dict) \
            or "test_accuracy" in metrics and not _whole(sizes.get("test")) \
            or not all(_whole(size) for size in sizes.values()):
        raise DataError(f"{path}: damaged metrics file (diverged must be true or false, split_sizes whole numbers)")
    _numbers(metrics, ("test_accuracy", "test_loss", "wall_seconds"), path, "metrics file")
    return metrics


def read_evaluation(path: Path) -> dict:
    """A run folder's evaluation.json: the test numbers, and per class its name, three scores and its count
    of images; DataError naming it otherwise."""
    result = artifacts.read_json(path, "evaluation file")
    _numbers(result, ("test_loss", "test_accuracy"), path, "evaluation file")
    rows = result.get("per_class")
    if not {"test_loss", "test_accuracy"} <= set(result) or not isinstance(rows, list) or not all(
            isinstance(row, dict) and {"class", "precision", "recall", "f1"} <= set(row) and _whole(row.get("support"))
            and isinstance(row["class"], str) for row in rows) or not _whole(result.get("mistakes_shown", 0)):
        raise DataError(f"{path}: damaged evaluation file (test_loss, test_accuracy and per class its scores and "
                        "support)")
    for row in rows:
        _numbers(row, ("precision", "recall", "f1"), path, "evaluation file")
    return result


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and _number(value)


def _number(value) -> bool:
    """A JSON number that a float holds (the page shows it as one): not an integer of 400 digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _fits(value) -> bool:
    """Whether every integer in ``value`` (a setting: a number, text, or a list of them) is one a float holds."""
    if isinstance(value, list):
        return all(_fits(item) for item in value)
    return not isinstance(value, int) or isinstance(value, bool) or _number(value)


def _numbers(record: dict, keys, path: Path, what: str) -> None:
    """Each of ``keys`` in ``record``, where present, a number or null (JSON's NaN)."""
    for key in keys:
        value = record.get(key)
        if key in record and value is not None and not _number(value):
            raise DataError(f"{path}: damaged {what} ({key} {brief(value, 40)!r} is not a number)")


def reopen_run(run_dir: Path, config: TrainConfig, dataset) -> str:
    """Check that ``dataset`` is the run's data; returns the run id. Nothing is written: the checkpoint is
    checked first (``record_epochs`` then records a raised ``epochs``)."""
    recorded = read_config(run_dir)
    data = recorded.get("data", {})
    if data.get("digests") != dataset.digests:
        raise UsageError(f"resume {run_dir}: the data in {dataset.source} differ from the run's "
                         f"({data.get('source')}); resuming refuses other data", "resume")
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
    return _digest(read_config(run_dir), RESULT_SETTINGS)


def member_binding(recorded: dict) -> str:
    """What a study member's run folder was written under: its run id, its settings (the member's method,
    optimizer, rate and seed among them), its epochs and name, and the data."""
    return _digest(recorded, (*RESULT_SETTINGS, "epochs", "name"))


# Settings added since runs were first bound: in a digest only when set, so older checkpoints still match.
LATER_SETTINGS = {"early_stopping": None, "monitor": "val_loss", "model": "mlp"}


def _digest(recorded: dict, keys) -> str:
    settings = {key: recorded["settings"].get(key) for key in keys
                if recorded["settings"].get(key, LATER_SETTINGS.get(key)) != LATER_SETTINGS.get(key, ...)}
    text = json.dumps([recorded.get("run_id", ""), settings, recorded.get("data", {}).get("digests")], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
