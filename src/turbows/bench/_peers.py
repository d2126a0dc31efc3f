"""Drivers for the peer libraries: websockets, wsproto, aiohttp and picows.

Each driver runs a peer the cheapest honest way that still does the work a user of that peer
gets done: every received frame becomes a Python object handed to the application, every sent
frame ends up as bytes in an output buffer. Peers are driven in memory, without sockets or a
running event loop, through the same entry points their own event-loop integration calls.

A peer that is not installed, or lacks the entry point a benchmark needs, yields a skipped
case whose note says why. Every driver checks its output once before it is timed.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import logging
import socket
from itertools import repeat
from typing import Any, Callable, Optional

from ._data import FrameStream
from ._runner import Loop, call_loop

__all__ = [
    "BATCH",
    "PEERS",
    "BenchCheckError",
    "inplace_mask_functions",
    "mask_functions",
    "peer_versions",
    "receive_drivers",
    "send_drivers",
]

PEERS = ("websockets", "wsproto", "aiohttp", "picows")
"""The peers compared, by distribution name."""

ReceiveFactory = Callable[[FrameStream], Loop]
SendFactory = Callable[[Any, bool, bytes], Loop]


class BenchCheckError(AssertionError):
    """An implementation gave a wrong result for a benchmark input."""


def peer_versions() -> dict[str, str | None]:
    """Map each peer to its installed version, or None when it is not installed."""
    out: dict[str, str | None] = {}
    for name in PEERS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _try_import(module: str) -> tuple[Any, str]:
    """Import ``module``; return ``(module, "")`` or ``(None, reason)``."""
    try:
        return importlib.import_module(module), ""
    except ImportError as exc:
        return None, f"{module} unavailable ({exc})"


# --------------------------------------------------------------------------------------------
# Masking.

MaskEntry = tuple[str, Optional[Callable[[Any, bytes], Loop]], str]


def mask_functions() -> list[MaskEntry]:
    """Peers' maskers that return new bytes: ``(name, loop factory or None, note)``.

    The loop factory takes ``(data, mask)`` and returns a loop that masks ``data`` once per
    iteration.
    """
    entries: list[MaskEntry] = []
    speedups, why = _try_import("websockets.speedups")
    if speedups is not None:
        entries.append(("websockets (C)", lambda d, m: call_loop(speedups.apply_mask, d, m), ""))
    else:
        entries.append(("websockets (C)", None, why))
    utils, why = _try_import("websockets.utils")
    if utils is not None:
        entries.append(("websockets (pure)", lambda d, m: call_loop(utils.apply_mask, d, m), ""))
    frame_protocol, why = _try_import("wsproto.frame_protocol")
    if frame_protocol is not None:
        masker = frame_protocol.XorMaskerSimple

        # wsproto masks through a per-frame masker object (it rotates the key between calls
        # of one frame), so creating it is part of masking a frame.
        def wsproto_loop(data: bytes, mask: bytes) -> Loop:
            def loop(n: int) -> None:
                for _ in repeat(None, n):
                    masker(mask).process(data)

            return loop

        entries.append(("wsproto", wsproto_loop, ""))
    else:
        entries.append(("wsproto", None, why))
    return entries


def inplace_mask_functions() -> list[MaskEntry]:
    """Peers' in-place maskers of a ``bytearray``: ``(name, loop factory or None, note)``.

    The loop factory takes ``(buffer, mask)``; each iteration masks the buffer in place.
    """
    entries: list[MaskEntry] = []
    mask_mod, why = _try_import("aiohttp._websocket.mask")
    if mask_mod is not None:
        # aiohttp's Cython kernel takes (mask, data) and XORs a bytearray in place.
        entries.append(
            (
                "aiohttp (Cython)",
                lambda b, m: call_loop(mask_mod._websocket_mask_cython, m, b),
                "",
            )
        )
    else:
        entries.append(("aiohttp (Cython)", None, why))
    entries.append(
        (
            "picows",
            None,
            "picows masks in C inside its transport and exposes no Python-level mask function",
        )
    )
    return entries


# --------------------------------------------------------------------------------------------
# Receive path: a server parsing masked text frames, each delivered as a Python object.


def _check_count(name: str, got: int, stream: FrameStream) -> None:
    if got != stream.frames:
        raise BenchCheckError(f"{name} delivered {got} messages, expected {stream.frames}")


def _aiohttp_receive(stream: FrameStream) -> Loop:
    from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader
    from aiohttp.base_protocol import BaseProtocol

    if not WebSocketReader.__module__.endswith("reader_c"):
        raise BenchCheckError("aiohttp's Cython reader is not in use (AIOHTTP_NO_EXTENSIONS?)")
    loop = asyncio.new_event_loop()
    protocol = BaseProtocol(loop)
    chunks = stream.chunks
    # The queue's limit only decides when aiohttp pauses the transport; it is set out of reach
    # because the benchmark consumes every chunk's messages at once, as an application would.
    limit = 1 << 30

    def run_once() -> int:
        queue = WebSocketDataQueue(protocol, limit, loop=loop)
        reader = WebSocketReader(queue, 1 << 20, compress=False, decode_text=True)
        buffer = queue._buffer
        feed = reader.feed_data
        count = 0
        for chunk in chunks:
            feed(chunk)
            count += len(buffer)
            buffer.clear()
        if queue.exception() is not None:
            raise BenchCheckError(f"aiohttp failed: {queue.exception()!r}")
        return count

    def check() -> None:
        queue = WebSocketDataQueue(protocol, limit, loop=loop)
        reader = WebSocketReader(queue, 1 << 20, compress=False, decode_text=True)
        for chunk in chunks:
            reader.feed_data(chunk)
        messages = list(queue._buffer)
        _check_count("aiohttp", len(messages), stream)
        if messages[-1][0].data != stream.last_text:  # (WSMessage, size) pairs
            raise BenchCheckError("aiohttp's last message differs")
        _check_count("aiohttp", run_once(), stream)

    check()

    def run(n: int) -> None:
        for _ in repeat(None, n):
            queue = WebSocketDataQueue(protocol, limit, loop=loop)
            reader = WebSocketReader(queue, 1 << 20, compress=False, decode_text=True)
            buffer = queue._buffer
            feed = reader.feed_data
            for chunk in chunks:
                feed(chunk)
                buffer.clear()

    return run


class _FakeTransport(asyncio.Transport):
    """A transport that keeps what is written, for peers that need one.

    ``get_write_buffer_size`` answers 1 so that picows, which writes straight to the socket
    when the transport's buffer is empty, hands every frame to ``write`` instead.
    """

    def __init__(self, sock: socket.socket | None = None) -> None:
        super().__init__()
        self.written: list[Any] = []
        self.write = self.written.append  # type: ignore[method-assign,assignment]
        self._sock = sock

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self._sock
        if name in ("peername", "sockname"):
            return ("127.0.0.1", 0)
        return default

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.written.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return 1

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


_UPGRADE_REQUEST = (
    b"GET / HTTP/1.1\r\n"
    b"Host: localhost\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


def _picows_server(listener: Any) -> tuple[Any, _FakeTransport, socket.socket]:
    """Create a picows server-side WSProtocol that completed its handshake in memory."""
    import picows

    # WSProtocol is not in picows's public stub: reach it untyped.
    picows_impl: Any = importlib.import_module("picows.picows")
    loop = asyncio.new_event_loop()
    logger = logging.getLogger("turbows.bench.picows")
    logger.setLevel(logging.WARNING)

    async def create() -> Any:
        # WSProtocol reads the running loop in its constructor; nothing else needs it.
        return picows_impl.WSProtocol(
            None,  # host and port: server side
            None,  # path
            False,  # is_client_side
            lambda request: listener,
            logger,
            True,  # disconnect_on_exception
            None,  # no handshake timeout (it would need the loop running)
            False,  # no auto ping
            10.0,
            10.0,
            picows.WSAutoPingStrategy.PING_WHEN_IDLE,
            False,  # no auto pong: pings are not in the stream anyway
            1 << 20,  # max_frame_size, as max_message_size elsewhere
            None,  # extra headers
            256 * 1024,  # read buffer: room for a 64 KiB chunk and a partial frame
        )

    protocol = loop.run_until_complete(create())
    # picows sets TCP_NODELAY on the transport's socket: give it a real, unconnected one.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    transport = _FakeTransport(sock)
    protocol.connection_made(transport)
    _picows_feed(protocol, _UPGRADE_REQUEST)
    if not transport.written or b" 101 " not in bytes(transport.written[0]):
        raise BenchCheckError("picows did not accept the in-memory handshake")
    transport.written.clear()
    return protocol, transport, sock


def _picows_feed(protocol: Any, data: bytes) -> None:
    """Deliver bytes the way asyncio does for a BufferedProtocol: get_buffer, copy, update."""
    view = memoryview(data)
    while view:
        buf = protocol.get_buffer(-1)
        n = min(len(buf), len(view))
        buf[:n] = view[:n]
        protocol.buffer_updated(n)
        view = view[n:]


def _picows_receive(stream: FrameStream) -> Loop:
    import picows

    class Collector(picows.WSListener):
        """The smallest useful listener: each frame's text becomes a ``str``."""

        def __init__(self) -> None:
            super().__init__()
            self.messages: list[str] = []

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            self.messages.append(frame.get_payload_as_utf8_text())

    listener = Collector()
    protocol, _transport, sock = _picows_server(listener)
    chunks = stream.chunks
    messages = listener.messages
    get_buffer = protocol.get_buffer
    buffer_updated = protocol.buffer_updated

    for chunk in chunks:
        _picows_feed(protocol, chunk)
    _check_count("picows", len(messages), stream)
    if messages[-1] != stream.last_text:
        raise BenchCheckError("picows's last message differs")
    messages.clear()
    for chunk in chunks:
        if len(get_buffer(-1)) < len(chunk):
            raise BenchCheckError("picows's read buffer is smaller than a chunk")
        _picows_feed(protocol, chunk)
    messages.clear()

    def run(n: int) -> None:
        _keep = sock
        for _ in repeat(None, n):
            for chunk in chunks:
                size = len(chunk)
                get_buffer(-1)[:size] = chunk
                buffer_updated(size)
                messages.clear()

    return run


