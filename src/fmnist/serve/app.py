"""The ASGI application: three routes, the input rules, and batched inference on one model.

Uploads go through the same code as ``fmnist predict``: ``read.read_bytes`` (PNG/JPEG, the pixel
count checked from the header, the dataset's conversion) or ``read.check_pixels`` (raw pixels, the
``.npy`` rules), and the answer is built by ``predict.results``. Pictures are converted on worker
threads, at most one per core at once; the model runs on its own thread, on all the images waiting at
that moment together (up to ``max_batch``), so concurrent requests share model calls instead of queueing.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import json
import os
from pathlib import Path

import anyio
import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from fmnist.data import CLASS_NAMES
from fmnist.errors import InputError, TooLarge, UnsupportedFormat
from fmnist.inference import predict
from fmnist.inputs import read
from fmnist.runtime import VERSION
from fmnist.serve import ServeConfig
from fmnist.serve.page import page_and_policy

QUERY = {"invert": read.INVERT_CHOICES, "conversion": ("dataset", "simple"), "pixels": ("0", "1", "false", "true")}
HEADERS = {"x-content-type-options": "nosniff", "cache-control": "no-store"}


class _Refused(Exception):
    """A request the service will not serve: its status and the one-line reason sent back as JSON."""

    def __init__(self, status: int, message: str, close: bool = False):
        super().__init__(message)
        self.status, self.message, self.close = status, message, close


class Batcher:
    """The model on one thread; every request waiting while it runs joins its next call.

    Keras compiles a program per batch shape, so batches are padded to a power of two (1, 2, 4, …,
    ``max_batch``): a handful of shapes, all compiled by ``warm_up`` before the first request."""

    def __init__(self, model, max_batch: int):
        self.model, self.max_batch = model, max_batch
        self.thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fmnist-model")
        self.pending: collections.deque = collections.deque()  # (images, future) in arrival order
        self.wake: asyncio.Event | None = None

    def sizes(self) -> list[int]:
        sizes = [1]
        while sizes[-1] < self.max_batch:
            sizes.append(min(2 * sizes[-1], self.max_batch))
        return sizes

    def run_model(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for ``batch``, in model calls of the warmed-up sizes."""
        rows = []
        for start in range(0, len(batch), self.max_batch):
            part = batch[start: start + self.max_batch]
            padded = np.zeros((next(s for s in self.sizes() if s >= len(part)), 28, 28), np.uint8)
            padded[: len(part)] = part
            rows.append(np.asarray(self.model.predict_on_batch(padded))[: len(part)])
        return np.concatenate(rows)

    def warm_up(self) -> None:
        for size in self.sizes():
            self.run_model(np.zeros((size, 28, 28), np.uint8))

    def start(self) -> asyncio.Task:
        self.wake = asyncio.Event()
        return asyncio.create_task(self.run())

    async def probabilities(self, batch: np.ndarray) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        self.pending.append((batch, future))
        self.wake.set()
        return await future

    async def run(self) -> None:
        """Serve the queue until cancelled (``start`` creates this task)."""
        loop = asyncio.get_running_loop()
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.pending:
                waiting, count = [], 0
                while self.pending and (not waiting or count + len(self.pending[0][0]) <= self.max_batch):
                    waiting.append(self.pending.popleft())
                    count += len(waiting[-1][0])
                waiting = [(batch, future) for batch, future in waiting if not future.done()]  # clients gone
                if waiting:
                    await self._answer(loop, waiting)

    async def _answer(self, loop, waiting: list) -> None:
        try:
            rows = await loop.run_in_executor(self.thread, self.run_model, np.concatenate([b for b, _ in waiting]))
        except Exception as error:  # these requests fail with a 500; the service goes on
            for _, future in waiting:
                if not future.done():
                    future.set_exception(error)
            return
        start = 0
        for batch, future in waiting:
            if not future.done():
                future.set_result(rows[start: start + len(batch)])
            start += len(batch)


