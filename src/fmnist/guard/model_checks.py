"""A loaded model is a classifier only if it gives a probability vector per image.

``archives.check_config`` refuses a ``.keras`` graph without a softmax output before Keras builds it;
here the loaded model itself is checked: one input, one output, finite weights (NaN weights predict
"nan" for every image), and for ``.onnx`` models, whose graphs may compute a softmax in many ways, a
probe: a few images must come out as probability vectors. ``probability_rows`` checks every answer
again, since a model with finite weights can still overflow on some input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmnist.errors import DataError

TOLERANCE = 1e-3  # float32 softmax rows sum to 1 within about 1e-6; anything beyond this is not a softmax


def probability_rows(rows: np.ndarray) -> np.ndarray:
    """A boolean per row: finite, within 0..1, summing to 1."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != 10:
        return np.zeros(len(rows), bool)
    finite = np.isfinite(rows).all(axis=1)
    bounded = ((rows >= 0) & (rows <= 1 + TOLERANCE)).all(axis=1)
    return finite & bounded & (np.abs(rows.sum(axis=1) - 1) <= TOLERANCE)


def check_keras_model(model, path: Path) -> None:
    """One (28, 28) input, one (10,) output, finite weights."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise DataError(f"{path}: the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                        "expected one (28, 28) input and one probability vector out")
    for weight in model.weights:
        if not np.all(np.isfinite(np.asarray(weight.value if hasattr(weight, "value") else weight))):
            raise DataError(f"{path}: the weight {weight.path} holds NaN or infinite values; the model cannot "
                            "give probabilities (was it saved from a run that diverged?)")


def probe(model, path: Path) -> None:
    """Refuse a model whose outputs for a few images (black, white, noise) are not probability vectors, or
    that fails on them: for a .keras model this catches finite weights that overflow float32 (±3e38 gives
    NaN for every image), for an .onnx one also a graph that computes no softmax or fails when run."""
    images = np.stack([np.zeros((28, 28), np.uint8), np.full((28, 28), 255, np.uint8),
                       np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)])
    try:
        rows = np.asarray(model.predict(images, batch_size=len(images), verbose=0))
    except Exception as error:  # noqa: BLE001  onnxruntime and XLA raise their own types; name the file instead
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{path}: the model fails on a probe image ({reason}); refused") from None
    if rows.shape != (len(images), 10):
        raise DataError(f"{path}: the model gives outputs of shape {rows.shape[1:]} per image; expected (10,) "
                        "probabilities; refused")
    if not probability_rows(rows).all():
        finite = bool(np.isfinite(rows).all())
        reason = ("finite, 0..1, summing to 1; e.g. no softmax at the end" if finite else
                  "NaN or infinite values: weights too large for float32?")
        raise DataError(f"{path}: the model's outputs are not probability vectors ({reason}); refused")
