"""What ``POST /predict`` receives, read and checked before the model sees it: the query options, the
body (its size limit, its deadline, the bytes held at once) and the images in it (a PNG or JPEG, as the
body or a multipart upload, or a JSON array of raw 28x28 pixels). A request refused here gets its status
and a one-line reason (``_Refused``, which ``app`` sends back as JSON).

Uploads go through the same code as ``fmnist predict``: ``read.read_bytes`` (PNG/JPEG, the pixel
count checked from the header, the dataset's conversion) or ``read.check_pixels`` (raw pixels, the
``.npy`` rules). None of it runs on the event loop: pictures are converted on worker threads, at most one
per core at once; JSON and multipart bodies are parsed on a worker thread, one at a time (``json.loads``
holds the interpreter's lock for all of its 0.3 s on an 8 MB body, so a second parser in parallel would
gain nothing). Parsed on the loop, 120 such bodies kept ``/health`` waiting 28 to 40 s; now at most 0.65 s.

``BodyBudget`` bounds the bytes of request bodies held at once: a request that would pass it gets 503 with
``Retry-After`` before its body is read (190 concurrent 8 MB uploads peaked at 4.5 GB without it, 0.8 GB
with it). Freed bodies stayed in glibc's heaps (the idle server kept 1.6 GB after that load), so large
blocks get their own mappings (``runtime.map_large_blocks``) and, when the last body held is let go after a
large load, ``malloc_trim`` hands the rest back (docs/benchmarks.md has the figures).
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import numpy as np
from python_multipart.multipart import FormParser, FormParserError, parse_options_header
from starlette.requests import Request

from fmnist.errors import InputError, TooLarge, UnsupportedFormat
from fmnist.inputs import read
from fmnist.serve import ServeConfig

QUERY = {"invert": read.INVERT_CHOICES, "conversion": ("dataset", "simple"), "pixels": ("0", "1", "false", "true")}
TRIM_AFTER = 32 * 2**20  # bytes of bodies let go since the last malloc_trim that make the next one worth it


class _Refused(Exception):
    """A request the service will not serve: its status and the one-line reason sent back as JSON.

    Private to this package: ``app`` turns it into the answer, it never leaves the service."""

    def __init__(self, status: int, message: str, close: bool = False):
        super().__init__(message)
        self.status, self.message, self.close = status, message, close


class BodyBudget:
    """The bytes of request bodies held at once (arriving, parsed, decoded), at most ``limit``.

    A request reserves its declared length (the body limit when it declares none) before its body is
    read; one is always admitted when nothing is held, so a single body at the size limit gets through."""

    def __init__(self, limit: int):
        self.limit, self.held, self.let_go = limit, 0, 0

    def admit(self, size: int) -> bool:
        if self.held and self.held + size > self.limit:
            return False
        self.held += size
        return True

    def release(self, size: int) -> bool:
        """Let ``size`` bytes go; True when nothing is held any more after a large load (time to trim)."""
        self.held -= size
        self.let_go += size
        if self.held or self.let_go < TRIM_AFTER:
            return False
        self.let_go = 0
        return True


def options(request: Request) -> tuple[read.Reading, bool]:
    """``?invert=auto|yes|no&conversion=dataset|simple&pixels=1``, as ``fmnist predict``'s options."""
    for key, value in request.query_params.multi_items():
        if key not in QUERY:
            raise _Refused(400, f"unknown query parameter {key!r}; use {', '.join(QUERY)}")
        if value not in QUERY[key]:
            raise _Refused(400, f"{key}={value!r}; choose from {', '.join(QUERY[key])}")
    params = request.query_params
    reading = read.Reading(params.get("invert", "auto"), params.get("conversion", "dataset"))
    return reading, params.get("pixels", "0") in ("1", "true")


def declared_size(request: Request, config: ServeConfig) -> int:
    """The body's declared length, refused (413) when over the limit; the limit when none is declared."""
    declared = request.headers.get("content-length")
    if declared is None:
        return config.max_body_bytes
    if not declared.isdigit():
        raise _Refused(400, f"Content-Length {declared!r} is not a number", close=True)
    if int(declared) > config.max_body_bytes:
        raise _Refused(413, f"body of {int(declared):,} bytes; the limit is {config.max_body_bytes:,}", close=True)
    return int(declared)


