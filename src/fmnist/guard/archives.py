"""A ``.keras`` archive checked before Keras reads a byte of it.

Keras reads ``config.json`` whole, builds every layer it names (allocating the weights their settings
imply), then reads ``model.weights.h5``. A small file can therefore cost gigabytes three ways: a member
that inflates (3 GiB of spaces in config.json is a 4 MB zip), a config whose layers are huge (a Dense of
a billion units), or an HDF5 dataset that claims a huge shape. So, in order, before Keras sees the file:
the zip's directory (member count and size, from the end record before ``zipfile`` parses anything; no
zip64 record), each member's declared size and compression ratio, then every member read whole by
``safe_files.zip_member``: inflated 1 MiB at a time, never past its declared size, and refused unless its
stream ends exactly there with the declared checksum. Declared sizes alone bound nothing: ``zipfile``'s
``read()`` inflates a member's whole stream in one call, so a 2.1 MB archive whose config.json declared
its true 4.7 kB and went on with 1 GiB of spaces cost 2,061 MB here and 2,337 MB in Keras; it is now
refused at 31 MB, and a member that passes costs Keras's reads no more than it declares. Then the
config's graph (only the layers fmnist models are built from, a bounded parameter count, one (28, 28)
input, a softmax output), and the HDF5 file's datasets (bounded total, nothing stored in other files).
Every refusal is a ``DataError`` naming the file.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from fmnist.errors import DataError, InputError
from fmnist.guard import limits, safe_files

MEMBERS = ("config.json", "metadata.json", "model.weights.h5")  # what Keras 3 writes for a model without assets
# The layers fmnist's models are made of, and shape-only ones: each has a weight count known from its
# config, so the whole model's size is known before Keras builds it.
LAYERS = ("InputLayer", "Rescaling", "Normalization", "PerImageStandardization", "Flatten", "Dense", "Dropout",
          "Activation", "Softmax", "ReLU", "Reshape", "BatchNormalization", "LayerNormalization", "Conv2D")
MAX_KERNEL = 28  # a convolution's kernel, each side
MAX_UNITS = 2**16
MAX_PARAMETERS = limits.MAX_MODEL_WEIGHTS_BYTES // 4  # float32
MAX_HDF5_OBJECTS = 10_000  # groups and datasets; the tutorial's weights file has 30


def check_keras(path: Path) -> None:
    """Refuse ``path`` (a ``.keras`` file) unless it is a bounded Keras archive of an fmnist-like model."""
    size = path.stat().st_size
    if size > limits.MAX_MODEL_BYTES:
        raise DataError(f"{path}: {size:,} bytes; larger than the limit of {limits.MAX_MODEL_BYTES:,} for a .keras model")
    with open(path, "rb") as handle:
        try:
            infos = safe_files.open_zip(handle, limits.MAX_MODEL_MEMBERS).infolist()
        except InputError as problem:
            raise DataError(f"{path}: not a .keras archive ({problem})") from None
        _check_members(path, infos)
        try:  # every member, whole: its checksum, and a stream that ends at its declared size
            members = {info.filename: safe_files.zip_member(handle, info) for info in infos}
        except InputError as problem:
            raise DataError(f"{path}: damaged .keras archive ({problem})") from None
    check_config(path, members["config.json"])
    _check_weights(path, members["model.weights.h5"])


def _check_members(path: Path, infos: list) -> None:
    names = [info.filename for info in infos]
    missing = [name for name in ("config.json", "model.weights.h5") if name not in names]
    if missing:
        raise DataError(f"{path}: not a Keras model archive (no {missing[0]} inside)")
    other = [name for name in names if name not in MEMBERS]
    if other or len(names) != len(set(names)):
        raise DataError(f"{path}: holds {(other or names)[0]!r} {'besides' if other else 'twice among'} "
                        f"{', '.join(MEMBERS)}; an fmnist model archive holds only those")
    for info in infos:
        limit = limits.MAX_MODEL_JSON_BYTES if info.filename.endswith(".json") else limits.MAX_MODEL_WEIGHTS_BYTES
        if info.file_size > limit:
            raise DataError(f"{path}: {info.filename} inflates to {info.file_size:,} bytes; over the limit of {limit:,}")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.RATIO_CHECKED_ABOVE and ratio > limits.MAX_COMPRESSION_RATIO:
            raise DataError(f"{path}: {info.filename} inflates {ratio:,.0f}-fold (limit "
                            f"{limits.MAX_COMPRESSION_RATIO}); refused as a decompression bomb")


def check_config(path: Path, payload: bytes) -> None:
    """The graph ``config.json`` describes: fmnist's layers, bounded size, one (28, 28) input, softmax out."""
    try:
        config = json.loads(payload)
    except (ValueError, RecursionError) as error:
        raise DataError(f"{path}: config.json is not JSON ({error})") from None
    top = config.get("config") if isinstance(config, dict) else None
    layers = top.get("layers") if isinstance(top, dict) else None
    kind = config.get("class_name") if isinstance(config, dict) else None
    if kind not in ("Sequential", "Functional") or not isinstance(layers, list) or not layers:
        raise DataError(f"{path}: config.json describes {kind or 'no model'}; expected a Sequential or Functional model")
    for key in ("input_layers", "output_layers"):
        named = top.get(key, [None])
        if kind == "Functional" and (not isinstance(named, list) or len(named) != 1):
            count = len(named) if isinstance(named, list) else "no"
            raise DataError(f"{path}: the model has {count} {key.split('_')[0]}s; expected one (28, 28) input and "
                            "one probability vector out")
    width, channels, parameters, inputs = 28 * 28, 1, 0, 0
    for layer in layers:
        name = layer.get("class_name") if isinstance(layer, dict) else None
        settings = layer.get("config") if isinstance(layer, dict) else None
        if name not in LAYERS or not isinstance(settings, dict):
            raise DataError(f"{path}: layer {name!r} is not one fmnist models are built from ({', '.join(LAYERS)}); "
                            "refused before Keras builds it")
        if name == "InputLayer":
            inputs += 1
            shape = settings.get("batch_shape", settings.get("batch_input_shape"))
            if not isinstance(shape, list) or shape[1:] != [28, 28]:
                shown = tuple(shape[1:]) if isinstance(shape, list) else shape
                raise DataError(f"{path}: model takes {shown} inputs; expected (28, 28) to (10,): raw pixels in, "
                                "a probability per class out")
        added, width, channels = _weights(path, name, settings, width, channels)
        parameters += added
    if inputs != 1:
        raise DataError(f"{path}: the model has {inputs} inputs; expected one (28, 28) input")
    if parameters > MAX_PARAMETERS:
        raise DataError(f"{path}: up to {parameters:,} parameters; over the limit of {MAX_PARAMETERS:,}")
    output = _output_layer(top, layers, kind)
    if not _is_softmax(output):
        raise DataError(f"{path}: the model's output layer ({output.get('class_name')}) is not a softmax; "
                        "expected a probability vector per image")


