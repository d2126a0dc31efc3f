"""fanout() and Fanout: many messages to many connections, one write per connection per batch,
within each connection's write limit (slow-consumer policies close, skip, later)."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Any, List, Tuple

import pytest

import turbows
import turbows.asyncio as fa
from turbows.asyncio._protocol import WebSocket

from aio_helpers import handshake_request, opened, park, run, uri


async def _stalled_client(port: int) -> socket.socket:
    """A client that completes the handshake and then does not read (small receive buffer)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, handshake_request(port))
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 1)
    assert head.startswith(b"HTTP/1.1 101")
    return sock


def _parse_frames(data: bytes) -> Tuple[List[Tuple[int, bytes]], bytes]:
    """Unmasked server frames in ``data``: ((opcode, payload), ...) and the leftover bytes."""
    out = []
    i = 0
    while i + 2 <= len(data):
        first, second = data[i], data[i + 1]
        assert second & 0x80 == 0, "a server frame is masked"
        assert first & 0x70 == 0, "RSV bits set"
        n = second & 0x7F
        j = i + 2
        if n == 126:
            if j + 2 > len(data):
                break
            (n,) = struct.unpack(">H", data[j : j + 2])
            j += 2
        elif n == 127:
            if j + 8 > len(data):
                break
            (n,) = struct.unpack(">Q", data[j : j + 8])
            j += 8
        if j + n > len(data):
            break
        out.append((first & 0x0F, data[j : j + n]))
        i = j + n
    return out, data[i:]


async def _drain_socket(sock: socket.socket, want: int, timeout: float = 10.0) -> List[str]:
    """Read text messages from a raw client socket until ``want`` data messages came."""
    loop = asyncio.get_running_loop()
    buf = b""
    texts: List[str] = []
    end = loop.time() + timeout
    while len(texts) < want:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), end - loop.time())
        assert chunk, f"EOF after {len(texts)} messages"
        frames, buf = _parse_frames(buf + chunk)
        texts += [p.decode() for op, p in frames if op == 1]
    return texts


def test_a_batch_reaches_every_connection_in_order_with_one_write_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writes: List[Any] = []
    push = WebSocket._push

    def counting_push(self: Any) -> None:
        writes.append(self)
        push(self)

    monkeypatch.setattr(WebSocket, "_push", counting_push)
    messages: List[Any] = [f"m{i}" for i in range(200)] + [b"\x00bin", "x" * 70_000]

    async def main() -> None:
        async with fa.serve(park, "127.0.0.1", 0, write_limit=1 << 20) as server:
            clients = [
                await fa.connect(uri(server), max_message_size=None, extensions=() if i else None)
                for i in range(3)
            ]
            assert clients[0].extensions  # permessage-deflate: uncompressed frames still fine
            members = await opened(server, 3)
            writes.clear()
            result = fa.fanout(members, messages)
            assert result.delivered == 3 and not result.missed and not result.slow
            assert sorted(map(id, writes)) == sorted(map(id, members))  # one write each
            for client in clients:
                assert [await client.recv() for _ in messages] == messages
                await client.close()

    run(main)


def test_connections_not_open_are_missed_and_a_bad_message_sends_nothing() -> None:
    async def main() -> None:
        async with fa.serve(park, "127.0.0.1", 0) as server:
            a = await fa.connect(uri(server))
            b = await fa.connect(uri(server))
            members = await opened(server, 2)
            with pytest.raises(TypeError):
                fa.fanout(members, ["ok", 3])  # type: ignore[list-item]
            closing = [ws for ws in members if ws.remote_address[1] == b.local_address[1]][0]
            await b.close()
            result = fa.fanout(members, ["one", "two"])
            assert result.missed == [closing] and result.delivered == 1
            assert [await a.recv(), await a.recv()] == ["one", "two"]
            await a.close()

    run(main)


def test_send_frames_refuses_a_client_and_a_connection_that_is_not_open() -> None:
    client = turbows.ClientConnection("ws://example.com/")
    with pytest.raises(turbows.InvalidStateError):
        client.send_frames(b"\x81\x00")
    server = turbows.ServerConnection()
    with pytest.raises(turbows.InvalidStateError):
        server.send_frames(b"\x81\x00")


