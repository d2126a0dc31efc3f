"""turbows on asyncio: a WebSocket server, a client and a reconnecting client.

Built on :class:`asyncio.Protocol` and the sans-I/O :mod:`turbows.connection`; works with the
default event loop and with uvloop (install its policy as usual).

Server::

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async with turbows.asyncio.serve(echo, "127.0.0.1", 8765) as server:
        await asyncio.Future()

Client::

    async with turbows.asyncio.connect("ws://127.0.0.1:8765") as ws:
        await ws.send("hello")
        print(await ws.recv())

Logging goes to ``logging.getLogger("turbows.server")`` and ``"turbows.client"``. Each record
about a connection starts with the peer's address and the path, and carries them as the
record attributes ``remote_address`` and ``path``; a connection logs one "connection open" and
one "connection closed" line at DEBUG.
"""

from __future__ import annotations

from ._client import ClientWebSocket, Connect, connect
from ._exceptions import (
    ClosedError,
    ClosedOK,
    HandshakeError,
    HandshakeFailed,
    HandshakeRejected,
    OpenTimeout,
    WebSocketClosed,
)
from ._fanout import SLOW_CONSUMER, Batch, Fanout, FanoutResult, broadcast, fanout
from ._protocol import DEFAULT_MAX_QUEUE, DEFAULT_WRITE_LIMIT, Message, WebSocket
from ._reconnect import (
    Attempt,
    ReconnectingClient,
    RetriesExhausted,
    RetryPolicy,
    default_should_retry,
    parse_retry_after,
)
from ._server import Accept, Reject, Response, Server, ServerWebSocket, serve
from ._workers import run

__all__ = [
    "serve",
    "run",
    "connect",
    "broadcast",
    "fanout",
    "Fanout",
    "FanoutResult",
    "Batch",
    "SLOW_CONSUMER",
    "Server",
    "Connect",
    "Accept",
    "Reject",
    "Response",
    "WebSocket",
    "ServerWebSocket",
    "ClientWebSocket",
    "Message",
    "WebSocketClosed",
    "ClosedOK",
    "ClosedError",
    "HandshakeError",
    "HandshakeRejected",
    "HandshakeFailed",
    "OpenTimeout",
    "ReconnectingClient",
    "RetryPolicy",
    "Attempt",
    "RetriesExhausted",
    "default_should_retry",
    "parse_retry_after",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_WRITE_LIMIT",
]


def _public_module_name() -> None:
    """Show the public classes as ``turbows.asyncio.X`` (in tracebacks, reprs and the docs)
    rather than the private module that defines them."""
    for name in __all__:
        obj = globals()[name]
        if isinstance(obj, type) and obj.__module__.startswith(__name__ + "."):
            obj.__module__ = __name__


_public_module_name()
