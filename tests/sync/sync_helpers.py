"""Shared helpers of the blocking-layer tests: servers in threads, raw peers, leak checks."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from typing import Any, Callable, List, Optional

import turbows
import turbows.sync


def open_fds() -> int:
    """How many file descriptors this process has open (0 where /proc does not say)."""
    if not os.path.isdir("/proc/self/fd"):
        return 0
    return len(os.listdir("/proc/self/fd"))


def echo(ws: turbows.sync.WebSocket) -> None:
    for message in ws:
        ws.send(message)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.01)


class AsyncioServer:
    """A ``turbows.asyncio`` (or websockets) server running in its own event loop thread."""

    def __init__(self, start: Callable[[], Any]) -> None:
        self._start = start
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: Optional[asyncio.Future[None]] = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = self._loop.create_future()
            async with self._start() as server:
                sock = next(iter(server.sockets))
                self.port = sock.getsockname()[1]
                self._ready.set()
                await self._stop

        try:
            self._loop.run_until_complete(main())
        finally:
            self._ready.set()
            self._loop.close()

    def __enter__(self) -> "AsyncioServer":
        self._thread.start()
        assert self._ready.wait(10)
        assert self.port, "the server did not start"
        return self

    def __exit__(self, *exc_info: Any) -> None:
        stop = self._stop
        assert stop is not None
        self._loop.call_soon_threadsafe(stop.set_result, None)
        self._thread.join(15)
        assert not self._thread.is_alive()


class RawServer:
    """A listening socket whose one connection is driven by hand by ``script(sock, conn)``
    in a thread: a ``ServerConnection`` that accepts, then whatever the test needs (a peer
    that never reads, never answers, sends garbage, ...)."""

    def __init__(self, script: Callable[[socket.socket, turbows.ServerConnection], None]) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._script = script
        self.error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self._listener.settimeout(10)
            sock, _ = self._listener.accept()
            with sock:
                self._script(sock, accept(sock))
        except BaseException as exc:  # reported by __exit__
            self.error = exc

    def __enter__(self) -> "RawServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._thread.join(15)
        self._listener.close()
        assert not self._thread.is_alive()
        if self.error is not None and exc_info[0] is None:
            raise self.error


def accept(sock: socket.socket, **kwargs: Any) -> turbows.ServerConnection:
    """Answer the opening handshake on ``sock`` with a fresh ``ServerConnection``."""
    kwargs.setdefault("ping_interval", None)
    conn = turbows.ServerConnection(**kwargs)
    sock.settimeout(10)
    while True:
        data = sock.recv(65536)
        assert data, "the client left during the handshake"
        conn.receive_data(data)
        events = conn.events()
        if events:
            assert isinstance(events[0], turbows.Request), events
            conn.accept()
            sock.sendall(conn.data_to_send())
            return conn


def read_until_closed(sock: socket.socket, conn: Any, timeout: float = 10.0) -> List[Any]:
    """Feed ``conn`` from ``sock`` (writing its answers) until the peer closed; its events."""
    events: List[Any] = []
    sock.settimeout(timeout)
    while conn.state is not turbows.State.CLOSED:
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        conn.receive_data(data)
        events += conn.events()
        out = conn.data_to_send()
        if out:
            try:
                sock.sendall(out)
            except OSError:
                pass
    return events


def threads_settle(before: int, timeout: float = 5.0) -> None:
    """Wait until no more threads run than ``before`` (the background threads ended)."""
    wait_for(lambda: threading.active_count() <= before, timeout)


def uri(server: Any, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"