@pytest.mark.parametrize("policy", ["close", "skip", "later"])
def test_a_stalled_reader_stays_within_its_limit_plus_one_message(policy: str) -> None:
    limit = 32 * 1024
    message = "z" * 1000
    frame_size = 4 + len(message)

    async def main() -> None:
        fan = fa.Fanout(policy, max_backlog=4 * limit)
        async with fa.serve(park, "127.0.0.1", 0, write_limit=limit) as server:
            fast = await fa.connect(uri(server))
            slow = await _stalled_client(server.port)
            members = await opened(server, 2)
            (slow_ws,) = [ws for ws in members if ws.remote_address[1] == slow.getsockname()[1]]
            acted = False
            for i in range(400):
                result = fan.send(members, [message] * 8)
                transport = slow_ws.transport
                if transport is not None:
                    assert transport.get_write_buffer_size() <= limit + frame_size
                acted = acted or slow_ws in result.slow
                assert [await fast.recv() for _ in range(8)] == [message] * 8
                if policy == "close" and slow_ws.state is not turbows.State.OPEN:
                    break
            assert acted
            if policy == "close":
                assert slow_ws.state is not turbows.State.OPEN
                assert slow_ws._conn._close_sent[0] == fa.SLOW_CONSUMER
            if policy == "later":
                # the backlog went over max_backlog: closed like "close"
                assert slow_ws.state is not turbows.State.OPEN
            slow.close()
            await fast.close()

    run(main, timeout=30)


def test_a_reader_takes_a_batch_bigger_than_its_write_limit_whole() -> None:
    # The socket takes what is written at once, so a connection that reads is never handled
    # as a slow consumer because one batch is bigger than its write limit.
    limit = 32 * 1024
    messages = [f"{i:05d}" + "y" * 994 for i in range(64)]  # 64 KiB of frames: twice the limit

    async def main() -> None:
        fan = fa.Fanout("close")
        async with fa.serve(park, "127.0.0.1", 0, write_limit=limit) as server:
            client = await fa.connect(uri(server))
            (member,) = await opened(server, 1)
            for _ in range(3):
                result = fan.send([member], messages)
                assert result.delivered == 1 and not result.slow and not result.missed
                assert [await client.recv() for _ in messages] == messages
            await client.close()

    run(main)


def test_skip_sends_a_gap_marker_with_the_count_then_goes_on() -> None:
    limit = 16 * 1024
    total = 0

    async def main() -> None:
        nonlocal total
        fan = fa.Fanout("skip")
        async with fa.serve(park, "127.0.0.1", 0, write_limit=limit) as server:
            slow = await _stalled_client(server.port)
            (slow_ws,) = await opened(server, 1)
            batch = [f'{{"n":{i:05d},"pad":"{"p" * 500}"}}' for i in range(20)]
            while not fan.skipped(slow_ws):
                fan.send([slow_ws], batch)
                total += len(batch)
            skipped_so_far = fan.skipped(slow_ws)
            assert skipped_so_far > 0
            # the reader catches up: the next batch has room, preceded by the gap marker
            received: List[str] = []
            loop = asyncio.get_running_loop()
            buf = b""
            while (
                slow_ws.transport.get_write_buffer_size() or len(received) < total - skipped_so_far
            ):
                chunk = await asyncio.wait_for(loop.sock_recv(slow, 65536), 5)
                frames, buf = _parse_frames(buf + chunk)
                received += [p.decode() for op, p in frames if op == 1]
            fan.send([slow_ws], ["after"])
            received += await _drain_socket(slow, 2)
            gaps = [json.loads(m)["gap"] for m in received if m.startswith('{"gap"')]
            data = [m for m in received if not m.startswith('{"gap"')]
            assert gaps == [skipped_so_far]
            assert received[-1] == "after" and received[-2] == '{"gap":%d}' % skipped_so_far
            assert len(data) - 1 + sum(gaps) == total
            slow.close()

    run(main, timeout=30)


def test_later_feeds_a_stalled_reader_everything_once_it_reads_again() -> None:
    limit = 16 * 1024

    async def main() -> None:
        fan = fa.Fanout("later", max_backlog=16 << 20)
        async with fa.serve(park, "127.0.0.1", 0, write_limit=limit) as server:
            slow = await _stalled_client(server.port)
            (slow_ws,) = await opened(server, 1)
            sent = [f"{i:06d}" + "q" * 1000 for i in range(6000)]  # more than the kernel buffers
            for i in range(0, len(sent), 50):
                fan.send([slow_ws], sent[i : i + 50])
                assert slow_ws.transport.get_write_buffer_size() <= limit + 1010
            assert fan.pending(slow_ws) > 0
            received = await _drain_socket(slow, len(sent))
            assert received == sent
            assert fan.pending(slow_ws) == 0
            slow.close()

    run(main, timeout=30)


def test_broadcast_is_one_message_through_the_same_path(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: List[bytes] = []
    original = turbows.ServerConnection.send_frames

    def spy(self: Any, frames: bytes) -> None:
        calls.append(frames)
        original(self, frames)

    monkeypatch.setattr(turbows.ServerConnection, "send_frames", spy)

    async def main() -> None:
        async with fa.serve(park, "127.0.0.1", 0) as server:
            clients = [await fa.connect(uri(server)) for _ in range(3)]
            members = await opened(server, 3)
            assert fa.broadcast(members, "hi") == []
            assert len(calls) == 3 and all(c is calls[0] for c in calls)  # framed once
            for client in clients:
                assert await client.recv() == "hi"
                await client.close()

    run(main)
