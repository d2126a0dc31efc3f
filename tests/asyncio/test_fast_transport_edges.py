"""The compiled transport's edge cases: writes from flow-control callbacks, the loop's
lifetime, exceptions mid-batch, failed registrations, fork, the clock, slot reads."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any, Iterator

import pytest

import turbows.asyncio._server as server_module

from aio_helpers import run

pytestmark = pytest.mark.skipif(
    server_module.SocketTransport is None, reason="the compiled transport is not built"
)


@pytest.fixture(autouse=True)
def server_transport() -> Iterator[str]:
    """These tests drive the compiled transport directly: no server, one run each."""
    yield "turbows"


def _read_all(sock: socket.socket, size: int, got: list[int], timeout: float) -> None:
    """Read from ``sock`` until ``size`` bytes came or nothing came for ``timeout`` s."""
    sock.settimeout(timeout)
    total = 0
    try:
        while total < size:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            total += len(chunk)
    except OSError:  # socket.timeout: the writer stalled
        pass
    got.append(total)


@pytest.mark.parametrize("use_uvloop", [False, True])
def test_a_write_from_resume_writing_is_sent_whole(use_uvloop: bool) -> None:
    """The standard asyncio producer writes its next chunk from resume_writing: the transport
    must keep watching the socket for what that write left queued (it decided from the size
    read before the callback that the buffer was empty, and stopped writing)."""
    from turbows.asyncio._fastio import SocketTransport

    chunk, chunks = 1 << 20, 8

    class Producer(asyncio.Protocol):
        def __init__(self) -> None:
            self.left = chunks

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            # resume_writing only once the buffer is empty: the case that stalled.
            transport.set_write_buffer_limits(high=64 * 1024, low=0)
            self.produce()

        def produce(self) -> None:
            self.left -= 1
            self.transport.write(b"x" * chunk)

        def pause_writing(self) -> None:
            pass

        def resume_writing(self) -> None:
            if self.left:
                self.produce()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        got: list[int] = []
        reader = threading.Thread(target=_read_all, args=(theirs, chunk * chunks, got, 2.0))
        reader.start()
        transport = SocketTransport(loop, ours, Producer())
        transport.start()
        while reader.is_alive():
            await asyncio.sleep(0.01)
        transport.abort()
        theirs.close()
        assert got == [chunk * chunks]

    run(main, use_uvloop=use_uvloop)
