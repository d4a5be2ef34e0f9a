"""``compare``: normalization methods x seeds through the one ``train`` function, then statistics.

Each run gets its own run folder under the comparison's folder. A run that diverges (non-finite loss)
or stays at chance is a result, recorded as such; the comparison goes on.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from pathlib import Path

import numpy as np

from fmnist import artifacts, data, normalization
from fmnist.config import TrainConfig
from fmnist.errors import Interrupted, TrainingFailed, UsageError
from fmnist.progress import Progress
from fmnist.train import new_run_dir, train

CHANCE = 0.1  # ten balanced classes
STUCK_BELOW = 1.5 * CHANCE  # a final validation accuracy this low means the run did not learn
RUN_COLUMNS = ("method", "seed", "status", "diverged", "val_accuracy", "val_loss", "best_val_accuracy",
               "best_epoch", "test_accuracy", "seconds", "run_dir")
SUMMARY_COLUMNS = ("method", "runs", "val_accuracy_mean", "val_accuracy_std", "val_accuracy_ci95",
                   "test_accuracy_mean", "test_accuracy_std", "test_accuracy_ci95", "diverged_or_stuck",
                   "baseline", "paired_test", "test_accuracy_diff_mean", "p_value")


def parse_methods(text: str) -> list[str]:
    methods = [name.strip() for name in text.split(",") if name.strip()]
    if not methods:
        raise UsageError("--methods: name at least one method")
    for name in methods:
        normalization.get(name)  # UsageError listing the valid names
    if len(set(methods)) != len(methods):
        raise UsageError(f"--methods {text!r}: a method is named twice")
    return methods


def _run_row(method: str, seed: int, run_dir: Path, history: list[dict], seconds: float) -> dict:
    metrics = artifacts.read_json(run_dir / "metrics.json")
    last = history[-1]
    finite = [row for row in history if math.isfinite(row["val_accuracy"])]
    best = max(finite, key=lambda row: row["val_accuracy"]) if finite else None
    diverged = bool(metrics["diverged"])
    stuck = not diverged and last["val_accuracy"] < STUCK_BELOW
    return {
        "method": method, "seed": seed,
        "status": "diverged" if diverged else "stuck at chance" if stuck else "ok",
        "diverged": "yes" if diverged else "no",
        "val_accuracy": last["val_accuracy"], "val_loss": last["val_loss"],
        "best_val_accuracy": best["val_accuracy"] if best else float("nan"),
        "best_epoch": best["epoch"] if best else "",
        "test_accuracy": metrics.get("test_accuracy", float("nan")),
        "seconds": round(seconds, 2), "run_dir": run_dir.name,
    }


def _interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean, sample std, and the half-width of a 95% Student-t interval (NaN with fewer than 2 values)."""
    from scipy import stats

    values = values[np.isfinite(values)]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    if len(values) == 1:
        return float(values[0]), math.nan, math.nan
    std = float(values.std(ddof=1))
    return float(values.mean()), std, float(stats.t.ppf(0.975, len(values) - 1) * std / math.sqrt(len(values)))


def summarize(rows: list[dict], methods: list[str], baseline: str) -> list[dict]:
    """Per method: mean ± std and 95% interval; a paired t-test on test accuracy against the baseline."""
    from scipy import stats

    def by_seed(method, key):
        return {row["seed"]: float(row[key]) for row in rows if row["method"] == method}

    reference = by_seed(baseline, "test_accuracy")
    summary = []
    for method in methods:
        mine = [row for row in rows if row["method"] == method]
        val = _interval(np.array([row["val_accuracy"] for row in mine], dtype=float))
        test = _interval(np.array([row["test_accuracy"] for row in mine], dtype=float))
        entry = {
            "method": method, "runs": len(mine),
            "val_accuracy_mean": val[0], "val_accuracy_std": val[1], "val_accuracy_ci95": val[2],
            "test_accuracy_mean": test[0], "test_accuracy_std": test[1], "test_accuracy_ci95": test[2],
            "diverged_or_stuck": sum(row["status"] != "ok" for row in mine),
            "baseline": baseline, "paired_test": "", "test_accuracy_diff_mean": math.nan, "p_value": math.nan,
        }
        if method != baseline:
            # Paired by seed: same seed, same initialization stream and shuffle order.
            test_by_seed = by_seed(method, "test_accuracy")
            seeds = [seed for seed in test_by_seed if seed in reference]
            ours = np.array([test_by_seed[seed] for seed in seeds])
            theirs = np.array([reference[seed] for seed in seeds])
            keep = np.isfinite(ours) & np.isfinite(theirs)
            ours, theirs = ours[keep], theirs[keep]
            entry["paired_test"] = f"paired t-test on test accuracy, n={len(ours)}"
            if len(ours):
                entry["test_accuracy_diff_mean"] = float((ours - theirs).mean())
            if len(ours) >= 2 and np.any(ours != theirs):
                with warnings.catch_warnings():  # identical differences: t is infinite, p is 0; no warning needed
                    warnings.simplefilter("ignore", RuntimeWarning)
                    entry["p_value"] = float(stats.ttest_rel(ours, theirs).pvalue)
        summary.append(entry)
    return summary


def _fmt(mean: float, spread: float) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.4f}" + ("" if math.isnan(spread) else f" ± {spread:.4f}")


