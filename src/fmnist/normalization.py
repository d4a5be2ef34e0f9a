"""Input normalization methods, chosen by name.

Each method is fitted on the training split only (``fit`` sees nothing else) and becomes Keras layers
built from the fitted statistics, so the saved model takes raw 0..255 pixels and serving cannot drift
from training. The statistics are plain numbers so they can be written to ``config.json``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from fmnist.errors import UsageError


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    summary: str  # one line for --help
    fit: Callable[[np.ndarray], dict]  # uint8 training images (n, 28, 28) -> statistics
    build: Callable[[dict], list]  # statistics -> Keras layers that take raw pixels
    # True when each output pixel is a non-decreasing function of the same input pixel alone, so the
    # extremes of the output come from the per-position extremes of the input.
    elementwise: bool = True


METHODS: dict[str, Method] = {}


def register(name: str, summary: str, elementwise: bool = True):
    def decorate(build):
        fit = _FITS.get(name, lambda images: {})
        METHODS[name] = Method(name, summary, fit, build, elementwise)
        return build

    return decorate


def get(name: str) -> Method:
    if name not in METHODS:
        raise UsageError(f"unknown normalization {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name]


def _safe_variance(variance: np.ndarray) -> np.ndarray:
    # Zero-variance inputs get scale 1, as sklearn's StandardScaler does, instead of dividing by ~0.
    return np.where(variance == 0, 1.0, variance)


def _fit_minmax(images: np.ndarray) -> dict:
    return {"min": float(images.min()), "max": float(images.max())}


def _moments(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-position sums of x and x*x in float64 (exact for uint8), chunked: no float copy of the set."""
    total, squares = np.zeros(images.shape[1:]), np.zeros(images.shape[1:])
    for chunk in np.array_split(images, max(1, len(images) // 5000)):
        chunk = chunk.astype(np.float64)
        total += chunk.sum(axis=0)
        squares += (chunk * chunk).sum(axis=0)
    return total, squares


def _fit_standard(images: np.ndarray) -> dict:
    # One mean and variance over every pixel: the tutorial's StandardScaler on reshape(-1, 1).
    total, squares = _moments(np.asarray(images))
    count = np.asarray(images).size
    mean = total.sum() / count
    variance = max(squares.sum() / count - mean * mean, 0.0)
    return {"mean": float(mean), "variance": float(_safe_variance(np.asarray(variance)))}


def _fit_per_pixel(images: np.ndarray) -> dict:
    total, squares = _moments(np.asarray(images))
    mean = total / len(images)
    variance = _safe_variance(np.maximum(squares / len(images) - mean * mean, 0.0))
    return {"mean": mean.tolist(), "variance": variance.tolist()}


_FITS = {"minmax": _fit_minmax, "standard": _fit_standard, "per-pixel": _fit_per_pixel}


@register("none", "raw 0..255 pixels, only cast to float (the tutorial's 'before')")
def _none(stats):
    import keras

    return [keras.layers.Rescaling(1.0, name="as_float")]


@register("rescale", "divide by 255, so pixels lie in [0, 1]")
def _rescale(stats):
    import keras

    return [keras.layers.Rescaling(1.0 / 255.0, name="rescale")]


@register("minmax", "min and max of the training pixels mapped to 0 and 1")
def _minmax(stats):
    import keras

    span = (stats["max"] - stats["min"]) or 1.0
    return [keras.layers.Rescaling(1.0 / span, offset=-stats["min"] / span, name="minmax")]


@register("standard", "one mean and std over all training pixels (the tutorial's StandardScaler)")
def _standard(stats):
    import keras

    return [keras.layers.Normalization(axis=None, mean=stats["mean"], variance=stats["variance"], name="standard")]


@register("per-pixel", "one mean and std per pixel position, fitted on the training images")
def _per_pixel(stats):
    import keras

    return [
        keras.layers.Normalization(
            axis=(1, 2), mean=np.asarray(stats["mean"]), variance=np.asarray(stats["variance"]), name="per_pixel"
        )
    ]


@register("per-image", "each image to zero mean and unit variance on its own (nothing fitted)", elementwise=False)
def _per_image(stats):
    from fmnist.layers import PerImageStandardization

    return [PerImageStandardization(name="per_image")]


def member_settings(method: str, stats: dict) -> dict[str, np.ndarray]:
    """The ``MemberNormalization`` variables (layers.py) that compute what ``method``'s own layers do.

    Rescaling computes ``x * scale + offset`` and Normalization ``(x - mean) / max(sqrt(variance),
    1e-7)``, both in float32 after casting their constants; ``((x - subtract) / divide) * multiply + add``
    with the same float32 constants gives the same numbers.
    """
    get(method)
    f32 = np.float32
    settings = {"subtract": np.zeros((28, 28), f32), "divide": np.ones((28, 28), f32),
                "multiply": np.ones((28, 28), f32), "add": np.zeros((28, 28), f32), "per_image": f32(0)}
    if method == "per-image":
        settings["per_image"] = f32(1)
    elif method in ("rescale", "minmax"):
        if method == "rescale":
            scale, offset = 1.0 / 255.0, 0.0
        else:
            span = (stats["max"] - stats["min"]) or 1.0
            scale, offset = 1.0 / span, -stats["min"] / span
        settings["multiply"][:] = f32(scale)
        settings["add"][:] = f32(offset)
    elif method in ("standard", "per-pixel"):
        settings["subtract"][:] = np.asarray(stats["mean"], f32)
        settings["divide"][:] = np.maximum(np.sqrt(np.asarray(stats["variance"], f32)), f32(1e-7))
    return settings


class GlobalStandardScaler:
    """The tutorial's scaler in sklearn's shape: one mean and one scale over every value.

    Equivalent to ``StandardScaler().fit(x.reshape(-1, 1))``; kept for parity checks and for users who
    normalize arrays outside a model.
    """

    def fit(self, x, y=None) -> GlobalStandardScaler:
        stats = _fit_standard(np.asarray(x))
        self.mean_ = stats["mean"]
        self.scale_ = float(np.sqrt(stats["variance"]))
        return self

    def transform(self, x) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float32) - self.mean_) / self.scale_).astype(np.float32)

    def fit_transform(self, x, y=None) -> np.ndarray:
        return self.fit(x).transform(x)
