"""Loading saved models safely and measuring them on raw test images.

Two kinds of model file: ``.keras`` (Keras v3 archives, checked here before Keras reads them, loaded with
safe mode on) and ``.onnx`` (checked and run by ``fmnist.export`` through onnxruntime, no Keras import).
Both give an object with ``predict(images, batch_size=…, verbose=0)``, which is all the rest uses.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import numpy as np

from fmnist import CLASS_NAMES
from fmnist.errors import DataError, FmnistError

MODEL_SUFFIXES = (".keras", ".onnx")
BACKEND_PACKAGES = {"tensorflow": "tensorflow-cpu", "torch": "torch", "jax": "jax jaxlib", "openvino": "openvino"}


class BackendUnavailable(FmnistError, ImportError):
    """The Keras backend chosen by KERAS_BACKEND (or ~/.keras/keras.json) cannot be imported."""

    exit_code = 2


def import_keras():
    """``import keras``, or one line saying which backend is missing and what to install or set."""
    try:
        import keras
    except ModuleNotFoundError as error:
        backend = os.environ.get("KERAS_BACKEND")
        chosen = f"KERAS_BACKEND={backend}" if backend else "the backend in ~/.keras/keras.json (Keras's default)"
        package = BACKEND_PACKAGES.get(backend or "", error.name)
        raise BackendUnavailable(
            f"Keras cannot import its backend: {chosen} needs the module {error.name!r}, which is not installed; "
            f"install it (pip install {package}) or set KERAS_BACKEND=jax (fmnist's default)") from None
    except ValueError as error:  # an unknown backend name
        raise BackendUnavailable(f"Keras cannot start: {str(error).splitlines()[0]}; set KERAS_BACKEND=jax") from None
    return keras


def model_path(target: str | Path) -> Path:
    """A run folder's model.keras, or the .keras / .onnx file itself; a .keras archive is checked here."""
    from fmnist import archives, safe_files

    def missing(error: OSError, what: str) -> DataError:
        return DataError(f"{path}: {what if error.errno == errno.ENOENT else safe_files.reason(error)}")

    path = Path(target)
    try:
        info = os.stat(path)
    except OSError as error:  # absent, unreadable folder, ...: said before anything about suffixes
        raise missing(error, "no such model file or run folder") from None
    if stat.S_ISDIR(info.st_mode):
        path = path / "model.keras"
    if path.suffix not in MODEL_SUFFIXES:
        raise DataError(f"{path}: not a .keras file nor an .onnx file (only Keras v3 archives and ONNX models are loaded)")
    try:
        other = safe_files.kind(os.stat(path).st_mode)
    except OSError as error:
        raise missing(error, "no such model file") from None
    if other:
        raise DataError(f"{path}: not a regular file ({other})")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file")
    if path.suffix == ".onnx":
        return path  # its content is checked by fmnist.export.check_onnx
    try:
        archives.check_keras(path)
    except OSError as error:
        raise DataError(f"{path}: {safe_files.reason(error)}") from None
    return path


def load_model(target: str | Path):
    """Load with safe mode on (no Lambda or other code deserialization) and check its shape.

    A ``.onnx`` file is checked and opened by ``fmnist.export.load_onnx`` instead (no Keras import)."""
    path = model_path(target)
    if path.suffix == ".onnx":
        from fmnist.export import load_onnx
        from fmnist.model_checks import probe

        model = load_onnx(path)
        probe(model, path)
        return model
    keras = import_keras()
    from fmnist import layers  # noqa: F401  registers PerImageStandardization for deserialization

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged archive; name the file instead
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"{path}: cannot load model ({reason})") from None
    input_shape = tuple(model.inputs[0].shape[1:]) if model.inputs else None
    output_shape = tuple(model.outputs[0].shape[1:]) if model.outputs else None
    if input_shape != (28, 28) or output_shape != (10,):
        raise DataError(f"{path}: model maps {input_shape} to {output_shape}; expected (28, 28) to (10,)")
    from fmnist.model_checks import check_keras_model

    check_keras_model(model, path)
    return model


def predict_probabilities(model, images: np.ndarray) -> np.ndarray:
    """Class probabilities for raw uint8 images, in one batch of up to 10,000 (one compiled shape)."""
    return np.asarray(model.predict(images, batch_size=min(len(images), 10_000), verbose=0))


def predict_images(model, images) -> np.ndarray:
    """``fmnist.predict_probabilities``: checks the pixels, then (n, 28, 28) -> (n, 10); (28, 28) -> (10,).

    Pixels must be raw: uint8, or whole numbers within 0..255 of another type. Scaled values (x / 255,
    standardized) are refused rather than silently rounded: the model normalizes its input itself."""
    array = np.asarray(images)
    single = array.shape == (28, 28)
    batch = array[None] if single else array
    if batch.ndim != 3 or batch.shape[1:] != (28, 28) or len(batch) == 0:
        raise ValueError(f"images of shape {array.shape}; expected (n, 28, 28) or (28, 28) raw pixels")
    if batch.dtype != np.uint8:
        raw = batch.dtype.kind in "iuf" and bool(np.all(np.isfinite(batch)))
        raw = raw and bool(np.all(batch == np.rint(batch))) and batch.min() >= 0 and batch.max() <= 255
        if not raw:
            raise ValueError(f"images of dtype {batch.dtype} are not raw pixels; expected whole numbers 0..255 "
                             "(uint8), not scaled or standardized values: the model normalizes them itself")
        batch = batch.astype(np.uint8)
    probabilities = predict_probabilities(model, batch).astype(np.float32, copy=False)
    return probabilities[0] if single else probabilities


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
    holds the numbers.
    """
    from fmnist import artifacts, plots
    from fmnist.model_checks import probability_rows

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
        from fmnist import tensorboard

        tensorboard.write_run(folder)
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
