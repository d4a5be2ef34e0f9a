"""``fmnist serve``: a saved model behind HTTP, on Starlette (ASGI) and uvicorn.

``POST /predict`` takes a PNG or JPEG (the request body, or a multipart upload) or a JSON array of raw
28x28 pixels and answers what ``fmnist predict --format json`` prints; ``GET /health`` says the service is
up and which model it serves; ``GET /`` is a page where a person drops a picture and sees what the model
saw (the 28x28 image), the class and the top 3. ``app`` builds the application (routes, batched
inference), ``uploads`` reads and checks what a request sends, ``page`` is the page at ``/``, ``server``
runs it all with uvicorn and ``connections`` holds each connection's deadlines and limits.

Importing this package imports nothing heavy: the settings live here, the web stack in the modules.
"""

from __future__ import annotations

import dataclasses

from fmnist.errors import UsageError


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """How the service listens and what it accepts; every limit is checked before any decoding."""

    host: str = "127.0.0.1"  # loopback: reachable from this machine only, unless asked otherwise
    port: int = 8000  # uvicorn's usual port; 0 picks a free one (printed at start)
    max_body_bytes: int = 8 * 2**20  # a phone photo as JPEG is 2-6 MB; larger bodies get 413 unread
    # Bytes of request bodies held at once (arriving, parsed, decoded): 8 at the body limit. Conversions run
    # one per core, so more would only wait, in memory; beyond it a request gets 503 + Retry-After, unread.
    max_held_bytes: int = 64 * 2**20
    # Pixels of an uploaded picture, read from its header before decoding (413 beyond): a 16-megapixel photo
    # passes; the conversion holds about 20 bytes per pixel, so this bounds a request's memory near 320 MB.
    max_pixels: int = 16_000_000
    max_images: int = 256  # images in one JSON request (N x 28 x 28)
    timeout: float = 10.0  # seconds for a request's headers, and for its body: slow or abandoned clients
    keep_alive: float = 5.0  # seconds an idle keep-alive connection is kept (uvicorn's default)
    max_connections: int = 200  # connections at once, idle ones included; a request on one more gets 503
    max_batch: int = 64  # images per model call: requests waiting together share one call
    access_log: bool = False  # one line per request on stderr (uvicorn's access log)

    def __post_init__(self):
        for name in ("max_body_bytes", "max_held_bytes", "max_pixels", "max_images", "max_connections", "max_batch"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} {getattr(self, name)}: must be at least 1", name)
        if not 0 <= self.port <= 65535:
            raise UsageError(f"port {self.port}: must be from 0 to 65535", "port")
        if not self.timeout > 0:
            raise UsageError(f"timeout {self.timeout}: must be positive", "timeout")
