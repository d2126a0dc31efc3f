"""A peer that sends and never reads cannot make us buffer more than the write limit plus a
constant, whatever it sends: pings (answered by pongs), a close frame (answered by a close),
messages echoed by an ``on_message`` callback or relayed by ``broadcast``. On the server and
on the client, on asyncio's loop and on uvloop, through the event loop's transports and
turbows's own (the server tests run on both, see conftest.py).

The hostile peer is a raw socket in a thread, with a small receive buffer so that the kernel
stops taking our writes early. It floods until we stop reading it (its sends stall) or it has
sent everything; meanwhile the test samples our write buffer. Then it reads, and checks that
nothing owed to it was lost: the pong of its last ping, every echo, the close frame.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import select
import socket
import threading
import time
from typing import Any, Callable, Iterable, List, Optional

import pytest

import turbows
import turbows.asyncio as fa
from turbows.handshake import GUID

from aio_helpers import handshake_request, run

try:
    import uvloop  # noqa: F401

    LOOPS = ["asyncio", "uvloop"]
except ImportError:  # optional dependency
    LOOPS = ["asyncio"]

WRITE_LIMIT = 64 * 1024
#: What we may buffer on top of the write limit: the answers to one read (256 KiB read at
#: most), and some slack. A peer that makes us buffer an answer per byte it sends gets far
#: past it: each test floods 8 MiB or more.
ALLOWANCE = 256 * 1024 + 64 * 1024
#: The hostile peer's receive buffer (the kernel doubles it).
PEER_RCVBUF = 4096
#: Our own socket's send buffer in these tests: what the kernel takes from us and holds for
#: a peer that does not read is then small, and the flood shows at once in our buffer.
OUR_SNDBUF = 16384
#: Seconds without progress after which the hostile peer deems its sends stalled.
QUIET = 0.3
MASK = b"\x12\x34\x56\x78"


@pytest.fixture(params=LOOPS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _run(main: Callable[[], Any], loop_kind: str, timeout: float = 20.0) -> Any:
    return run(main, timeout=timeout, use_uvloop=loop_kind == "uvloop")


def _ping_payload(index: int) -> bytes:
    return (b"ping %d " % index).ljust(125, b".")  # the largest control frame


def _ping(index: int, masked: bool) -> bytes:
    payload = _ping_payload(index)
    return turbows.build_frame(turbows.Opcode.PING, payload, mask=MASK if masked else None)


class HostilePeer(threading.Thread):
    """Sends ``frames`` without reading until they are all sent or its sends stall (``QUIET``
    seconds without progress; ``flooded`` is set then), then reads what came back (and
    sends the frames left) until ``done(parser_items)`` says it has it all, or EOF."""

    def __init__(
        self,
        connect: Callable[[], socket.socket],
        frames: Iterable[bytes],
        done: Callable[[List[Any]], bool],
        masked_input: bool,
    ) -> None:
        super().__init__(daemon=True)
        self._connect = connect
        self._frames = iter(frames)
        self._done = done
        self._parser = turbows.FrameParser(require_mask=masked_input, max_message_size=None)
        self.flooded = threading.Event()
        self.go = threading.Event()  # the flood starts when it is set (see _start)
        self.items: List[Any] = []
        self.eof = False
        self.sent = 0
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.flooded.set()

    def _run(self) -> None:
        sock = self._connect()
        with sock:
            assert self.go.wait(5.0)
            sock.setblocking(False)
            pending = b""
            # Flood, never reading.
            while True:
                if not pending:
                    pending = next(self._frames, b"")
                    if not pending:
                        break
                _, writable, _ = select.select([], [sock], [], QUIET)
                if not writable:
                    break  # stalled: we are not read any more
                pending = pending[self._send(sock, pending) :]
            self.flooded.set()
            # Read everything owed, sending the rest meanwhile.
            deadline = time.monotonic() + 15.0
            while not self._done(self.items) and not self.eof and time.monotonic() < deadline:
                if not pending:
                    pending = next(self._frames, b"")
                readable, writable, _ = select.select([sock], [sock] if pending else [], [], 0.5)
                if writable:
                    pending = pending[self._send(sock, pending) :]
                if readable:
                    data = sock.recv(1 << 20)
                    if not data:
                        self.eof = True
                    else:
                        self.items += self._parser.feed(data)

    def _send(self, sock: socket.socket, data: bytes) -> int:
        try:
            n = sock.send(data)
        except BlockingIOError:
            return 0
        self.sent += n
        return n


def _shrink(ws: Any) -> None:
    ws.transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDBUF, OUR_SNDBUF
    )


async def _start(peer: HostilePeer, connections: Callable[[], Iterable[Any]], count: int) -> None:
    """Start ``peer``; once ``count`` of our connections are OPEN, shrink their socket send
    buffers and let the flood begin."""
    if peer.ident is None:
        peer.start()
    for _ in range(500):
        members = [ws for ws in connections() if ws.state is turbows.State.OPEN]
        if len(members) == count:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the connections did not open")
    for ws in members:
        _shrink(ws)
    peer.go.set()


async def _watch(peer: HostilePeer, buffered: Callable[[], int]) -> int:
    """The most ``buffered()`` gave while ``peer`` flooded."""
    most = 0
    deadline = time.monotonic() + 10.0
    while not peer.flooded.is_set():
        most = max(most, buffered())
        assert time.monotonic() < deadline, "the peer never stopped flooding"
        await asyncio.sleep(0.002)
    return max(most, buffered())


def _check_bound(most: int) -> None:
    assert most <= WRITE_LIMIT + ALLOWANCE, f"{most} bytes buffered for a peer that never reads"


async def _finish(peer: HostilePeer) -> None:
    while peer.is_alive():
        await asyncio.sleep(0.01)
    if peer.error is not None:
        raise peer.error


def _write_buffer(connections: Callable[[], Iterable[Any]]) -> Callable[[], int]:
    def buffered() -> int:
        return max(
            (ws.transport.get_write_buffer_size() for ws in connections() if ws.transport),
            default=0,
        )

    return buffered


# ---------------------------------------------------------------------------------------------
# Server side: the hostile peer is a client.


def _client_socket(port: int) -> Callable[[], socket.socket]:
    def connect() -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PEER_RCVBUF)
        sock.settimeout(5.0)
        sock.connect(("127.0.0.1", port))
        sock.sendall(handshake_request(port))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)  # byte by byte: nothing after the head is taken here
            assert chunk, "closed during the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        return sock

    return connect


def _pongs(items: List[Any]) -> List[bytes]:
    return [bytes(i.payload) for i in items if type(i) is turbows.Pong]


async def _flood_server(
    server: fa.Server, frames: Iterable[bytes], done: Callable[[List[Any]], bool], members: int = 1
) -> HostilePeer:
    """Flood ``server`` from a hostile client (``members`` connections open with it), check
    that the server's write buffers stay bounded, then let the client read; return it."""
    peer = HostilePeer(_client_socket(server.port), frames, done, masked_input=False)
    await _start(peer, lambda: server.connections, members)
    _check_bound(await _watch(peer, _write_buffer(lambda: server.connections)))
    await _finish(peer)
    return peer


