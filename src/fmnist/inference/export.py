"""ONNX: ``fmnist export RUN --format onnx``, and running ``.onnx`` models through onnxruntime.

Export goes through Keras's own ``model.export(format="onnx")``. On the JAX backend Keras (3.14 and
later) hands the traced JAX program to jax2onnx, so no TensorFlow is involved, the graph is the one Keras
runs (normalization layers included, the custom per-image one too), and a Keras upgrade keeps it working.
The file takes raw uint8 pixels ``(batch, 28, 28)`` and gives probabilities ``(batch, 10)``.

Every export is verified before it is published: onnxruntime and Keras each classify the 10,000 test
images; the argmax must agree on every image and the probabilities within ``TOLERANCE``. The file is
written to a temporary name, checked, and only then moved into place, so a model that fails is never
written.

A ``.onnx`` file is checked before onnxruntime runs it (``check_onnx``): a parseable ONNX model, at most
``MAX_BYTES``, only standard operators, no external data files (their paths are where ONNX's
path-traversal bugs lived), one input ``(batch, 28, 28)`` of uint8 or float pixels and one output
``(batch, 10)``. Anything else is refused with one line naming the file (``DataError``, exit code 2).
"""

from __future__ import annotations

import dataclasses
import json
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

from fmnist.data import CLASS_NAMES
from fmnist.errors import DataError, ExportFailed
from fmnist.guard.onnx_files import require
from fmnist.inference.load import (
    import_keras,
    load_model,
    load_onnx,
    model_path,
    predict_probabilities,
)
from fmnist.runtime import VERSION
from fmnist.store import artifacts

TOLERANCE = 1e-5  # max |p_onnx - p_keras| allowed; measured on the tutorial model: about 2e-6


@dataclasses.dataclass(frozen=True)
class ExportResult:
    path: Path
    images: int  # test images compared
    same_argmax: int  # of them, how many get the same class from both
    max_difference: float  # max |p_onnx - p_keras| over all images and classes
    converter: str  # what wrote the file, with versions
    runtime: str  # what checked it
    seconds: float
    size_bytes: int


def export_onnx(target: str | Path, images: np.ndarray, output: str | Path | None = None,
                tolerance: float = TOLERANCE) -> ExportResult:
    """Write ``target``'s model (a run folder or .keras file) as ONNX beside it (or to ``output``), verified
    on ``images`` (raw uint8 test images) against the Keras model; raises ``ExportFailed`` otherwise."""
    source, path = export_paths(target, output)
    model = load_model(source)
    start = time.perf_counter()
    with artifacts.atomic_path(path) as temporary:
        converter = _convert(model, temporary, path)
        _describe(temporary, model, converter)
        onnx_model = load_onnx(temporary, name=path)  # the same checks as any .onnx file
        expected = predict_probabilities(model, images)
        found = onnx_model.predict(images, batch_size=len(images))
        same = int(np.sum(found.argmax(axis=-1) == expected.argmax(axis=-1)))
        difference = float(np.max(np.abs(found.astype(np.float64) - expected)))
        if same != len(images) or not difference <= tolerance:
            raise ExportFailed(
                f"{path}: not written: onnxruntime and Keras give the same class for {same:,} of {len(images):,} test "
                f"images (all needed), max |p_onnx - p_keras| = {difference:.2e} (limit {tolerance:.0e})")
        size = temporary.stat().st_size
    return ExportResult(path, len(images), same, difference, converter, onnx_model.runtime,
                        time.perf_counter() - start, size)


def export_paths(target: str | Path, output: str | Path | None = None) -> tuple[Path, Path]:
    """The .keras file to export and the .onnx file to write, checked before any work."""
    source = model_path(target)
    if source.suffix != ".keras":
        raise DataError(f"{source}: export takes a run folder or a .keras file")
    path = Path(output) if output else source.with_suffix(".onnx")
    if path.suffix != ".onnx" or not path.parent.is_dir():
        raise DataError(f"{path}: give a .onnx file in an existing folder")
    artifacts.check_writable(path)  # before the conversion's seconds, not after
    return source, path


def _describe(temporary: Path, model, converter: str) -> None:
    """The file says what it is, for whoever opens it without fmnist: ONNX metadata (``metadata_props``)
    with the class names in column order, the input and output conventions, the normalization inside
    and the versions that wrote it."""
    import onnx

    proto = onnx.load(str(temporary))
    name = getattr(model, "name", "")
    onnx.helper.set_model_props(proto, {
        "fmnist.classes": json.dumps(list(CLASS_NAMES)),
        "fmnist.input": "pixels: uint8 (batch, 28, 28), raw 0..255, a light item on black as in Fashion-MNIST; "
                        "one image is a batch of one (add the first axis)",
        "fmnist.output": "probabilities: float32 (batch, 10); column k is fmnist.classes[k]",
        "fmnist.normalization": name.removeprefix("fmnist_").replace("_", "-") if name.startswith("fmnist_") else "",
        "fmnist.version": VERSION,
        "fmnist.converter": converter,
    })
    proto.doc_string = "A Fashion-MNIST classifier exported by fmnist; its normalization is inside the graph."
    onnx.save(proto, str(temporary))


def _convert(model, temporary: Path, path: Path) -> str:
    """Keras's ONNX export of ``model`` into ``temporary``; returns the converter's description."""
    keras = import_keras()
    backend = keras.backend.backend()
    if backend == "jax":
        require("jax2onnx")
        converter = f"Keras {keras.__version__} model.export -> jax2onnx {version('jax2onnx')}"
    else:
        converter = f"Keras {keras.__version__} model.export ({backend} backend)"
    signature = [keras.InputSpec(shape=(None, 28, 28), dtype="uint8", name="pixels")]
    try:
        model.export(str(temporary), format="onnx", verbose=False, input_signature=signature)
    except Exception as error:  # the converters raise many types; one line says which step failed
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ExportFailed(f"{path}: not written: ONNX conversion failed ({converter}: {reason})") from None
    _inline(temporary)
    return converter


def _inline(path: Path) -> None:
    """One self-contained file: jax2onnx moves initializers over 1 MB (the cnn's Dense) into ``<name>.data``
    beside it, and fmnist runs no model that reads other files."""
    import onnx

    data = path.with_name(path.name + ".data")
    if data.exists():
        proto = onnx.load(str(path), load_external_data=True)
        onnx.save_model(proto, str(path), save_as_external_data=False)
        data.unlink()


