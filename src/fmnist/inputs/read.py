"""Users' inputs to 28x28 uint8 images that look like Fashion-MNIST: a light item on a dark background.

Accepted: PNG and JPEG files (only those two Pillow decoders are used), folders of them, ``.npy`` arrays
(28x28 or Nx28x28; uint8, or integers/floats within 0..255, rounded), and IDX image files (gzip or not).
Arrays and IDX files are taken as they are. Pictures are decoded, turned upright by their EXIF
orientation, read as a page shows them (16-bit scaled to 8 bits, never clipped; transparency on
white; colour to ITU-R 601-2 luminance), then converted by ``fmnist.inputs.convert``: the dataset's own
conversion by default, or the simple one ``predict`` used before.

Every failure is an ``InputError`` naming what is wrong with that one input; the rest go on.
``read_bytes`` takes a picture already in memory (an upload to ``fmnist serve``) through the same checks
and conversion, and ``check_pixels`` raw arrays (a JSON upload) through the same rules as ``.npy`` files.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np

from fmnist import data
from fmnist.errors import DataError, InputError, TooLarge, UnsupportedFormat
from fmnist.guard import limits, picture_checks, safe_files
from fmnist.inputs import convert

MAX_PIXELS = limits.MAX_PIXELS  # checked from the header, before any decoding: a decompression bomb costs nothing
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}
OTHER_FORMATS = {b"GIF8": "GIF", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"RIFF": "WebP/RIFF"}
INVERT_CHOICES = ("auto", "yes", "no")
PREVIEW_SIZE = 96  # pixels on the longest side of the thumbnail kept for the contact sheet


@dataclasses.dataclass
class Item:
    input: str  # the path as given (or the file found in a given folder)
    index: int  # position within a multi-image file, else 0
    image: np.ndarray | None  # (28, 28) uint8
    error: str | None = None
    warning: str | None = None  # the conversion's doubts, e.g. low contrast ("; " between several)
    preview: np.ndarray | None = None  # a small RGB copy of the picture as given, when asked for
    separated: np.ndarray | None = None  # and of the product apart and upright, when the conversion did that
    turned: float = 0.0  # degrees the conversion turned the picture to undo a camera tilt


@dataclasses.dataclass(frozen=True)
class Reading:
    """How pictures are converted (arrays and IDX files are taken as they are)."""

    invert: str = "auto"  # "auto": decided by the background; "yes" / "no" force it
    conversion: str = "dataset"  # a name in convert.CONVERSIONS
    options: convert.DatasetOptions = convert.DatasetOptions()
    previews: int = 0  # keep a thumbnail of the first this many inputs' pictures (the contact sheet's)

    def __post_init__(self):
        if self.invert not in INVERT_CHOICES:
            raise ValueError(f"invert must be one of {INVERT_CHOICES}, not {self.invert!r}")
        if self.conversion not in convert.CONVERSIONS:
            raise ValueError(f"conversion must be one of {convert.CONVERSIONS}, not {self.conversion!r}")


def read_inputs(inputs: list[str], invert: str = "auto", conversion: str = "dataset", **more) -> list[Item]:
    """One Item per image; a bad input becomes one Item with its error instead of stopping the batch.

    ``more`` takes the other fields of ``Reading`` (``options``, ``previews``)."""
    reading = Reading(invert, conversion, **more)
    items = []
    for text in inputs:
        path = Path(text)
        if not _is_folder(path):
            items += _read_one(text, reading, len(items))
            continue
        try:  # a folder's pictures, and whatever else is named like one (its row says what it is)
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in PICTURE_SUFFIXES and not _is_folder(p))
        except OSError as error:
            items.append(Item(text, 0, None, safe_files.reason(error)))
            continue
        if not files:
            items.append(Item(text, 0, None, "folder holds no .png, .jpg or .jpeg files"))
        for file in files:
            items += _read_one(str(file), reading, len(items))
    return items


def _is_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (OSError, ValueError):  # unreadable or absent: read_file says which
        return False


def _read_one(text: str, reading: Reading, so_far: int) -> list[Item]:
    try:
        found = read_file(Path(text), dataclasses.replace(reading, previews=int(so_far < reading.previews)))
    except InputError as error:
        return [Item(text, 0, None, str(error))]
    except ValueError as error:  # an embedded NUL byte in the name
        return [Item(text, 0, None, f"cannot read ({error})")]
    if not found:  # every input gets a row
        return [Item(text, 0, None, "holds no images (0 of shape 28x28)")]
    return [dataclasses.replace(item, input=text, index=index) for index, item in enumerate(found)]


def read_file(path: Path, reading: Reading = Reading()) -> list[Item]:
    payload = safe_files.read_input(path)
    if not payload:
        raise InputError("empty file")
    head = payload[:16]
    if head.startswith(b"\x93NUMPY"):
        return [Item(str(path), 0, image) for image in _read_npy(payload)]
    if head.startswith(b"\x1f\x8b") or head[:4] == b"\x00\x00\x08\x03":
        return [Item(str(path), 0, image) for image in _read_idx(path, payload)]
    kind = picture_kind(head, "PNG, JPEG, .npy or IDX", "PNG, JPEG, .npy or IDX files")
    return [_read_picture(payload, str(path), kind, reading)]


def read_bytes(payload: bytes, name: str, reading: Reading = Reading(), max_pixels: int = MAX_PIXELS) -> Item:
    """One picture held in memory (PNG or JPEG bytes), converted exactly as ``read_file`` converts a file.

    The signature picks the decoder (never the name or a declared type); the pixel count is checked from
    the header before decoding. Raises ``UnsupportedFormat``, ``TooLarge`` or ``InputError``."""
    if not payload:
        raise InputError("empty file")
    kind = picture_kind(payload[:16], "PNG or JPEG", "a PNG or JPEG picture")
    return _read_picture(payload, name, kind, reading, max_pixels)


def picture_kind(head: bytes, accepted: str, wanted: str) -> str:
    """"PNG" or "JPEG" from a file's first bytes; ``UnsupportedFormat`` naming what it is otherwise."""
    kind = next((name for magic, name in SIGNATURES.items() if head.startswith(magic)), None)
    if kind is None:
        other = next((name for magic, name in OTHER_FORMATS.items() if head.startswith(magic)), None)
        raise UnsupportedFormat(f"unsupported format ({other or 'not ' + accepted}); give {wanted}")
    return kind