def _websockets_receive(stream: FrameStream) -> Loop:
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    chunks = stream.chunks

    # websockets' sans-I/O layer hands out frames; its asyncio layer decodes text frames to
    # str (which validates UTF-8), so the benchmark does that too.
    def check() -> None:
        protocol = ServerProtocol(state=State.OPEN, max_size=1 << 20)
        texts: list[str] = []
        for chunk in chunks:
            protocol.receive_data(chunk)
            events: list[Any] = protocol.events_received()
            texts.extend(frame.data.decode() for frame in events)
        _check_count("websockets", len(texts), stream)
        if texts[-1] != stream.last_text:
            raise BenchCheckError("websockets's last message differs")

    check()

    def run(n: int) -> None:
        for _ in repeat(None, n):
            protocol = ServerProtocol(state=State.OPEN, max_size=1 << 20)
            receive = protocol.receive_data
            events: Callable[[], list[Any]] = protocol.events_received
            for chunk in chunks:
                receive(chunk)
                for frame in events():
                    frame.data.decode()

    return run


def _wsproto_receive(stream: FrameStream) -> Loop:
    from wsproto.connection import Connection, ConnectionType
    from wsproto.events import TextMessage

    chunks = stream.chunks

    def check() -> None:
        conn = Connection(ConnectionType.SERVER)
        texts: list[str] = []
        parts: list[str] = []
        for chunk in chunks:
            conn.receive_data(chunk)
            for event in conn.events():
                if not isinstance(event, TextMessage):
                    raise BenchCheckError(f"wsproto produced {event!r}")
                parts.append(event.data)
                if event.message_finished:
                    texts.append("".join(parts))
                    parts.clear()
        _check_count("wsproto", len(texts), stream)
        if texts[-1] != stream.last_text:
            raise BenchCheckError("wsproto's last message differs")

    check()

    def run(n: int) -> None:
        for _ in repeat(None, n):
            conn = Connection(ConnectionType.SERVER)
            receive = conn.receive_data
            events = conn.events
            for chunk in chunks:
                receive(chunk)
                for _event in events():
                    pass

    return run


