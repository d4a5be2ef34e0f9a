"""A bounded fuzzer for what users hand to fmnist: mutated PNG, JPEG, .npy, IDX (raw and gzip) and .keras bytes.

Every mutated input must end as a prediction or an error row of ``fmnist predict`` (``images.read_inputs``
then ``predict.predict``), and every mutated ``.keras`` file as a loaded model or a ``DataError``: anything
else is a crash. It also feeds a few decompression bombs once. Run by tests/test_fuzz.py for a few
seconds; run longer by hand for docs/benchmarks.md:

    .venv/bin/python tests/fuzz_inputs.py --seconds 600 --seed 1

It prints one JSON line: inputs tried, rows, predictions, error rows, crashes (with the first tracebacks),
and the process's peak memory (``VmHWM``).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import resource
import struct
import sys
import tempfile
import time
import traceback
import zipfile
import zlib
from pathlib import Path

import numpy as np

ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0xFE)
BIG = (0, 1, 6000, 2**16 - 1, 2**31 - 1, 2**32 - 1)


class StubModel:
    """A fixed softmax classifier in NumPy: predict's bookkeeping without Keras's start-up."""

    def __init__(self):
        self.weights = np.random.default_rng(0).normal(size=(784, 10)) / 784

    def predict(self, images, batch_size=None, verbose=0):
        logits = np.asarray(images, np.float64).reshape(len(images), -1) @ self.weights
        logits -= logits.max(axis=1, keepdims=True)
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def interlaced_png(pixels: np.ndarray) -> bytes:
    """An Adam7-interlaced grey PNG (Pillow writes none)."""
    height, width = pixels.shape
    raw = b"".join(b"\x00" + row.tobytes() for x, y, dx, dy in ADAM7
                   for row in pixels[y::dy, x::dx] if pixels[y::dy, x::dx].shape[1])
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 1))
            + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))


def flat_png(width: int, height: int, colour: int = 0) -> bytes:
    """A complete PNG of one colour: deflate's best ratio, about 1000:1 (a decompression bomb)."""
    row = b"\x00" + bytes(width * {0: 1, 2: 3, 6: 4}[colour])
    per_chunk = max(1, 2**20 // len(row))  # about 1 MB of rows at a time: the bomb is never held inflated
    compressor, parts = zlib.compressobj(9), []
    for start in range(0, height, per_chunk):
        parts.append(compressor.compress(row * min(per_chunk, height - start)))
    parts.append(compressor.flush())
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
            + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b""))


def seeds() -> dict[str, bytes]:
    """Small valid inputs of every kind, the material the mutations start from."""
    from PIL import Image

    rng = np.random.default_rng(0)
    item = np.zeros((28, 28), np.uint8)
    item[6:22, 9:19] = rng.integers(150, 255, (16, 10))
    photo = np.full((64, 48, 3), 235, np.uint8)
    photo[10:54, 12:36] = rng.integers(0, 90, (44, 24, 3))
    found = {}

    def save(name, image, **options):
        buffer = io.BytesIO()
        image.save(buffer, **options)
        found[name] = buffer.getvalue()

    save("grey.png", Image.fromarray(item), format="PNG")
    save("rgb.png", Image.fromarray(photo), format="PNG")
    save("rgba.png", Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)])), format="PNG")
    save("palette.png", Image.fromarray(photo).convert("P"), format="PNG", transparency=0)
    save("sixteen.png", Image.fromarray(item.astype(np.uint16) * 257), format="PNG")
    save("bits.png", Image.fromarray(item > 100), format="PNG")
    found["interlaced.png"] = interlaced_png(item)
    save("base.jpg", Image.fromarray(photo), format="JPEG", quality=90)
    save("progressive.jpg", Image.fromarray(photo), format="JPEG", quality=80, progressive=True)
    save("restart.jpg", Image.fromarray(photo), format="JPEG", restart_marker_blocks=1)
    exif = Image.Exif()
    exif[0x0112] = 6
    save("exif.jpg", Image.fromarray(item), format="JPEG", exif=exif)
    for name, array in (("many.npy", np.stack([item] * 3)), ("float.npy", item.astype(np.float64)),
                        ("fortran.npy", np.asfortranarray(item)), ("big-endian.npy", item.astype(">u2"))):
        buffer = io.BytesIO()
        np.save(buffer, array)
        found[name] = buffer.getvalue()
    idx = (0x803).to_bytes(4, "big") + (3).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + np.stack([item] * 3).tobytes()
    found["raw-idx3-ubyte"] = idx
    found["gz-idx3-ubyte.gz"] = gzip.compress(idx)
    return found


def mutate(payload: bytes, rng: random.Random) -> bytes:
    data = bytearray(payload)
    kind = rng.randrange(8)
    if kind == 0:  # flip bits
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # interesting bytes
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.choice(INTERESTING)
    elif kind == 2:  # truncate
        del data[rng.randint(1, len(data) - 1):]
    elif kind == 3:  # truncate inside, keep the end (an IEND or EOI after too little data)
        cut = rng.randint(1, max(1, len(data) - 13))
        data = data[:cut] + data[-12:]
    elif kind == 4:  # a header field claims something else
        at = rng.randrange(min(len(data), 96))
        data[at: at + 4] = rng.choice(BIG).to_bytes(4, rng.choice(("big", "little")))
    elif kind == 5:  # duplicate a slice
        start = rng.randrange(len(data))
        data[start:start] = data[start: start + rng.randint(1, 256)]
    elif kind == 6:  # delete a slice
        start = rng.randrange(len(data))
        del data[start: start + rng.randint(1, 64)]
    else:  # insert random bytes
        start = rng.randrange(len(data))
        data[start:start] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    return bytes(data)


