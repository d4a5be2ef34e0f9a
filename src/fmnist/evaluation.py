"""Loading saved models safely and measuring them on raw test images."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from fmnist import CLASS_NAMES
from fmnist.errors import DataError


def model_path(target: str | Path) -> Path:
    """A run folder's model.keras, or the .keras file itself."""
    path = Path(target)
    if path.is_dir():
        path = path / "model.keras"
    if path.suffix != ".keras":
        raise DataError(f"{path}: not a .keras file (only the Keras v3 format is loaded)")
    if not path.is_file():
        raise DataError(f"{path}: no such model file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a .keras archive (not a zip file; truncated or another format)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise DataError(f"{path}: damaged .keras archive ({error})") from None
    if damaged is not None:
        raise DataError(f"{path}: damaged .keras archive ({damaged} fails its checksum)")
    missing = [name for name in ("config.json", "model.weights.h5") if name not in names]
    if missing:
        raise DataError(f"{path}: not a Keras model archive (no {missing[0]} inside)")
    return path


def load_model(target: str | Path):
    """Load with safe mode on (no Lambda or other code deserialization) and check its shape."""
    import keras

    from fmnist import layers  # noqa: F401  registers PerImageStandardization for deserialization

    path = model_path(target)
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged archive; name the file instead
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"{path}: cannot load model ({reason})") from None
    input_shape = tuple(model.inputs[0].shape[1:]) if model.inputs else None
    output_shape = tuple(model.outputs[0].shape[1:]) if model.outputs else None
    if input_shape != (28, 28) or output_shape != (10,):
        raise DataError(f"{path}: model maps {input_shape} to {output_shape}; expected (28, 28) to (10,)")
    return model


def predict_probabilities(model, images: np.ndarray) -> np.ndarray:
    """Class probabilities for raw uint8 images, in one batch of up to 10,000 (one compiled shape)."""
    return np.asarray(model.predict(images, batch_size=min(len(images), 10_000), verbose=0))


def test_metrics(model, images: np.ndarray, labels: np.ndarray) -> dict:
    """Loss (Keras's sparse categorical cross-entropy) and accuracy on raw images."""
    return metrics_of(predict_probabilities(model, images), labels)


def metrics_of(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    import keras

    losses = keras.losses.sparse_categorical_crossentropy(labels.astype(np.int32), probabilities)
    return {
        "test_loss": float(np.mean(np.asarray(losses))),
        "test_accuracy": float(np.mean(probabilities.argmax(axis=-1) == labels)),
    }


def evaluate_report(model, folder: Path, images: np.ndarray, labels: np.ndarray) -> dict:
    """Test metrics, per-class precision/recall/F1, confusion_matrix.png and mistakes.png.

    The files go into ``folder`` (the model's run folder), each written atomically; evaluation.json
    holds the numbers.
    """
    from fmnist import artifacts, plots

    probabilities = predict_probabilities(model, images)
    predicted = probabilities.argmax(axis=-1)
    result = metrics_of(probabilities, labels) | {"per_class": per_class(labels, predicted)}
    plots.plot_confusion(labels, predicted, folder / "confusion_matrix.png")
    result["mistakes_shown"] = plots.plot_mistakes(images, labels, probabilities, folder / "mistakes.png")
    artifacts.write_json(folder / "evaluation.json", result)
    return result


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