def receive_drivers() -> list[tuple[str, ReceiveFactory | None, str]]:
    """Peers' receive paths: ``(name, factory or None, note)``.

    A factory takes the :class:`FrameStream` and returns a loop replaying the whole stream once
    per iteration, after checking that every frame came out as a message.
    """
    drivers: list[tuple[str, ReceiveFactory | None, str]] = []
    candidates: list[tuple[str, str, ReceiveFactory, str]] = [
        (
            "aiohttp (Cython)",
            "aiohttp._websocket.reader_c",
            _aiohttp_receive,
            "aiohttp: WebSocketReader.feed_data, messages taken from its queue per chunk",
        ),
        (
            "picows",
            "picows",
            _picows_receive,
            "picows: WSProtocol.get_buffer/buffer_updated, listener keeps each frame as str",
        ),
        (
            "websockets",
            "websockets.server",
            _websockets_receive,
            "websockets: sans-I/O ServerProtocol (OPEN), text frames decoded to str",
        ),
        ("wsproto", "wsproto.connection", _wsproto_receive, "wsproto: Connection (OPEN)"),
    ]
    for name, module, factory, note in candidates:
        mod, why = _try_import(module)
        drivers.append((name, factory if mod is not None else None, note if mod else why))
    return drivers


# --------------------------------------------------------------------------------------------
# Send path: unmasked server frames into an output buffer, taken once per batch.


BATCH = 1000
"""Frames sent between two takes of the output buffer."""


