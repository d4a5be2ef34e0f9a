"""The default surface, ``inputs``: mutated pictures, .npy and IDX files through ``fmnist predict``'s
reading and prediction, mutated ``.keras`` archives (bytes and zip headers), checkpoints (zip headers) and
ONNX graphs through model loading, and decompression bombs once. Every input must end as a row (a
prediction or an error), every model as loaded or refused with a ``DataError`` of one line naming it.
Prediction uses a NumPy stand-in for the model (``StubModel``): predict's bookkeeping without Keras's
start-up.
"""

from __future__ import annotations

import io
import random
import tempfile
import time
import traceback
import zipfile
import zlib
from pathlib import Path

import numpy as np

from fuzz.mutations import deflated_run, mutate, mutate_zip, raw_zip
from fuzz.onnx_graphs import mutate_onnx, onnx_seed
from fuzz.outcomes import peak_mb
from fuzz.seeds import flat_png, keras_seed, npz_seed, seeds


class StubModel:
    """A fixed softmax classifier in NumPy: predict's bookkeeping without Keras's start-up."""

    def __init__(self):
        self.weights = np.random.default_rng(0).normal(size=(784, 10)) / 784

    def predict(self, images, batch_size=None, verbose=0):
        logits = np.asarray(images, np.float64).reshape(len(images), -1) @ self.weights
        logits -= logits.max(axis=1, keepdims=True)
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


class Tally:
    def __init__(self):
        self.inputs = self.rows = self.predictions = self.errors = self.crashes = 0
        self.models = self.models_loaded = self.models_refused = 0
        self.onnx = self.onnx_loaded = self.onnx_refused = 0
        self.checkpoints = self.checkpoints_loaded = self.checkpoints_refused = 0
        self.zip_headers = 0  # .keras and checkpoint files whose zip directory disagrees with a stream
        self.first_crashes: list[str] = []

    def tried(self) -> int:
        return self.inputs + self.models + self.onnx + self.checkpoints

    def crash(self, label: str) -> None:
        self.crashes += 1
        if len(self.first_crashes) < 5:
            self.first_crashes.append(f"{label}: {traceback.format_exc(limit=3)}")


def predict_one(path: Path, model, tally: Tally, label: str) -> None:
    from fmnist.inference.predict import predict
    from fmnist.inputs.read import read_inputs

    tally.inputs += 1
    try:
        results = predict(model, read_inputs([str(path)]))
    except Exception:  # noqa: BLE001  a crash is what the fuzzer looks for
        tally.crash(label)
        return
    if not results:
        tally.crash(f"{label}: no row")
    tally.rows += len(results)
    tally.errors += sum(result["error"] is not None for result in results)
    tally.predictions += sum(result["error"] is None for result in results)


def load_one(path: Path, tally: Tally, label: str, load: bool, kind: str = "models") -> None:
    """``load``: through Keras (``load_model``); else only fmnist's own checks of the archive (``model_path``),
    all that runs before Keras would see the file (Keras's own failures are caught as a whole). ``kind``
    "onnx": ``load_model`` (the checks, onnxruntime, the probe); "checkpoints": ``safe_files.check_npz``."""
    from fmnist.errors import DataError
    from fmnist.guard import limits, safe_files
    from fmnist.inference.load import load_model, model_path

    setattr(tally, kind, getattr(tally, kind) + 1)
    try:
        if kind == "checkpoints":
            safe_files.check_npz(path, limits.MAX_MODEL_WEIGHTS_BYTES)
        elif load or kind == "onnx":
            model = load_model(path)
            assert np.asarray(model.predict(np.zeros((2, 28, 28), np.uint8), verbose=0)).shape == (2, 10)
        else:
            model_path(path)
        setattr(tally, f"{kind}_loaded", getattr(tally, f"{kind}_loaded") + 1)
    except DataError as error:
        assert "\n" not in str(error) and str(error).startswith(f"{path}: "), str(error)
        setattr(tally, f"{kind}_refused", getattr(tally, f"{kind}_refused") + 1)
    except Exception:  # noqa: BLE001
        tally.crash(label)