async def _echo_handler(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


def test_server_keeps_one_pong_for_a_peer_sending_pings_and_never_reading(
    loop_kind: str,
) -> None:
    count = 64_000  # 8.4 MB of pings: a pong each would be 8.1 MB
    last = _ping_payload(count - 1)

    async def main() -> None:
        async with fa.serve(_echo_handler, "127.0.0.1", 0, write_limit=WRITE_LIMIT) as server:
            peer = await _flood_server(
                server, (_ping(i, True) for i in range(count)), lambda items: last in _pongs(items)
            )
            pongs = _pongs(peer.items)
            # RFC 6455 5.5.3: the most recent ping is answered, whatever was skipped before.
            assert pongs and pongs[-1] == last, pongs[-3:]
            assert len(pongs) < count

    _run(main, loop_kind)


def test_server_answers_a_close_once_after_pings_from_a_peer_that_never_reads(
    loop_kind: str,
) -> None:
    count = 64_000
    close = turbows.build_frame(turbows.Opcode.CLOSE, b"\x03\xe8bye", mask=MASK)

    def frames() -> Iterable[bytes]:
        for i in range(count):
            yield _ping(i, True)
        yield close

    async def main() -> None:
        async with fa.serve(_echo_handler, "127.0.0.1", 0, write_limit=WRITE_LIMIT) as server:
            # It reads until the server closes TCP.
            peer = await _flood_server(server, frames(), lambda items: False)
            assert peer.eof
            closes = [i for i in peer.items if type(i) is turbows.CloseReceived]
            assert [c.code for c in closes] == [1000]
            assert type(peer.items[-1]) is turbows.CloseReceived

    _run(main, loop_kind)


def _binary_frames(count: int, size: int) -> Iterable[bytes]:
    payload = os.urandom(size)
    frame = turbows.build_frame(turbows.Opcode.BINARY, payload, mask=MASK)
    for _ in range(count):
        yield frame


def _received_bytes(items: List[Any]) -> int:
    return sum(len(i.data) for i in items if type(i) is turbows.BinaryMessage)


def test_on_message_echo_stops_reading_a_peer_that_never_reads(loop_kind: str) -> None:
    count, size = 128, 65536  # 8 MiB

    async def echo_callback(ws: Any) -> None:
        ws.on_message = ws.send_nowait  # the README's fastest echo
        await ws.wait_closed()

    async def main() -> None:
        async with fa.serve(
            echo_callback, "127.0.0.1", 0, write_limit=WRITE_LIMIT, extensions=()
        ) as server:
            peer = await _flood_server(
                server,
                _binary_frames(count, size),
                lambda items: _received_bytes(items) == count * size,
            )
            # Reading resumed once the peer read: every message came back.
            assert _received_bytes(peer.items) == count * size

    _run(main, loop_kind)


def test_broadcast_from_on_message_stops_reading_a_peer_that_never_reads(
    loop_kind: str,
) -> None:
    count, size = 128, 65536
    others: List[int] = []

    async def relay(ws: Any) -> None:
        server = ws._server
        ws.on_message = lambda message: fa.broadcast(server.connections, message)
        await ws.wait_closed()

    async def main() -> None:
        async with fa.serve(
            relay, "127.0.0.1", 0, write_limit=WRITE_LIMIT, extensions=()
        ) as server:
            # A well-behaved member of the room, which reads everything.
            async with fa.connect(
                f"ws://127.0.0.1:{server.port}/", extensions=[], max_message_size=None
            ) as member:

                async def read_all() -> None:
                    total = 0
                    while total < count * size:
                        total += len(await member.recv())
                    others.append(total)

                reader = asyncio.create_task(read_all())
                peer = await _flood_server(
                    server,
                    _binary_frames(count, size),
                    lambda items: _received_bytes(items) == count * size,
                    members=2,
                )
                assert _received_bytes(peer.items) == count * size
                await asyncio.wait_for(reader, 10)

    _run(main, loop_kind)
    assert others == [count * size]


# ---------------------------------------------------------------------------------------------
# Client side: the hostile peer is a server.


def _hostile_server(port_box: List[int]) -> Callable[[], socket.socket]:
    """A listening socket now (its port in ``port_box``); the callable accepts one client
    and completes its opening handshake."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PEER_RCVBUF)  # inherited
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port_box.append(listener.getsockname()[1])

    def accept() -> socket.socket:
        with listener:
            listener.settimeout(5.0)
            sock, _ = listener.accept()
        sock.settimeout(5.0)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)
            assert chunk, "closed during the handshake"
            head += chunk
        key = ""
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-key":
                key = value.strip()
        accept_key = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_key.encode() + b"\r\n\r\n"
        )
        return sock

    return accept


@pytest.fixture
def client_only(server_transport: str) -> None:
    if server_transport != "loop":
        pytest.skip("a client test: turbows's server transport plays no part")


async def _flood_client(
    frames: Iterable[bytes],
    done: Callable[[List[Any]], bool],
    on_message: Optional[Callable[[Any], Callable[[Any], Any]]] = None,
    **connect: Any,
) -> HostilePeer:
    """Connect a client to a hostile server that floods it with ``frames`` (``on_message``
    of the client, if given, is ``on_message(ws)``), check that the client's write buffer
    stays bounded, then let the server read; return it."""
    port: List[int] = []
    peer = HostilePeer(_hostile_server(port), frames, done, masked_input=True)
    peer.start()  # it answers the opening handshake
    ws = await fa.connect(f"ws://127.0.0.1:{port[0]}/", write_limit=WRITE_LIMIT, **connect)
    try:
        if on_message is not None:
            ws.on_message = on_message(ws)
        await _start(peer, lambda: [ws], 1)
        _check_bound(await _watch(peer, _write_buffer(lambda: [ws])))
        await _finish(peer)
    finally:
        ws.abort()
        await ws.wait_closed()
    return peer


@pytest.mark.usefixtures("client_only")
def test_client_keeps_one_pong_for_a_server_sending_pings_and_never_reading(
    loop_kind: str,
) -> None:
    count = 64_000  # 8.3 MB of unmasked pings: a masked pong each would be 8.4 MB
    last = _ping_payload(count - 1)

    async def main() -> None:
        peer = await _flood_client(
            (_ping(i, False) for i in range(count)), lambda items: last in _pongs(items)
        )
        pongs = _pongs(peer.items)
        assert pongs and pongs[-1] == last, pongs[-3:]
        assert len(pongs) < count

    _run(main, loop_kind)


@pytest.mark.usefixtures("client_only")
def test_client_answers_a_close_once_after_pings_from_a_server_that_never_reads(
    loop_kind: str,
) -> None:
    count = 64_000
    close = turbows.build_frame(turbows.Opcode.CLOSE, b"\x03\xe9moving")

    def frames() -> Iterable[bytes]:
        for i in range(count):
            yield _ping(i, False)
        yield close

    def closed(items: List[Any]) -> bool:
        return bool(items) and type(items[-1]) is turbows.CloseReceived

    async def main() -> None:
        peer = await _flood_client(frames(), closed)
        closes = [i for i in peer.items if type(i) is turbows.CloseReceived]
        assert [c.code for c in closes] == [1001]  # the client echoes the code, once

    _run(main, loop_kind)


@pytest.mark.usefixtures("client_only")
def test_client_on_message_echo_stops_reading_a_server_that_never_reads(
    loop_kind: str,
) -> None:
    count, size = 128, 65536  # 8 MiB

    def frames() -> Iterable[bytes]:
        frame = turbows.build_frame(turbows.Opcode.BINARY, os.urandom(size))
        for _ in range(count):
            yield frame

    async def main() -> None:
        peer = await _flood_client(
            frames(),
            lambda items: _received_bytes(items) == count * size,
            lambda ws: ws.send_nowait,
            extensions=[],
            max_message_size=None,
        )
        assert _received_bytes(peer.items) == count * size

    _run(main, loop_kind)


# ---------------------------------------------------------------------------------------------
# Accept bursts.


def test_an_accept_burst_is_taken_in_batches(
    server_transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of connections (an RST storm, say) is accepted at most ``ACCEPT_BATCH`` per
    wake-up of the loop, not ``backlog`` at once: what failed at once is freed in between."""
    if server_transport != "turbows":
        pytest.skip("turbows's own listener only: the loop's servers accept on their own")
    import turbows.asyncio._server as server_module

    burst = 300
    batches: List[int] = []
    made = [0]
    factory = server_module.Server._factory
    accept = server_module._FastListener._accept

    def counting_factory(self: Any) -> Any:
        made[0] += 1
        return factory(self)

    def counting_accept(self: Any, listener: socket.socket) -> None:
        before = made[0]
        accept(self, listener)
        batches.append(made[0] - before)

    monkeypatch.setattr(server_module.Server, "_factory", counting_factory)
    monkeypatch.setattr(server_module._FastListener, "_accept", counting_accept)

    async def main() -> None:
        async with fa.serve(_echo_handler, "127.0.0.1", 0, backlog=1024) as server:
            clients = []
            try:
                for _ in range(burst):  # all queued in the kernel before the loop runs
                    client = socket.socket()
                    client.setblocking(False)
                    try:
                        client.connect(("127.0.0.1", server.port))
                    except BlockingIOError:
                        pass
                    clients.append(client)
                for _ in range(500):
                    if made[0] == burst:
                        break
                    await asyncio.sleep(0.01)
            finally:
                for client in clients:
                    client.close()
            assert made[0] == burst
            assert max(batches) <= 128, batches  # not the 300 of the burst in one go

    run(main)
