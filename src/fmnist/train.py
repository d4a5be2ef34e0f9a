"""``train(config)``: the tutorial's pipeline from IDX files to a run folder.

data -> split -> fit normalization on the training split -> model with the normalization inside ->
engine, one epoch at a time -> test metrics -> config.json, history.csv, metrics.json, model.keras,
learning_curves.png.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from fmnist import artifacts, checkpoint, data, engines, normalization
from fmnist.config import TrainConfig
from fmnist.errors import Interrupted, TrainingFailed, UsageError
from fmnist.progress import Progress


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    history: list[dict]
    metrics: dict
    scaled_range: tuple[float, float]


def scaled_range(method: str, stats: dict, images: np.ndarray) -> tuple[np.float32, np.float32]:
    """Max and min of the training images after normalization (the tutorial prints them)."""
    chosen = normalization.get(method)
    if chosen.elementwise:  # the extremes come from the per-position extremes: 2 images instead of 55,000
        images = np.stack([images.max(axis=0), images.min(axis=0)])
    layers = chosen.build(stats)
    high, low = -np.inf, np.inf
    for chunk in np.array_split(images, max(1, len(images) // 10_000)):
        out = chunk
        for layer in layers:
            out = layer(out)
        out = np.asarray(out)
        high, low = max(high, out.max()), min(low, out.min())
    return np.float32(high), np.float32(low)


def environment() -> dict:
    """What the numbers depend on: library versions, backend, device, XLA flags (the tutorial's step 11)."""
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
        info.update(jax=jax.__version__, jaxlib=jaxlib.__version__, device=f"{device.platform}:{device.device_kind}")
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        info.update(tensorflow=tf.__version__, device="gpu" if gpus else "cpu")
    else:
        info.update(device="cpu")
    return info


def new_run_dir(output_dir: str | os.PathLike | None, name: str, runs_root: str | os.PathLike = "runs") -> Path:
    """The run folder: ``output_dir`` if given (new or empty), else runs/<UTC time>-<name>/."""
    if output_dir is not None:
        run_dir = Path(output_dir)
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise UsageError(f"--output-dir {run_dir}: exists and is not an empty folder; choose another")
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    root = Path(runs_root)
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        run_dir = root / (f"{stamp}-{name}" + (f"-{attempt}" if attempt else ""))
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise UsageError(f"{root}: cannot create a new run folder")


def _finite(row: dict) -> bool:
    return all(math.isfinite(row[key]) for key in ("loss", "accuracy", "val_loss", "val_accuracy"))


# Settings that change the numbers a run produces; resuming refuses to change them.
RESULT_SETTINGS = ("seed", "batch_size", "normalization", "learning_rate", "engine", "valid_size", "verify")


def resume_config(run_dir: str | os.PathLike, given: dict) -> TrainConfig:
    """The settings recorded in ``run_dir``; ``given`` (the options the user named) may raise --epochs
    or point --data-dir elsewhere, but may not change anything in RESULT_SETTINGS."""
    import keras

    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise UsageError(f"--resume {run_dir}: not a run folder (no config.json)")
    recorded = artifacts.read_json(path)["settings"]
    for key, value in given.items():
        if key == "engine":
            value = engines.resolve(value, keras.backend.backend())
        if key in RESULT_SETTINGS and value != recorded[key]:
            option = "--skip-checksum" if key == "verify" else f"--{key.replace('_', '-')} {value}"
            raise UsageError(f"--resume {run_dir}: {option} differs from the run's {key} {recorded[key]!r}; "
                             "resuming refuses changes that alter the result")
    return TrainConfig(**(recorded | {key: given[key] for key in ("epochs", "data_dir") if key in given}))


def _open_run_dir(config, output_dir, runs_root, resume, dataset, stats, engine_name) -> Path:
    """A new run folder with its config.json, or (resume) the existing one after checking its data."""
    if resume:
        run_dir = Path(output_dir)
        recorded = artifacts.read_json(run_dir / "config.json")
        if recorded["data"].get("digests") != dataset.digests:
            raise UsageError(f"--resume {run_dir}: the data in {dataset.source} differ from the run's "
                             f"({recorded['data']['source']}); resuming refuses other data")
        artifacts.remove_temporaries(run_dir)  # left by a process killed while writing
        if recorded["settings"]["epochs"] == config.epochs:
            return run_dir
        recorded["settings"]["epochs"] = config.epochs
        artifacts.write_json(run_dir / "config.json", recorded)
        return run_dir
    run_dir = new_run_dir(output_dir, config.name, runs_root)
    artifacts.write_json(
        run_dir / "config.json",
        {"settings": dataclasses.asdict(config) | {"engine": engine_name},
         "data": {"source": str(dataset.source), "verified": dataset.verified, "digests": dataset.digests},
         "normalization_stats": stats, "environment": environment(), "command": sys.argv},
    )
    return run_dir


def train(
    config: TrainConfig,
    output_dir: str | os.PathLike | None = None,
    *,
    resume: bool = False,
    runs_root: str | os.PathLike = "runs",
    progress: Progress | None = None,
    log=print,
    dataset: data.Dataset | None = None,
    should_stop=None,
) -> RunResult:
    """Train one run and write its folder, checkpointing every epoch.

    ``resume``: continue the run in ``output_dir`` after its last checkpointed epoch. ``should_stop``:
    polled after each epoch's checkpoint; when it returns a signal number, training stops there with
    ``Interrupted``. Raises TrainingFailed (after writing what it has) on a non-finite loss.
    """
    import keras

    from fmnist.evaluation import test_metrics
    from fmnist.model import build_model

    started = time.perf_counter()
    dataset = dataset or data.load(config.data_dir, verify=config.verify)
    splits = data.split(dataset, config.valid_size)
    engine_name = engines.resolve(config.engine, keras.backend.backend())
    log(f"data: {dataset.source} (train {len(splits.y_train)}, valid {len(splits.y_valid)}, test {len(splits.y_test)})")
    log(f"pixel range: {int(splits.x_train.max())} {int(splits.x_train.min())}")

    stats = normalization.get(config.normalization).fit(splits.x_train)  # the training split only
    high, low = scaled_range(config.normalization, stats, splits.x_train)
    log(f"scaled training range ({config.normalization}): {high!s} {low!s}")

    saved = checkpoint.load(Path(output_dir)) if resume else None
    if saved and saved.epoch > config.epochs:
        raise UsageError(f"--epochs {config.epochs}: the run in {output_dir} has already trained {saved.epoch} epochs")
    run_dir = _open_run_dir(config, output_dir, runs_root, resume, dataset, stats, engine_name)

    keras.utils.set_random_seed(config.seed)  # initialization comes from the run's seed
    model = build_model(config.normalization, stats, config.learning_rate)
    history: list[dict] = []
    if saved:
        checkpoint.restore(model, saved, run_dir)
        history = saved.history
        log(f"resuming {run_dir} after epoch {saved.epoch}")
    artifacts.write_csv(run_dir / "history.csv", history, artifacts.HISTORY_COLUMNS)  # consistent with the checkpoint
    progress = progress or Progress(config.epochs)
    engine = engines.create(engine_name, model, splits, config, progress)

    diverged_at = None
    for epoch in range(len(history) + 1, config.epochs + 1):
        epoch_started = time.perf_counter()
        row = {"epoch": epoch, **engine.train_epoch(epoch)}
        row["epoch_seconds"] = time.perf_counter() - epoch_started
        history.append(row)
        progress.finish(row)
        if _finite(row):  # a non-finite epoch is recorded in the history but never checkpointed
            checkpoint.save(run_dir, model, epoch, history)  # first the checkpoint, then the history it covers
        artifacts.write_csv(run_dir / "history.csv", history, artifacts.HISTORY_COLUMNS)
        if not _finite(row):
            diverged_at = epoch
            break
        signal_number = should_stop() if should_stop else None
        if signal_number and epoch < config.epochs:
            raise Interrupted(signal_number, f"after epoch {epoch}", f"fmnist train --resume {run_dir}")

    metrics = {"diverged": diverged_at is not None, "split_sizes": splits.sizes()}
    if diverged_at is None:
        metrics |= test_metrics(model, splits.x_test, splits.y_test)
        artifacts.write_with(run_dir / "model.keras", model.save)
    artifacts.plot_learning_curves(history, run_dir / "learning_curves.png", title=f"{config.name} ({config.normalization})")
    metrics["wall_seconds"] = time.perf_counter() - started
    artifacts.write_json(run_dir / "metrics.json", metrics)
    if diverged_at is not None:
        raise TrainingFailed(
            f"training diverged: non-finite loss or accuracy at epoch {diverged_at}; "
            f"no model.keras was saved ({run_dir})"
        )
    return RunResult(run_dir, history, metrics, (float(high), float(low)))
