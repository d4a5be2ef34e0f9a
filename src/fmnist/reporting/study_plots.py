"""The figures of a study (compare, sweep), each written atomically into its folder: each method's
curves across seeds (a line for the mean, a band from the lowest to the highest seed), the sweep's
heatmap of validation accuracy per method and learning rate, and each method's curves at its best rate.

Each panel's axes come from the data: they span the methods that learned, so a method stuck at chance
does not squeeze the others' bands into a few pixels. Built on plots.py's shared pieces.
"""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import numpy as np

from fmnist.reporting.plots import epoch_axis, plain_text, save
from fmnist.reporting.tables import STUCK_BELOW

MIN_SCALE = 0.10  # a heatmap's colour scale spans at least this much accuracy
SERIES_LABELS = {"val_accuracy": "validation accuracy (fraction correct)", "accuracy": "training accuracy (fraction correct)",
                 "loss": "training loss (cross-entropy)", "val_loss": "validation loss (cross-entropy)"}


def _seed_stats(runs: list[list[dict]], series: str):
    """Per epoch: the epochs, and the mean, lowest and highest value over the seeds (NaN where no seed is
    finite: a gap in the line); None when no value is finite at all (every seed diverged at once)."""
    length = max(len(run) for run in runs)
    values = np.full((len(runs), length), np.nan)
    for index, run in enumerate(runs):
        values[index, : len(run)] = [row[series] for row in run]
    values[~np.isfinite(values)] = np.nan
    if np.isnan(values).all():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.arange(1, length + 1), np.nanmean(values, axis=0), np.nanmin(values, axis=0), np.nanmax(values, axis=0)


def _learned(runs: list[list[dict]]) -> bool:
    """Whether a seed of the method ended above chance (tables.STUCK_BELOW) with a finite validation accuracy."""
    return any(run and np.isfinite(run[-1]["val_accuracy"]) and run[-1]["val_accuracy"] >= STUCK_BELOW for run in runs)


def _band_panel(axes, histories: dict[str, list[list[dict]]], series: str) -> None:
    """One colour per method: the mean over seeds per epoch and a band from the lowest to the highest seed.

    The y axis spans the methods that learned, so their bands stay visible (a fixed 0..1 axis squeezed
    them into a few pixels); a method stuck at chance or diverged keeps its line and its legend entry,
    which says where its final value lies when that is off the axis."""
    drawn = {}
    for label, runs in histories.items():
        seeds = f"{len(runs)} seed{'s' * (len(runs) != 1)}"
        stats = _seed_stats(runs, series) if runs else None
        if stats is None:
            axes.plot([], [], label=f"{label} ({seeds}): diverged, no finite value")
            continue
        epochs, mean, low, high = stats
        (line,) = axes.plot(epochs, mean, marker="o", markersize=3, label=f"{label} ({seeds})")
        axes.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        drawn[label] = (line, stats, _learned(runs))
    focus = [stats for _, stats, learned in drawn.values() if learned] or [stats for _, stats, _ in drawn.values()]
    if focus:
        low, high = min(np.nanmin(stats[2]) for stats in focus), max(np.nanmax(stats[3]) for stats in focus)
        pad = max(0.08 * (high - low), 0.005 if series.endswith("accuracy") else 0.02 * abs(high) + 1e-3)
        bottom, top = low - pad, high + pad  # not clipped to 0..1: a line at 1.0 stays visible
        axes.set_ylim(bottom, top)
        for line, stats, _ in drawn.values():
            final = stats[1][np.isfinite(stats[1])][-1]
            if not bottom <= final <= top:
                where = "below" if final < bottom else "above"
                line.set_label(f"{line.get_label()}: final {final:.3g}, {where} this axis")
    epoch_axis(axes)
    axes.set_ylabel(SERIES_LABELS.get(series, series))
    if axes.get_legend_handles_labels()[0]:  # a sweep where no method learned has no curve to name
        axes.legend(fontsize=8)



@plain_text
def plot_across_seeds(histories: dict[str, list[list[dict]]], series, path: Path):
    """``series``: one name, or several for panels one above the other (e.g. training and validation
    loss); each panel's axes come from the data (_band_panel). Returns the figure."""
    from matplotlib.figure import Figure

    panels = (series,) if isinstance(series, str) else tuple(series)
    figure = Figure(figsize=(8, 4.2 * len(panels) + 0.6))
    for axes, name in zip(np.atleast_1d(figure.subplots(len(panels), 1)), panels):
        _band_panel(axes, histories, name)
        axes.set_title(f"{SERIES_LABELS.get(name, name)} per epoch", fontsize=10)
    figure.suptitle("mean over seeds (line) and range from the lowest to the highest seed (band)", fontsize=10)
    save(figure, path)
    return figure


