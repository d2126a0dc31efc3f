"""Shared helpers of the asyncio tests: bounded runs that assert nothing leaked."""

from __future__ import annotations

import asyncio
import base64
import gc
import os
import socket
from typing import Any, Awaitable, Callable, List, Optional, Tuple

import turbows
import turbows.asyncio as fa


def open_fds() -> int:
    """How many file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def run(main: Callable[[], Awaitable[Any]], timeout: float = 10.0, use_uvloop: bool = False) -> Any:
    """Run ``main()`` in a fresh event loop (uvloop's if asked), bounded by ``timeout``
    seconds, then check that it left no task running and no socket open."""

    async def bounded() -> Any:
        result = await asyncio.wait_for(main(), timeout)
        # Let transports finish closing (connection_lost runs on the next iterations).
        for _ in range(5):
            await asyncio.sleep(0)
        current = asyncio.current_task()
        leaked = [t for t in asyncio.all_tasks() if t is not current]
        assert not leaked, f"tasks leaked: {leaked}"
        return result

    if use_uvloop:
        import uvloop

        # uvloop keeps one process-wide pipe pair after its first loop: not a leak.
        uvloop.new_event_loop().close()
    gc.collect()
    before = open_fds()
    if use_uvloop:
        loop = uvloop.new_event_loop()
        try:
            result = loop.run_until_complete(bounded())
        finally:
            loop.close()
    else:
        result = asyncio.run(bounded())
    gc.collect()
    after = open_fds()
    assert after <= before, f"file descriptors leaked: {before} before, {after} after"
    return result


def uri(server: fa.Server, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def echo(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


def handshake_request(port: int, path: str = "/", extra: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"{extra}\r\n"
    ).encode()


async def raw_client(
    port: int, request: Optional[bytes] = None
) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A bare TCP client that sends an opening handshake and reads the 101 head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(handshake_request(port) if request is None else request)
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def masked_frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True) -> bytes:
    """Build one client frame by hand (payload < 126 bytes)."""
    assert len(payload) < 126
    first = (0x80 if fin else 0) | opcode
    if not mask:
        return bytes([first, len(payload)]) + payload
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([first, 0x80 | len(payload)]) + key + body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def park(ws: Any) -> None:
    """A handler that only waits for its connection to close."""
    await ws.wait_closed()


async def opened(server: Any, count: int) -> List[Any]:
    """The server's side of ``count`` connections, once all of them are OPEN."""
    for _ in range(300):
        members = [ws for ws in server.connections if ws.state is turbows.State.OPEN]
        if len(members) == count:
            return members
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(server.connections)} connections, not {count}")
