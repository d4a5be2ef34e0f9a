"""Pictures and tables people would rather look at: the evaluation report and a sample grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmnist import CLASS_NAMES, artifacts


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    artifacts.write_with(path, lambda temporary: figure.savefig(temporary, dpi=100))


def per_class(labels: np.ndarray, predicted: np.ndarray) -> list[dict]:
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=list(range(10)), zero_division=0
    )
    return [
        {"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(CLASS_NAMES, precision, recall, f1, support)
    ]


def format_per_class(rows: list[dict]) -> str:
    lines = [f"{'class':<12} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}"]
    lines += [f"{r['class']:<12} {r['precision']:>9.3f} {r['recall']:>7.3f} {r['f1']:>6.3f} {r['support']:>8}" for r in rows]
    return "\n".join(lines)


def plot_confusion(labels: np.ndarray, predicted: np.ndarray, path: Path) -> None:
    """Rows normalized (each true class sums to 1), class names on both axes."""
    from matplotlib.figure import Figure
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(labels, predicted, labels=list(range(10)), normalize="true")
    figure = Figure(figsize=(9, 8))
    axes = figure.subplots()
    shown = axes.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(shown, ax=axes, fraction=0.046)
    axes.set_xticks(range(10), CLASS_NAMES, rotation=45, ha="right")
    axes.set_yticks(range(10), CLASS_NAMES)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("confusion matrix (rows normalized)")
    for row in range(10):
        for column in range(10):
            value = matrix[row, column]
            if value >= 0.005:
                axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                          color="white" if value > 0.5 else "black")
    _save(figure, path)


def plot_mistakes(images, labels, probabilities, path: Path, count: int = 24) -> int:
    """A grid of the most confident errors with true and predicted names; returns how many are shown."""
    from matplotlib.figure import Figure

    predicted = probabilities.argmax(axis=-1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:count]
    columns = 8
    rows = max(1, -(-len(wrong) // columns))
    figure = Figure(figsize=(columns * 1.6, rows * 2.4))
    grid = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for axes in grid:
        axes.axis("off")
    for axes, index in zip(grid, wrong):
        axes.imshow(images[index], cmap="gray", vmin=0, vmax=255)
        axes.set_title(f"true {CLASS_NAMES[labels[index]]}\npred {CLASS_NAMES[predicted[index]]}\n"
                       f"p={probabilities[index, predicted[index]]:.2f}", fontsize=7)
    figure.suptitle("most confident mistakes")
    _save(figure, path)
    return len(wrong)


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
