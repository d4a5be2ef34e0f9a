"""``train(config)``: the tutorial's pipeline from IDX files to a run folder, in two steps.

``setup_run``: data -> split -> fit normalization on the training split -> model (``config.model``,
by name) with the normalization inside -> run folder (new, or reopened to resume). ``fit_epochs``: the engine, one epoch
at a time, a checkpoint after each. Then test metrics and the run's files (write_results).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path

import numpy as np

from fmnist import data, engines, normalization
from fmnist.config import TrainConfig
from fmnist.errors import Interrupted, TrainingFailed, UsageError
from fmnist.inference.evaluation import test_metrics
from fmnist.reporting import events, plots, tables
from fmnist.reporting.report import write_report
from fmnist.runtime import tell_resume
from fmnist.store import artifacts, checkpoint, runs
from fmnist.training.progress import Progress


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    history: list[dict]
    metrics: dict
    scaled_range: tuple[float, float]
    report: Path  # report.html


@dataclasses.dataclass
class Run:
    """A run set up and ready for its epochs: what ``fit_epochs`` and the end of a run need."""

    config: TrainConfig
    run_dir: Path
    run_id: str
    splits: data.Splits
    model: object  # keras.Model
    history: list[dict]  # the epochs already trained (resume), then every epoch
    engine_name: str
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


def finite(row: dict) -> bool:
    return all(math.isfinite(row[key]) for key in ("loss", "accuracy", "val_loss", "val_accuracy"))


def setup_run(config: TrainConfig, output_dir: str | os.PathLike | None = None, *, resume: bool = False,
              runs_root: str | os.PathLike = "runs", log=print, dataset: data.Dataset | None = None,
              should_stop=None) -> Run:
    """Everything before the first epoch; ``resume`` reopens the run in ``output_dir`` at its checkpoint."""
    import keras

    from fmnist.model import build_model

    if not resume and output_dir is not None:
        runs.check_new_folder(output_dir)  # a folder in use is said before the data load, not after
    dataset = dataset or data.load(config.data_dir, verify=config.verify)
    splits = data.split(dataset, config.valid_size)
    engine_name = engines.resolve(config.engine, keras.backend.backend())
    log(f"data: {dataset.source} (train {len(splits.y_train)}, valid {len(splits.y_valid)}, test {len(splits.y_test)})")
    log(f"pixel range: {int(splits.x_train.max())} {int(splits.x_train.min())}")

    stats = normalization.get(config.normalization).fit(splits.x_train)  # the training split only
    high, low = scaled_range(config.normalization, stats, splits.x_train)
    log(f"scaled training range ({config.normalization}): {high!s} {low!s}")

    saved = None
    if resume:
        run_dir = Path(output_dir)
        run_id = runs.reopen_run(run_dir, config, dataset)
        saved = checkpoint.load(run_dir, run_id)
        if saved and saved.epoch > config.epochs:
            raise UsageError(f"epochs {config.epochs}: the run in {run_dir} has already trained {saved.epoch} epochs", "epochs")
        runs.record_epochs(run_dir, config)  # only now: a refused checkpoint leaves the folder as it was
    else:
        run_dir, run_id = runs.create_run(config, output_dir, runs_root, dataset, stats, engine_name)
    tell_resume(should_stop, f"fmnist train --resume {run_dir}")  # the folder exists: a second signal says so

    keras.utils.set_random_seed(config.seed)  # initialization comes from the run's seed
    model = build_model(config.normalization, stats, config.learning_rate, config.optimizer, config.model)
    history: list[dict] = []
    if saved:
        checkpoint.restore(model, saved, run_dir)
        history = saved.history
        log(f"resuming {run_dir} after epoch {saved.epoch}")
    artifacts.write_csv(run_dir / "history.csv", history, artifacts.HISTORY_COLUMNS)  # consistent with the checkpoint
    events.start_run(run_dir, dataclasses.asdict(config), history)  # the checkpointed epochs, no more
    return Run(config, run_dir, run_id, splits, model, history, engine_name, (float(high), float(low)))


def fit_epochs(run: Run, progress: Progress, should_stop=None) -> int | None:
    """Train the remaining epochs, checkpointing each; returns the epoch that diverged, if one did.

    ``should_stop``: polled after each epoch's checkpoint; when it returns a signal number, training
    stops there with ``Interrupted``.
    """
    config = run.config
    engine = engines.create(run.engine_name, run.model, run.splits, config, progress)
    for epoch in range(len(run.history) + 1, config.epochs + 1):
        if stopped_early(run.history, config):  # a resumed run that had stopped already
            break
        epoch_started = time.perf_counter()
        row = {"epoch": epoch, **engine.train_epoch(epoch)}
        row["epoch_seconds"] = time.perf_counter() - epoch_started
        run.history.append(row)
        progress.finish(row)
        if finite(row):  # a non-finite epoch is recorded in the history but never checkpointed
            checkpoint.save(run.run_dir, run.model, epoch, run.history, run.run_id)  # the checkpoint first,
        artifacts.write_csv(run.run_dir / "history.csv", run.history, artifacts.HISTORY_COLUMNS)  # then its history
        events.append_epoch(run.run_dir, row, config.learning_rate)  # then its events
        if not finite(row):
            return epoch
        if config.early_stopping and best_epoch(run.history, config.monitor) == epoch:
            artifacts.write_with(run.run_dir / "model.keras", run.model.save)  # the best so far, kept on disk
        signal_number = should_stop() if should_stop else None
        if signal_number and epoch < config.epochs:
            raise Interrupted(signal_number, f"after epoch {epoch}", f"fmnist train --resume {run.run_dir}")
    return None


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
    """Train one run and write its folder. Raises TrainingFailed (after writing what it has) on a
    non-finite loss."""
    started = time.perf_counter()
    run = setup_run(config, output_dir, resume=resume, runs_root=runs_root, log=log, dataset=dataset,
                    should_stop=should_stop)
    diverged_at = fit_epochs(run, progress or Progress(config.epochs), should_stop)
    metrics = {"diverged": diverged_at is not None, "split_sizes": run.splits.sizes()}
    epochs = len(run.history) if stopped_early(run.history, config) else config.epochs
    if diverged_at is None:
        model_epoch = len(run.history)
        if config.early_stopping:  # restore_best_weights: the model, its test metrics and its file are the best's
            model_epoch = best_epoch(run.history, config.monitor)
            if model_epoch != len(run.history):
                run.model.load_weights(run.run_dir / "model.keras")
            metrics |= {"model_epoch": model_epoch, "stopped_epoch": len(run.history) if epochs < config.epochs else None}
        metrics |= test_metrics(run.model, run.splits.x_test, run.splits.y_test)
    metrics["status"] = tables.status_of(run.history, epochs, tested=True)[0]  # the words compare uses
    write_results(run.run_dir, config, run.history, metrics, None if diverged_at else run.model, started)
    events.write_run(run.run_dir)  # with the status and test metrics
    if diverged_at is not None:
        raise TrainingFailed(
            f"training diverged: non-finite loss or accuracy at epoch {diverged_at}; "
            f"no model.keras was saved ({run.run_dir})"
        )
    return RunResult(run.run_dir, run.history, metrics, run.scaled_range, write_report(run.run_dir))


def best_epoch(history: list[dict], monitor: str) -> int | None:
    """The epoch whose ``monitor`` was best, the first of equals (an epoch improves only when strictly
    better, as in Keras's EarlyStopping); None before any epoch with a finite value."""
    best = None
    for row in history:
        value = row[monitor]
        if math.isfinite(value) and (best is None or (value < best[1] if monitor.endswith("loss") else value > best[1])):
            best = row["epoch"], value
    return best and best[0]


def stopped_early(history: list[dict], config: TrainConfig) -> bool:
    """Whether early stopping ends the run after ``history``: ``patience`` epochs without improvement."""
    if not config.early_stopping or not history:
        return False
    best = best_epoch(history, config.monitor)
    return best is not None and len(history) - best >= config.early_stopping and len(history) < config.epochs


def write_results(run_dir: Path, config: TrainConfig, history: list[dict], metrics: dict, model=None,
                  started: float | None = None) -> None:
    """The end of a run: model.keras and model_summary.txt (Keras's ``model.summary()``, as the tutorial
    prints it) unless it diverged, learning_curves.png and metrics.json, in that order, so a metrics.json
    means the rest is there. ``started``: the run's perf_counter start, for ``wall_seconds``."""
    if model is not None:
        artifacts.write_with(run_dir / "model.keras", model.save)
        lines = []
        model.summary(print_fn=lambda line, **_: lines.append(line))
        artifacts.write_bytes(run_dir / "model_summary.txt", ("\n".join(lines) + "\n").encode())
    said = [part for part in (config.model, config.normalization) if part not in config.name and part != "mlp"]
    title = f"{config.name} ({', '.join(said)})" if said else config.name  # the figure says the network and method
    plots.plot_learning_curves(history, run_dir / "learning_curves.png", title=title)
    if started is not None:
        metrics["wall_seconds"] = time.perf_counter() - started
    artifacts.write_json(run_dir / "metrics.json", metrics)
