"""Interoperability with real peers: websockets and aiohttp clients against our server, and
our client against their servers, permessage-deflate included."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import turbows.asyncio as fa

from aio_helpers import echo, run, uri

websockets_client = pytest.importorskip("websockets.asyncio.client")
websockets_server = pytest.importorskip("websockets.asyncio.server")
websockets_exceptions = pytest.importorskip("websockets.exceptions")
aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web

MESSAGES = ["hello", "é" * 1000, b"\x00\x01" * 40000, b"", "x" * 70000]


def test_websockets_client_against_our_server() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0, subprotocols=["chat"]) as server:
            async with websockets_client.connect(uri(server), subprotocols=["chat"]) as ws:
                assert ws.subprotocol == "chat"
                assert "permessage-deflate" in ws.response.headers.get(
                    "Sec-WebSocket-Extensions", ""
                )
                for message in MESSAGES:
                    await ws.send(message)
                    assert await ws.recv() == message
                await ws.send(["frag", "ment"])
                assert await ws.recv() == "fragment"
                pong = await ws.ping()
                await asyncio.wait_for(pong, 2)
            assert ws.close_code == 1000

    run(main)


def test_websockets_client_sees_our_close_code() -> None:
    async def handler(ws: fa.ServerWebSocket) -> None:
        await ws.close(4001, "bye")

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0) as server:
            async with websockets_client.connect(uri(server)) as ws:
                with pytest.raises(websockets_exceptions.ConnectionClosed):
                    await ws.recv()
            assert (ws.close_code, ws.close_reason) == (4001, "bye")

    run(main)


def test_aiohttp_client_against_our_server() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0) as server:
            async with aiohttp.ClientSession() as session:
                for compress in (0, 15):
                    async with session.ws_connect(uri(server), compress=compress) as ws:
                        for message in MESSAGES:
                            if isinstance(message, str):
                                await ws.send_str(message)
                            else:
                                await ws.send_bytes(message)
                            reply = await ws.receive()
                            assert reply.data == message
                        await ws.close()
                    assert ws.close_code == 1000

    run(main)


def test_our_client_against_websockets_server() -> None:
    async def their_echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with websockets_server.serve(their_echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with fa.connect(f"ws://127.0.0.1:{port}/") as ws:
                assert ws.extensions and ws.extensions[0][0] == "permessage-deflate"
                for message in MESSAGES:
                    await ws.send(message)
                    assert await ws.recv() == message
                assert await ws.ping() >= 0
            assert ws.close_code == 1000 and ws.closed_event.clean  # type: ignore[union-attr]

    run(main)


def test_our_client_against_aiohttp_server() -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=True)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with fa.connect(f"ws://127.0.0.1:{port}/") as ws:
                for message in MESSAGES:
                    await ws.send(message)
                    assert await ws.recv() == message
            assert ws.close_code == 1000
            with pytest.raises(fa.HandshakeRejected) as info:
                await fa.connect(f"ws://127.0.0.1:{port}/missing")
            assert info.value.status == 404
        finally:
            await runner.cleanup()

    run(main)