def format_table(summary: list[dict]) -> str:
    header = f"{'method':<10} {'runs':>4}  {'val_accuracy (±95%)':<21} {'test_accuracy (±95%)':<21} {'failed':>6}  vs baseline"
    lines = [header, "-" * len(header)]
    for row in summary:
        versus = "baseline"
        if row["paired_test"]:
            diff, p = row["test_accuracy_diff_mean"], row["p_value"]
            versus = "—" if math.isnan(diff) else f"{diff:+.4f}" + ("" if math.isnan(p) else f" (p={p:.3g})")
        lines.append(
            f"{row['method']:<10} {row['runs']:>4}  {_fmt(row['val_accuracy_mean'], row['val_accuracy_ci95']):<21} "
            f"{_fmt(row['test_accuracy_mean'], row['test_accuracy_ci95']):<21} {row['diverged_or_stuck']:>6}  {versus}"
        )
    return "\n".join(lines)


def plot_across_seeds(histories: dict[str, list[list[dict]]], series: str, path: Path, log_scale=False) -> None:
    """One colour per method: the mean over seeds per epoch, and a band from the lowest to the highest seed."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5))
    axes = figure.subplots()
    plotted_positive = False
    for method, runs in histories.items():
        length = max(len(run) for run in runs)
        values = np.full((len(runs), length), np.nan)
        for index, run in enumerate(runs):
            values[index, : len(run)] = [row[series] for row in run]
        values[~np.isfinite(values)] = np.nan
        if np.isnan(values).all():
            axes.plot([], [], label=f"{method}: no finite values (diverged)")
            continue
        epochs = np.arange(1, length + 1)
        with warnings.catch_warnings():  # epochs where every seed diverged stay NaN: a gap in the line
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, low, high = np.nanmean(values, axis=0), np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        (line,) = axes.plot(epochs, mean, marker="o", markersize=3, label=f"{method} ({len(runs)} seeds)")
        axes.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2)
        plotted_positive |= bool(np.nanmax(values) > 0)
    if log_scale and plotted_positive:
        axes.set_yscale("log")
    elif series.endswith("accuracy"):
        axes.set_ylim(0, 1)
    axes.set_xlabel("epoch")
    axes.set_ylabel(series)
    axes.set_title(f"{series} per epoch: mean and range across seeds")
    axes.grid(True)
    axes.legend()
    figure.tight_layout()
    artifacts.write_with(path, lambda temporary: figure.savefig(temporary, dpi=100))


@dataclasses.dataclass
class Comparison:
    folder: Path
    rows: list[dict]
    summary: list[dict]


def compare(methods: list[str], seeds: int, config: TrainConfig, output_dir=None, baseline: str = "standard",
            *, resume: bool = False, runs_root="runs", log=print, should_stop=None) -> Comparison:
    """Train every method with seeds config.seed, config.seed+1, …; write runs.csv, summary.csv and plots.

    ``resume``: ``output_dir`` is an earlier comparison; finished runs are kept, an interrupted run is
    resumed from its checkpoint, and the rest are trained.
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise UsageError(f"--seeds {seeds}: must be an integer >= 1")
    if baseline not in methods:
        raise UsageError(f"--baseline {baseline!r} is not among --methods ({', '.join(methods)})")
    dataset = data.load(config.data_dir, verify=config.verify)  # once, shared by every run
    data.split(dataset, config.valid_size)  # a bad --valid-size fails before any folder is made
    if resume:
        folder = Path(output_dir)
    else:
        folder = new_run_dir(output_dir, "compare", runs_root)
        artifacts.write_json(folder / "compare.json", {"methods": methods, "seeds": seeds, "baseline": baseline,
                                                       "settings": dataclasses.asdict(config)})
    rows, histories = [], {method: [] for method in methods}
    total = len(methods) * seeds
    for method in methods:
        for seed in range(config.seed, config.seed + seeds):
            run_config = dataclasses.replace(config, normalization=method, seed=seed, name=f"{method}-seed{seed}")
            run_dir = folder / run_config.name
            started = time.perf_counter()
            if not (resume and (run_dir / "metrics.json").exists()):
                stop = should_stop() if should_stop else None
                if stop:
                    raise Interrupted(stop, f"before run {len(rows) + 1}/{total}", f"fmnist compare --resume {folder}")
                try:
                    train(run_config, run_dir, resume=resume and (run_dir / "config.json").exists(),
                          progress=Progress(config.epochs, quiet=True), log=lambda *_: None, dataset=dataset,
                          should_stop=should_stop)
                except TrainingFailed:
                    pass  # recorded in the run's metrics.json; a result, not a crash
                except Interrupted as stopped:
                    raise Interrupted(stopped.signal_number, f"during run {len(rows) + 1}/{total}",
                                      f"fmnist compare --resume {folder}") from None
            history = artifacts.read_history(run_dir / "history.csv")
            row = _run_row(method, seed, run_dir, history, time.perf_counter() - started)
            rows.append(row)
            histories[method].append(history)
            artifacts.write_csv(folder / "runs.csv", rows, RUN_COLUMNS)
            log(f"[{len(rows)}/{total}] {method} seed {seed}: {row['status']}, val_accuracy {row['val_accuracy']:.4f}, "
                f"test_accuracy {row['test_accuracy']:.4f} ({row['seconds']:.1f}s)")
    summary = summarize(rows, methods, baseline)
    artifacts.write_csv(folder / "summary.csv", summary, SUMMARY_COLUMNS)
    plot_across_seeds(histories, "val_accuracy", folder / "val_accuracy.png")
    plot_across_seeds(histories, "loss", folder / "loss.png", log_scale=True)
    return Comparison(folder, rows, summary)


def resume_arguments(folder) -> dict:
    """What an earlier comparison in ``folder`` was asked to do (from its compare.json)."""
    path = Path(folder) / "compare.json"
    if not path.is_file():
        raise UsageError(f"--resume {folder}: not a comparison folder (no compare.json)")
    recorded = artifacts.read_json(path)
    return {"methods": recorded["methods"], "seeds": recorded["seeds"], "baseline": recorded["baseline"],
            "config": TrainConfig(**recorded["settings"])}
