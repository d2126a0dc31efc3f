"""Backpressure both ways: a slow reader makes send wait; a lagging app pauses reading."""

from __future__ import annotations

import asyncio
import os
from typing import Any, List

import turbows.asyncio as fa

from aio_helpers import run, uri


def test_send_waits_while_the_peer_reads_slowly() -> None:
    progress: List[int] = []

    async def flood(ws: fa.ServerWebSocket) -> None:
        chunk = os.urandom(65536)  # incompressible, whatever permessage-deflate does
        for i in range(200):  # 13 MB: far more than the socket buffers hold
            await ws.send(chunk)
            progress.append(i)

    async def main() -> None:
        async with fa.serve(flood, "127.0.0.1", 0, write_limit=65536) as server:
            async with fa.connect(uri(server), max_queue=4) as ws:
                await asyncio.sleep(0.3)
                stalled = len(progress)
                assert stalled < 150, "send() did not wait for the slow reader"
                (server_ws,) = server.connections
                assert server_ws._write_paused
                assert ws._reading_paused
                total = 0
                for _ in range(200):
                    total += len(await ws.recv())
                assert total == 200 * 65536
                assert len(progress) == 200

    run(main, timeout=20)


def test_a_lagging_handler_pauses_reading_then_resumes() -> None:
    received: List[Any] = []
    gate: "asyncio.Event"

    async def lagging(ws: fa.ServerWebSocket) -> None:
        await gate.wait()
        async for message in ws:
            received.append(message)
            if len(received) == 500:
                await ws.send("done")

    async def main() -> None:
        nonlocal gate
        gate = asyncio.Event()
        async with fa.serve(lagging, "127.0.0.1", 0, max_queue=8) as server:
            # Uncompressed: 500 compressed messages of repeated digits would all fit in one
            # read of the server's (256 KiB), which queues them all before it can pause.
            async with fa.connect(uri(server), extensions=()) as ws:

                async def send_all() -> None:
                    for i in range(500):
                        await ws.send(str(i) * 200)

                # In a task: once the server stops reading, the client's sends may wait for
                # the socket to drain (whether they do depends on the kernel's buffer sizes).
                sender = asyncio.create_task(send_all())
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 5  # a loaded machine may take a while to get there
                while not (
                    server.connections and next(iter(server.connections))._reading_paused
                ) and loop.time() < deadline:
                    await asyncio.sleep(0.01)
                (server_ws,) = server.connections
                assert server_ws._reading_paused
                assert len(server_ws._queue) - server_ws._head < 500
                gate.set()
                await sender
                assert await ws.recv() == "done"
                assert not server_ws._reading_paused
        assert received == [str(i) * 200 for i in range(500)]

    run(main, timeout=20)


def test_large_messages_from_send_arrive_intact_through_partial_writes() -> None:
    """``await ws.send`` of large messages (written as header and payload without joining
    them, on turbows's transport) to a client that reads slowly: every partial write resumes
    at the right byte, text and binary alike."""
    messages: List[Any] = []
    for i in range(40):
        size = 70_000 + 4099 * i
        if i % 2:
            messages.append(os.urandom(size))
        else:
            messages.append("".join(chr(32 + (j * 7 + i) % 95) for j in range(size)))

    async def flood(ws: fa.ServerWebSocket) -> None:
        for message in messages:
            await ws.send(message)

    async def main() -> None:
        async with fa.serve(flood, "127.0.0.1", 0, write_limit=65536) as server:
            # No compression: the frames carry the messages' own bytes.
            async with fa.connect(uri(server), extensions=[], max_queue=2) as ws:
                for expected in messages:
                    await asyncio.sleep(0.002)
                    assert await ws.recv() == expected

    run(main, timeout=20)


def test_small_messages_arrive_intact_and_in_order_through_partial_writes() -> None:
    """Small frames (written from the frame writer's own buffer on turbows's transport) sent
    faster than the client reads: what the socket does not take waits, and resumes at the
    right byte, from ``await ws.send`` and from ``send_nowait`` alike."""
    messages: List[Any] = []
    for i in range(3000):
        size = 1 + (i * 613) % 8000  # below the writer's whole-frame size: buffered frames
        if i % 3 == 0:
            messages.append(os.urandom(size))
        else:
            messages.append("".join(chr(32 + (j * 5 + i) % 95) for j in range(size)))

    async def flood(ws: fa.ServerWebSocket) -> None:
        for index, message in enumerate(messages):
            if index % 2:
                ws.send_nowait(message)  # no wait: piles up behind the partial writes
            else:
                await ws.send(message)

    async def main() -> None:
        async with fa.serve(flood, "127.0.0.1", 0, write_limit=16384) as server:
            async with fa.connect(uri(server), extensions=[], max_queue=2) as ws:
                await asyncio.sleep(0.2)
                (server_ws,) = server.connections
                assert server_ws._write_paused  # the writes did come up short
                for expected in messages:
                    assert await ws.recv() == expected

    run(main, timeout=30)