@plain_text
def plot_heatmap(summary: list[dict], optimizer: str, methods, best: list[dict], path: Path, title: str | None = None):
    """Mean final val_accuracy per method x learning rate (every rate any method tried) for one optimizer
    (of one model: ``summary`` holds its cells; ``title`` names them, the optimizer by default).
    The colours span the cells that learned; cells stuck at chance fall below the scale (pale red),
    diverged ones are hatched, untried ones blank; each method's best rate is boxed, dashed when it is
    the lowest or highest that method tried."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    cells = {(row["method"], float(row["learning_rate"])): row for row in summary if row["optimizer"] == optimizer}
    rates = sorted({rate for _, rate in cells}, reverse=True)
    values = np.array([[cells[(method, rate)]["val_accuracy_mean"] if (method, rate) in cells else np.nan
                        for rate in rates] for method in methods])
    finite = values[np.isfinite(values)]
    learned = finite[finite >= STUCK_BELOW]
    scale = learned if learned.size else finite
    vmin, vmax = (scale.min(), scale.max()) if scale.size else (0.0, 1.0)
    # at least 10 points of accuracy from end to end: a small gap must not look like the whole range
    vmin = min(vmin, vmax - MIN_SCALE)
    figure = Figure(figsize=(1.1 * len(rates) + 3, 0.6 * len(methods) + 2))
    axes = figure.subplots()
    colours = matplotlib.colormaps["viridis"].with_extremes(bad="white", under="#f4c7c3")  # white: untried or all diverged
    shown = axes.imshow(np.ma.masked_invalid(values), cmap=colours, aspect="auto", vmin=vmin, vmax=vmax)
    figure.colorbar(shown, ax=axes, label="mean final validation accuracy\n(fraction correct)",
                    extend="min" if (finite < vmin).any() else "neither")
    for row, method in enumerate(methods):
        for column, rate in enumerate(rates):
            cell, value = cells.get((method, rate)), values[row, column]
            if cell is None:
                continue
            text = "" if np.isnan(value) else f"{value:.3f}" + ("\nstuck" if value < STUCK_BELOW else "")
            if cell["diverged"]:
                text += f"\n{cell['diverged']}/{cell['members']} diverged"
                axes.add_patch(_hatch(column, row))
            light = not np.isfinite(value) or value < vmin or value > vmin + 0.6 * (vmax - vmin)
            axes.text(column, row, text, ha="center", va="center", fontsize=7, color="black" if light else "white")
    for entry in best:
        if entry["learning_rate"] != "" and entry["method"] in methods:
            row, column = list(methods).index(entry["method"]), rates.index(float(entry["learning_rate"]))
            axes.add_patch(Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="#d62728", linewidth=2,
                                     linestyle="--" if entry["edge"] else "-"))
    axes.set_xticks(range(len(rates)), [f"{rate:g}" for rate in rates])
    axes.set_yticks(range(len(methods)), methods)
    axes.set_xlabel("learning rate")
    axes.set_ylabel("normalization")
    width = int(figure.get_figwidth() * 100 / 8)  # characters of 9-point text that fit over the axes
    axes.set_title("\n".join(textwrap.wrap(f"{title or optimizer}: mean final validation accuracy over seeds", width)
                             + textwrap.wrap("(boxed: each method's best rate, dashed on the edge of its rates; pale "
                                             "red: stuck at chance; hatched: some diverged)", width)), fontsize=9)
    save(figure, path)
    return figure


def _hatch(column: int, row: int):
    from matplotlib.patches import Rectangle

    return Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, hatch="//", edgecolor="red", linewidth=0)


@plain_text
def plot_best_curves(histories: dict[str, list[list[dict]]], labels: dict[str, str], optimizer: str, path: Path):
    """Each method at its best learning rate: the tutorial's four series per epoch, band across seeds,
    each panel's axes from the data."""
    from matplotlib.figure import Figure

    named = {f"{method}, {labels[method]}": runs for method, runs in histories.items() if runs}
    figure = Figure(figsize=(12, 9))
    for axes, series in zip(figure.subplots(2, 2).ravel(), ("val_accuracy", "accuracy", "val_loss", "loss")):
        _band_panel(axes, named, series)
        axes.set_title(SERIES_LABELS[series], fontsize=10)
    figure.suptitle(f"{optimizer}: each method at its best learning rate (mean and range across seeds)")
    save(figure, path)
    return figure