def _aiohttp_send(payload: Any, text: bool, expected: bytes) -> Loop:
    from aiohttp._websocket.writer import WebSocketWriter
    from aiohttp.base_protocol import BaseProtocol

    loop = asyncio.new_event_loop()
    transport = _FakeTransport()
    writer = WebSocketWriter(BaseProtocol(loop), transport, use_mask=False, limit=1 << 40)
    send_frame = writer.send_frame
    written = transport.written

    # send_frame is a coroutine that completes without suspending when neither compression
    # nor flow control is involved: driving it with send(None) is what awaiting it costs.
    # For text, aiohttp's send_str encodes the str first; so does the loop.
    def run_text(n: int) -> None:
        for _ in repeat(None, n):
            written.clear()
            for _ in repeat(None, BATCH):
                coro = send_frame(payload.encode("utf-8"), 0x1)
                try:
                    coro.send(None)
                except StopIteration:
                    pass

    def run_binary(n: int) -> None:
        for _ in repeat(None, n):
            written.clear()
            for _ in repeat(None, BATCH):
                coro = send_frame(payload, 0x2)
                try:
                    coro.send(None)
                except StopIteration:
                    pass

    run = run_text if text else run_binary
    _check_send("aiohttp", run, written, expected)
    return run


def _picows_send(payload: Any, text: bool, expected: bytes) -> Loop:
    import picows

    loop = asyncio.new_event_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    transport = _FakeTransport(sock)
    logger = logging.getLogger("turbows.bench.picows")
    # The stub hides WSTransport's constructor: reach it untyped.
    picows_impl: Any = importlib.import_module("picows.picows")
    ws_transport = picows_impl.WSTransport(False, transport, logger, loop)
    msg_type = picows.WSMsgType.TEXT if text else picows.WSMsgType.BINARY
    send = ws_transport.send
    written = transport.written

    def run(n: int) -> None:
        _keep = sock
        for _ in repeat(None, n):
            written.clear()
            for _ in repeat(None, BATCH):
                send(msg_type, payload)

    _check_send("picows", run, written, expected)
    return run


def _websockets_send(payload: Any, text: bool, expected: bytes) -> Loop:
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    protocol = ServerProtocol(state=State.OPEN)
    out: list[bytes] = []
    send_text = protocol.send_text
    send_binary = protocol.send_binary
    data_to_send = protocol.data_to_send

    # websockets takes text already encoded, as its asyncio layer passes it.
    def run_text(n: int) -> None:
        for _ in repeat(None, n):
            for _ in repeat(None, BATCH):
                send_text(payload.encode("utf-8"))
            out[:] = data_to_send()

    def run_binary(n: int) -> None:
        for _ in repeat(None, n):
            for _ in repeat(None, BATCH):
                send_binary(payload)
            out[:] = data_to_send()

    run = run_text if text else run_binary
    _check_send("websockets", run, out, expected)
    return run


def _wsproto_send(payload: Any, text: bool, expected: bytes) -> Loop:
    from wsproto.connection import Connection, ConnectionType
    from wsproto.events import BytesMessage, TextMessage

    conn = Connection(ConnectionType.SERVER)
    event_type = TextMessage if text else BytesMessage
    send = conn.send
    out: list[bytes] = []
    append = out.append

    def run(n: int) -> None:
        for _ in repeat(None, n):
            out.clear()
            for _ in repeat(None, BATCH):
                append(send(event_type(data=payload)))

    _check_send("wsproto", run, out, expected)
    return run


def _check_send(name: str, run: Loop, out: list[Any], expected: bytes) -> None:
    """Run one batch and compare what it left in ``out`` with the expected wire bytes."""
    run(1)
    got = b"".join(bytes(x) for x in out)
    if got != expected:
        raise BenchCheckError(
            f"{name} wrote {len(got)} bytes, expected {len(expected)}"
            f" (first bytes {got[:16]!r} vs {expected[:16]!r})"
        )


def send_drivers() -> list[tuple[str, SendFactory | None, str]]:
    """Peers' send paths: ``(name, factory or None, note)``.

    A factory takes ``(payload, text, expected)``: the payload (``str`` for text), whether
    to send text frames, and the exact bytes one batch must produce; it returns a loop sending
    one batch of frames per iteration.
    """
    drivers: list[tuple[str, SendFactory | None, str]] = []
    candidates: list[tuple[str, str, SendFactory, str]] = [
        (
            "picows",
            "picows",
            _picows_send,
            "picows: WSTransport.send into a transport that collects bytes",
        ),
        (
            "aiohttp",
            "aiohttp._websocket.writer",
            _aiohttp_send,
            "aiohttp: WebSocketWriter.send_frame into a transport that collects bytes",
        ),
        (
            "websockets",
            "websockets.server",
            _websockets_send,
            "websockets: ServerProtocol.send_*, data_to_send() per batch",
        ),
        ("wsproto", "wsproto.connection", _wsproto_send, "wsproto: Connection.send per frame"),
    ]
    for name, module, factory, note in candidates:
        mod, why = _try_import(module)
        drivers.append((name, factory if mod is not None else None, note if mod else why))
    return drivers