def check_pixels(array: np.ndarray, what: str) -> np.ndarray:
    """Raw pixels as (N, 28, 28) uint8: uint8 as they are, integers or finite floats within 0..255 rounded.

    ``what`` names the source in the messages (".npy", "JSON array")."""
    shape = array.shape
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[1:] != (28, 28) or len(array) == 0:
        raise InputError(f"{what} shape {shape}; expected (28, 28) or (N, 28, 28)")
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind not in "iuf":
        raise InputError(f"{what} dtype {array.dtype}; expected uint8, integers or floats within 0..255")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise InputError(f"{what} holds NaN or infinite values")
    if array.min() < 0 or array.max() > 255:
        raise InputError(f"{what} values span {array.min()}..{array.max()}; expected 0..255 (raw pixels)")
    if array.dtype.kind == "f" and 0 < array.max() <= 1:
        # x / 255, what the tutorial's users hold: rounded, it would be a black image, predicted confidently
        raise InputError(f"{what} values span {array.min():g}..{array.max():g}: scaled pixels (x / 255?); give raw "
                         "0..255 pixels (multiply by 255): the model normalizes them itself")
    return np.rint(array).astype(np.uint8)


def _read_npy(payload: bytes) -> np.ndarray:
    return check_pixels(safe_files.parse_npy(payload), ".npy")


