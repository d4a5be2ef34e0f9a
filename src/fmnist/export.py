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
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

from fmnist import artifacts
from fmnist.errors import DataError, FmnistError
from fmnist.limits import MAX_MODEL_BYTES as MAX_BYTES  # the tutorial's model is 1.1 MB

TOLERANCE = 1e-5  # max |p_onnx - p_keras| allowed; measured on the tutorial model: about 2e-6
STANDARD_DOMAINS = ("", "ai.onnx")  # the ONNX operator set; no custom operator libraries are loaded


class ExportFailed(FmnistError):
    """The exported model does not match the Keras model (or could not be converted); nothing is written."""

    exit_code = 1


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise DataError(f"{module} is not installed; ONNX support needs: pip install 'fmnist[onnx]'") from None


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
    from fmnist.evaluation import load_model, predict_probabilities

    source, path = export_paths(target, output)
    model = load_model(source)
    start = time.perf_counter()
    with artifacts.atomic_path(path) as temporary:
        converter = _convert(model, temporary, path)
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
    from fmnist.evaluation import model_path

    source = model_path(target)
    if source.suffix != ".keras":
        raise DataError(f"{source}: export takes a run folder or a .keras file")
    path = Path(output) if output else source.with_suffix(".onnx")
    if path.suffix != ".onnx" or not path.parent.is_dir():
        raise DataError(f"{path}: give a .onnx file in an existing folder")
    return source, path


def _convert(model, temporary: Path, path: Path) -> str:
    """Keras's ONNX export of ``model`` into ``temporary``; returns the converter's description."""
    from fmnist.evaluation import import_keras

    keras = import_keras()
    backend = keras.backend.backend()
    if backend == "jax":
        _require("jax2onnx")
        converter = f"Keras {keras.__version__} model.export -> jax2onnx {version('jax2onnx')}"
    else:
        converter = f"Keras {keras.__version__} model.export ({backend} backend)"
    signature = [keras.InputSpec(shape=(None, 28, 28), dtype="uint8", name="pixels")]
    try:
        model.export(str(temporary), format="onnx", verbose=False, input_signature=signature)
    except Exception as error:  # the converters raise many types; one line says which step failed
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ExportFailed(f"{path}: not written: ONNX conversion failed ({converter}: {reason})") from None
    return converter


def check_onnx(path: Path, name: Path | None = None) -> bytes:
    """The file's bytes when it is an ONNX model fmnist can run; ``DataError`` naming it otherwise."""
    name = name or path
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{name}: empty file")
    if size > MAX_BYTES:
        raise DataError(f"{name}: {size:,} bytes; larger than the limit of {MAX_BYTES:,} for an .onnx model")
    onnx = _require("onnx")
    payload = path.read_bytes()
    try:
        proto = onnx.load_model_from_string(payload)  # never follows external data
    except Exception as error:  # protobuf's DecodeError and friends
        raise DataError(f"{name}: not an ONNX model ({str(error).splitlines()[0] or type(error).__name__})") from None
    if proto.ir_version <= 0 or not proto.opset_import or not proto.graph.node:
        raise DataError(f"{name}: not an ONNX model (no graph, IR version or operator set)")
    local = {function.domain for function in proto.functions}
    domains = {node.domain for graph in _graphs(proto) for node in graph.node}
    domains |= {entry.domain for entry in proto.opset_import}
    custom = sorted(domains - set(STANDARD_DOMAINS) - local)
    if custom:
        raise DataError(f"{name}: uses operators outside the ONNX standard ({', '.join(custom)}); refused")
    external = [tensor.name for tensor in _tensors(proto) if tensor.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise DataError(f"{name}: keeps tensors in external data files ({external[0]}, …); refused "
                        "(only self-contained models are run)")
    try:
        onnx.checker.check_model(proto)
    except Exception as error:
        raise DataError(f"{name}: invalid ONNX model ({str(error).splitlines()[0]})") from None
    _check_signature(proto, name, onnx)
    return payload


def _check_signature(proto, name: Path, onnx) -> None:
    initializers = {tensor.name for tensor in proto.graph.initializer}
    inputs = [value for value in proto.graph.input if value.name not in initializers]
    outputs = list(proto.graph.output)
    shape_in, shape_out = (_shape(values[0]) if len(values) == 1 else None for values in (inputs, outputs))
    pixel_types = (onnx.TensorProto.UINT8, onnx.TensorProto.FLOAT)
    good_in = shape_in is not None and shape_in[1:] == (28, 28) and len(shape_in) == 3
    good_in = good_in and inputs[0].type.tensor_type.elem_type in pixel_types
    good_out = shape_out is not None and len(shape_out) == 2 and shape_out[1] == 10
    good_out = good_out and outputs[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    if not (good_in and good_out):
        described = [f"{len(values)} {kind}s" if len(values) != 1 else str(_shape(values[0]))
                     for kind, values in (("input", inputs), ("output", outputs))]
        raise DataError(f"{name}: model maps {described[0]} to {described[1]}; expected one (batch, 28, 28) "
                        "uint8 or float input and one (batch, 10) float output")


def _shape(value) -> tuple | None:
    """A graph value's shape with symbolic or unknown dimensions as "batch"/None; None if not a tensor."""
    if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
        return None
    return tuple(dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None)
                 for dim in value.type.tensor_type.shape.dim)


def _graphs(proto):
    """The main graph, every subgraph (If/Loop/Scan bodies) and every local function's body."""
    pending = [proto.graph]
    for function in proto.functions:
        pending.append(function)  # has .node like a graph
    while pending:
        graph = pending.pop()
        yield graph
        for node in graph.node:
            for attribute in node.attribute:
                pending += [attribute.g] if attribute.HasField("g") else []
                pending += list(attribute.graphs)


def _tensors(proto):
    for graph in _graphs(proto):
        yield from getattr(graph, "initializer", ())
        for sparse in getattr(graph, "sparse_initializer", ()):
            yield from (sparse.values, sparse.indices)
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    yield attribute.t
                yield from attribute.tensors


class OnnxModel:
    """A checked ``.onnx`` classifier run by onnxruntime on the CPU.

    ``predict`` has the signature of Keras's (what fmnist's predict, evaluate and serve call), so an
    OnnxModel goes wherever a Keras model does, without importing Keras."""

    def __init__(self, path: Path, payload: bytes):
        ort = _require("onnxruntime")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no warnings about unused initializers on stderr
        try:
            self.session = ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise DataError(f"{path}: onnxruntime cannot load the model ({str(error).splitlines()[0]})") from None
        (self.input,), (self.output,) = self.session.get_inputs(), self.session.get_outputs()
        self.input_dtype = np.uint8 if self.input.type == "tensor(uint8)" else np.float32
        self.path = path
        self.runtime = f"onnxruntime {version('onnxruntime')}"

    def predict(self, images, batch_size: int | None = None, verbose=0) -> np.ndarray:
        images = np.asarray(images).astype(self.input_dtype, copy=False)
        step = batch_size or max(1, len(images))
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
