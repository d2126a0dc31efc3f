"""Helpers for the permessage-deflate tests (imported by the test modules of this folder).

Every connection-level test takes the ``codec`` fixture of tests/conftest.py and passes it
to the connections as ``_codec``, so that both codecs run the compressed paths.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from turbows import State, apply_mask
from turbows.connection import ClientConnection, ServerConnection
from turbows.events import Accepted, Request
from turbows.extensions import DeflateSession, PerMessageDeflate

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
MASK = b"\x37\xfa\x21\x3d"

#: Options that keep timers out of the way: the tests never pass a clock.
NO_TIMERS: dict[str, Any] = {"ping_interval": None, "close_timeout": None}


def request_head(*lines: str) -> bytes:
    """A valid opening request with ``lines`` (header fields) added."""
    out = [
        "GET /chat HTTP/1.1",
        "Host: server.example.com",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {RFC_KEY}",
        "Sec-WebSocket-Version: 13",
        *lines,
    ]
    return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")


def response_head(key: str, *lines: str) -> bytes:
    """A valid 101 answer to a request sent with ``key``, with ``lines`` added."""
    from turbows.handshake import accept_key

    out = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
        *lines,
    ]
    return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")


def request_key(request: bytes) -> str:
    """The Sec-WebSocket-Key of a request a ClientConnection wrote."""
    for line in request.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-key":
            return value.strip()
    raise AssertionError("no key in the request")


def header_value(head: bytes, name: str) -> str | None:
    """The value of header ``name`` in an HTTP head, or None."""
    text = head.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in text.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def server_answer(
    codec: ModuleType, extensions_header: str | None, pmd: PerMessageDeflate, **kw: Any
) -> tuple[ServerConnection, bytes]:
    """A server that received a request offering ``extensions_header`` and accepted it."""
    server = ServerConnection(_codec=codec, extensions=[pmd], **NO_TIMERS, **kw)
    lines = () if extensions_header is None else (f"Sec-WebSocket-Extensions: {extensions_header}",)
    server.receive_data(request_head(*lines))
    events = server.events()
    assert len(events) == 1 and isinstance(events[0], Request), events
    server.accept()
    return server, server.data_to_send()


def open_pair(
    codec: ModuleType,
    server_pmd: PerMessageDeflate | None,
    client_pmd: PerMessageDeflate | None,
    **kw: Any,
) -> tuple[ServerConnection, ClientConnection]:
    """A turbows server and client, OPEN after a handshake through the connections."""
    client = ClientConnection(
        "ws://server.example.com/chat",
        extensions=[] if client_pmd is None else [client_pmd],
        _codec=codec,
        **NO_TIMERS,
        **kw,
    )
    server = ServerConnection(
        extensions=[] if server_pmd is None else [server_pmd], _codec=codec, **NO_TIMERS, **kw
    )
    server.receive_data(client.data_to_send())
    [request] = server.events()
    assert isinstance(request, Request)
    server.accept()
    client.receive_data(server.data_to_send())
    events = client.events()
    assert events and isinstance(events[0], Accepted), events
    assert server.state is State.OPEN and client.state is State.OPEN
    return server, client


def session_view(session: DeflateSession) -> dict[str, Any]:
    """What a session was set up with (its private fields, gathered for assertions)."""
    return {
        "compress_bits": session._bits,
        "compress_reset": session._reset,
        "decompress_bits": session.inflater._bits,
        "decompress_reset": session.inflater._reset,
        "compresses": session.threshold >= 0,
    }


def frames(codec: ModuleType, data: bytes, *, from_client: bool) -> list[tuple[int, int, bytes]]:
    """Split what a connection wrote into ``(first byte, opcode, unmasked payload)`` frames."""
    out = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        length = b1 & 0x7F
        pos += 2
        if length == 126:
            length = int.from_bytes(data[pos : pos + 2], "big")
            pos += 2
        elif length == 127:
            length = int.from_bytes(data[pos : pos + 8], "big")
            pos += 8
        key = b""
        if b1 & 0x80:
            key = data[pos : pos + 4]
            pos += 4
        assert bool(key) == from_client
        payload = data[pos : pos + length]
        pos += length
        if key:
            payload = apply_mask(payload, key)
        out.append((b0, b0 & 0x0F, payload))
    return out


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bool) -> bytes:
    """One raw frame with any RSV bits (the codec's builder would refuse some of them)."""
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 1 << 16:
        head = bytes([b0, m | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, m | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    body = apply_mask(payload, MASK)
    return head + MASK + body