def _read_idx(path: Path, payload: bytes) -> np.ndarray:
    try:
        raw = safe_files.gunzip(payload) if payload[:2] == b"\x1f\x8b" else payload
        return data.parse_images(path, raw).copy()
    except DataError as error:
        raise InputError(str(error).removeprefix(f"{path}: ")) from None


# Pillow's ways of saying a file is damaged; the others (struct.error, IndexError, ...) come from its
# metadata parsers (EXIF, ICC) on damaged files.
DAMAGED = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, ZeroDivisionError,
           OverflowError, RecursionError)


def _read_picture(payload: bytes, name: str, kind: str, reading: Reading, max_pixels: int = MAX_PIXELS) -> Item:
    """``payload``: the bytes of a ``kind`` picture."""
    import struct

    from PIL import Image

    try:
        with warnings.catch_warnings(record=True) as noted:  # Pillow's metadata complaints go to the row
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            upright = _decode(payload, kind, max_pixels)
            converted = convert.convert(upright, reading.conversion, reading.invert, reading.options)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise TooLarge(f"refused as a decompression bomb ({error})") from None
    except MemoryError:
        raise TooLarge("refused: decoding it needs more memory than there is") from None
    except (*DAMAGED, struct.error) as error:
        words = str(error).splitlines()[0] if str(error) else type(error).__name__
        words = re.sub(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>", "", words)  # Pillow names its buffer's repr
        raise InputError(f"damaged {kind} file ({words})") from None
    preview = separated = None
    if reading.previews:
        preview = _thumbnail(convert.colour(upright))
        separated = None if converted.separated is None else _thumbnail(converted.separated)
    metadata = sorted({str(warning.message).split(".")[0] for warning in noted if "PIL" in warning.filename})
    notes = converted.warnings + [f"damaged metadata ignored ({text})" for text in metadata]
    return Item(name, 0, converted.image, None, "; ".join(notes) or None, preview, separated, converted.turned)


def _thumbnail(picture) -> np.ndarray:
    from PIL import Image

    picture = picture.copy()
    picture.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE), Image.Resampling.BOX)
    return np.asarray(picture)


def _decode(payload: bytes, kind: str, max_pixels: int):
    """The whole picture, upright, at most ``limits.WORKING_SIDE`` on its longest side; ``TooLarge`` or
    ``InputError`` when its header claims too much or its data hold less than the header promises."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(payload), formats=[kind]) as image:
        width, height = image.size
        if width * height > max_pixels:
            raise TooLarge(f"image is {width}x{height} pixels; more than the limit of {max_pixels:,}")
        problem = picture_checks.png_problem(payload) if kind == "PNG" else None
        if problem:
            raise InputError(f"damaged PNG file ({problem})")
        scale = limits.WORKING_SIDE / max(width, height, 1)
        draft = (max(1, int(width * scale)), max(1, int(height * scale))) if scale < 1 else None
        if kind == "JPEG" and draft:
            image.draft(image.mode, draft)  # libjpeg decodes at 1/2, 1/4 or 1/8 scale: never the full size
        image.load()
        if kind == "JPEG" and not _same_jpeg(image, payload, draft):
            raise InputError("damaged JPEG file (its scan data end early: the picture is incomplete)")
        return ImageOps.exif_transpose(picture_checks.reduced(image))


def _same_jpeg(image, payload: bytes, draft) -> bool:
    """Whether the JPEG decodes to the same pixels with bytes inserted after each entropy-coded segment
    (picture_checks): it does exactly when no segment ended before its last block."""
    from PIL import Image

    padded = picture_checks.jpeg_padded(payload)
    if padded is None:
        return False
    try:
        with Image.open(io.BytesIO(padded), formats=["JPEG"]) as again:
            if draft:
                again.draft(image.mode, draft)
            again.load()
            return again.size == image.size and np.array_equal(np.asarray(again), np.asarray(image))
    except DAMAGED:
        return False
