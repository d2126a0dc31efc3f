"""Messages both ways over real sockets: text, binary, sizes, fragments, iteration."""

from __future__ import annotations

import asyncio
from typing import Any, List

import pytest

import turbows
import turbows.asyncio as fa

from aio_helpers import echo, run, uri


def test_text_and_binary_messages_are_echoed() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0) as server:
            async with fa.connect(uri(server)) as ws:
                assert ws.state is turbows.State.OPEN
                await ws.send("hello")
                assert await ws.recv() == "hello"
                await ws.send(b"\x00\xff")
                assert await ws.recv() == b"\x00\xff"
                await ws.send(bytearray(b"ba"))
                assert await ws.recv() == b"ba"
                await ws.send("")
                assert await ws.recv() == ""
            assert ws.state is turbows.State.CLOSED
            assert ws.close_code == 1000

    run(main)


@pytest.mark.parametrize("size", [125, 126, 65535, 65536, 1 << 20])
def test_messages_of_every_length_class_are_echoed(size: int) -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0) as server:
            async with fa.connect(uri(server)) as ws:
                payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
                await ws.send(payload)
                assert await ws.recv() == payload

    run(main)


def test_many_messages_keep_their_order() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0) as server:
            async with fa.connect(uri(server)) as ws:
                for i in range(2000):
                    await ws.send(str(i))
                got = [await ws.recv() for _ in range(2000)]
                assert got == [str(i) for i in range(2000)]

    run(main)


def test_fragmented_messages_are_reassembled_by_the_receiver() -> None:
    received: List[Any] = []

    async def collect(ws: fa.ServerWebSocket) -> None:
        async for message in ws:
            received.append(message)
            await ws.send(iter([message[:1], message[1:]]))  # sent back fragmented too

    async def pieces():  # type: ignore[no-untyped-def]
        for part in (b"ab", b"cd", b"ef"):
            await asyncio.sleep(0)
            yield part

    async def main() -> None:
        async with fa.serve(collect, "127.0.0.1", 0) as server:
            async with fa.connect(uri(server)) as ws:
                await ws.send(["fr", "ag", "ment", "é"])
                assert await ws.recv() == "fragmenté"
                await ws.send(pieces())
                assert await ws.recv() == b"abcdef"
                with pytest.raises(TypeError):
                    await ws.send(["text", b"bytes"])
        assert received == ["fragmenté", b"abcdef"]

    run(main)


def test_unsupported_message_type_is_refused() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0) as server:
            async with fa.connect(uri(server)) as ws:
                with pytest.raises(TypeError):
                    await ws.send(42)  # type: ignore[arg-type]

    run(main)


def test_async_for_ends_on_a_normal_close() -> None:
    async def greet_and_close(ws: fa.ServerWebSocket) -> None:
        await ws.send("one")
        await ws.send("two")
        await ws.close(1000, "bye")

    async def main() -> None:
        async with fa.serve(greet_and_close, "127.0.0.1", 0) as server:
            async with fa.connect(uri(server)) as ws:
                got = [message async for message in ws]
                assert got == ["one", "two"]
                assert (ws.close_code, ws.close_reason) == (1000, "bye")
                with pytest.raises(fa.ClosedOK):
                    await ws.recv()
                with pytest.raises(fa.ClosedOK):
                    await ws.send("late")

    run(main)


def test_two_concurrent_recv_calls_are_refused() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0) as server:
            async with fa.connect(uri(server)) as ws:
                first = asyncio.ensure_future(ws.recv())
                await asyncio.sleep(0.01)
                with pytest.raises(RuntimeError):
                    await ws.recv()
                with pytest.raises(RuntimeError):
                    await ws.__anext__()
                await ws.send("x")
                assert await first == "x"
                # The same the other way round: async for waiting, recv refused.
                second = asyncio.ensure_future(ws.__anext__())
                await asyncio.sleep(0.01)
                with pytest.raises(RuntimeError):
                    await ws.recv()
                await ws.send("y")
                assert await second == "y"

    run(main)


def test_cancelled_recv_loses_no_message() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0) as server:
            async with fa.connect(uri(server)) as ws:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(ws.recv(), 0.05)
                await ws.send("after")
                assert await ws.recv() == "after"
                # A cancelled wait leaves no waiter behind: the next one waits as usual.
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(ws.__anext__(), 0.05)
                pending = asyncio.ensure_future(ws.recv())
                await asyncio.sleep(0.01)
                assert not pending.done()
                await ws.send("again")
                assert await pending == "again"

    run(main)


def test_request_path_headers_and_addresses_are_visible() -> None:
    seen: List[Any] = []

    async def handler(ws: fa.ServerWebSocket) -> None:
        assert ws.request is not None
        seen.append((ws.request.path, ws.request.headers.get("X-Token"), ws.remote_address))
        await ws.send("ok")

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            async with fa.connect(uri(server, "/room?id=3"), extra_headers={"X-Token": "t"}) as ws:
                assert await ws.recv() == "ok"
                assert ws.local_address[0] == "127.0.0.1"
                assert ws.response_headers.get("Upgrade").lower() == "websocket"
        assert seen[0][0] == "/room?id=3" and seen[0][1] == "t"
        assert seen[0][2][0] == "127.0.0.1"

    run(main)


def test_text_as_bytes_delivers_validated_utf8() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0) as server:
            async with fa.connect(uri(server), text_as_bytes=True) as ws:
                await ws.send("é")
                assert await ws.recv() == "é".encode()

    run(main)


def test_unix_socket_and_existing_socket() -> None:
    import os
    import socket
    import tempfile

    async def main() -> None:
        path = os.path.join(tempfile.mkdtemp(), "ws.sock")
        async with fa.serve(echo, unix=path):
            async with fa.connect("ws://localhost/", unix=path) as ws:
                await ws.send("unix")
                assert await ws.recv() == "unix"
        os.unlink(path) if os.path.exists(path) else None
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        async with fa.serve(echo, sock=sock):
            async with fa.connect(f"ws://127.0.0.1:{port}/") as ws:
                await ws.send("sock")
                assert await ws.recv() == "sock"

    run(main)


def test_on_message_callback_and_send_nowait_echo_without_a_task_switch() -> None:
    async def handler(ws: fa.ServerWebSocket) -> None:
        ws.on_message = ws.send_nowait
        await ws.wait_closed()

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            async with fa.connect(uri(server)) as ws:
                for message in ("a", b"b", "c" * 70000):
                    await ws.send(message)
                    assert await ws.recv() == message
                ws.send_nowait("now")
                assert await ws.recv() == "now"
                assert not ws.writing_paused

    run(main)


def test_failing_on_message_callback_closes_with_1011() -> None:
    async def handler(ws: fa.ServerWebSocket) -> None:
        ws.on_message = lambda message: 1 / 0
        await ws.wait_closed()

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            async with fa.connect(uri(server)) as ws:
                await ws.send("x")
                with pytest.raises(fa.ClosedError):
                    await ws.recv()
                assert ws.close_code == 1011

    run(main)
