"""turbows's own socket transport: used when asked, for plain TCP only."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import socket
import ssl
import struct
import threading
import time
from typing import Any

import pytest

import turbows
import turbows.asyncio as fa
import turbows.asyncio._server as server_module

from aio_helpers import handshake_request, masked_frame, run, uri

pytestmark = pytest.mark.skipif(
    server_module.SocketTransport is None, reason="the compiled transport is not built"
)


@pytest.mark.parametrize("use_uvloop", [False, True])
def test_fast_transport_serves_plain_tcp_connections(use_uvloop: bool) -> None:
    seen: list[str] = []

    async def handler(ws: Any) -> None:
        seen.append(type(ws.transport).__name__)
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0, fast_transport=True) as server:
            async with fa.connect(uri(server)) as ws:
                for i in range(100):
                    await ws.send(f"m{i}")
                    assert await ws.recv() == f"m{i}"
                await ws.send(b"\x00" * 300_000)
                assert await ws.recv() == b"\x00" * 300_000

    run(main, use_uvloop=use_uvloop)
    assert seen == ["SocketTransport"]


def test_tls_servers_keep_the_loop_transport() -> None:
    server = fa.serve(
        fa.WebSocket, "127.0.0.1", 0, ssl=ssl.create_default_context(), fast_transport=True
    )
    assert not server._uses_fast_transport()


def test_fast_transport_follows_the_default_unless_told(server_transport: str) -> None:
    server = fa.serve(fa.WebSocket, "127.0.0.1", 0)
    assert server._uses_fast_transport() == (server_transport == "turbows")
    assert not fa.serve(fa.WebSocket, "127.0.0.1", 0, fast_transport=False)._uses_fast_transport()


def test_peer_reset_on_the_fast_transport_ends_with_1006() -> None:
    codes: list[Any] = []

    async def handler(ws: Any) -> None:
        with contextlib.suppress(fa.WebSocketClosed):
            await ws.recv()
        codes.append(ws.close_code)

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0, fast_transport=True) as server:
            ws = await fa.connect(uri(server))
            ws.abort()
            for _ in range(100):
                if codes:
                    break
                await asyncio.sleep(0.01)

    run(main)
    assert codes == [1006]


@pytest.mark.parametrize("use_uvloop", [False, True])
def test_callback_echo_answers_pipelined_messages_in_order(use_uvloop: bool) -> None:
    """Many messages in one read are echoed by on_message = send_nowait, in order, on many
    connections at once (one shared epoll set reads them all)."""

    async def handler(ws: Any) -> None:
        ws.on_message = ws.send_nowait
        await ws.wait_closed()

    async def client(server: Any, n: int) -> None:
        async with fa.connect(uri(server)) as ws:
            messages = [f"{n}-{i}" if i % 2 else f"{n}-{i}".encode() for i in range(200)]
            for message in messages:  # no await between them: they leave in few writes
                ws.send_nowait(message)
            for message in messages:
                assert await ws.recv() == message

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0, fast_transport=True) as server:
            await asyncio.gather(*(client(server, n) for n in range(20)))

    run(main, use_uvloop=use_uvloop)


def test_a_failing_on_message_closes_with_1011_on_the_fast_transport() -> None:
    closed: list[Any] = []

    async def handler(ws: Any) -> None:
        def fail(message: Any) -> None:
            raise RuntimeError("boom")

        ws.on_message = fail
        await ws.wait_closed()

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0, fast_transport=True) as server:
            async with fa.connect(uri(server)) as ws:
                await ws.send("x")
                with pytest.raises(fa.WebSocketClosed):
                    await ws.recv()
                closed.append(ws.close_code)

    run(main)
    assert closed == [1011]


class _FailingListener:
    """A listening socket whose accept() always fails with EMFILE."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.calls = 0

    def fileno(self) -> int:
        return int(self.sock.fileno())

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def getsockname(self) -> Any:
        return self.sock.getsockname()

    def accept(self) -> Any:
        self.calls += 1
        raise OSError(errno.EMFILE, "Too many open files")

    def close(self) -> None:
        self.sock.close()


