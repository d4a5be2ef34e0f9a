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


def predict_probabilities(model, images):
    """Class probabilities for raw uint8 images: ``(n, 28, 28)`` in, ``(n, 10)`` float32 out.

    One ``(28, 28)`` image gives ``(10,)``. Column ``k`` is the probability of ``CLASS_NAMES[k]``.
    ``images`` are Fashion-MNIST-like pixels (light item on black, 0..255); use ``fmnist predict`` or
    ``fmnist.inputs.read.read_inputs`` to convert your own pictures first. ``model`` comes from ``load_model``.
    """
    from fmnist.inference.load import predict_images

    return predict_images(model, images)
