"""The peers' connection-level objects, opened in memory: receive, send and footprint.

Where :mod:`turbows.bench._peers` drives the peers' frame readers and writers, this module
drives what stands in each peer for turbows's ``ServerConnection``: websockets'
``ServerProtocol`` and wsproto's ``WSConnection``, both after an in-memory opening handshake
(the state machine a user of those libraries holds), and, for the footprint, aiohttp's reader,
writer and queue and picows's protocol and transport. aiohttp and picows have no sans-I/O
connection: their receive and send paths are the codec suite's drivers, which already feed
their protocol objects the way their event-loop integration does.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import socket
import tracemalloc
from itertools import repeat
from typing import Any, Callable

from ._data import FrameStream
from ._peers import BATCH, BenchCheckError, _FakeTransport, _try_import
from ._runner import Loop

__all__ = [
    "UPGRADE_REQUEST",
    "footprint_drivers",
    "receive_drivers",
    "send_drivers",
    "traced_bytes_per_object",
]

UPGRADE_REQUEST = (
    b"GET /bench HTTP/1.1\r\n"
    b"Host: localhost\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
"""The opening request every peer's server answers (RFC 6455 1.3's sample key)."""


def traced_bytes_per_object(make: Callable[[], Any], count: int = 100) -> float:
    """Bytes that tracemalloc sees allocated per object built by ``make``, kept alive.

    One object is built first so that imports, caches and free lists do not count. Memory that
    an extension takes with plain ``malloc`` rather than Python's allocators is invisible to
    tracemalloc, so the figure is a lower bound for such peers.
    """
    make()
    gc.collect()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make() for _ in range(count)]
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        if not was_tracing:
            tracemalloc.stop()
    del kept
    return (after - before) / count


# --------------------------------------------------------------------------------------------
# websockets: ServerProtocol after its handshake.


def _websockets_open(max_size: int | None = 1 << 20) -> Any:
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    protocol = ServerProtocol(max_size=max_size)
    protocol.receive_data(UPGRADE_REQUEST)
    request: Any
    (request,) = protocol.events_received()
    protocol.send_response(protocol.accept(request))
    if b" 101 " not in protocol.data_to_send()[0] or protocol.state is not State.OPEN:
        raise BenchCheckError("websockets did not accept the in-memory handshake")
    return protocol


def _websockets_receive(stream: FrameStream) -> Loop:
    protocol = _websockets_open()
    receive = protocol.receive_data
    events: Callable[[], list[Any]] = protocol.events_received
    chunks = stream.chunks

    texts: list[str] = []
    for chunk in chunks:
        receive(chunk)
        # websockets' asyncio layer turns each text frame into a str: so does the loop.
        texts.extend(frame.data.decode() for frame in events())
    if len(texts) != stream.frames or texts[-1] != stream.last_text:
        raise BenchCheckError(f"websockets delivered {len(texts)} messages or a wrong one")

    def run(n: int) -> None:
        for _ in repeat(None, n):
            for chunk in chunks:
                receive(chunk)
                for frame in events():
                    frame.data.decode()

    return run


def _websockets_send(payload: str, expected: bytes) -> Loop:
    protocol = _websockets_open()
    send_text = protocol.send_text
    data_to_send = protocol.data_to_send
    out: list[bytes] = []

    # websockets' sans-I/O send_text takes UTF-8 bytes; its asyncio layer encodes the str.
    def run(n: int) -> None:
        for _ in repeat(None, n):
            for _ in repeat(None, BATCH):
                send_text(payload.encode())
            out[:] = data_to_send()

    run(1)
    if b"".join(out) != expected:
        raise BenchCheckError("websockets wrote unexpected bytes")
    return run


# --------------------------------------------------------------------------------------------
# wsproto: WSConnection after its handshake.


def _wsproto_open() -> Any:
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, Request

    conn = WSConnection(ConnectionType.SERVER)
    conn.receive_data(UPGRADE_REQUEST)
    events = list(conn.events())
    if len(events) != 1 or not isinstance(events[0], Request):
        raise BenchCheckError(f"wsproto did not see the request: {events!r}")
    if b" 101 " not in conn.send(AcceptConnection()):
        raise BenchCheckError("wsproto did not accept the in-memory handshake")
    return conn


def _wsproto_receive(stream: FrameStream) -> Loop:
    conn = _wsproto_open()
    receive = conn.receive_data
    events = conn.events
    chunks = stream.chunks
    parts: list[str] = []

    # wsproto hands out the part of a message that a chunk holds (message_finished=False for a
    # frame cut by the chunk boundary): joining the parts is what a user of it must do.
    def deliver(chunk: bytes, out: list[str]) -> None:
        receive(chunk)
        for event in events():
            if not event.message_finished:
                parts.append(event.data)
            elif parts:
                parts.append(event.data)
                out.append("".join(parts))
                parts.clear()
            else:
                out.append(event.data)

    texts: list[str] = []
    for chunk in chunks:
        deliver(chunk, texts)
    if len(texts) != stream.frames or texts[-1] != stream.last_text:
        raise BenchCheckError(f"wsproto delivered {len(texts)} messages or a wrong one")

    def run(n: int) -> None:
        out: list[str] = []
        for _ in repeat(None, n):
            for chunk in chunks:
                deliver(chunk, out)
                out.clear()

    return run


def _wsproto_send(payload: str, expected: bytes) -> Loop:
    from wsproto.events import TextMessage

    conn = _wsproto_open()
    send = conn.send
    out: list[bytes] = []
    append = out.append

    def run(n: int) -> None:
        for _ in repeat(None, n):
            out.clear()
            for _ in repeat(None, BATCH):
                append(send(TextMessage(data=payload)))

    run(1)
    if b"".join(out) != expected:
        raise BenchCheckError("wsproto wrote unexpected bytes")
    return run


# --------------------------------------------------------------------------------------------
# Footprints of the peers' per-connection objects.


def _aiohttp_footprint() -> Callable[[], Any]:
    from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader
    from aiohttp._websocket.writer import WebSocketWriter
    from aiohttp.base_protocol import BaseProtocol

    loop = asyncio.new_event_loop()

    def make() -> Any:
        protocol = BaseProtocol(loop)
        queue = WebSocketDataQueue(protocol, 1 << 16, loop=loop)
        reader = WebSocketReader(queue, 1 << 20, compress=False, decode_text=True)
        writer = WebSocketWriter(protocol, _FakeTransport(), use_mask=False)
        return protocol, queue, reader, writer

    return make


def _picows_footprint() -> Callable[[], Any]:
    import picows

    picows_impl: Any = importlib.import_module("picows.picows")
    loop = asyncio.new_event_loop()
    logger = logging.getLogger("turbows.bench.picows")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener = picows.WSListener()

    async def create() -> Any:
        protocol = picows_impl.WSProtocol(
            None,
            None,
            False,
            lambda request: listener,
            logger,
            True,
            None,
            False,
            10.0,
            10.0,
            picows.WSAutoPingStrategy.PING_WHEN_IDLE,
            True,
            1 << 20,
            None,
            16384,  # picows's default read buffer
        )
        transport = _FakeTransport(sock)
        protocol.connection_made(transport)
        buf = protocol.get_buffer(-1)
        buf[: len(UPGRADE_REQUEST)] = UPGRADE_REQUEST
        protocol.buffer_updated(len(UPGRADE_REQUEST))
        if not transport.written:
            raise BenchCheckError("picows did not answer the in-memory handshake")
        transport.written.clear()
        return protocol, transport

    def make() -> Any:
        return loop.run_until_complete(create())

    return make


def footprint_drivers() -> list[tuple[str, Callable[[], Callable[[], Any]] | None, str]]:
    """Peers' per-connection objects: ``(name, factory of a maker, note)``."""
    candidates: list[tuple[str, str, Callable[[], Callable[[], Any]], str]] = [
        (
            "aiohttp",
            "aiohttp._websocket.reader",
            _aiohttp_footprint,
            (
                "aiohttp: WebSocketReader + WebSocketDataQueue + WebSocketWriter + BaseProtocol"
                " (no sans-I/O connection; its WebSocketResponse and HTTP protocol not counted)"
            ),
        ),
        (
            "picows",
            "picows",
            _picows_footprint,
            (
                "picows: WSProtocol + WSTransport after the handshake (default 16 KiB read"
                " buffer); memory taken with malloc is not seen by tracemalloc"
            ),
        ),
        (
            "websockets",
            "websockets.server",
            lambda: _websockets_open,
            "websockets: ServerProtocol after the handshake",
        ),
        (
            "wsproto",
            "wsproto",
            lambda: _wsproto_open,
            "wsproto: WSConnection after the handshake",
        ),
    ]
    out: list[tuple[str, Callable[[], Callable[[], Any]] | None, str]] = []
    for name, module, factory, note in candidates:
        mod, why = _try_import(module)
        out.append((name, factory if mod is not None else None, note if mod else why))
    return out


