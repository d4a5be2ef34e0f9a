"""One HTTP/1.1 connection: uvicorn's h11 protocol plus a deadline for headers, a limit on connections at
once, and a lingering close. ``server`` runs uvicorn with ``HeaderDeadline`` as its protocol.

uvicorn times out idle keep-alive connections but not a client that connects and then sends its
headers slowly or never; ``HeaderDeadline`` (uvicorn's own HTTP/1.1 protocol plus one timer) closes such
a connection after ``timeout`` seconds. Bodies get the same deadline in ``uploads.read_body``. A response
sent before its request's body was read (413, 503) is followed by a lingering close, as Apache and nginx
do: the server stops sending, then reads and discards what the client still sends (for at most
``timeout`` seconds) before closing. Closing at once, with unread bytes, makes the kernel reset the
connection, and the client's kernel then drops the answer it had received but not yet read.
"""

from __future__ import annotations

import functools

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from fmnist.serve.app import busy


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
