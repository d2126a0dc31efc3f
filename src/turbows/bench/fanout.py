"""The fan-out benchmark (issue 19): one process sends to many connections.

``fanout-100conn/asyncio``: 100 connections, text messages of 64 bytes sent by the server
(:mod:`turbows.bench._fanout_server`, pinned to core 0) to all of them; the rate is
deliveries per second (messages x connections) until the last byte reached this process's
client (pinned to core 1), which reads the 100 sockets with one ``epoll`` loop and counts
bytes (the frames are checked once before timing). Rows:

- ``turbows C``: :class:`turbows.asyncio.Fanout`, 64 messages per batch, one write per
  connection per batch;
- ``turbows C, broadcast()``: :func:`turbows.asyncio.broadcast`, one call per message;
- ``send_nowait loop (reference)``: ``ws.send_nowait`` per connection and message, which is
  what ``broadcast()`` did before batching.
"""

from __future__ import annotations

import importlib.util
import os
import select
import socket
import subprocess
import sys
import time
from typing import Callable

from . import _echo_client, _peers
from ._runner import TURBOWS_C, Case, Loop

__all__ = ["BENCHMARKS", "BROADCAST", "SEND_LOOP", "Readers", "cases", "stop_server"]

CONNECTIONS = 100
SIZE = 64
FRAME = 2 + SIZE
BROADCAST = TURBOWS_C + ", broadcast()"
SEND_LOOP = "send_nowait loop (reference)"
BENCHMARKS = ("fanout-100conn/asyncio",)
_MODES = {TURBOWS_C: "fanout", BROADCAST: "broadcast", SEND_LOOP: "send_nowait"}


class Readers:
    """Many client sockets read by one ``epoll`` loop, counting bytes (or frames)."""

    def __init__(self, socks: list[socket.socket]) -> None:
        self.socks = socks
        self.poll = select.epoll()
        self.by_fd = {sock.fileno(): sock for sock in socks}
        for sock in socks:
            sock.setblocking(False)
            self.poll.register(sock.fileno(), select.EPOLLIN)
        self.buffer = bytearray(1 << 20)

    def receive(self, size: int, timeout: float = 10.0) -> None:
        """Read until every socket gave ``size`` bytes."""
        left = dict.fromkeys(self.by_fd, size)
        view = memoryview(self.buffer)
        deadline = time.monotonic() + timeout
        while left:
            events = self.poll.poll(1.0)
            if not events and time.monotonic() > deadline:
                raise _peers.BenchCheckError(f"stalled with {len(left)} readers waiting")
            for fd, _ in events:
                try:
                    got = self.by_fd[fd].recv_into(view)
                except BlockingIOError:
                    continue
                if got == 0:
                    raise _peers.BenchCheckError("the server closed a connection")
                if fd in left:
                    left[fd] -= got
                    if left[fd] <= 0:
                        del left[fd]

    def frames(
        self, count: int, frame: int, timeout: float = 30.0, header: int = 2
    ) -> list[tuple[float, bytes]]:
        """Read ``count`` frames of ``frame`` bytes (``header`` of them the frame's header)
        from every socket; return each one's arrival time (``time.monotonic()``) and
        payload."""
        pending = dict.fromkeys(self.by_fd, b"")
        left = dict.fromkeys(self.by_fd, count)
        out: list[tuple[float, bytes]] = []
        deadline = time.monotonic() + timeout
        while left:
            events = self.poll.poll(1.0)
            if not events and time.monotonic() > deadline:
                raise _peers.BenchCheckError(f"stalled with {len(left)} readers waiting")
            now = time.monotonic()
            for fd, _ in events:
                try:
                    data = pending[fd] + self.by_fd[fd].recv(1 << 20)
                except BlockingIOError:
                    continue
                whole = len(data) // frame * frame
                for i in range(0, whole, frame):
                    out.append((now, data[i + header : i + frame]))
                pending[fd] = data[whole:]
                if fd in left:
                    left[fd] -= whole // frame
                    if left[fd] <= 0:
                        del left[fd]
        return out


class _Server:
    """The fan-out server process and this process's 100 reading connections."""

    def __init__(self) -> None:
        env = dict(os.environ)
        src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
        pin = hasattr(os, "sched_setaffinity") and {0, 1} <= os.sched_getaffinity(0)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "turbows.bench._fanout_server", "0" if pin else "-1"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY "):
            self.stop()
            raise _peers.BenchCheckError(f"fan-out server did not start: {line!r}")
        endpoint = _echo_client.Endpoint(int(line.split()[1]), True)
        self.socks = _echo_client.open_idle(endpoint, CONNECTIONS)
        self.readers = Readers(self.socks)
        self.saved = os.sched_getaffinity(0) if pin else None
        if pin:
            os.sched_setaffinity(0, {1})
        # Check the frames once: every connection gets exactly FRAME bytes per message.
        self.send("fanout", 3)
        for sock in self.socks:
            data = b""
            while len(data) < 3 * FRAME:
                try:
                    data += sock.recv(65536)
                except BlockingIOError:
                    select.select([sock], [], [], 1.0)
            if data != (bytes([0x81, SIZE]) + b"m" * SIZE) * 3:
                raise _peers.BenchCheckError(f"wrong frames: {data[:20]!r}")
        self._done()

    def send(self, mode: str, n: int) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{mode} {n}\n".encode())
        self.proc.stdin.flush()

    def _done(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line != b"DONE\n":
            raise _peers.BenchCheckError(f"fan-out server: {line!r}")

    def receive(self, n: int, timeout: float = 10.0) -> None:
        """Read until every connection got ``n`` messages."""
        self.readers.receive(n * FRAME, timeout)
        self._done()

    def stop(self) -> None:
        for sock in getattr(self, "socks", []):
            sock.close()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if getattr(self, "saved", None):
            os.sched_setaffinity(0, self.saved)  # type: ignore[arg-type]


_shared: list[_Server] = []


def _server() -> _Server:
    if not _shared:
        import atexit

        _shared.append(_Server())
        atexit.register(stop_server)
    return _shared[0]


def stop_server() -> None:
    """Stop the shared server (the CLI calls it after the run)."""
    while _shared:
        _shared.pop().stop()


def _prepare(mode: str) -> Callable[[], Loop]:
    def prepare() -> Loop:
        server = _server()

        def loop(n: int) -> None:
            server.send(mode, n)
            server.receive(n)

        return loop

    return prepare


def cases() -> list[Case]:
    """The fan-out cases (the server starts when the first one runs)."""
    have = importlib.util.find_spec("turbows._speedups") is not None and sys.platform == "linux"
    skip = "" if have else "needs the compiled extension and Linux (epoll)"
    out = []
    for name, kind in ((TURBOWS_C, "turbows"), (BROADCAST, "turbows"), (SEND_LOOP, "reference")):
        out.append(
            Case(
                BENCHMARKS[0],
                SIZE,
                name,
                kind,
                "deliveries",
                CONNECTIONS,
                None if skip else _prepare(_MODES[name]),
                skip or f"{CONNECTIONS} connections, {_MODES[name]}",
                min_time=0.2,
            )
        )
    return out