def receive_drivers() -> list[tuple[str, Callable[[FrameStream], Loop] | None, str]]:
    """The connection-level receive paths of websockets and wsproto."""
    out: list[tuple[str, Callable[[FrameStream], Loop] | None, str]] = []
    for name, module, factory, note in (
        (
            "websockets",
            "websockets.server",
            _websockets_receive,
            "websockets: ServerProtocol after the handshake, text frames decoded to str",
        ),
        (
            "wsproto",
            "wsproto",
            _wsproto_receive,
            "wsproto: WSConnection after the handshake, message parts joined",
        ),
    ):
        mod, why = _try_import(module)
        out.append((name, factory if mod is not None else None, note if mod else why))
    return out


def send_drivers() -> list[tuple[str, Callable[[str, bytes], Loop] | None, str]]:
    """The connection-level send paths (text) of websockets and wsproto."""
    out: list[tuple[str, Callable[[str, bytes], Loop] | None, str]] = []
    for name, module, factory, note in (
        (
            "websockets",
            "websockets.server",
            _websockets_send,
            "websockets: ServerProtocol.send_text(str.encode()), data_to_send() per batch",
        ),
        ("wsproto", "wsproto", _wsproto_send, "wsproto: WSConnection.send(TextMessage)"),
    ):
        mod, why = _try_import(module)
        out.append((name, factory if mod is not None else None, note if mod else why))
    return out
