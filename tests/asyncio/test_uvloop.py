"""The same layer on uvloop (an optional dependency): skipped when it is not installed."""

from __future__ import annotations

import asyncio
import os

import pytest

import turbows.asyncio as fa

from aio_helpers import echo, run, uri

uvloop = pytest.importorskip("uvloop")


def test_echo_ping_close_and_shutdown_on_uvloop() -> None:
    async def main() -> None:
        assert "uvloop" in type(asyncio.get_running_loop()).__module__
        server = await fa.serve(echo, "127.0.0.1", 0, ping_interval=0.05)
        async with fa.connect(uri(server), ping_interval=0.05) as ws:
            for message in ("text", b"bytes", os.urandom(200000)):
                await ws.send(message)
                assert await ws.recv() == message
            assert await ws.ping() >= 0
            await asyncio.sleep(0.15)
            assert ws.latency is not None
        other = await fa.connect(uri(server))
        await server.shutdown()
        with pytest.raises(fa.ClosedOK):
            await other.recv()

    run(main, use_uvloop=True)


def test_backpressure_on_uvloop() -> None:
    sent = []

    async def flood(ws: fa.ServerWebSocket) -> None:
        chunk = os.urandom(65536)
        for i in range(100):
            await ws.send(chunk)
            sent.append(i)

    async def main() -> None:
        async with fa.serve(flood, "127.0.0.1", 0, write_limit=65536) as server:
            async with fa.connect(uri(server), max_queue=2) as ws:
                await asyncio.sleep(0.2)
                assert len(sent) < 100
                for _ in range(100):
                    await ws.recv()
        assert len(sent) == 100

    run(main, use_uvloop=True)


def test_reconnecting_client_on_uvloop() -> None:
    n = 0

    async def drop_once(ws: fa.ServerWebSocket) -> None:
        nonlocal n
        n += 1
        if n == 1:
            ws.transport.abort()
            return
        await echo(ws)

    async def main() -> None:
        second = asyncio.Event()
        connections = 0

        async def on_connect(ws: fa.ClientWebSocket) -> None:
            nonlocal connections
            connections += 1
            if connections == 2:
                second.set()

        async with fa.serve(drop_once, "127.0.0.1", 0) as server:
            policy = fa.RetryPolicy(initial_delay=0.01, max_delay=0.05)
            async with fa.ReconnectingClient(
                uri(server), policy=policy, on_connect=on_connect
            ) as client:
                # A message written to the first connection may die with it (the server
                # aborts it at once): send once the client has reconnected.
                await asyncio.wait_for(second.wait(), 5)
                await client.send("after reconnect")
                assert await client.recv() == "after reconnect"

    run(main, use_uvloop=True)
