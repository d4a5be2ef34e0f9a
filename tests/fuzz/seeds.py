"""The valid inputs mutations start from: small pictures of every kind ``fmnist predict`` reads (PNG in
seven flavours, JPEG in four, .npy, IDX raw and gzip), a ``.keras`` archive as Keras 3 writes it (made
without importing Keras) and the members of a small ``checkpoint.npz``; and the
PNG writers (chunks, Adam7 interlacing, one-colour decompression bombs) that tests/guard reuses.
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import zipfile
import zlib

import numpy as np

ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


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


def npz_seed() -> dict[str, bytes]:
    """The members of a small checkpoint.npz as ``np.savez`` writes them."""
    arrays = {"meta": np.array(json.dumps({"epoch": 1, "history": [], "run_id": "fuzz"})),
              "trainable_0": np.random.default_rng(2).normal(size=(784, 10)).astype("f4"),
              "trainable_1": np.zeros(10, "f4"), "optimizer_0": np.array(3, "i8")}
    members = {}
    for name, array in arrays.items():
        buffer = io.BytesIO()
        np.save(buffer, array)
        members[f"{name}.npy"] = buffer.getvalue()
    return members