def create_app(model, model_file: Path, config: ServeConfig = ServeConfig()) -> Starlette:
    """The application serving ``model`` (from ``fmnist.load_model``; ``model_file`` names it in /health)."""
    batcher = Batcher(model, config.max_batch)
    page, policy = page_and_policy(config.max_body_bytes)
    state = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await asyncio.get_running_loop().run_in_executor(batcher.thread, batcher.warm_up)
        state["conversions"] = anyio.CapacityLimiter(os.cpu_count() or 1)  # CPU-bound: more threads only queue
        task = batcher.start()
        try:
            yield
        finally:
            task.cancel()
            batcher.thread.shutdown(wait=False)

    async def home(request: Request) -> Response:
        return HTMLResponse(page, headers=HEADERS | {"content-security-policy": policy})

    async def health(request: Request) -> Response:
        runtime = getattr(model, "runtime", None) or f"keras ({os.environ.get('KERAS_BACKEND', 'jax')})"
        return JSONResponse({"status": "ok", "model": Path(model_file).name, "runtime": runtime,
                             "classes": list(CLASS_NAMES), "fmnist": VERSION}, headers=HEADERS)

    async def predict_route(request: Request) -> Response:
        try:
            reading, with_pixels = _options(request)
            body = await _read_body(request, config)
            items = await _items(request, body, reading, config, state["conversions"])
        except _Refused as refused:
            headers = HEADERS | ({"connection": "close"} if refused.close else {})
            return JSONResponse({"error": refused.message}, status_code=refused.status, headers=headers)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is listening any more
        rows = await batcher.probabilities(np.stack([item.image for item in items]))
        answers = predict.results(items, rows)
        if with_pixels:  # the 28x28 image the model received, for the page to draw
            for answer, item in zip(answers, items):
                answer["pixels"] = item.image.tolist()
        return JSONResponse(answers, headers=HEADERS)

    async def error(request: Request, exception: Exception) -> Response:
        if isinstance(exception, HTTPException):
            return JSONResponse({"error": exception.detail}, status_code=exception.status_code, headers=HEADERS)
        return JSONResponse({"error": f"internal error ({type(exception).__name__})"}, status_code=500,
                            headers=HEADERS)

    routes = [Route("/", home, methods=["GET"]), Route("/health", health, methods=["GET"]),
              Route("/predict", predict_route, methods=["POST"])]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: error, Exception: error})
    app.router.redirect_slashes = False  # its redirect would be built from the client's Host header: 404 instead
    return app


def _options(request: Request) -> tuple[read.Reading, bool]:
    """``?invert=auto|yes|no&conversion=dataset|simple&pixels=1``, as ``fmnist predict``'s options."""
    for key, value in request.query_params.multi_items():
        if key not in QUERY:
            raise _Refused(400, f"unknown query parameter {key!r}; use {', '.join(QUERY)}")
        if value not in QUERY[key]:
            raise _Refused(400, f"{key}={value!r}; choose from {', '.join(QUERY[key])}")
    params = request.query_params
    reading = read.Reading(params.get("invert", "auto"), params.get("conversion", "dataset"))
    return reading, params.get("pixels", "0") in ("1", "true")


async def _read_body(request: Request, config: ServeConfig) -> bytes:
    """The body, refused (413) before it is read when its declared length is too large, or as soon as the
    bytes received pass the limit; 408 when it takes longer than the timeout to arrive."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise _Refused(400, f"Content-Length {declared!r} is not a number", close=True)
        if int(declared) > config.max_body_bytes:
            raise _Refused(413, f"body of {int(declared):,} bytes; the limit is {config.max_body_bytes:,}", close=True)
    body = bytearray()
    try:
        with anyio.fail_after(config.timeout):
            async for chunk in request.stream():
                body += chunk
                if len(body) > config.max_body_bytes:
                    raise _Refused(413, f"body over the limit of {config.max_body_bytes:,} bytes", close=True)
    except TimeoutError:
        raise _Refused(408, f"body not received within {config.timeout:g} s", close=True) from None
    if not body:
        raise _Refused(400, "empty body; send a PNG or JPEG picture, or a JSON array of 28x28 pixels")
    return bytes(body)


async def _items(request: Request, body: bytes, reading, config: ServeConfig, limiter) -> list[read.Item]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        return _json_items(body, config)
    name = "upload"
    if kind == "multipart/form-data":
        name, body = await _upload(request, body)
    try:
        item = await anyio.to_thread.run_sync(read.read_bytes, body, name, reading, config.max_pixels, limiter=limiter)
    except UnsupportedFormat as error:
        raise _Refused(415, f"{name}: {error}") from None
    except TooLarge as error:
        raise _Refused(413, f"{name}: {error}") from None
    except InputError as error:
        raise _Refused(422, f"{name}: {error}") from None
    return [item]


async def _upload(request: Request, body: bytes) -> tuple[str, bytes]:
    """The one file of a multipart/form-data body (the page's, or ``curl -F file=@picture.png``)."""
    async def chunks():
        yield body

    try:
        form = await MultiPartParser(request.headers, chunks(), max_files=1, max_fields=8, max_part_size=4096).parse()
    except MultiPartException as error:
        raise _Refused(400, f"bad multipart upload ({error.message})") from None
    try:
        files = [value for _, value in form.multi_items() if not isinstance(value, str)]
        if not files:
            raise _Refused(400, "multipart upload without a file; send the picture as a file field (curl -F file=@x.png)")
        name = Path(files[0].filename or "upload").name[:200] or "upload"
        return name, await files[0].read()
    finally:
        await form.close()  # the parser's spooled temporary files


def _json_items(body: bytes, config: ServeConfig) -> list[read.Item]:
    """A JSON array of 28x28 raw pixels (0..255), or N of them, as ``.npy`` arrays are taken."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as error:  # ValueError covers JSONDecodeError and huge integers
        raise _Refused(400, f"not valid JSON ({str(error).splitlines()[0][:200]})") from None
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
