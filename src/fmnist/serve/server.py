"""Running the application with uvicorn: the socket, the warm-up, signals and a clean stop.

``serve`` owns SIGINT and SIGTERM from its first line to its last, so a signal at any moment (while the
model warms up, while serving, during the stop) only records itself: the first stops the warm-up after
the batch size compiling now, or makes uvicorn stop accepting and finish the requests in flight (for at
most ``timeout`` seconds); a second one stops without waiting for them. ``serve`` then raises
``Interrupted`` (exit 130 or 143, one line). uvicorn's own signal handling is switched off: it re-raises
the signal after its stop, which reached our handler in the middle of asyncio's teardown (a 20-line
traceback, exit 2, measured before this change). Each connection's deadlines and lingering close are in
``connections``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import threading
from pathlib import Path

import uvicorn

from fmnist import runtime
from fmnist.errors import Interrupted, UsageError
from fmnist.inference.load import load_model
from fmnist.runtime import map_large_blocks
from fmnist.serve import ServeConfig
from fmnist.serve.app import create_app
from fmnist.serve.connections import HeaderDeadline

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handling (``_Signals`` tells it to stop), and a stop that
    closes lingering connections at once, and everything on a second signal."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield

    async def shutdown(self, sockets=None) -> None:
        self.config.http_protocol_class.stopping = True
        self._hang_up(lambda connection: connection.transport.lingering)
        logging.getLogger("uvicorn.error").addFilter(_quiet_cancellations)
        await super().shutdown(sockets)
        if self.force_exit:  # requests in flight are abandoned: the process is about to exit
            self._hang_up(lambda connection: True)
        if not self.lifespan.shutdown_event.is_set():  # uvicorn skips it on a second signal; without it,
            await self.lifespan.shutdown()  # asyncio cancels the application's lifespan: a logged traceback

    def _hang_up(self, which) -> None:
        for connection in list(self.server_state.connections):
            if which(connection):
                connection.transport.hang_up()


def _quiet_cancellations(record: logging.LogRecord) -> bool:
    """Requests cancelled by a forced stop are not errors of the application: no traceback for them."""
    return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


class _Signals:
    """SIGINT and SIGTERM recorded, never raised, while the ``with`` block runs; ``stop`` is told of each.

    Python runs a handler between bytecodes, so two signals arriving while another thread holds the
    interpreter (``json.loads`` on a large body) reach it as one; the C handler also writes a byte per
    signal to the wakeup descriptor, so the handler counts those (as ``runtime.stop_on_signals`` does)."""

    def __init__(self):
        self.received: list[int] = []
        self.server: _Server | None = None

    def __enter__(self):
        self._previous = {}
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            return self
        self._reader, self._writer = os.pipe()
        for descriptor in (self._reader, self._writer):
            os.set_blocking(descriptor, False)
        self._previous_fd = signal.set_wakeup_fd(self._writer, warn_on_full_buffer=False)
        self._previous = {number: signal.signal(number, self._handle) for number in SIGNALS}
        return self

    def _handle(self, number, frame) -> None:  # may run inside asyncio's internals: records, never raises
        try:
            arrived = [n for n in os.read(self._reader, 1024) if n in SIGNALS]
        except OSError:
            arrived = []
        self.received += arrived or [number]
        self.tell()

    def tell(self) -> None:
        """Pass what arrived on to the server: the first signal stops it, a second one at once."""
        if self.server is not None and self.received:
            self.server.should_exit = True
            self.server.force_exit = len(self.received) > 1

    def __exit__(self, *exc) -> None:
        if not self._previous:
            return
        for number, handler in self._previous.items():
            # A process stopping for a signal has nothing left to stop: one more during its exit (printing,
            # JAX's teardown) must not end it with a traceback or another status.
            signal.signal(number, signal.SIG_IGN if self.received and runtime.PROCESS_ENTRY else handler)
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._reader)
        os.close(self._writer)


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (0: a free port); UsageError naming the setting if not."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, protocol)
    except (OSError, UnicodeError) as error:
        raise UsageError(f"host {host}: cannot be used ({getattr(error, 'strerror', None) or error})", "host") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise UsageError(f"host {host}, port {port}: cannot listen there ({error.strerror or error})", "host") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(model, model_file: Path, config: ServeConfig = ServeConfig(), announce=print) -> None:
    """Serve ``model`` until SIGINT or SIGTERM, then raise ``Interrupted`` naming the first signal.

    ``model`` is a loaded model, or None to load ``model_file`` here, with the signals already owned: a
    signal then lets the loading finish instead of interrupting an import (an interrupted import of
    JAX ended the process with a segmentation fault or a hang in 2 of 4 tries). ``announce`` gets the
    address once the service answers (after the model is warmed up)."""
    with _Signals() as signals, contextlib.closing(bind(config.host, config.port)) as sock:
        # bound before loading, so that a port in use is said at once; listening only once warm
        url = url_of(sock)
        if model is None:
            model = load_model(model_file)
        app = create_app(model, model_file, config)
        map_large_blocks()
        # python-multipart logs why an upload is malformed; the client gets that reason as a 400, and a
        # client must not be able to write lines to the server's stderr
        logging.getLogger("python_multipart").addHandler(logging.NullHandler())
        logging.getLogger("python_multipart").propagate = False
        protocol = type("Protocol", (HeaderDeadline,), {"header_timeout": config.timeout,
                                                        "max_connections": config.max_connections})
        server = signals.server = _Server(uvicorn.Config(
            app, http=protocol, lifespan="on", access_log=config.access_log,
            log_level="info" if config.access_log else "warning", timeout_keep_alive=int(max(1, config.keep_alive)),
            server_header=False, timeout_graceful_shutdown=config.timeout,
        ))
        signals.tell()  # a signal that came while loading
        announced = []
        asyncio.run(_run(server, sock, app.state.batcher, signals.received, lambda: announced.append(announce(url))))
    if signals.received:
        raise Interrupted(signals.received[0], "while serving" if announced else "during start-up", None, resumable=False)
    raise UsageError(f"host {config.host}, port {config.port}: the server did not start", "host")


async def _run(server: _Server, sock: socket.socket, batcher, received: list, announce) -> None:
    """Warm the model up (stopping between batch sizes on a signal), then serve until stopped."""
    await asyncio.get_running_loop().run_in_executor(batcher.thread, batcher.warm_up, lambda: bool(received))
    if received:
        return
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if server.started and not server.should_exit:
        announce()
    await task