def bombs(folder: Path, model, tally: Tally, every: bool = True) -> None:
    """Decompression bombs and lying headers, each once: what peak memory is about. The costliest is the
    40-megapixel RGBA picture; ``every``: the others too."""
    cases = {"bomb-rgba.png": flat_png(6324, 6324, 6)}  # 40 megapixels in 155 kB
    if not every:
        (folder / "bomb-rgba.png").write_bytes(cases["bomb-rgba.png"])
        predict_one(folder / "bomb-rgba.png", model, tally, "bomb-rgba.png")
        return
    cases["bomb-tall.png"] = flat_png(1, 16_700_000)  # 1 x 16.7 M pixels
    cases["liar.png"] = flat_png(16_700_000, 1)[:70]  # 70 bytes that claim 16.7 M pixels
    header = b"{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000, 28, 28), }"
    cases["liar.npy"] = b"\x93NUMPY\x01\x00" + (len(header) + 1).to_bytes(2, "little") + header + b"\n" + bytes(1000)
    for name, payload in cases.items():
        (folder / name).write_bytes(payload)
        predict_one(folder / name, model, tally, name)
    sparse = folder / "sparse-idx3-ubyte"
    with open(sparse, "wb") as handle:  # 1.4 GB as its size says, 16 bytes on disk
        handle.write((0x803).to_bytes(4, "big") + (1_800_000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
        handle.truncate(16 + 1_800_000 * 784)
    predict_one(sparse, model, tally, "sparse IDX")


def fuzz_inputs(seconds: float, seed: int, keras_share: float = 0.1, keras_load: bool = False,
                every_bomb: bool = True, count: int | None = None, onnx_share: float = 0.1) -> dict:
    """Fuzz for ``seconds`` (after the bombs and the seeds are made) or ``count`` inputs, whichever comes
    first; the summary as a dict. A fixed seed and count try the same inputs on any machine. Of the model
    files (``keras_share``), half are .keras bytes mutated, a quarter .keras zip headers, a quarter
    checkpoint zip headers; ``onnx_share`` are ONNX graphs mutated."""
    rng = random.Random(seed)
    model, tally = StubModel(), Tally()
    with tempfile.TemporaryDirectory(prefix="fmnist-fuzz-") as temporary:
        folder = Path(temporary)
        corpus = seeds()
        bombs(folder, model, tally, every_bomb)
        keras_bytes = keras_seed()
        (folder / "seed.keras").write_bytes(keras_bytes)
        load_one(folder / "seed.keras", tally, "the seed", keras_load)  # it loads: mutations start from a model
        with zipfile.ZipFile(io.BytesIO(keras_bytes)) as archive:
            keras_members = {name: archive.read(name) for name in archive.namelist()}
        npz_members = npz_seed()
        (folder / "seed.npz").write_bytes(raw_zip([[name, 0, data, len(data), zlib.crc32(data)]
                                                   for name, data in npz_members.items()]))
        load_one(folder / "seed.npz", tally, "the checkpoint seed", False, "checkpoints")
        graph = onnx_seed()
        (folder / "seed.onnx").write_bytes(graph.SerializeToString())
        load_one(folder / "seed.onnx", tally, "the ONNX seed", True, "onnx")
        tails = [deflated_run(b" ", 2**20), deflated_run(b"\0", 64 * 2**20)]  # 1 MiB of spaces, 64 MiB of zeros
        names = sorted(corpus)
        started = time.monotonic()
        while time.monotonic() - started < seconds and (count is None or tally.tried() < count):
            draw = rng.random()
            if draw < keras_share:
                part = rng.random()
                if part < 0.5:
                    path, kind, payload = folder / "mutated.keras", "models", mutate(keras_bytes, rng)
                else:
                    kind = "models" if part < 0.75 else "checkpoints"
                    path = folder / ("headers.keras" if kind == "models" else "headers.npz")
                    payload = mutate_zip(keras_members if kind == "models" else npz_members, rng, tails)
                    tally.zip_headers += 1
                path.write_bytes(payload)
                load_one(path, tally, f"{kind} {path.name}", keras_load, kind)
                continue
            if draw < keras_share + onnx_share:
                path = folder / "mutated.onnx"
                path.write_bytes(mutate_onnx(graph, rng))
                load_one(path, tally, "onnx", True, "onnx")
                continue
            name = rng.choice(names)
            path = folder / f"m-{name}"
            path.write_bytes(mutate(corpus[name], rng))
            predict_one(path, model, tally, name)
    summary = {key: value for key, value in vars(tally).items()}
    summary |= {"seconds": round(time.monotonic() - started, 1), "seed": seed, "peak_rss_mb": peak_mb()}
    return summary