def test_accept_running_out_of_descriptors_backs_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "ACCEPT_RETRY_DELAY", 0.2)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        fake = _FailingListener(sock)
        listener = server_module._FastListener(loop, lambda: None, [fake], 8)  # type: ignore[list-item]
        client = socket.create_connection(sock.getsockname())
        try:
            await asyncio.sleep(0.1)
            assert fake.calls == 1  # not retried in a loop while the socket stays readable
            await asyncio.sleep(0.25)
            assert fake.calls == 2  # watched again after the delay
        finally:
            listener.close()
            client.close()

    run(main)


def test_fast_listener_binds_like_create_server() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        reference = await loop.create_server(asyncio.Protocol, "localhost", 0)
        expected = sorted(s.family for s in reference.sockets)
        reference.close()
        await reference.wait_closed()
        async with fa.serve(fa.WebSocket, "localhost", 0, fast_transport=True) as server:
            assert sorted(s.family for s in server.sockets) == expected
            for sock in server.sockets:
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
                if sock.family == socket.AF_INET6:
                    assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
            taken = next(s.getsockname()[1] for s in server.sockets if s.family == socket.AF_INET)
            with pytest.raises(OSError, match="error while attempting to bind on address"):
                await fa.serve(fa.WebSocket, "127.0.0.1", taken, fast_transport=True).start()

    run(main)


async def _open_raw(loop: asyncio.AbstractEventLoop, sock: socket.socket, port: int) -> None:
    """Connect a bare non-blocking socket and complete the opening handshake on it (nothing
    read past the 101's head)."""
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, handshake_request(port))
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 4096)
    assert head.endswith(b"\r\n\r\n") and head.startswith(b"HTTP/1.1 101")


@pytest.mark.parametrize("use_uvloop", [False, True])
def test_messages_and_the_peers_eof_read_together_both_count(use_uvloop: bool) -> None:
    """Frames and the FIN queued before the server reads: the messages arrive, then the EOF
    closes the connection (the shared epoll set is edge-triggered; the EOF behind the data
    must not wait for an event that never comes)."""
    got: list[Any] = []
    codes: list[Any] = []

    async def handler(ws: Any) -> None:
        with contextlib.suppress(fa.WebSocketClosed):
            async for message in ws:
                got.append(message)
        codes.append(ws.close_code)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with fa.serve(handler, "127.0.0.1", 0, fast_transport=True) as server:
            with socket.socket() as sock:
                await _open_raw(loop, sock, server.port)
                # No await between these: the server reads only when all of it is queued.
                sock.send(masked_frame(0x1, b"one") + masked_frame(0x1, b"two"))
                sock.shutdown(socket.SHUT_WR)
                while not codes:
                    await asyncio.sleep(0.01)

    run(main, timeout=5, use_uvloop=use_uvloop)
    assert got == ["one", "two"]
    assert codes == [1006]


@pytest.mark.parametrize("use_uvloop", [False, True])
def test_a_read_that_fills_the_buffer_is_followed_by_the_rest(use_uvloop: bool) -> None:
    """More than a read buffer (256 KiB) queued at once and nothing after it: the transport
    reads on without waiting for new data (which the peer only sends after the echo)."""
    size = 3 << 20
    big = os.urandom(size)

    def client(port: int, result: list[Any]) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=4) as sock:
            sock.sendall(handshake_request(port))
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            key = os.urandom(4)
            payload = turbows.apply_mask(big, key)
            sock.sendall(
                masked_frame(0x1, b"go") + b"\x82\xff" + struct.pack(">Q", size) + key + payload
            )
            echo = bytearray()
            while len(echo) < 10 + size:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                echo += chunk
            result.append(bytes(echo[10 : 10 + size]) == big)

    async def handler(ws: Any) -> None:
        assert await ws.recv() == "go"
        time.sleep(0.3)  # the event loop stands still while the big message is queued
        await ws.send(await ws.recv())

    async def main() -> None:
        async with fa.serve(
            handler, "127.0.0.1", 0, fast_transport=True, max_message_size=4 << 20
        ) as server:
            result: list[Any] = []
            thread = threading.Thread(target=client, args=(server.port, result))
            thread.start()
            while thread.is_alive():
                await asyncio.sleep(0.01)
            assert result == [True]

    run(main, timeout=8, use_uvloop=use_uvloop)


