"""Graceful shutdown: 1001 to every peer, wait, then abort; nothing leaked."""

from __future__ import annotations

import asyncio
from typing import Any, List

import pytest

import turbows.asyncio as fa

from aio_helpers import echo, run, uri


def test_shutdown_sends_1001_to_every_connection() -> None:
    async def main() -> None:
        server = await fa.serve(echo, "127.0.0.1", 0)
        address = uri(server)
        clients = [await fa.connect(address) for _ in range(5)]
        assert len(server.connections) == 5
        await server.shutdown()
        for ws in clients:
            with pytest.raises(fa.ClosedOK):
                await ws.recv()
            assert ws.close_code == 1001
        assert not server.connections and not server.is_serving()
        with pytest.raises(OSError):
            await fa.connect(address)

    run(main)


def test_shutdown_aborts_and_cancels_what_does_not_finish_in_time() -> None:
    cancelled: List[bool] = []

    async def stubborn(ws: fa.ServerWebSocket) -> None:
        try:
            await asyncio.sleep(30)  # ignores the close entirely
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> None:
        server = await fa.serve(stubborn, "127.0.0.1", 0, close_timeout=None)
        ws = await fa.connect(uri(server))
        ws.transport.pause_reading()  # the close frame is never read: no answer
        start = asyncio.get_running_loop().time()
        await server.shutdown(timeout=0.3)
        assert asyncio.get_running_loop().time() - start < 2
        assert cancelled == [True]
        ws.transport.resume_reading()
        await ws.wait_closed()

    run(main)


def test_handshake_during_shutdown_is_refused_or_aborted() -> None:
    async def slow_hook(request: Any) -> None:
        await asyncio.sleep(0.2)

    async def main() -> None:
        server = await fa.serve(echo, "127.0.0.1", 0, process_request=slow_hook)
        pending = asyncio.ensure_future(fa.connect(uri(server)))
        await asyncio.sleep(0.05)
        await server.shutdown(timeout=1)
        with pytest.raises((fa.HandshakeError, OSError)):
            await pending

    run(main)


def test_close_then_wait_closed() -> None:
    async def main() -> None:
        server = await fa.serve(echo, "127.0.0.1", 0)
        with pytest.raises(RuntimeError):
            await server.wait_closed()
        async with fa.connect(uri(server)) as ws:
            server.close(code=1012, reason="restart")
            await server.wait_closed()
            with pytest.raises(fa.ClosedError):
                await ws.recv()
            assert ws.close_code == 1012

    run(main)
