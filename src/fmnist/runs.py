"""Run folders and study folders: where they go, what ``config.json`` holds, and resuming them.

A run folder holds one model's files (``fmnist train``, or a member of a study whose model is kept):
config.json, history.csv, metrics.json, model.keras, learning_curves.png and checkpoint.npz (and from
``fmnist train`` its TensorBoard events and report.html: tensorboard.py, report.py). A study
folder (``fmnist sweep``, ``fmnist compare``) holds study.json, members.csv, history.csv, the kind's own
tables and figures, programs/ (each program's progress and checkpoints, checkpoint.py), tensorboard/
(each member's events), report.html and the run folders of the members whose models are kept.

Each run has a random ``run_id`` in config.json that its checkpoint repeats, so a checkpoint copied in
from another run is refused instead of continued.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from fmnist import artifacts, plots
from fmnist.config import SweepConfig, TrainConfig
from fmnist.engines import ENGINES
from fmnist.errors import DataError, UsageError

# Settings that change the numbers a run produces; resuming refuses to change them.
RESULT_SETTINGS = ("seed", "batch_size", "normalization", "learning_rate", "optimizer", "engine", "valid_size", "verify")


def new_folder(output_dir: str | os.PathLike | None, name: str, runs_root: str | os.PathLike = "runs") -> Path:
    """``output_dir`` if given (it must be new or empty), else a new runs/<UTC time>-<name>/."""
    from fmnist.safe_files import write_error

    if output_dir is not None:
        folder = Path(output_dir)
        try:
            if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
                raise UsageError(f"--output-dir {folder}: exists and is not an empty folder; choose another")
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # read-only, no such parent, /proc, a name too long, ...
            raise write_error(f"--output-dir {folder}", error) from None
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


def environment() -> dict:
    """What the numbers depend on: library versions, backend, devices, XLA flags (the tutorial's step 11)."""
    import keras

    backend = keras.backend.backend()
    info = {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": backend,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "compilation_cache": os.environ.get("JAX_COMPILATION_CACHE_DIR", ""),
    }
    if backend == "jax":
        import jax
        import jaxlib

        device = jax.devices()[0]
        info.update(jax=jax.__version__, jaxlib=jaxlib.__version__, device=f"{device.platform}:{device.device_kind}",
                    device_count=jax.device_count(), process_count=jax.process_count())
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        info.update(tensorflow=tf.__version__, device="gpu" if gpus else "cpu")
    else:
        info.update(device="cpu")
    return info


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


def read_config(run_dir: str | os.PathLike, option: str = "--resume") -> dict:
    path = Path(run_dir) / "config.json"
    if not os.path.lexists(path):
        raise UsageError(f"{option} {run_dir}: not a run folder (no config.json)")
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
        from fmnist.text import printable

        raise DataError(f"{path}: damaged settings ({printable(str(error))})") from None


def resume_config(run_dir: str | os.PathLike, given: dict) -> TrainConfig:
    """The settings recorded in ``run_dir``; ``given`` (the options the user named) may raise --epochs
    or point --data-dir elsewhere, but may not change anything in RESULT_SETTINGS."""
    import keras

    from fmnist import engines

    recorded = read_config(run_dir)["settings"]
    for key, value in given.items():
        if key == "engine":
            value = engines.resolve(value, keras.backend.backend())
        if key in RESULT_SETTINGS and value != recorded.get(key):
            option = "--skip-checksum" if key == "verify" else f"--{key.replace('_', '-')} {value}"
            raise UsageError(f"--resume {run_dir}: {option} differs from the run's {key} {recorded.get(key)!r}; "
                             "resuming refuses changes that alter the result")
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    settings = {key: value for key, value in recorded.items() if key in fields}
    return TrainConfig(**(settings | {key: given[key] for key in ("epochs", "data_dir") if key in given}))


def reopen_run(run_dir: Path, config: TrainConfig, dataset) -> str:
    """Check that ``dataset`` is the run's data; returns the run id. Nothing is written: the checkpoint is
    checked first (``record_epochs`` then records a raised --epochs)."""
    recorded = read_config(run_dir)
    if recorded["data"].get("digests") != dataset.digests:
        raise UsageError(f"--resume {run_dir}: the data in {dataset.source} differ from the run's "
                         f"({recorded['data'].get('source')}); resuming refuses other data")
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


def write_results(run_dir: Path, config: TrainConfig, history: list[dict], metrics: dict, model=None,
                  started: float | None = None) -> None:
    """The end of a run: model.keras (unless it diverged), learning_curves.png and metrics.json, in that
    order, so a metrics.json means the rest is there. ``started``: the run's perf_counter start, for
    ``wall_seconds``."""
    if model is not None:
        artifacts.write_with(run_dir / "model.keras", model.save)
    plots.plot_learning_curves(history, run_dir / "learning_curves.png", title=f"{config.name} ({config.normalization})")
    if started is not None:
        metrics["wall_seconds"] = time.perf_counter() - started
    artifacts.write_json(run_dir / "metrics.json", metrics)


# -- study folders (fmnist sweep, fmnist compare) ------------------------------------------------------
STUDY_FILE = "study.json"
KIND_COMMANDS = {"sweep": "fmnist sweep", "compare": "fmnist compare"}


def create_study(config, output_dir, kind: str, runs_root, dataset, programs: list[dict]) -> Path:
    """A new study folder with study.json: the settings, the programs (recorded, so that a resumed study
    runs exactly the same ones), the data and the environment. Process 0 creates it; the others wait
    and use the same ``output_dir``, which several processes must therefore name."""
    import jax

    from fmnist.runtime import barrier, is_main_process

    if jax.process_count() > 1 and output_dir is None:
        raise UsageError("--output-dir: name the study folder when several processes share a study")
    if is_main_process():
        folder = new_folder(output_dir, kind, runs_root)
        # study_id: progress files, states and kept run folders carry it, so another study's are refused
        artifacts.write_json(folder / STUDY_FILE, {
            "kind": kind, "study_id": uuid.uuid4().hex, "settings": dataclasses.asdict(config), "programs": programs,
            "data": data_record(dataset), "environment": environment(), "command": sys.argv,
        })
    barrier("study folder created")
    return Path(output_dir) if not is_main_process() else folder


def read_study(folder, kind: str | None = None) -> dict:
    """study.json of ``folder``; UsageError when it is not a study (of ``kind``, when given)."""
    path = Path(folder) / STUDY_FILE
    if not path.is_file():
        raise UsageError(f"--resume {folder}: not a study folder (no {STUDY_FILE})")
    recorded = artifacts.read_json(path)
    if recorded.get("kind") not in KIND_COMMANDS or not isinstance(recorded.get("settings"), dict) \
            or not isinstance(recorded.get("programs"), list) or not isinstance(recorded.get("data"), dict):
        raise DataError(f"{path}: damaged study file (no kind, settings, programs or data)")
    if kind and recorded["kind"] != kind:
        raise UsageError(f"--resume {folder}: a {recorded['kind']} folder; resume it with "
                         f"{KIND_COMMANDS[recorded['kind']]} --resume")
    check_settings(recorded["settings"], SweepConfig, path)
    return recorded


def reopen_study(folder, kind: str, dataset) -> dict:
    """Check that ``dataset`` is the study's data; returns study.json."""
    import jax

    recorded = read_study(folder, kind)
    if recorded["data"].get("digests") != dataset.digests:
        raise UsageError(f"--resume {folder}: the data in {dataset.source} differ from the study's "
                         f"({recorded['data']['source']}); resuming refuses other data")
    before = recorded["environment"].get("device_count"), recorded["environment"].get("process_count")
    if before != (jax.device_count(), jax.process_count()):
        print(f"fmnist: warning: the study ran on {before[0]} devices in {before[1]} processes, now "
              f"{jax.device_count()} in {jax.process_count()}; its numbers may differ in the last bits from an "
              "uninterrupted run", file=sys.stderr)
    return recorded


def record_study(folder: Path, recorded: dict, config, programs: list[dict]) -> None:
    """study.json with ``config``'s settings and ``programs`` (a resumed study given more seeds)."""
    from fmnist.runtime import barrier, is_main_process

    if is_main_process():
        artifacts.write_json(Path(folder) / STUDY_FILE, recorded | {"settings": dataclasses.asdict(config),
                                                                    "programs": programs})
    barrier("study recorded")


def _member_record(run_dir: Path) -> dict | None:
    """The ``study_member`` record of a run folder's config.json; None when it has none (or no config)."""
    if not os.path.lexists(run_dir / "config.json"):
        return None
    try:
        return read_config(run_dir).get("study_member")
    except (DataError, UsageError):
        return None


def kept_member(run_dir: Path, study_id: str) -> bool:
    """Whether ``run_dir`` is this study's finished run folder of the member it is named after. A folder
    there that is not this study's (another run put where a member's folder belongs) is refused, never
    adopted nor deleted."""
    if not os.path.lexists(run_dir):
        return False
    record = _member_record(run_dir)
    ours = isinstance(record, dict) and record.get("study_id", "") == study_id \
        and read_config(run_dir)["settings"].get("name") == run_dir.name
    leftovers = {path.name for path in run_dir.iterdir()} if run_dir.is_dir() else {"?"}
    if not ours and {name for name in leftovers if ".tmp-" not in name}:  # only an empty folder is ours to redo
        raise DataError(f"{run_dir}: holds a run that is not this study's member {run_dir.name} (config.json "
                        f"records {record!r}); move it away and resume again")
    return ours and (run_dir / "metrics.json").is_file()


def member_run(folder: Path, config: TrainConfig, dataset, stats: dict, history: list[dict], metrics: dict,
               model, member: dict) -> None:
    """The run folder of a study member whose model is kept: the files of ``fmnist train``'s folder but
    the checkpoint, so ``evaluate`` and ``predict`` take it like any run."""
    run_dir = folder / config.name
    if os.path.lexists(run_dir):  # left half-written by this study when interrupted (kept_member checked it)
        import shutil

        shutil.rmtree(run_dir)
    create_run(config, run_dir, None, dataset, stats, "members", extra={"study_member": member})
    artifacts.write_csv(run_dir / "history.csv", history, artifacts.HISTORY_COLUMNS)
    write_results(run_dir, config, history, metrics, model)