def _weights(path: Path, name: str, settings: dict, width: int, channels: int) -> tuple[int, int, int]:
    """An upper bound on a layer's weights, and the widest features and channels so far (no layer is
    wider than the widest seen): (weights, width, channels)."""
    if name == "Dense":
        units = _count(path, settings.get("units"), "a Dense layer of {} units")
        return width * units + units, max(width, units), channels
    if name in ("BatchNormalization", "LayerNormalization"):
        return 4 * width, width, channels  # scale, offset and (batch) two moving statistics per feature
    if name == "Conv2D":
        window = settings.get("kernel_size")
        if not (isinstance(window, list) and len(window) == 2
                and all(isinstance(side, int) and not isinstance(side, bool) and 1 <= side <= MAX_KERNEL for side in window)):
            raise DataError(f"{path}: a Conv2D kernel of {window!r}; expected two sides of 1 to {MAX_KERNEL}")
        filters = _count(path, settings.get("filters"), "a Conv2D layer of {} filters")
        channels = max(channels, filters)  # a Flatten after it hands on at most 28 x 28 x channels features
        return window[0] * window[1] * channels * filters + filters, max(width, 28 * 28 * channels), channels
    return 0, width, channels


def _count(path: Path, value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_UNITS:
        raise DataError(f"{path}: {what.format(repr(value))}; expected 1 to {MAX_UNITS:,}")
    return value


def _output_layer(top: dict, layers: list, kind: str) -> dict:
    if kind == "Sequential":
        return layers[-1]
    named = top["output_layers"][0]
    name = named[0] if isinstance(named, list) and named else None
    found = [layer for layer in layers if isinstance(layer.get("config"), dict) and layer["config"].get("name") == name]
    return found[0] if len(found) == 1 else {}


def _is_softmax(layer: dict) -> bool:
    settings = layer.get("config") or {}
    if layer.get("class_name") == "Softmax":
        return settings.get("axis", -1) in (-1, 1)
    activation = settings.get("activation")
    if isinstance(activation, dict):  # {"module": "keras.activations", "class_name": "function", "config": "softmax"}
        activation = activation.get("config")
    return layer.get("class_name") in ("Dense", "Activation") and activation == "softmax"


def _check_weights(path: Path, payload: bytes) -> None:
    """model.weights.h5: bounded datasets, none stored outside the file (HDF5 external or virtual storage)."""
    import h5py

    problems, total, seen = [], 0, 0

    def visit(name, item):
        nonlocal total, seen
        seen += 1
        if seen > MAX_HDF5_OBJECTS:
            problems.append(f"more than {MAX_HDF5_OBJECTS:,} groups and datasets")
            return True  # stops the visit
        if isinstance(item, h5py.Dataset):
            if item.external or item.is_virtual:
                problems.append(f"dataset {name} keeps its data in other files")
                return True
            total += item.size * item.dtype.itemsize
        return None

    try:
        with h5py.File(io.BytesIO(payload), "r") as weights:
            weights.visititems(visit)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
        raise DataError(f"{path}: model.weights.h5 is damaged ({str(error).splitlines()[0]})") from None
    if problems:
        raise DataError(f"{path}: model.weights.h5 refused: {problems[0]}")
    if total > limits.MAX_MODEL_WEIGHTS_BYTES:
        raise DataError(f"{path}: model.weights.h5 claims {total:,} bytes of weights; over the limit of "
                        f"{limits.MAX_MODEL_WEIGHTS_BYTES:,}")
