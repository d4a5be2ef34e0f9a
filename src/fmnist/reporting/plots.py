"""Every figure fmnist draws, each written atomically into a run, comparison or sweep folder.

Figures are built on ``matplotlib.figure.Figure`` (no pyplot: no global state, no display needed) and
read plain rows (history dicts, arrays), never a live model.
"""

from __future__ import annotations

import functools
import textwrap
import warnings
from pathlib import Path

import numpy as np

from fmnist.data import CLASS_NAMES
from fmnist.guard.text import printable
from fmnist.reporting.tables import STUCK_BELOW
from fmnist.store import artifacts

HISTORY_SERIES = ("loss", "accuracy", "val_loss", "val_accuracy")
MIN_SCALE = 0.10  # a heatmap's colour scale spans at least this much accuracy


def _plain_text(function):
    """Draw with matplotlib's mathtext off: run names and file names go into titles and captions as written
    (a '$' in a name is a dollar sign, not the start of TeX that fails to parse)."""
    @functools.wraps(function)
    def plain(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            return function(*args, **kwargs)

    return plain


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    artifacts.write_with(path, lambda temporary: figure.savefig(temporary, dpi=100, format="png"))


@_plain_text
def plot_learning_curves(history: list[dict], path: Path, title: str = ""):
    """The tutorial's plot: the four history series, grid on, y from 0 to 1, or higher when a loss is
    (raw pixels can start near 15): no line leaves the axes."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5))
    axes = figure.subplots()
    epochs = [row["epoch"] for row in history]
    for series in HISTORY_SERIES:
        axes.plot(epochs, [row[series] for row in history], marker="o", markersize=3, label=series)
    values = np.array([row[series] for row in history for series in HISTORY_SERIES], dtype=float)
    finite = values[np.isfinite(values)]
    top = finite.max(initial=0.0)
    axes.set_ylim(min(0.0, finite.min(initial=0.0)), 1.0 if top <= 1 else 1.05 * top)
    _epoch_axis(axes)  # whole epochs, even for a two-epoch run
    axes.legend()
    if title:
        axes.set_title(printable(title))  # a name from the file system may hold bytes that are not UTF-8
    _save(figure, path)
    return figure


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
    _epoch_axis(axes)
    axes.set_ylabel(SERIES_LABELS.get(series, series))
    if axes.get_legend_handles_labels()[0]:  # a sweep where no method learned has no curve to name
        axes.legend(fontsize=8)


def _epoch_axis(axes) -> None:
    """Whole epochs only: a tick per epoch for short runs (one epoch included), a few for long ones."""
    from matplotlib.ticker import MaxNLocator

    last = max((max(line.get_xdata(), default=0) for line in axes.get_lines()), default=0)
    if 0 < last <= 12:
        axes.set_xticks(range(1, int(last) + 1))
        axes.set_xlim(0.5, last + 0.5)
    else:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.grid(True)


@_plain_text
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
    _save(figure, path)
    return figure


@_plain_text
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
    _save(figure, path)
    return figure


def _hatch(column: int, row: int):
    from matplotlib.patches import Rectangle

    return Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, hatch="//", edgecolor="red", linewidth=0)


@_plain_text
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
    _save(figure, path)
    return figure


@_plain_text
def plot_confusion(labels: np.ndarray, predicted: np.ndarray, path: Path) -> None:
    """Rows normalized (each true class sums to 1), class names on both axes: scikit-learn's
    ConfusionMatrixDisplay on a 0..1 scale, with the cells under 0.005 left blank."""
    from matplotlib.figure import Figure
    from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

    matrix = confusion_matrix(labels, predicted, labels=list(range(10)), normalize="true")
    figure = Figure(figsize=(9, 8))
    axes = figure.subplots()
    display = ConfusionMatrixDisplay(matrix, display_labels=CLASS_NAMES)
    display.plot(ax=axes, cmap="Blues", values_format=".2f", xticks_rotation=45, text_kw={"fontsize": 7})
    display.im_.set_clim(0, 1)
    for cell, value in zip(display.text_.ravel(), matrix.ravel()):
        cell.set_visible(value >= 0.005)
    for label in axes.get_xticklabels():
        label.set_horizontalalignment("right")
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("confusion matrix (rows normalized)")
    _save(figure, path)


@_plain_text
def plot_mistakes(images, labels, probabilities, path: Path, count: int = 24) -> int:
    """A grid of the most confident errors with true and predicted names; returns how many are shown."""
    from matplotlib.figure import Figure

    predicted = probabilities.argmax(axis=-1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:count]
    columns = 6  # 870 pixels wide: the report shows it at full size, captions readable
    rows = max(1, -(-len(wrong) // columns))
    figure = Figure(figsize=(columns * 1.45, rows * 2.1))
    grid = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for axes in grid:
        axes.axis("off")
    for axes, index in zip(grid, wrong):
        axes.imshow(images[index], cmap="gray", vmin=0, vmax=255)
        axes.set_title(f"true {CLASS_NAMES[labels[index]]}\npred {CLASS_NAMES[predicted[index]]}\n"
                       f"p={probabilities[index, predicted[index]]:.2f}", fontsize=9)
    figure.suptitle("most confident mistakes")
    _save(figure, path)
    return len(wrong)


@_plain_text
def plot_samples(images: np.ndarray, labels: np.ndarray, path: Path, per_class: int = 8) -> None:
    """The first ``per_class`` images of each class, one row per class, its name on the left."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(per_class * 1.0 + 1.5, 10 * 1.0))
    grid = figure.subplots(10, per_class, squeeze=False)
    for label in range(10):
        chosen = np.flatnonzero(labels == label)[:per_class]
        for column in range(per_class):
            axes = grid[label, column]
            axes.set_xticks([])
            axes.set_yticks([])
            for spine in axes.spines.values():
                spine.set_visible(False)
            if column < len(chosen):
                axes.imshow(images[chosen[column]], cmap="gray", vmin=0, vmax=255)
        grid[label, 0].set_ylabel(f"{label} {CLASS_NAMES[label]}", rotation=0, ha="right", va="center", fontsize=9)
    figure.suptitle("Fashion-MNIST samples per class")
    _save(figure, path)


@_plain_text
def plot_sheet(items, results: list[dict], path: Path, limit: int, columns: int) -> None:
    """``fmnist predict --sheet``: each picture, the product apart from its background and upright (when
    the conversion did that), its 28x28 input, predicted class and top 3, errors and warnings in red."""
    from matplotlib.figure import Figure

    shown = list(zip(items, results))[:limit]
    rows = -(-len(shown) // columns)
    figure = Figure(figsize=(columns * 7.2, rows * 1.5 + 0.4))
    grid = figure.subplots(rows, 4 * columns, squeeze=False, gridspec_kw={"width_ratios": [1, 1, 1, 2.4] * columns})
    for axes in grid.ravel():
        axes.axis("off")
    for number, (item, result) in enumerate(shown):
        row, column = divmod(number, columns)
        original, apart, seen, words = grid[row, 4 * column: 4 * column + 4]
        if item.preview is not None or item.image is not None:  # an array's own pixels are its original
            picture = item.preview if item.preview is not None else item.image
            original.imshow(picture, cmap=None if picture.ndim == 3 else "gray", vmin=0, vmax=255)
        if item.separated is not None:
            apart.imshow(item.separated)
            turned = f"turned {abs(item.turned):.1f}° {'anti' if item.turned > 0 else ''}clockwise"
            apart.set_title(turned if item.turned else "product apart", fontsize=7)
        if item.image is not None:
            seen.imshow(item.image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            seen.set_title("28x28 input", fontsize=7)
        name = Path(item.input).name + (f"[{item.index}]" if item.index else "")
        name = printable(name)  # a file name's bytes that are not UTF-8 are drawn as escapes
        original.set_title(name if len(name) <= 28 else "…" + name[-27:], fontsize=7)
        words.text(0.0, 0.5, _sheet_text(result), fontsize=8, va="center", family="monospace", transform=words.transAxes,
                   color="firebrick" if result["error"] or result["warning"] else "black")
    note = f" (the first {limit} of {len(items)})" if len(items) > limit else ""
    figure.suptitle(f"what the model saw{note}", fontsize=10)
    _save(figure, path)


def _sheet_text(result: dict) -> str:
    if result["error"]:
        return "error:\n" + textwrap.fill(result["error"], 40)
    lines = [f"{result['class_name']} {result['probability']:.3f}", ""]
    lines += [f"{entry['class_name']:<12} {entry['probability']:.3f}" for entry in result["top3"]]
    if result["warning"]:
        lines += ["", textwrap.fill(result["warning"], 40)]
    return "\n".join(lines)
