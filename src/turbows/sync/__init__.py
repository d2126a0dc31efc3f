"""turbows with blocking sockets and threads: a client, and a small server.

For scripts, tests and tools that have no event loop. Each connection is a socket driven
by the sans-I/O :class:`turbows.ClientConnection` or :class:`turbows.ServerConnection` and a
background thread that reads, answers pings and runs the heartbeat; sends may come from
any thread.

Client::

    with turbows.sync.connect("ws://127.0.0.1:8765/") as ws:
        ws.send("hello")
        print(ws.recv(timeout=5))

Server (a thread per connection; for many connections use :mod:`turbows.asyncio`)::

    def echo(ws):
        for message in ws:
            ws.send(message)

    with turbows.sync.serve(echo, "127.0.0.1", 8765) as server:
        server.serve_forever()

The exceptions are those of :mod:`turbows.asyncio` (the same classes): ``ClosedOK``,
``ClosedError``, ``HandshakeRejected``, ``HandshakeFailed``, ``OpenTimeout``.
"""

from __future__ import annotations

from ..asyncio._exceptions import (
    ClosedError,
    ClosedOK,
    HandshakeError,
    HandshakeFailed,
    HandshakeRejected,
    OpenTimeout,
    WebSocketClosed,
)
from ..asyncio._server import Accept, Reject, Response
from ._client import ClientWebSocket, connect
from ._server import Server, ServerWebSocket, serve
from ._websocket import DEFAULT_MAX_QUEUE, Message, WebSocket

__all__ = [
    "connect",
    "serve",
    "Server",
    "WebSocket",
    "ClientWebSocket",
    "ServerWebSocket",
    "Message",
    "Accept",
    "Reject",
    "Response",
    "WebSocketClosed",
    "ClosedOK",
    "ClosedError",
    "HandshakeError",
    "HandshakeRejected",
    "HandshakeFailed",
    "OpenTimeout",
    "DEFAULT_MAX_QUEUE",
]
