"""The ASGI application: three routes (``/``, ``/health``, ``/predict``) and batched inference on one model.

``/predict`` takes its images from ``uploads`` (read and checked there, off the event loop, within a budget
of bytes held) and builds its answer with ``predict.results``, as ``fmnist predict`` does. Nothing heavier
than routing runs on the event loop. The model runs on its own thread, on all the images waiting at that
moment together (up to ``max_batch``), so concurrent requests share model calls instead of queueing.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import os
from pathlib import Path

import anyio
import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from fmnist.data import CLASS_NAMES
from fmnist.inference import predict
from fmnist.runtime import VERSION, give_back_memory
from fmnist.serve import ServeConfig, uploads
from fmnist.serve.page import page_and_policy

HEADERS = {"x-content-type-options": "nosniff", "cache-control": "no-store"}
RETRY_AFTER = 1  # seconds a client refused for load waits: the bodies held are converted within about that


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

    def warm_up(self, should_stop=lambda: False) -> None:
        """Compile every batch size now, not on the first requests; ``should_stop`` is asked between sizes."""
        for size in self.sizes():
            if should_stop():
                return
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


def busy(reason: str) -> Response:
    """503 with ``Retry-After``, closing the connection: the request's body, if any, is left unread."""
    return JSONResponse({"error": f"busy: {reason}; retry in {RETRY_AFTER} s"}, status_code=503,
                        headers=HEADERS | {"retry-after": str(RETRY_AFTER), "connection": "close"})


def create_app(model, model_file: Path, config: ServeConfig = ServeConfig()) -> Starlette:
    """The application serving ``model`` (from ``fmnist.load_model``; ``model_file`` names it in /health).

    ``app.state.batcher`` runs the model; ``server.serve`` warms it up before it listens (the first
    requests would otherwise wait for the compilation of their batch size)."""
    batcher = Batcher(model, config.max_batch)
    budget = uploads.BodyBudget(config.max_held_bytes)
    page, policy = page_and_policy(config.max_body_bytes)
    state = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        state["conversions"] = anyio.CapacityLimiter(os.cpu_count() or 1)  # CPU-bound: more threads only queue
        state["parsing"] = anyio.CapacityLimiter(1)  # holds the interpreter's lock: one at a time (see uploads)
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
            reading, with_pixels = uploads.options(request)
            size = uploads.declared_size(request, config)
            if not budget.admit(size):
                return busy(f"{budget.held / 2**20:.0f} MB of request bodies are being received or decoded")
            try:
                body = await uploads.read_body(request, config, size)
                items = await uploads.items(request, body, reading, config, state)
            finally:
                body = None  # let go of it before waiting for the model
                if budget.release(size):  # the load is over: hand its memory back, off the event loop
                    asyncio.get_running_loop().run_in_executor(None, give_back_memory)
        except uploads._Refused as refused:
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
    app.state.batcher = batcher
    return app
