"""The figures of a run, its evaluation and the data, each written atomically into its folder (learning
curves, confusion matrix, mistakes, the dataset's samples, predict's contact sheet), and what every
figure shares: text drawn as written, whole epochs on the x axis, the atomic PNG write. A study's
figures are in study_plots.py.

Figures are built on ``matplotlib.figure.Figure`` (no pyplot: no global state, no display needed) and
read plain rows (history dicts, arrays), never a live model.
"""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path

import numpy as np

from fmnist.data import CLASS_NAMES
from fmnist.guard.text import printable
from fmnist.store import artifacts

HISTORY_SERIES = ("loss", "accuracy", "val_loss", "val_accuracy")


def plain_text(function):
    """Draw with matplotlib's mathtext off: run names and file names go into titles and captions as written
    (a '$' in a name is a dollar sign, not the start of TeX that fails to parse)."""
    @functools.wraps(function)
    def plain(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            return function(*args, **kwargs)

    return plain


def save(figure, path: Path) -> None:
    figure.tight_layout()
    artifacts.write_with(path, lambda temporary: figure.savefig(temporary, dpi=100, format="png"))


def epoch_axis(axes) -> None:
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


@plain_text
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
    epoch_axis(axes)  # whole epochs, even for a two-epoch run
    axes.legend()
    if title:
        axes.set_title(printable(title))  # a name from the file system may hold bytes that are not UTF-8
    save(figure, path)
    return figure


@plain_text
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
    save(figure, path)


@plain_text
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
    save(figure, path)
    return len(wrong)


@plain_text
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
    save(figure, path)


@plain_text
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
    save(figure, path)


def _sheet_text(result: dict) -> str:
    if result["error"]:
        return "error:\n" + textwrap.fill(result["error"], 40)
    lines = [f"{result['class_name']} {result['probability']:.3f}", ""]
    lines += [f"{entry['class_name']:<12} {entry['probability']:.3f}" for entry in result["top3"]]
    if result["warning"]:
        lines += ["", textwrap.fill(result["warning"], 40)]
    return "\n".join(lines)