@pytest.mark.parametrize("use_uvloop", [False, True])
def test_connections_keep_reading_as_they_come_and_go(use_uvloop: bool) -> None:
    """One reading socket is watched by the loop itself, more share the epoll set: every
    move between the two (second connection opens, others close, one is left) loses
    nothing, including messages already waiting when the move happens."""

    async def handler(ws: Any) -> None:
        ws.on_message = ws.send_nowait
        await ws.wait_closed()

    async def exchange(ws: Any, tag: str) -> None:
        for i in range(3):
            ws.send_nowait(f"{tag}{i}")
        for i in range(3):
            assert await ws.recv() == f"{tag}{i}"

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0, fast_transport=True) as server:
            first = await fa.connect(uri(server))
            await exchange(first, "a")  # alone: watched by the loop
            first.send_nowait("queued")  # waiting on the server socket while it moves
            second = await fa.connect(uri(server))
            assert await first.recv() == "queued"
            await asyncio.gather(exchange(first, "b"), exchange(second, "c"))
            third = await fa.connect(uri(server))
            await second.close()  # two left: both stay in the set
            await asyncio.gather(exchange(first, "d"), exchange(third, "e"))
            await first.close()  # one left: back to the loop
            await exchange(third, "f")
            second = await fa.connect(uri(server))
            await asyncio.gather(exchange(third, "g"), exchange(second, "h"))
            await third.close()
            await second.close()

    run(main, use_uvloop=use_uvloop)


