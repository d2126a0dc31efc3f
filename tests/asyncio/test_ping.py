"""Pings and the heartbeat, with short intervals."""

from __future__ import annotations

import asyncio
from typing import Any, Dict

import pytest

import turbows.asyncio as fa

from aio_helpers import echo, raw_client, run, uri


def test_ping_returns_the_round_trip_time() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0) as server:
            async with fa.connect(uri(server)) as ws:
                rtts = await asyncio.gather(ws.ping(), ws.ping(), ws.ping(b"mine"))
                assert all(0 <= rtt < 1 for rtt in rtts)
                assert ws.latency is not None
                with pytest.raises(ValueError):
                    await asyncio.gather(ws.ping(b"same"), ws.ping(b"same"))

    run(main)


def test_ping_waiting_when_the_connection_drops_raises() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0) as server:
            ws = await fa.connect(uri(server))
            ping = asyncio.ensure_future(ws.ping())
            await asyncio.sleep(0)  # the ping is sent; its pong cannot be read yet
            ws.abort()
            with pytest.raises(fa.ClosedError):
                await ping

    run(main)


def test_heartbeat_keeps_a_quiet_connection_open_and_measures_latency() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0, ping_interval=0.05, ping_timeout=0.5) as server:
            async with fa.connect(uri(server), ping_interval=0.05, ping_timeout=0.5) as ws:
                await asyncio.sleep(0.3)
                assert ws.latency is not None
                (server_ws,) = server.connections
                assert server_ws.latency is not None
                await ws.send("still here")
                assert await ws.recv() == "still here"

    run(main)


def test_heartbeat_aborts_a_peer_that_does_not_answer_pings() -> None:
    seen: Dict[str, Any] = {}

    async def handler(ws: fa.ServerWebSocket) -> None:
        start = asyncio.get_running_loop().time()
        with pytest.raises(fa.ClosedError) as info:
            await ws.recv()
        seen["elapsed"] = asyncio.get_running_loop().time() - start
        seen["reason"] = info.value.reason

    async def main() -> None:
        async with fa.serve(
            handler, "127.0.0.1", 0, ping_interval=0.05, ping_timeout=0.1
        ) as server:
            reader, writer = await raw_client(server.port)  # reads nothing, answers nothing
            await asyncio.wait_for(reader.read(), 3)
            writer.close()
            await writer.wait_closed()
        assert seen["reason"] == "keepalive ping timeout"
        assert seen["elapsed"] < 1

    run(main)


def test_ping_after_close_raises() -> None:
    async def main() -> None:
        async with fa.serve(echo, "127.0.0.1", 0) as server:
            ws = await fa.connect(uri(server))
            await ws.close()
            with pytest.raises(fa.ClosedOK):
                await ws.ping()

    run(main)


def test_dead_peer_reports_say_who_sent_1011_and_do_not_call_it_clean() -> None:
    """The server stops answering pings (its reading is paused by hand); the client finds it
    dead, sends 1011 and gives up; the server, reading again, gets that 1011."""
    seen: Dict[str, Any] = {}

    async def handler(ws: fa.ServerWebSocket) -> None:
        ws.transport.pause_reading()  # a frozen peer: reads nothing, answers no ping
        await asyncio.sleep(0.5)
        ws.transport.resume_reading()
        with pytest.raises(fa.WebSocketClosed) as info:
            await ws.recv()
        seen["server"] = str(info.value)

    async def main() -> None:
        async with fa.serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
            async with fa.connect(uri(server), ping_interval=0.05, ping_timeout=0.1) as ws:
                with pytest.raises(fa.ClosedError) as info:
                    await ws.recv()
                seen["client"] = str(info.value)
            await asyncio.sleep(0.2)

    run(main)
    assert seen["client"] == (
        "connection closed abnormally (1006): sent close 1011 'keepalive ping timeout',"
        " received no close frame"
    )
    assert "1011 'keepalive ping timeout'" in seen["server"]
    assert "cleanly" not in seen["server"] and "normally" not in seen["server"], seen