async def read_body(request: Request, config: ServeConfig, size: int) -> bytearray:
    """The body (``size`` bytes at most, from ``declared_size``), refused (413) as soon as the bytes received
    pass the limit; 408 when it takes longer than the timeout to arrive. A declared length is filled in
    place: no growing buffer, no copy."""
    body = bytearray(size) if "content-length" in request.headers else bytearray()
    received = 0
    try:
        with anyio.fail_after(config.timeout):
            async for chunk in request.stream():
                if received + len(chunk) > config.max_body_bytes:
                    raise _Refused(413, f"body over the limit of {config.max_body_bytes:,} bytes", close=True)
                body[received: received + len(chunk)] = chunk
                received += len(chunk)
    except TimeoutError:
        raise _Refused(408, f"body not received within {config.timeout:g} s", close=True) from None
    if not received:
        raise _Refused(400, "empty body; send a PNG or JPEG picture, or a JSON array of 28x28 pixels")
    del body[received:]  # a body shorter than declared: the client went away (ClientDisconnect before this)
    return body


async def items(request: Request, body: bytearray, reading, config: ServeConfig, limiters) -> list[read.Item]:
    """The images of a request; every parse and conversion runs on a worker thread (module docstring)."""
    kind = request.headers.get("content-type", "")
    media = kind.split(";")[0].strip().lower()
    if media == "application/json":
        return await anyio.to_thread.run_sync(_json_items, body, config, limiter=limiters["parsing"])
    name = "upload"
    if media == "multipart/form-data":
        name, body = await anyio.to_thread.run_sync(_upload, kind, body, limiter=limiters["parsing"])
    try:
        item = await anyio.to_thread.run_sync(_picture, body, name, reading, config.max_pixels,
                                              limiter=limiters["conversions"])
    except UnsupportedFormat as error:
        looks_json = bytes(body[:64]).lstrip()[:1] in (b"[", b"{") and media != "multipart/form-data"
        hint = "; a JSON array of pixels needs the header Content-Type: application/json" if looks_json else ""
        raise _Refused(415, f"{name}: {error}{hint}") from None
    except TooLarge as error:
        raise _Refused(413, f"{name}: {error}") from None
    except InputError as error:
        raise _Refused(422, f"{name}: {error}") from None
    return [item]


def _picture(body, name: str, reading, max_pixels: int) -> read.Item:
    return read.read_bytes(bytes(body), name, reading, max_pixels)


def _upload(content_type: str, body: bytearray) -> tuple[str, bytearray]:
    """The one file of a multipart/form-data body (the page's, or ``curl -F file=@picture.png``), parsed by
    python-multipart (Starlette's parser, whose async interface would keep the work on the event loop)."""
    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise _Refused(400, "bad multipart upload (no boundary in its Content-Type)")
    files, fields = [], []

    def on_file(file) -> None:
        files.append(file)
        if len(files) > 1:
            raise _Refused(400, "bad multipart upload (more than one file; send one picture per request)")

    def on_field(field) -> None:
        fields.append(field)
        if len(fields) > 8:
            raise _Refused(400, "bad multipart upload (more than 8 fields)")

    config = {"MAX_MEMORY_FILE_SIZE": len(body) + 1, "UPLOAD_ERROR_ON_BAD_CTE": True}  # never a temporary file
    try:
        parser = FormParser("multipart/form-data", on_field, on_file, boundary=boundary, config=config)
        parser.write(body)
        parser.finalize()
    except FormParserError as error:
        raise _Refused(400, f"bad multipart upload ({str(error)[:200]})") from None
    if not files:
        raise _Refused(400, "multipart upload without a file; send the picture as a file field (curl -F file=@x.png)")
    name = Path((files[0].file_name or b"upload").decode("utf-8", "replace")).name[:200] or "upload"
    payload = bytearray(files[0].file_object.getbuffer())
    files[0].close()
    return name, payload


def _json_items(body: bytearray, config: ServeConfig) -> list[read.Item]:
    """A JSON array of 28x28 raw pixels (0..255), or N of them, as ``.npy`` arrays are taken."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as error:  # ValueError covers JSONDecodeError and huge integers
        raise _Refused(400, f"not valid JSON ({str(error).splitlines()[0][:200]})") from None
    if isinstance(value, list) and len(value) > config.max_images and isinstance(value[0], list) \
            and value[0] and isinstance(value[0][0], list):  # refused before NumPy copies it all
        raise _Refused(413, f"{len(value)} images in one request; the limit is {config.max_images}")
    if b'"' in body:  # text among the pixels: NumPy would make each pixel as wide as the longest text (a 128 kB
        # string among 3 x 784 pixels: 1.2 GB from a 134 kB body); pixels are numbers, which hold no quote
        raise _Refused(422, "JSON array dtype text; expected uint8, integers or floats within 0..255")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        raise _Refused(422, "JSON array is ragged; expected 28 rows of 28 pixels (or N such images)") from None
    if array.ndim == 3 and len(array) > config.max_images:
        raise _Refused(413, f"{len(array)} images in one request; the limit is {config.max_images}")
    try:
        pixels = read.check_pixels(array, "JSON array")
    except InputError as error:
        raise _Refused(422, str(error)) from None
    return [read.Item("json", index, image) for index, image in enumerate(pixels)]
