"""Helpers for the connection tests (imported by the test modules).

Every test takes the ``codec`` fixture of tests/conftest.py (the pure-Python codec and, when
built, the Cython one) and passes it to the connections as ``_codec``, so the whole suite runs
against both implementations.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Dict, List, Optional, Tuple

from turbows import State
from turbows.connection import ClientConnection, ServerConnection
from turbows.events import Accepted, Request

#: The example of RFC 6455 1.3.
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
MASK = b"\x37\xfa\x21\x3d"


def request_head(
    *lines: str,
    path: str = "/chat",
    drop: Tuple[str, ...] = (),
    method: str = "GET",
    version: str = "HTTP/1.1",
) -> bytes:
    """A valid opening request, with ``lines`` added and the headers named in ``drop`` left out."""
    base = {
        "host": "Host: server.example.com",
        "upgrade": "Upgrade: websocket",
        "connection": "Connection: Upgrade",
        "sec-websocket-key": f"Sec-WebSocket-Key: {RFC_KEY}",
        "sec-websocket-version": "Sec-WebSocket-Version: 13",
    }
    out = [f"{method} {path} {version}"]
    out += [line for name, line in base.items() if name not in drop]
    out += list(lines)
    return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")


def response_head(*lines: str, status: str = "101 Switching Protocols", key: str = "") -> bytes:
    from turbows.handshake import accept_key

    out = [f"HTTP/1.1 {status}"]
    if status.startswith("101"):
        out += [
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept_key(key)}",
        ]
    out += list(lines)
    return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")


def client_frame(codec: ModuleType, opcode: int, payload: Any = b"", fin: bool = True) -> bytes:
    """A frame as a client sends it (masked)."""
    return codec.build_frame(opcode, payload, fin=fin, mask=MASK)


def server_frame(codec: ModuleType, opcode: int, payload: Any = b"", fin: bool = True) -> bytes:
    """A frame as a server sends it (unmasked)."""
    return codec.build_frame(opcode, payload, fin=fin)


def parse_frames(codec: ModuleType, data: bytes, *, from_client: bool) -> List[Any]:
    """Decode what a connection sent with a fresh parser of the other role."""
    parser = codec.FrameParser(require_mask=from_client, max_message_size=None)
    return parser.feed(data)


def server_with_request(
    codec: ModuleType, request: Optional[bytes] = None, **kw: Any
) -> Tuple[ServerConnection, Request]:
    server = ServerConnection(_codec=codec, **kw)
    server.receive_data(request if request is not None else request_head())
    events = server.events()
    assert len(events) == 1 and isinstance(events[0], Request), events
    return server, events[0]


def open_server(codec: ModuleType, now: Optional[float] = 0.0, **kw: Any) -> ServerConnection:
    server, _ = server_with_request(codec, **kw)
    server.accept(now=now)
    server.data_to_send()
    assert server.state is State.OPEN
    return server


def open_client(codec: ModuleType, now: Optional[float] = 0.0, **kw: Any) -> ClientConnection:
    client = ClientConnection("ws://server.example.com/chat", _codec=codec, **kw)
    request = client.data_to_send()
    key = next(
        line.split(b": ", 1)[1].decode()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    client.receive_data(response_head(key=key), now=now)
    events = client.events()
    assert len(events) == 1 and isinstance(events[0], Accepted), events
    assert client.state is State.OPEN
    return client


def open_pair(
    codec: ModuleType,
    now: Optional[float] = 0.0,
    server_kw: Optional[Dict[str, Any]] = None,
    client_kw: Optional[Dict[str, Any]] = None,
) -> Tuple[ServerConnection, ClientConnection]:
    """A server and a client that completed the opening handshake with each other."""
    client = ClientConnection("ws://server.example.com/chat", _codec=codec, **(client_kw or {}))
    server = ServerConnection(_codec=codec, **(server_kw or {}))
    server.receive_data(client.data_to_send())
    [request] = server.events()
    assert isinstance(request, Request)
    server.accept(now=now)
    client.receive_data(server.data_to_send(), now=now)
    [accepted] = client.events()
    assert isinstance(accepted, Accepted)
    return server, client


def exchange(a: Any, b: Any, now: Optional[float] = None) -> None:
    """Deliver what ``a`` has to send to ``b`` and back, until both are quiet."""
    for _ in range(10):
        out_a = a.data_to_send()
        if out_a:
            b.receive_data(out_a, now)
        out_b = b.data_to_send()
        if out_b:
            a.receive_data(out_b, now)
        if not out_a and not out_b:
            return