class Tally:
    def __init__(self):
        self.inputs = self.rows = self.predictions = self.errors = self.crashes = 0
        self.models = self.models_loaded = self.models_refused = 0
        self.first_crashes: list[str] = []

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


def load_one(path: Path, tally: Tally, label: str, load: bool) -> None:
    """``load``: through Keras (``load_model``); else only fmnist's own checks of the archive (``model_path``),
    all that runs before Keras would see the file (Keras's own failures are caught as a whole)."""
    from fmnist.errors import DataError
    from fmnist.inference.load import load_model, model_path

    tally.models += 1
    try:
        if load:
            model = load_model(path)
            assert np.asarray(model.predict(np.zeros((2, 28, 28), np.uint8), verbose=0)).shape == (2, 10)
        else:
            model_path(path)
        tally.models_loaded += 1
    except DataError:
        tally.models_refused += 1
    except Exception:  # noqa: BLE001
        tally.crash(label)


def keras_seed() -> bytes:
    """A .keras archive as Keras 3 writes it (Input, Rescaling, Flatten, Dense softmax), made without Keras."""
    import h5py

    def layer(kind, **config):
        return {"module": "keras.layers", "class_name": kind, "config": {"name": kind.lower(), **config},
                "registered_name": None}

    layers = [layer("InputLayer", batch_shape=[None, 28, 28], dtype="uint8"),
              layer("Rescaling", scale=1 / 255, offset=0.0), layer("Flatten"),
              layer("Dense", units=10, activation="softmax", use_bias=True)]
    layers[-1]["build_config"] = {"input_shape": [None, 784]}
    config = {"module": "keras", "class_name": "Sequential", "config": {"name": "seed", "layers": layers},
              "registered_name": None}
    weights = io.BytesIO()
    with h5py.File(weights, "w") as store:
        for name in ("rescaling", "flatten"):
            store.create_group(f"layers/{name}/vars")
        store.create_dataset("layers/dense/vars/0", data=np.random.default_rng(1).normal(size=(784, 10)).astype("f4"))
        store.create_dataset("layers/dense/vars/1", data=np.zeros(10, "f4"))
        store.create_group("vars")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as files:
        files.writestr("metadata.json", json.dumps({"keras_version": "3.15.1", "date_saved": "2026-01-01@00:00:00"}))
        files.writestr("config.json", json.dumps(config))
        files.writestr("model.weights.h5", weights.getvalue())
    return archive.getvalue()


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


def run(seconds: float, seed: int, keras_share: float = 0.1, keras_load: bool = False, every_bomb: bool = True,
        count: int | None = None) -> dict:
    """Fuzz for ``seconds`` (after the bombs and the seeds are made) or ``count`` inputs, whichever comes
    first; the summary as a dict. A fixed seed and count try the same inputs on any machine."""
    rng = random.Random(seed)
    model, tally = StubModel(), Tally()
    with tempfile.TemporaryDirectory(prefix="fmnist-fuzz-") as temporary:
        folder = Path(temporary)
        corpus = seeds()
        bombs(folder, model, tally, every_bomb)
        keras_bytes = keras_seed()
        (folder / "seed.keras").write_bytes(keras_bytes)
        load_one(folder / "seed.keras", tally, "the seed", keras_load)  # it loads: mutations start from a model
        names = sorted(corpus)
        started = time.monotonic()
        while time.monotonic() - started < seconds and (count is None or tally.inputs + tally.models < count):
            if rng.random() < keras_share:
                path = folder / "mutated.keras"
                path.write_bytes(mutate(keras_bytes, rng))
                load_one(path, tally, "keras", keras_load)
                continue
            name = rng.choice(names)
            path = folder / f"m-{name}"
            path.write_bytes(mutate(corpus[name], rng))
            predict_one(path, model, tally, name)
    summary = {key: value for key, value in vars(tally).items()}
    summary |= {"seconds": round(time.monotonic() - started, 1), "seed": seed, "peak_rss_mb": peak_mb()}
    return summary


def peak_mb() -> int:
    """This process's peak resident memory. Linux's VmHWM belongs to the process image; ru_maxrss also
    counts the parent's memory at fork (kept across exec), which is pytest's when a test starts us."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--inputs", type=int, help="stop after this many inputs (the same ones for a given --seed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keras-share", type=float, default=0.1, help="share of the inputs that are .keras files")
    parser.add_argument("--keras-load", action="store_true",
                        help="load the .keras files that pass fmnist's checks with Keras too (imports Keras; slower)")
    parser.add_argument("--one-bomb", action="store_true", help="only the costliest decompression bomb")
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    summary = run(args.seconds, args.seed, args.keras_share, args.keras_load, not args.one_bomb, args.inputs)
    print(json.dumps(summary))
    return 1 if summary["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
