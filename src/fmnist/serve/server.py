"""Running the application with uvicorn: the socket, a deadline for request headers, a clean stop.

uvicorn times out idle keep-alive connections but not a client that connects and then sends its
headers slowly or never; ``HeaderDeadline`` (uvicorn's own HTTP/1.1 protocol plus one timer) closes such
a connection after ``timeout`` seconds. Bodies get the same deadline in the application. Ctrl-C or
SIGTERM stops accepting, finishes the requests in flight, and ``serve`` returns the signal's name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import socket
from pathlib import Path

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from fmnist.errors import UsageError
from fmnist.serve import ServeConfig


class HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol; a connection still waiting for a request's complete headers
    ``header_timeout`` seconds after it opened, or after the previous response, is closed."""

    header_timeout = 10.0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._deadline = self.loop.call_later(self.header_timeout, self._too_slow)

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
        super().connection_lost(exc)

    def _too_slow(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class _Stopped(Exception):
    pass


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port); UsageError naming the options if not."""
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


def serve(model, model_file: Path, config: ServeConfig = ServeConfig(), announce=print) -> str:
    """Serve ``model`` until Ctrl-C or SIGTERM; returns the signal's name. ``announce`` gets the address
    once the service answers (after the model is warmed up)."""
    from fmnist.serve.app import create_app

    sock = bind(config.host, config.port)
    protocol = type("Protocol", (HeaderDeadline,), {"header_timeout": config.timeout})
    server = uvicorn.Server(uvicorn.Config(
        create_app(model, model_file, config), http=protocol, lifespan="on", access_log=config.access_log,
        log_level="info" if config.access_log else "warning", timeout_keep_alive=int(max(1, config.keep_alive)),
        limit_concurrency=config.max_connections, server_header=False, timeout_graceful_shutdown=config.timeout,
    ))

    async def run() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            announce(url_of(sock))
        await task

    def stop(number, frame):  # uvicorn re-raises the signal that stopped it, once it has shut down
        raise _Stopped(signal.Signals(number).name)

    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        asyncio.run(run())
    except _Stopped as stopped:
        return str(stopped)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        sock.close()
    raise UsageError(f"host {config.host}, port {config.port}: the server did not start", "host")
