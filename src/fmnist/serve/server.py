"""Running the application with uvicorn: the socket, the warm-up, deadlines, signals and a clean stop.

``serve`` owns SIGINT and SIGTERM from its first line to its last, so a signal at any moment (while the
model warms up, while serving, during the stop) only records itself: the first stops the warm-up after
the batch size compiling now, or makes uvicorn stop accepting and finish the requests in flight (for at
most ``timeout`` seconds); a second one stops without waiting for them. ``serve`` then raises
``Interrupted`` (exit 130 or 143, one line). uvicorn's own signal handling is switched off: it re-raises
the signal after its stop, which reached our handler in the middle of asyncio's teardown (a 20-line
traceback, exit 2, measured before this change).

uvicorn times out idle keep-alive connections but not a client that connects and then sends its
headers slowly or never; ``HeaderDeadline`` (uvicorn's own HTTP/1.1 protocol plus one timer) closes such
a connection after ``timeout`` seconds. Bodies get the same deadline in the application. A response
sent before its request's body was read (413, 503) is followed by a lingering close, as Apache and nginx
do: the server stops sending, then reads and discards what the client still sends (for at most
``timeout`` seconds) before closing. Closing at once, with unread bytes, makes the kernel reset the
connection, and the client's kernel then drops the answer it had received but not yet read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import os
import signal
import socket
import threading
from pathlib import Path

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from fmnist import runtime
from fmnist.errors import Interrupted, UsageError
from fmnist.inference.load import load_model
from fmnist.runtime import map_large_blocks
from fmnist.serve import ServeConfig
from fmnist.serve.app import busy, create_app

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Lingering:
    """A transport whose ``close`` lingers while the request's body is still arriving (see above)."""

    def __init__(self, transport, protocol, seconds: float):
        self._transport, self._protocol, self._seconds = transport, protocol, seconds
        self.lingering = False
        self._timer = None

    def __getattr__(self, name):
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def close(self) -> None:
        if self.lingering:
            return
        cycle = self._protocol.cycle
        unread = (cycle is not None and cycle.more_body and not cycle.disconnected
                  or self._protocol.conn.their_state is h11.ERROR)  # h11 refused the request: its rest is unread
        if not unread or self._protocol.stopping or self._transport.is_closing() or not self._transport.can_write_eof():
            self._transport.close()
            return
        try:
            self._transport.write_eof()  # the answer, then the end of our side: the client reads it all
        except OSError:  # the client is gone already
            self._transport.close()
            return
        self.lingering = True
        self._transport.resume_reading()  # flow control paused it while the body waited
        self._timer = self._protocol.loop.call_later(self._seconds, self.hang_up)

    def hang_up(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport.close()


class HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol; a connection still waiting for a request's complete headers
    ``header_timeout`` seconds after it opened, or after the previous response, is closed; a close
    with the request's body unread lingers (``_Lingering``). A request arriving while more than
    ``max_connections`` are open gets ``busy`` (503, Retry-After), except ``GET /health``, which costs
    nothing more than the connection it came on; uvicorn's own limit counts the new connection in
    (200 meant 199 others) and answers without Retry-After."""

    header_timeout = 10.0
    max_connections = 200
    stopping = False  # set when the server stops: then no close lingers

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.app = functools.partial(self._limited, self.app)

    async def _limited(self, app, scope, receive, send) -> None:
        if len(self.connections) > self.max_connections and scope["type"] == "http" and scope["path"] != "/health":
            app = busy(f"over {self.max_connections} connections at once")
        await app(scope, receive, send)

    def connection_made(self, transport) -> None:
        super().connection_made(_Lingering(transport, self, self.header_timeout))
        self._deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def data_received(self, data: bytes) -> None:
        if not self.transport.lingering:  # while lingering, the rest of an unwanted body is dropped
            super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE and self._deadline is not None:  # the headers are in
            self._deadline.cancel()
            self._deadline = None

    def on_response_complete(self) -> None:
        if self._deadline is None:  # the next request's headers get their own deadline
            self._deadline = self.loop.call_later(self.header_timeout, self._too_slow)
        super().on_response_complete()

    def connection_lost(self, exc) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.transport.hang_up()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's 400 for a request h11 refuses; an answer under way is cut instead (a bad chunk in a
        request already answered), and a HEAD request, whose 400 h11 cannot frame, is closed."""
        if self.cycle is not None:  # the application's answer, if it comes, goes nowhere
            self.cycle.disconnected = True
            self.cycle.message_event.set()
            if self.cycle.response_started:
                self.transport.close()
                return
        try:
            super().send_400_response(msg)
        except h11.LocalProtocolError:
            self.transport.close()

    def _too_slow(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.hang_up()


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
