"""broadcast(): one message to many connections, without waiting for any of them."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any, List

import pytest

import turbows
import turbows.asyncio as fa

from aio_helpers import handshake_request, opened, park, run, uri


def test_every_open_connection_gets_each_message_in_order() -> None:
    big_text = "x" * 200_000  # large: written from the same object to every socket
    big_blob = os.urandom(150_000)
    messages: List[Any] = [
        "hello",
        b"\x00\x01",
        bytearray(b"ba"),
        memoryview(b"mv"),
        big_text,
        big_blob,
        "é中😀",
    ]
    expected = ["hello", b"\x00\x01", b"ba", b"mv", big_text, big_blob, "é中😀"]

    async def main() -> None:
        async with fa.serve(park, "127.0.0.1", 0, max_message_size=None) as server:
            clients = [
                await fa.connect(
                    uri(server), max_message_size=None, extensions=() if i % 2 else None
                )
                for i in range(4)
            ]
            assert clients[0].extensions and not clients[1].extensions  # deflate or not
            members = await opened(server, 4)
            for message in messages:
                assert fa.broadcast(members, message) == []
            for client in clients:
                assert [await client.recv() for _ in expected] == expected
                await client.close()

    run(main, timeout=15)


def test_connections_that_are_not_open_are_returned_not_sent_to() -> None:
    async def main() -> None:
        async with fa.serve(park, "127.0.0.1", 0) as server:
            stay = await fa.connect(uri(server))
            leave = await fa.connect(uri(server))
            members = await opened(server, 2)
            await leave.close()
            for _ in range(100):
                if sum(ws.state is turbows.State.CLOSED for ws in members) == 1:
                    break
                await asyncio.sleep(0.01)
            (gone,) = [ws for ws in members if ws.state is turbows.State.CLOSED]
            assert fa.broadcast(members, "still here?") == [gone]
            assert await stay.recv() == "still here?"
            await stay.close()

    run(main)


def test_a_message_of_another_type_is_refused_before_anything_is_sent() -> None:
    async def main() -> None:
        async with fa.serve(park, "127.0.0.1", 0) as server:
            client = await fa.connect(uri(server))
            members = await opened(server, 1)
            with pytest.raises(TypeError):
                fa.broadcast(members, 42)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                fa.broadcast(members, ["not", "a", "message"])  # type: ignore[arg-type]
            fa.broadcast(members, "after")
            assert await client.recv() == "after"
            await client.close()

    run(main)


def test_slow_readers_are_skipped_only_when_asked() -> None:
    chunk = "s" * 100_000

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with fa.serve(park, "127.0.0.1", 0, write_limit=64 * 1024) as server:
            fast = await fa.connect(uri(server), max_message_size=None)
            with socket.socket() as slow:  # completes the handshake, then never reads
                slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                slow.setblocking(False)
                await loop.sock_connect(slow, ("127.0.0.1", server.port))
                await loop.sock_sendall(slow, handshake_request(server.port))
                members = await opened(server, 2)
                (slow_ws,) = [ws for ws in members if ws.remote_address[1] == slow.getsockname()[1]]
                for i in range(100):  # until the slow reader's buffer is over its mark
                    assert fa.broadcast(members, chunk) == []
                    assert await fast.recv() == chunk
                    if slow_ws.writing_paused:
                        break
                assert slow_ws.writing_paused
                buffered = slow_ws.transport.get_write_buffer_size()
                assert fa.broadcast(members, "skip?", skip_slow=True) == [slow_ws]
                assert slow_ws.transport.get_write_buffer_size() == buffered
                assert await fast.recv() == "skip?"
                assert fa.broadcast(members, "all") == []  # not skipped: buffered
                assert slow_ws.transport.get_write_buffer_size() > buffered
                assert await fast.recv() == "all"
            await fast.close()

    run(main, timeout=15)


def test_a_connection_sending_a_fragmented_message_is_returned_and_its_message_kept() -> None:
    release = asyncio.Event  # made inside the loop below

    async def main() -> None:
        gate = release()
        started = release()

        async def fragments() -> Any:
            yield "first "
            yield "second "  # "first " goes out (not final) once this one is known
            started.set()
            await gate.wait()
            yield "third"

        async def handler(ws: Any) -> None:
            await ws.send(fragments())
            await ws.wait_closed()

        async with fa.serve(handler, "127.0.0.1", 0) as server:
            client = await fa.connect(uri(server))
            await started.wait()
            (busy,) = await opened(server, 1)
            assert fa.broadcast([busy], "cut in") == [busy]
            gate.set()
            assert await client.recv() == "first second third"
            fa.broadcast([busy], "now")
            assert await client.recv() == "now"
            await client.close()

    run(main)
