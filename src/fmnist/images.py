"""Users' inputs to 28x28 uint8 images that look like Fashion-MNIST: a light item on a dark background.

Accepted: PNG and JPEG files (only those two Pillow decoders are used), folders of them, ``.npy`` arrays
(28x28 or Nx28x28; uint8, or integers/floats within 0..255, rounded), and IDX image files (gzip or not).
Arrays and IDX files are taken as they are; pictures are converted:

1. EXIF orientation applied.
2. To 8-bit grey: 16-bit images scaled (65535 -> 255, never clipped); transparent pixels composited onto
   white, as a page shows them; colour to luminance (ITU-R 601-2: 0.299 R + 0.587 G + 0.114 B).
3. Inversion (``--invert``): Fashion-MNIST items are light on black, while product photos are dark on
   light. ``auto`` inverts when the mean of the outermost ring of pixels is above 127.5 (a light
   background); ``yes`` always inverts, ``no`` never does.
4. Other sizes: the longest side scaled to 28 keeping the aspect ratio (area averaging when shrinking,
   bicubic when enlarging), centred on a black 28x28 canvas.

Every failure is an ``InputError`` naming what is wrong with that one input; the rest go on.
"""

from __future__ import annotations

import dataclasses
import gzip
import warnings
from pathlib import Path

import numpy as np

MAX_PIXELS = 40_000_000  # checked from the header, before any decoding: a decompression bomb costs nothing
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}
OTHER_FORMATS = {b"GIF8": "GIF", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"RIFF": "WebP/RIFF"}
INVERT_CHOICES = ("auto", "yes", "no")


class InputError(Exception):
    pass


@dataclasses.dataclass
class Item:
    input: str  # the path as given (or the file found in a given folder)
    index: int  # position within a multi-image file, else 0
    image: np.ndarray | None  # (28, 28) uint8
    error: str | None = None


def read_inputs(inputs: list[str], invert: str = "auto") -> list[Item]:
    """One Item per image; a bad input becomes one Item with its error instead of stopping the batch."""
    if invert not in INVERT_CHOICES:
        raise ValueError(f"invert must be one of {INVERT_CHOICES}, not {invert!r}")
    items = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES)
            if not files:
                items.append(Item(text, 0, None, "folder holds no .png, .jpg or .jpeg files"))
            for file in files:
                items += _read_one(str(file), invert)
        else:
            items += _read_one(text, invert)
    return items


def _read_one(text: str, invert: str) -> list[Item]:
    try:
        images = read_file(Path(text), invert)
    except InputError as error:
        return [Item(text, 0, None, str(error))]
    return [Item(text, index, image) for index, image in enumerate(images)]


def read_file(path: Path, invert: str = "auto") -> list[np.ndarray]:
    if not path.is_file():
        raise InputError("no such file")
    with open(path, "rb") as handle:
        head = handle.read(16)
    if not head:
        raise InputError("empty file")
    if head.startswith(b"\x93NUMPY"):
        return list(_read_npy(path))
    if head.startswith(b"\x1f\x8b") or head[:4] == b"\x00\x00\x08\x03":
        return list(_read_idx(path))
    kind = next((name for magic, name in SIGNATURES.items() if head.startswith(magic)), None)
    if kind is None:
        other = next((name for magic, name in OTHER_FORMATS.items() if head.startswith(magic)), None)
        found = f"{other}" if other else "not PNG, JPEG, .npy or IDX"
        raise InputError(f"unsupported format ({found}); give PNG, JPEG, .npy or IDX files")
    return [_read_picture(path, kind, invert)]


def _read_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise InputError(".npy holds Python objects; refused (arrays are loaded with allow_pickle=False)") from None
        raise InputError(f"not a readable .npy array ({error})") from None
    except (OSError, EOFError) as error:
        raise InputError(f"not a readable .npy array ({error})") from None
    shape = array.shape
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[1:] != (28, 28) or len(array) == 0:
        raise InputError(f".npy shape {shape}; expected (28, 28) or (N, 28, 28)")
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind not in "iuf":
        raise InputError(f".npy dtype {array.dtype}; expected uint8, integers or floats within 0..255")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise InputError(".npy holds NaN or infinite values")
    if array.min() < 0 or array.max() > 255:
        raise InputError(f".npy values span {array.min()}..{array.max()}; expected 0..255 (raw pixels)")
    return np.rint(array).astype(np.uint8)


def _read_idx(path: Path) -> np.ndarray:
    from fmnist import data
    from fmnist.errors import DataError

    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = data.decompress(path)
        return data.parse_images(path, raw).copy()
    except DataError as error:
        raise InputError(str(error).removeprefix(f"{path}: ")) from None


def _read_picture(path: Path, kind: str, invert: str) -> np.ndarray:
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=[kind]) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise InputError(f"image is {width}x{height} pixels; more than the limit of {MAX_PIXELS:,}")
                image.load()
                grey = _grey(ImageOps.exif_transpose(image))
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InputError(f"refused as a decompression bomb ({error})") from None
    except (OSError, SyntaxError, ValueError) as error:  # Pillow's ways of saying a file is damaged
        raise InputError(f"damaged {kind} file ({error})") from None
    return _fit_to_28(grey, invert)


def _grey(image) -> np.ndarray:
    """8-bit-scale grey values (float64, 0..255) of a decoded Pillow image."""
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode == "I":
        return np.asarray(image, dtype=np.float64) * (255.0 / 65535.0)  # 16-bit: scaled, not clipped
    transparent = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if transparent:
        rgba = image.convert("RGBA")
        page = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(page, rgba)
    return np.asarray(image.convert("L"), dtype=np.float64)


def should_invert(grey: np.ndarray) -> bool:
    """The ``auto`` rule: a light border (mean of the outermost ring above 127.5) means a light background."""
    ring = np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])
    return float(ring.mean()) > 127.5


def _fit_to_28(grey: np.ndarray, invert: str) -> np.ndarray:
    from PIL import Image

    if invert == "yes" or (invert == "auto" and should_invert(grey)):
        grey = 255.0 - grey
    height, width = grey.shape
    if (height, width) != (28, 28):
        scale = 28 / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        method = Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC
        resized = np.asarray(Image.fromarray(grey.astype(np.float32)).resize(size, method))
        canvas = np.zeros((28, 28), np.float64)
        top, left = (28 - size[1]) // 2, (28 - size[0]) // 2
        canvas[top: top + size[1], left: left + size[0]] = resized
        grey = canvas
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)
