"""fastws's own socket transport: used when asked, for plain TCP only."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

import pytest
from aio_helpers import run, uri

import fastws.asyncio as fa
import fastws.asyncio._server as server_module

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
    server = fa.serve(fa.WebSocket, "127.0.0.1", 0, ssl=ssl.create_default_context(),
                      fast_transport=True)
    assert not server._uses_fast_transport()


def test_fast_transport_is_off_unless_asked(server_transport: str) -> None:
    server = fa.serve(fa.WebSocket, "127.0.0.1", 0)
    assert server._uses_fast_transport() == (server_transport == "fastws")
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
