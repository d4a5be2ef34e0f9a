"""Measuring a model on the raw test images: loss, accuracy, per-class scores, the confusion matrix
and the mistakes (``fmnist evaluate``, and the test metrics of every run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmnist.data import CLASS_NAMES
from fmnist.errors import DataError
from fmnist.guard.model_checks import probability_rows
from fmnist.inference.load import predict_probabilities
from fmnist.reporting import events, plots
from fmnist.reporting.report import refresh_reports
from fmnist.store import artifacts


def test_metrics(model, images: np.ndarray, labels: np.ndarray) -> dict:
    """Loss (Keras's sparse categorical cross-entropy) and accuracy on raw images."""
    return metrics_of(predict_probabilities(model, images), labels)


def metrics_of(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    return {
        "test_loss": float(np.mean(cross_entropy(probabilities, labels))),
        "test_accuracy": float(np.mean(probabilities.argmax(axis=-1) == labels)),
    }


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Keras's sparse categorical cross-entropy on probabilities, in NumPy (no Keras import for .onnx models):
    rows rescaled to sum 1, clipped to [1e-7, 1 - 1e-7] (Keras's epsilon), float32, -log p[label]."""
    output = np.asarray(probabilities, dtype=np.float32)
    output = output / output.sum(axis=-1, keepdims=True)
    output = np.clip(output, np.float32(1e-7), np.float32(1 - 1e-7))
    return -np.log(output[np.arange(len(output)), np.asarray(labels, dtype=np.int64)])


def evaluate_report(model, folder: Path, images: np.ndarray, labels: np.ndarray) -> dict:
    """Test metrics, per-class precision/recall/F1, confusion_matrix.png and mistakes.png.

    The files go into ``folder`` (the model's run folder), each written atomically; evaluation.json
    holds the numbers. A run folder's TensorBoard events and report.html (and its study's report) then
    show them; the returned dict names those pages under ``reports`` (not in evaluation.json).
    """
    probabilities = predict_probabilities(model, images)
    bad = int((~probability_rows(probabilities)).sum())
    if bad:
        raise DataError(f"{getattr(model, 'path', None) or folder}: the model's output is not a probability vector for "
                        f"{bad:,} of {len(images):,} test images (NaN or not a softmax); no scores written")
    predicted = probabilities.argmax(axis=-1)
    result = metrics_of(probabilities, labels) | {"per_class": per_class(labels, predicted)}
    plots.plot_confusion(labels, predicted, folder / "confusion_matrix.png")
    result["mistakes_shown"] = plots.plot_mistakes(images, labels, probabilities, folder / "mistakes.png")
    artifacts.write_json(folder / "evaluation.json", result)
    if (folder / "config.json").is_file():  # a run folder: its TensorBoard events get the pictures
        events.write_run(folder)
    return result | {"reports": refresh_reports(folder)}


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