def _stream_and_expected(seed: int) -> tuple[bytes, list[Any]]:
    """Client frames of many sizes and kinds (fragmented text cut inside characters, binary,
    pings), and the messages an echo server must send back, in order."""
    rng = random.Random(seed)
    alphabet = "plain ascii é 中文 😀 "
    out = bytearray()
    expected: list[Any] = []
    for i in range(120):
        size = rng.choice((0, 5, 125, 126, 2047, 2048, 3000, 9000, 65535, 65536, 70_000))
        kind = i % 4
        if kind == 3:
            out += turbows.build_frame(0x9, b"p%d" % i, mask=os.urandom(4))
            kind = 0
        if kind == 0:
            text = "".join(rng.choice(alphabet) for _ in range(size // 3))
            data = text.encode()
            cut = len(data) // 2  # may fall inside a character
            out += turbows.build_frame(0x1, data[:cut], fin=False, mask=os.urandom(4))
            out += turbows.build_frame(0x0, data[cut:], mask=os.urandom(4))
            expected.append(text)
        elif kind == 1:
            text = "".join(rng.choice(alphabet) for _ in range(size // 3))
            out += turbows.build_frame(0x1, text.encode(), mask=os.urandom(4))
            expected.append(text)
        else:
            blob = rng.randbytes(size)
            out += turbows.build_frame(0x2, blob, mask=os.urandom(4))
            expected.append(blob)
    return bytes(out), expected


@pytest.mark.parametrize("use_uvloop", [False, True])
def test_long_reads_parsed_in_place_keep_every_message_intact(use_uvloop: bool) -> None:
    """Reads of 2 KiB and more reach the parser as a view of the loop's read buffer, which
    the next read overwrites: frame headers, payloads and characters cut between reads, on
    connections read in turn through the same buffer, all come back whole."""

    def client(port: int, seed: int, result: list[Any]) -> None:
        stream, expected = _stream_and_expected(seed)
        rng = random.Random(seed + 1)
        with socket.create_connection(("127.0.0.1", port), timeout=8) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(handshake_request(port))
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            rest = head.split(b"\r\n\r\n", 1)[1]
            got: list[Any] = []
            parser = turbows.FrameParser(require_mask=False, max_message_size=None)
            for item in parser.feed(rest):
                got.append(item)
            pos = 0
            while pos < len(stream):
                step = rng.choice((1, 7, 2048, 2049, 5000, 40_000, 70_000))
                sock.sendall(stream[pos : pos + step])
                pos += step
                time.sleep(0.0005)
            sock.settimeout(8)
            while sum(type(m).__name__ != "Pong" for m in got) < len(expected):
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                got.extend(parser.feed(chunk))
            # Every ping was answered, before the messages that came after it (the last
            # one's pong precedes the last echo).
            pongs = [m.payload for m in got if type(m).__name__ == "Pong"]
            sent = [b"p%d" % i for i in range(3, 120, 4)]
            messages = [m.data for m in got if type(m).__name__ != "Pong"]
            result.append(messages == expected and pongs == sent)

    async def handler(ws: Any) -> None:
        ws.on_message = ws.send_nowait
        await ws.wait_closed()

    async def main() -> None:
        async with fa.serve(
            handler, "127.0.0.1", 0, fast_transport=True, max_message_size=None
        ) as server:
            result: list[Any] = []
            threads = [
                threading.Thread(target=client, args=(server.port, seed, result))
                for seed in (1, 2, 3)
            ]
            for thread in threads:
                thread.start()
            while any(thread.is_alive() for thread in threads):
                await asyncio.sleep(0.01)
            assert result == [True, True, True]

    run(main, timeout=20, use_uvloop=use_uvloop)


def test_long_compressed_messages_read_in_place_come_back_whole() -> None:
    """permessage-deflate on the in-place reads: the inflater gets copies of the pieces."""
    rng = random.Random(7)
    messages = [
        "".join(rng.choice("abcdefé中 ") for _ in range(rng.choice((10, 3000, 50_000))))
        for _ in range(40)
    ]

    async def handler(ws: Any) -> None:
        assert ws.extensions
        async for message in ws:
            await ws.send(message)

    async def talk(server: Any) -> None:
        async with fa.connect(uri(server), max_message_size=None) as ws:
            assert ws.extensions
            for message in messages:
                await ws.send(message)
            for message in messages:
                assert await ws.recv() == message

    async def main() -> None:
        async with fa.serve(
            handler, "127.0.0.1", 0, fast_transport=True, max_message_size=None
        ) as server:
            await asyncio.gather(talk(server), talk(server))

    run(main, timeout=20)


def _slow_reader(port: int, requests: list[bytes], count: int, result: list[Any]) -> None:
    """Send each request in its own write, wait without reading (the server's writes fill
    the socket buffers and then its own), then read and parse ``count`` messages."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        sock.sendall(handshake_request(port))
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        for request in requests:
            sock.sendall(request)
            time.sleep(0.02)
        time.sleep(0.5)
        parser = turbows.FrameParser(require_mask=False, max_message_size=None)
        got: list[Any] = []
        while len(got) < count:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            got.extend(item.data for item in parser.feed(chunk))
        result.append(got)


_LARGE_REPLIES = [
    "a" * 9000,
    b"\x01" * 10,
    "é中" * 100_000,
    bytes(range(256)) * 4096,
    "z" * 8192,
    "small",
    b"\x02" * 3_000_000,
    "y" * 2_000_000,
]


@pytest.mark.parametrize("use_uvloop", [False, True])
@pytest.mark.parametrize("mode", ["callback", "handler"])
def test_large_frames_sent_unbuilt_reach_a_slow_reader_whole_and_in_order(
    use_uvloop: bool, mode: str
) -> None:
    """A large frame goes out as its header and payload in one sendmsg: what the socket does
    not take (a reader that waits) is kept, in order with what follows, header included."""
    replies = _LARGE_REPLIES

    async def handler(ws: Any) -> None:
        if mode == "callback":
            ws.on_message = lambda message: ws.send_nowait(replies[int(message)])
        else:
            await ws.recv()
            for reply in replies:
                ws.send_nowait(reply)
        await ws.wait_closed()

    if mode == "callback":
        requests = [masked_frame(0x1, str(i).encode()) for i in range(len(replies))]
    else:
        requests = [masked_frame(0x1, b"go")]

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0, fast_transport=True) as server:
            result: list[Any] = []
            thread = threading.Thread(
                target=_slow_reader, args=(server.port, requests, len(replies), result)
            )
            thread.start()
            while thread.is_alive():
                await asyncio.sleep(0.01)
            assert result == [replies]

    run(main, timeout=20, use_uvloop=use_uvloop)


@pytest.mark.parametrize("use_uvloop", [False, True])
def test_on_message_answers_of_one_read_leave_together_after_the_callbacks(
    use_uvloop: bool,
) -> None:
    """While the callbacks of one read run, send_nowait only frames; what they framed goes out
    in one write after the last one. On loopback a send lands in the peer's socket at once, so
    the callbacks themselves can see whether anything left yet."""
    peeked: list[Any] = []
    sock = socket.socket()

    def peek() -> Any:
        try:
            return sock.recv(4096, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None

    async def handler(ws: Any) -> None:
        def on_message(message: Any) -> None:
            ws.send_nowait(message)
            peeked.append(peek())

        ws.on_message = on_message
        await ws.wait_closed()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with fa.serve(handler, "127.0.0.1", 0, fast_transport=True) as server:
            with sock:
                await _open_raw(loop, sock, server.port)
                # One write: the server reads all three at once.
                sock.send(b"".join(masked_frame(0x1, b"%d" % i) for i in range(3)))
                got = b""
                while len(got) < 9:
                    got += await loop.sock_recv(sock, 4096)
                assert got == b"\x81\x010\x81\x011\x81\x012"
                # The next read's callbacks start corked again.
                sock.send(masked_frame(0x1, b"3"))
                while len(got) < 12:
                    got += await loop.sock_recv(sock, 4096)

    run(main, use_uvloop=use_uvloop)
    assert peeked == [None, None, None, None]


@pytest.mark.parametrize("fast", [True, False])
def test_a_base_exception_from_on_message_is_fatal_to_the_connection(fast: bool) -> None:
    """Not an on_message failure (those close with 1011) but what asyncio's transports do with
    any exception out of data_received: report it and close the connection. The same on both
    transports; the server goes on serving other connections."""

    class Stop(BaseException):
        pass

    async def handler(ws: Any) -> None:
        def on_message(message: Any) -> None:
            if message == "stop":
                raise Stop
            ws.send_nowait(message)

        ws.on_message = on_message
        await ws.wait_closed()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        reported: list[Any] = []
        loop.set_exception_handler(lambda loop, context: reported.append(context))
        async with fa.serve(handler, "127.0.0.1", 0, fast_transport=fast) as server:
            async with fa.connect(uri(server)) as ws:
                await ws.send("stop")
                with pytest.raises(fa.ClosedError):
                    await asyncio.wait_for(ws.recv(), 2)
                assert ws.close_code == 1006
            async with fa.connect(uri(server)) as ws:
                await ws.send("still serving")
                assert await asyncio.wait_for(ws.recv(), 2) == "still serving"
        assert [type(context["exception"]) for context in reported] == [Stop]
        assert "call failed" in reported[0]["message"]

    run(main)


@pytest.mark.parametrize("use_uvloop", [False, True])
@pytest.mark.parametrize("where", ["data_received", "eof_received"])
def test_an_exception_out_of_the_protocol_is_fatal_like_on_asyncios_transports(
    use_uvloop: bool, where: str
) -> None:
    """Any protocol, not only turbows's: the error is reported with the call that failed, the
    transport closes, and connection_lost gets the error."""
    from turbows.asyncio._fastio import SocketTransport

    class Boom(Exception):
        pass

    class Failing(asyncio.Protocol):
        def __init__(self) -> None:
            self.lost: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def data_received(self, data: bytes) -> None:
            if where == "data_received":
                raise Boom

        def eof_received(self) -> None:
            raise Boom

        def connection_lost(self, exc: Any) -> None:
            self.lost.set_result(exc)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        reported: list[Any] = []
        loop.set_exception_handler(lambda loop, context: reported.append(context))
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        protocol = Failing()
        transport = SocketTransport(loop, ours, protocol)
        transport.start()
        with theirs:
            theirs.sendall(b"x")
            theirs.shutdown(socket.SHUT_WR)
            lost = await asyncio.wait_for(protocol.lost, 2)
        assert isinstance(lost, Boom) and transport.is_closing()
        assert [type(context["exception"]) for context in reported] == [Boom]
        assert f"protocol.{where}() call failed" in reported[0]["message"]

    run(main, use_uvloop=use_uvloop)


# -- attributes read from their slots ------------------------------------------------------


class _Slotted:
    __slots__ = ("a", "b")


class _SlottedChild(_Slotted):
    __slots__ = ("c",)


class _Overridden(_Slotted):
    __slots__ = ()

    @property  # type: ignore[override]
    def a(self) -> str:
        return "from the property"


class _OwnLookup(_Slotted):
    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        return f"looked up {name}"


def test_slot_reads_match_getattr() -> None:
    from turbows.asyncio._fastio import _is_slot_read, _read_attribute

    child = _SlottedChild()
    child.a, child.c = "first", ["third"]
    assert _is_slot_read(_SlottedChild, "a") and _is_slot_read(_SlottedChild, "c")
    assert _read_attribute(child, "a") == "first"
    assert _read_attribute(child, "c") is child.c
    child.a = 1.5  # a new value is read, not a remembered one
    assert _read_attribute(child, "a") == 1.5
    with pytest.raises(AttributeError):
        _read_attribute(child, "b")  # an unset slot
    del child.c
    with pytest.raises(AttributeError):
        _read_attribute(child, "c")
    # What a slot read must not bypass: a property over the slot, the class's own lookup,
    # methods, class attributes and read-only members.
    assert not _is_slot_read(_Overridden, "a")
    assert _read_attribute(_Overridden(), "a") == "from the property"
    assert not _is_slot_read(_OwnLookup, "b")
    assert _read_attribute(_OwnLookup(), "b") == "looked up b"
    assert not _is_slot_read(_Slotted, "__init__")
    assert not _is_slot_read(_Slotted, "__doc__")
    assert not _is_slot_read(slice, "start")  # READONLY member
    assert _read_attribute(slice(3, 4), "start") == 3
    assert not _is_slot_read(_Slotted, "missing")


def test_the_data_path_reads_the_connection_and_websocket_from_their_slots() -> None:
    # Guards the speed of the data path: these are the attributes _deliver, send_nowait
    # and _send_frames read per message; if one stops being a plain slot (a property, a
    # renamed slot), the reads still work through getattr, but this says so.
    from turbows.asyncio._fastio import _is_slot_read
    from turbows.connection import ClientConnection, ServerConnection

    for cls in (ServerConnection, ClientConnection):
        names = ("_fast", "_events", "_feed", "should_close_transport", "data_to_send")
        for name in (*names, "send_text"):
            assert _is_slot_read(cls, name), (cls, name)
    for ws_cls in (fa.WebSocket, server_module.ServerWebSocket):
        assert _is_slot_read(ws_cls, "_on_message")
