"""Every way a connection ends, as both sides see it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Dict

import pytest

import turbows
import turbows.asyncio as fa

from aio_helpers import echo, masked_frame, raw_client, run, uri


def test_client_close_with_code_and_reason_reaches_the_handler() -> None:
    seen: Dict[str, Any] = {}

    async def handler(ws: fa.ServerWebSocket) -> None:
        try:
            await ws.recv()
        except fa.WebSocketClosed as exc:
            seen["exc"] = exc
        seen["code"], seen["reason"] = ws.close_code, ws.close_reason

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            ws = await fa.connect(uri(server))
            await ws.close(4000, "app done")
            assert ws.closed_event is not None and ws.closed_event.clean
            assert ws.closed_event.sent_code == 4000
            await asyncio.sleep(0.05)
        assert isinstance(seen["exc"], fa.ClosedError)  # 4000 is not a "normal" close
        assert (seen["code"], seen["reason"]) == (4000, "app done")

    run(main)


def test_server_close_with_code_and_reason_reaches_the_client() -> None:
    async def handler(ws: fa.ServerWebSocket) -> None:
        await ws.close(1008, "policy")

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            async with fa.connect(uri(server)) as ws:
                with pytest.raises(fa.ClosedError) as info:
                    await ws.recv()
                assert info.value.code == 1008 and info.value.reason == "policy"
                assert info.value.clean
                assert ws.closed_event is not None and ws.closed_event.initiator == "peer"

    run(main)


def test_handler_return_closes_with_1000() -> None:
    async def handler(ws: fa.ServerWebSocket) -> None:
        return None

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            async with fa.connect(uri(server)) as ws:
                with pytest.raises(fa.ClosedOK):
                    await ws.recv()
                assert ws.close_code == 1000

    run(main)


def test_close_frame_without_a_code_ends_async_for_normally() -> None:
    # A browser's ws.close() with no argument sends a close frame with an empty payload
    # (1005 on the receiving side): a normal end, like 1000.
    seen: Dict[str, Any] = {}

    async def handler(ws: fa.ServerWebSocket) -> None:
        seen["messages"] = [message async for message in ws]
        seen["code"] = ws.close_code

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            reader, writer = await raw_client(server.port)
            writer.write(masked_frame(0x1, b"last") + masked_frame(0x8, b""))
            data = await asyncio.wait_for(reader.read(), 2)
            assert data == b"\x88\x00"  # the server answers with an empty close frame too
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(0.05)
        assert seen == {"messages": ["last"], "code": 1005}

    run(main)


def test_handler_exception_closes_with_1011_and_is_logged(caplog: Any) -> None:
    async def handler(ws: fa.ServerWebSocket) -> None:
        raise ValueError("boom")

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            async with fa.connect(uri(server)) as ws:
                with pytest.raises(fa.ClosedError):
                    await ws.recv()
                assert ws.close_code == 1011

    run(main)
    assert any("handler failed" in r.getMessage() and r.name == "turbows.server" for r in caplog.records)


def test_tcp_drop_by_the_client_gives_1006_to_the_handler() -> None:
    done: "asyncio.Future[Any]"

    async def handler(ws: fa.ServerWebSocket) -> None:
        try:
            await ws.recv()
        except fa.ClosedError as exc:
            done.set_result((exc.code, exc.clean))

    async def main() -> None:
        nonlocal done
        done = asyncio.get_running_loop().create_future()
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            ws = await fa.connect(uri(server))
            ws.abort()
            assert await done == (1006, False)
            await ws.wait_closed()
            assert ws.close_code == 1006

    run(main)


def test_tcp_drop_by_the_server_gives_1006_to_the_client() -> None:
    async def handler(ws: fa.ServerWebSocket) -> None:
        ws.transport.abort()

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            ws = await fa.connect(uri(server))
            with pytest.raises(fa.ClosedError) as info:
                await ws.recv()
            assert info.value.code == 1006

    run(main)


def test_protocol_error_closes_with_1002() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0) as server:
            reader, writer = await raw_client(server.port)
            writer.write(masked_frame(0x1, b"hi", mask=False))  # clients MUST mask
            data = await asyncio.wait_for(reader.read(), 2)
            assert data[:2] == b"\x88\x1d" or data[0] == 0x88
            assert int.from_bytes(data[2:4], "big") == 1002
            writer.close()
            await writer.wait_closed()

    run(main)


async def _echo_then_close(port: int) -> bytes:
    """Send a message and a frame with RSV1 set (no extension) in one write: all the server
    sends back, up to its TCP close."""
    reader, writer = await raw_client(port)
    writer.write(masked_frame(0x1, b"hello") + bytes([0xC1, 0x80]) + b"abcd")
    data = await asyncio.wait_for(reader.read(), 2)
    writer.close()
    await writer.wait_closed()
    return data


@pytest.mark.parametrize("mode", ["handler", "on_message"])
def test_answers_to_messages_before_a_protocol_error_go_out_before_the_close(mode: str) -> None:
    # The Autobahn suite's strict verdict (cases 3.2, 4.1.3, 5.15, ...).
    async def on_message_echo(ws: fa.ServerWebSocket) -> None:
        ws.on_message = ws.send_nowait
        await ws.wait_closed()

    async def main() -> None:
        handler = echo if mode == "handler" else on_message_echo
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            data = await _echo_then_close(server.port)
            assert data[:7] == b"\x81\x05hello"  # the echo first
            assert data[7] == 0x88 and int.from_bytes(data[9:11], "big") == 1002

    run(main)


def test_a_handler_that_does_not_read_gets_the_failure_after_a_grace(monkeypatch: Any) -> None:
    import turbows.asyncio._protocol as protocol

    monkeypatch.setattr(protocol, "FAILURE_GRACE", 0.2)
    seen: Dict[str, Any] = {}

    async def busy(ws: fa.ServerWebSocket) -> None:
        await asyncio.sleep(0.5)  # reads nothing meanwhile
        seen["code"] = ws.close_code

    async def main() -> None:
        async with fa.serve(busy, "127.0.0.1", 0) as server:
            loop = asyncio.get_running_loop()
            start = loop.time()
            data = await _echo_then_close(server.port)
            assert 0.15 < loop.time() - start < 0.45
            assert data[0] == 0x88 and int.from_bytes(data[2:4], "big") == 1002
            await asyncio.sleep(0.4)
        assert seen["code"] == 1006  # the server closed TCP without a reply to its close

    run(main)


def test_message_over_max_message_size_closes_with_1009() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0, max_message_size=1000) as server:
            async with fa.connect(uri(server)) as ws:
                await ws.send(b"x" * 1001)
                with pytest.raises(fa.ClosedError) as info:
                    await ws.recv()
                assert info.value.code == 1009

    run(main)


def test_close_timeout_aborts_a_peer_that_never_answers_the_close() -> None:
    async def handler(ws: fa.ServerWebSocket) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await ws.close()
        assert 0.15 <= loop.time() - start < 2
        assert ws.close_code == 1006 and ws.close_reason == "close timeout"

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0, close_timeout=0.2) as server:
            reader, writer = await raw_client(server.port)
            # Read nothing, answer nothing: the server must give up by itself.
            await asyncio.wait_for(reader.read(), 3)
            writer.close()
            await writer.wait_closed()

    run(main)


def test_client_close_timeout_when_the_server_never_closes_tcp() -> None:
    async def main() -> None:
        # A server that answers the handshake and then ignores everything.
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            import base64
            import hashlib

            head = await reader.readuntil(b"\r\n\r\n")
            key = [
                line.split(b":")[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key")
            ][0]
            accept = base64.b64encode(
                hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
            )
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            await reader.read()
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ws = await fa.connect(f"ws://127.0.0.1:{port}/", close_timeout=0.2)
        start = asyncio.get_running_loop().time()
        await ws.close()
        assert asyncio.get_running_loop().time() - start < 2
        assert ws.close_code == 1006
        server.close()
        await server.wait_closed()

    run(main)


def test_close_twice_and_close_after_close_are_harmless() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0) as server:
            ws = await fa.connect(uri(server))
            await asyncio.gather(ws.close(), ws.close())
            await ws.close()
            assert ws.state is turbows.State.CLOSED

    run(main)


def test_messages_before_a_protocol_error_in_the_same_read_are_delivered() -> None:
    got: list[Any] = []

    async def handler(ws: fa.ServerWebSocket) -> None:
        with contextlib.suppress(fa.WebSocketClosed):
            async for message in ws:
                got.append(message)
        got.append(ws.close_code)

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            reader, writer = await raw_client(server.port)
            writer.write(
                masked_frame(0x1, b"first")
                + masked_frame(0x2, b"second")
                + masked_frame(0x1, b"\xff")  # not UTF-8
            )
            data = await asyncio.wait_for(reader.read(), 2)
            assert data[0] == 0x88 and int.from_bytes(data[2:4], "big") == 1007
            writer.close()
            await writer.wait_closed()
            while len(got) < 3:
                await asyncio.sleep(0.01)

    run(main)
    assert got == ["first", b"second", 1006]  # the server failed the connection: no close came back


@pytest.mark.parametrize("closing_side", ["client", "server"])
def test_closing_with_a_full_queue_reads_on_to_the_peers_close_frame(closing_side: str) -> None:
    # A side whose recv queue is full has stopped reading; when it closes, it must still read
    # the peer's close frame (and not wait for the close timeout, then end with 1006). What
    # was queued before the close stays for recv; later messages beyond the queue are dropped.
    done: "asyncio.Future[Any]"
    filler = "x" * 2000  # 300 of them are more than one read brings

    async def flood_then_wait(ws: Any) -> None:
        for i in range(300):
            await ws.send(f"m{i}:{filler}")
        await ws.wait_closed()

    async def handler(ws: fa.ServerWebSocket) -> None:
        if closing_side == "client":
            await flood_then_wait(ws)
            return
        await asyncio.sleep(0.3)  # the client's messages fill this side's queue
        start = asyncio.get_running_loop().time()
        await ws.close()
        done.set_result((asyncio.get_running_loop().time() - start, ws.close_code, ws))

    async def main() -> None:
        nonlocal done
        done = asyncio.get_running_loop().create_future()
        server = fa.serve(handler, "127.0.0.1", 0, max_queue=4, close_timeout=5)
        async with server:
            ws = await fa.connect(f"ws://127.0.0.1:{server.port}/", max_queue=4, close_timeout=5)
            if closing_side == "client":
                await asyncio.sleep(0.3)  # the server's messages fill this side's queue
                start = asyncio.get_running_loop().time()
                await ws.close()
                elapsed, code, closer = asyncio.get_running_loop().time() - start, ws.close_code, ws
            else:
                await flood_then_wait(ws)
                elapsed, code, closer = await asyncio.wait_for(done, 10)
            assert code == 1000 and elapsed < 2, (code, elapsed)
            assert closer.on_message is None
            got = []
            with pytest.raises(fa.ClosedOK):
                while True:
                    got.append(await closer.recv())
            assert got == [f"m{i}:{filler}" for i in range(len(got))]
            assert 4 <= len(got) < 300

    run(main, timeout=30)
