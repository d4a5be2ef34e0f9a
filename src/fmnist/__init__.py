"""fmnist: Fashion-MNIST classifiers with correct input normalization.

The library in two calls::
    import fmnist
    model = fmnist.load_model("runs/tutorial")               # a run folder, a .keras or a .onnx file
    probabilities = fmnist.predict_probabilities(model, images)  # raw uint8 (n, 28, 28) -> (n, 10)

Importing this package does no work: no Keras import, no seeding, no file reads. It only makes JAX the
Keras backend for this process, unless ``KERAS_BACKEND`` is already set (your choice wins) or Keras is
already imported (its backend is then fixed): Keras's own default is TensorFlow, which fmnist does not
need. ``load_model`` and ``predict_probabilities`` import what they need when they are called. When
Keras is imported (before or after this package), fmnist's layers are registered with it, so plain
``keras.models.load_model`` reads any model fmnist saved.
"""

import os as _os
import sys as _sys

from fmnist.runtime import VERSION as __version__  # noqa: F401 (the package's version)


class _RegisterLayersWithKeras:
    """An import hook: when Keras is imported after fmnist, fmnist's layers are registered with it as soon
    as it has loaded, so that plain ``keras.models.load_model`` reads a saved model that uses them (the
    per-image normalization) without importing Keras here."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        _sys.meta_path.remove(self)  # Keras's own finder does the finding; this hook runs once
        import importlib.util

        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            import fmnist.layers  # noqa: F401  @register_keras_serializable runs here

        spec.loader.exec_module = exec_module
        return spec


if "keras" in _sys.modules:  # Keras is loaded already (its backend is fixed): register the layers now
    import fmnist.layers  # noqa: F401
else:
    _os.environ.setdefault("KERAS_BACKEND", "jax")
    _sys.meta_path.insert(0, _RegisterLayersWithKeras())


def __getattr__(name: str):
    """``fmnist.CLASS_NAMES``, the dataset's ten classes in label order (kept in ``fmnist.data``; read on
    first use, so that importing this package stays free of NumPy)."""
    if name == "CLASS_NAMES":
        from fmnist.data import CLASS_NAMES

        return CLASS_NAMES
    raise AttributeError(f"module 'fmnist' has no attribute {name!r}")


def load_model(path):
    """The model in ``path`` with its normalization inside, ready for raw 0..255 pixels.

    ``path`` is a run folder (its ``model.keras``), a ``.keras`` file (loaded with Keras's safe mode on,
    fmnist's custom layer registered, the archive checked first) or a ``.onnx`` file (checked, then run
    by onnxruntime without importing Keras). A file that cannot be used raises
    ``fmnist.errors.DataError`` naming it; a Keras backend that cannot be imported raises
    ``fmnist.errors.BackendUnavailable`` saying what to install or set.
    """
    from fmnist.inference.load import load_model as load

    return load(path)


def read_images(inputs, invert: str = "auto"):
    """Your pictures as model inputs: ``(n, 28, 28)`` uint8, converted exactly as ``fmnist predict`` does.

    ``inputs``: a path or a list of paths: PNG or JPEG pictures (any size, colour or grey, on a plain
    background; converted the dataset's way), ``.npy`` arrays and IDX files of raw pixels, or folders of
    pictures. ``invert``: "auto" (make a dark item on a light background light on black, as the dataset's
    items are), "yes" or "no". The first input that cannot be used raises ``fmnist.errors.InputError``
    naming it (``fmnist predict`` instead reports it in its row and goes on).
    """
    import numpy as np

    from fmnist.errors import InputError
    from fmnist.inputs.read import read_inputs

    items = read_inputs([str(inputs)] if isinstance(inputs, (str, _os.PathLike)) else [str(path) for path in inputs],
                        invert=invert)
    for item in items:
        if item.error:
            raise InputError(f"{item.input}: {item.error}")
    return np.stack([item.image for item in items]) if items else np.zeros((0, 28, 28), np.uint8)


def predict_probabilities(model, images):
    """Class probabilities for raw uint8 images: ``(n, 28, 28)`` in, ``(n, 10)`` float32 out.

    One ``(28, 28)`` image gives ``(10,)``. Column ``k`` is the probability of ``CLASS_NAMES[k]``.
    ``images`` are Fashion-MNIST-like pixels (light item on black, 0..255); ``read_images`` converts your
    own pictures. ``model`` comes from ``load_model``.
    """
    from fmnist.inference.load import predict_images

    return predict_images(model, images)
