"""Loading a saved model safely, and class probabilities from raw pixels.

Two kinds of model file: ``.keras`` (Keras v3 archives, checked before Keras reads them, loaded with
safe mode on) and ``.onnx`` (checked by ``guard.onnx_files``, run by onnxruntime, no Keras import).
Both give an object with ``predict(images, batch_size=…, verbose=0)``, which is all the rest uses, and
both are probed once loaded (``model_checks.probe``): three images must come out as probability vectors,
so a model whose finite weights overflow (±3e38 gives NaN for every image) is refused at load, exit 2,
instead of answering every input with an error. For a .keras file the probe is one XLA compilation and
run for a batch of three: 0.12 to 0.21 s (median of 7, 2 busy cores) on top of ``load_model``'s 25 ms
once JAX has started (2 to 3 s in a new process).
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np

from fmnist.errors import BackendUnavailable, DataError
from fmnist.guard import archives, limits, safe_files
from fmnist.guard.model_checks import check_keras_model, probe
from fmnist.guard.onnx_files import CheckedOnnx, check_onnx, require
from fmnist.guard.text import printable
from fmnist.store import kept_runs, studies


class OnnxModel:
    """A checked ``.onnx`` classifier run by onnxruntime on the CPU.

    ``predict`` has the signature of Keras's (what fmnist's predict, evaluate and serve call), so an
    OnnxModel goes wherever a Keras model does, without importing Keras."""

    def __init__(self, path: Path, checked: CheckedOnnx):
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no warnings about unused initializers on stderr
        try:
            self.session = ort.InferenceSession(checked.payload, options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise DataError(f"{path}: onnxruntime cannot load the model ({str(error).splitlines()[0]})") from None
        (self.input,), (self.output,) = self.session.get_inputs(), self.session.get_outputs()
        self.input_dtype = np.uint8 if self.input.type == "tensor(uint8)" else np.float32
        self.path = path
        self.runtime = f"onnxruntime {version('onnxruntime')}"
        # one run's intermediate tensors stay under limits.ONNX_RUN_BYTES, whatever batch is asked for
        self.images_per_run = max(1, limits.ONNX_RUN_BYTES // max(1, checked.bytes_per_image))

    def predict(self, images, batch_size: int | None = None, verbose=0) -> np.ndarray:
        """``(n, 28, 28)`` -> ``(n, 10)``; one ``(28, 28)`` image -> ``(10,)`` (the file itself takes batches)."""
        images = np.asarray(images).astype(self.input_dtype, copy=False)
        if images.shape == (28, 28):
            return self.predict(images[None], batch_size)[0]
        step = min(batch_size or max(1, len(images)), self.images_per_run)
        parts = [self.session.run([self.output.name], {self.input.name: images[start:start + step]})[0]
                 for start in range(0, len(images), step)]
        return np.concatenate(parts) if parts else np.zeros((0, 10), np.float32)

    def predict_on_batch(self, images) -> np.ndarray:
        return self.predict(images)

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r})"


def load_onnx(path: str | Path, name: Path | None = None) -> OnnxModel:
    """Check ``path`` (``check_onnx``), then open it with onnxruntime from the checked bytes."""
    path = Path(path)
    return OnnxModel(name or path, check_onnx(path, name))


MODEL_SUFFIXES = (".keras", ".onnx")


BACKEND_PACKAGES = {"tensorflow": "tensorflow-cpu", "torch": "torch", "jax": "jax jaxlib", "openvino": "openvino"}


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
    """A run folder's model.keras, a study folder's best model (said on stderr), or the .keras / .onnx file
    itself; a .keras archive is checked here."""
    def missing(error: OSError, what: str) -> DataError:
        return DataError(f"{path}: {what if error.errno == errno.ENOENT else safe_files.reason(error)}")

    path = Path(target)
    try:
        info = os.stat(path)
    except OSError as error:  # absent, unreadable folder, ...: said before anything about suffixes
        raise missing(error, "no such model file or run folder") from None
    if stat.S_ISDIR(info.st_mode) and (path / studies.STUDY_FILE).is_file():  # a sweep or a comparison
        run_dir, which = kept_runs.best_model(path)
        print(f"fmnist: {printable(which)}", file=sys.stderr)
        path = run_dir / "model.keras"
    elif stat.S_ISDIR(info.st_mode):
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
        return path  # its content is checked by guard.onnx_files.check_onnx
    try:
        archives.check_keras(path)
    except OSError as error:
        raise DataError(f"{path}: {safe_files.reason(error)}") from None
    return path


def load_model(target: str | Path):
    """Load with safe mode on (no Lambda or other code deserialization) and check its shape.

    A ``.onnx`` file is checked and opened by ``load_onnx`` instead (no Keras import)."""
    path = model_path(target)
    if path.suffix == ".onnx":
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

    check_keras_model(model, path)
    probe(model, path)  # finite weights can still overflow (±3e38): NaN rows for every image
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
