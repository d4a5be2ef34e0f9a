"""Whether a PNG or JPEG holds its whole picture, and a decoded picture made cheap to convert.

Pillow decodes a picture whose data end early without a word: a PNG whose compressed rows stop after
10 of 112 rows gives black below them, a JPEG whose scan is cut short (an end marker right after it)
gives grey below, and a JPEG header may claim 6000x6000 pixels over 8x8 worth of data. So:

- PNG: the rows are counted here. The IDAT stream is inflated (streaming, never held) up to the bytes
  the header's size, colour type, bit depth and interlacing need; fewer means the picture is incomplete.
- JPEG: decoding must not depend on what follows each entropy-coded segment. A complete segment ends
  before its marker and libjpeg skips anything between; an incomplete one makes libjpeg fill the missing
  blocks in silence. So the picture is decoded a second time with a few bytes inserted before every
  marker that ends a segment (restart markers too): a complete picture decodes to the same pixels, an
  incomplete one reads those bytes as data and differs. That costs a second decode, which the working
  size below keeps small.
"""

from __future__ import annotations

import math
import zlib

from fmnist.guard import limits

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
# Inserted before the markers that end JPEG entropy-coded segments; no 0xFF byte, so never a marker.
PADDING = bytes((37 * index + 11) % 251 for index in range(32))


def png_problem(payload: bytes) -> str | None:
    """None when the PNG's image data hold every row its header promises; else what is wrong."""
    position, header, compressed = 8, None, []
    while position + 8 <= len(payload):
        length = int.from_bytes(payload[position: position + 4], "big")
        kind = payload[position + 4: position + 8]
        data = payload[position + 8: position + 8 + length]
        if len(data) < length:
            return f"truncated in its {kind.decode('latin-1')!r} chunk"
        if kind == b"IHDR" and length >= 13:
            header = data
        elif kind == b"IDAT":
            compressed.append(data)
        elif kind == b"IEND":
            break
        position += 12 + length
    else:
        return "truncated (no IEND chunk)"
    if header is None:
        return "no IHDR chunk"
    width, height = int.from_bytes(header[:4], "big"), int.from_bytes(header[4:8], "big")
    depth, colour, interlaced = header[8], header[9], header[12]
    if colour not in CHANNELS:
        return f"unknown colour type {colour}"
    bits = CHANNELS[colour] * depth
    if interlaced:
        passes = [(math.ceil((height - y) / dy) if height > y else 0, math.ceil((width - x) / dx) if width > x else 0)
                  for x, y, dx, dy in ADAM7]
    else:
        passes = [(height, width)]
    needed = sum(rows * (1 + math.ceil(columns * bits / 8)) for rows, columns in passes if rows and columns)
    inflated = _inflated_size(b"".join(compressed), needed)
    if isinstance(inflated, str):
        return inflated
    if inflated < needed:
        row = 1 + math.ceil(width * bits / 8)
        where = f"after {inflated // row} of {height} rows" if not interlaced else f"at {inflated:,} of {needed:,} bytes"
        return f"its image data end {where}: incomplete"
    return None


def _inflated_size(stream: bytes, needed: int) -> int | str:
    """How many bytes ``stream`` inflates to, counted up to ``needed + 1`` and never held at once."""
    inflater, total = zlib.decompressobj(), 0
    pending = stream
    try:
        while pending and total <= needed:
            total += len(inflater.decompress(pending, 2**20))
            pending = inflater.unconsumed_tail
            if inflater.eof:
                break
    except zlib.error as error:
        return f"its image data are damaged ({error})"
    return total


def jpeg_padded(payload: bytes) -> bytes | None:
    """``payload`` with ``PADDING`` before every marker that ends an entropy-coded segment; None when the
    file has no scan."""
    pieces, start, position, scans = [], 0, 2, 0
    while position + 4 <= len(payload):
        if payload[position] != 0xFF:  # bytes between segments, which libjpeg skips too
            position = payload.find(b"\xff", position)
            if position < 0:
                break
            continue
        marker = payload[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0xD9:
            break
        if marker in (0x01, *range(0xD0, 0xD8)):
            position += 2
            continue
        position += 2 + int.from_bytes(payload[position + 2: position + 4], "big")
        if marker != 0xDA:
            continue
        scans += 1
        while True:  # the entropy-coded data: up to a marker that is not a stuffed 0xFF00
            found = payload.find(b"\xff", position)
            if found < 0 or found + 1 >= len(payload):
                return None
            following = payload[found + 1]
            if following == 0x00 or following == 0xFF:
                position = found + 1 if following == 0xFF else found + 2
                continue
            pieces += [payload[start:found], PADDING]
            start = position = found
            if not 0xD0 <= following <= 0xD7:
                break
            position += 2
    if not scans:
        return None
    return b"".join(pieces) + payload[start:]


def reduced(image, side: int = limits.WORKING_SIDE):
    """``image`` (decoded) averaged down to at most ``side`` pixels on its longest edge, with its metadata
    (the EXIF orientation is applied after); the image itself when it is not larger."""
    factor = math.ceil(max(image.size) / side)
    if factor <= 1:
        return image
    info = dict(image.info)
    if image.mode in ("P", "PA"):  # palette indices cannot be averaged
        image = image.convert("RGBA" if image.mode == "PA" or "transparency" in info else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")
    small = image.reduce(factor)
    small.info = info
    return small
