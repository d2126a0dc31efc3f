"""The one client of the end-to-end suite: plain sockets, pre-built masked frames.

Every server is driven by this same client, so a difference between two rows is a difference
between the servers. It does the least a WebSocket client can: it sends the opening request
and checks the 101, then sends frames built (and masked) once in advance, and counts the
replies by their known length, checking their bytes once before timing. Against the raw TCP
echo it sends the same frames without a handshake and gets them back as they were sent.

- :class:`RoundTrip`: one connection, one message in flight (request/response).
- :class:`Concurrent`: many connections, one message in flight on each, driven by one
  ``epoll`` loop; each reply triggers the next request on its connection.
- :func:`open_idle`: many connections that complete the handshake and then stay silent.

The loops of :class:`RoundTrip` and :class:`Concurrent` are compiled
(:mod:`turbows.bench._loadgen`, Linux) when that extension can be imported, so that no Python
runs per message and the client is not what caps the fastest servers; the Python loops below
do the same and are used otherwise, or when ``TURBOWS_BENCH_PY_CLIENT=1`` (or
``TURBOWS_NO_EXTENSIONS=1``) is set. :data:`CLIENT` says which one a run uses.
"""

from __future__ import annotations

import base64
import os
import select
import socket
import struct
import time
from itertools import repeat
from types import ModuleType
from typing import TYPE_CHECKING, Optional

from ..codec import NO_EXTENSIONS
from . import _data
from ._peers import BenchCheckError

if TYPE_CHECKING:
    from ._loadgen import ConcurrentEcho

__all__ = ["CLIENT", "COMPILED", "Concurrent", "Endpoint", "RoundTrip", "hang_up", "open_idle"]


_loadgen: Optional[ModuleType] = None
# TURBOWS_BENCH_PY_CLIENT reads like TURBOWS_NO_EXTENSIONS: any non-empty value but "0" is on.
if not NO_EXTENSIONS and os.environ.get("TURBOWS_BENCH_PY_CLIENT", "") in ("", "0"):
    try:
        from . import _loadgen
    except ImportError:
        pass

COMPILED = _loadgen is not None
"""True when the client's loops are the compiled ones (the default where they are built)."""
CLIENT = "compiled (turbows.bench._loadgen, epoll)" if COMPILED else "Python (select.epoll, socket)"
"""The client's loops, in words, for the report."""

STALL_TIMEOUT = 10.0
"""Seconds without a reply (or without the server reading) after which a run gives up."""

_MASK = b"\x1f\x2e\x3d\x4c"
_OP_TEXT = 0x1
_OP_CLOSE = 0x8
_CLOSE_1000 = _data.encode_frame(_OP_CLOSE, (1000).to_bytes(2, "big"), _MASK)


def hang_up(sock: socket.socket, websocket: bool) -> None:
    """Start the closing handshake (RFC 6455 5.5.1) without waiting for it, then close."""
    if websocket:
        try:
            sock.setblocking(True)
            sock.sendall(_CLOSE_1000)
        except OSError:
            pass
    sock.close()


class Endpoint:
    """Where a server listens and how to talk to it.

    Args:
        port: the TCP port on 127.0.0.1.
        websocket: False for the raw TCP echo (no handshake, bytes come back as sent).
    """

    def __init__(self, port: int, websocket: bool) -> None:
        self.port = port
        self.websocket = websocket

    def connect(self) -> socket.socket:
        """Open a connection and, for a WebSocket server, complete the opening handshake."""
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.websocket:
            sock.sendall(self.request())
            self.read_response(sock)
        return sock

    def request(self) -> bytes:
        """An opening request with a fresh key (RFC 6455 4.1)."""
        key = base64.b64encode(os.urandom(16))
        return (
            b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (self.port, key)
        )

    @staticmethod
    def read_response(sock: socket.socket) -> None:
        """Read the response head and check that it is a 101 with nothing after it."""
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                raise BenchCheckError(f"server closed during the handshake: {head!r}")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise BenchCheckError(f"handshake refused: {head.splitlines()[0]!r}")
        if not head.endswith(b"\r\n\r\n"):
            raise BenchCheckError("server sent data right after its 101")

    def exchange(self, size: int) -> tuple[bytes, bytes]:
        """The request a client sends for a ``size``-byte text message, and the reply."""
        text = _data.ascii_text(size, salt=5).encode()
        frame = _data.encode_frame(_OP_TEXT, text, _MASK)
        if not self.websocket:
            return frame, frame
        return frame, _data.encode_frame(_OP_TEXT, text)


def _recv_exactly(sock: socket.socket, view: memoryview) -> None:
    got = 0
    total = len(view)
    recv_into = sock.recv_into
    while got < total:
        n = recv_into(view[got:])
        if not n:
            raise BenchCheckError("server closed the connection")
        got += n


def _finish_send(sock: socket.socket, frame: bytes, sent: int, timeout: float) -> None:
    """Send the rest of ``frame`` on a non-blocking socket that took ``sent`` bytes of it."""
    view = memoryview(frame)[sent:]
    while view:
        if not select.select([], [sock], [], timeout)[1]:
            raise BenchCheckError(f"the server read nothing for {timeout:g} s")
        try:
            view = view[sock.send(view) :]
        except BlockingIOError:
            pass


def _compiled_module(compiled: bool) -> Optional[ModuleType]:
    if compiled and _loadgen is None:
        raise RuntimeError("the compiled client (turbows.bench._loadgen) is not available")
    return _loadgen if compiled else None


class RoundTrip:
    """One connection, one message at a time: send, wait for the whole echo, repeat.

    Calling it with ``n`` makes ``n`` round trips; ``close()`` closes the connection.

    Args:
        endpoint: the server.
        size: the length of the text message, in bytes.
        compiled: run the compiled loop (the default where it is built) or the Python one.
    """

    def __init__(self, endpoint: Endpoint, size: int, compiled: bool = COMPILED) -> None:
        self._compiled = _compiled_module(compiled)
        self.sock = endpoint.connect()
        self.websocket = endpoint.websocket
        self.frame, expected = endpoint.exchange(size)
        self.buffer = bytearray(len(expected))
        self.view = memoryview(self.buffer)
        self(1)
        if bytes(self.buffer) != expected:
            raise BenchCheckError(f"wrong echo: {bytes(self.buffer[:16])!r}...")

    def __call__(self, n: int, timeout: float = STALL_TIMEOUT) -> None:
        """Make ``n`` round trips; give up when nothing moves for ``timeout`` seconds."""
        if self._compiled is not None:
            self._compiled.round_trip(self.sock.fileno(), self.frame, self.buffer, n, timeout)
            return
        sock = self.sock
        frame = self.frame
        view = self.view
        sendall = sock.sendall
        recv_into = sock.recv_into
        total = len(view)
        # As the compiled loop does: the kernel's own send and receive timeouts end a
        # blocking call that waits too long (EAGAIN), with no extra call per message.
        limit = struct.pack("@ll", int(timeout), int((timeout - int(timeout)) * 1e6))
        options = (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO)
        saved = [sock.getsockopt(socket.SOL_SOCKET, o, len(limit)) for o in options]
        for option in options:
            sock.setsockopt(socket.SOL_SOCKET, option, limit)
        try:
            for _ in repeat(None, n):
                sendall(frame)
                got = recv_into(view)
                if got != total:
                    if not got:
                        raise BenchCheckError("server closed the connection")
                    _recv_exactly(sock, view[got:])
        except BlockingIOError:
            raise BenchCheckError(f"no reply for {timeout:g} s") from None
        finally:
            for option, value in zip(options, saved):
                sock.setsockopt(socket.SOL_SOCKET, option, value)

    def close(self) -> None:
        """Send a close frame and close the connection."""
        hang_up(self.sock, self.websocket)


class Concurrent:
    """``connections`` connections with one message in flight on each.

    Calling it with ``n`` sends ``n`` messages in all and returns when every echo is back;
    ``close()`` closes the connections.

    Args:
        endpoint: the server.
        size: the length of the text message, in bytes.
        connections: how many connections.
        compiled: run the compiled loop (the default where it is built) or the Python one.
    """

    def __init__(
        self, endpoint: Endpoint, size: int, connections: int, compiled: bool = COMPILED
    ) -> None:
        compiled_module = _compiled_module(compiled)
        self.socks = [endpoint.connect() for _ in range(connections)]
        self.websocket = endpoint.websocket
        self.frame, expected = endpoint.exchange(size)
        self.reply = len(expected)
        # Check one echo per connection before anything is timed.
        for sock in self.socks:
            sock.sendall(self.frame)
            buf = bytearray(self.reply)
            _recv_exactly(sock, memoryview(buf))
            if bytes(buf) != expected:
                raise BenchCheckError(f"wrong echo: {bytes(buf[:16])!r}...")
            sock.setblocking(False)
        self.by_fd = {sock.fileno(): sock for sock in self.socks}
        self.pending = dict.fromkeys(self.by_fd, 0)
        self._short_writes = 0  # the Python loop's (see short_writes)
        self.epoll: Optional[select.epoll] = None
        self.compiled_loop: Optional[ConcurrentEcho] = None
        if compiled_module is not None:
            self.compiled_loop = compiled_module.ConcurrentEcho(
                list(self.by_fd), self.frame, self.reply
            )
        else:
            self.epoll = select.epoll()
            for fd in self.by_fd:
                self.epoll.register(fd, select.EPOLLIN)

    @property
    def short_writes(self) -> int:
        """How many frames the sockets took only in part (then the rest was sent)."""
        if self.compiled_loop is not None:
            return int(self.compiled_loop.short_writes)
        return self._short_writes

    def __call__(self, n: int, timeout: float = STALL_TIMEOUT) -> None:
        """Exchange ``n`` messages; give up when no reply comes for ``timeout`` seconds."""
        if self.compiled_loop is not None:
            self.compiled_loop(n, timeout)
            return
        assert self.epoll is not None
        frame = self.frame
        size = len(frame)
        reply = self.reply
        by_fd = self.by_fd
        pending = self.pending
        poll = self.epoll.poll
        sent = 0
        done = 0
        last = time.monotonic()
        for sock in self.socks[: min(n, len(self.socks))]:
            self._send(sock, frame, size, timeout)
            sent += 1
        while done < n:
            ready = poll(min(timeout, 1.0))
            if not ready:
                if time.monotonic() - last >= timeout:
                    raise BenchCheckError(f"no reply for {timeout:g} s")
                continue
            last = time.monotonic()
            for fd, _ in ready:
                sock = by_fd[fd]
                data = sock.recv(65536)
                if not data:
                    raise BenchCheckError("server closed a connection")
                have = pending[fd] + len(data)
                replies, pending[fd] = divmod(have, reply)
                done += replies
                for _ in repeat(None, replies):
                    if sent < n:
                        self._send(sock, frame, size, timeout)
                        sent += 1
        if any(pending.values()):
            raise BenchCheckError("a partial echo was left over")

    def _send(self, sock: socket.socket, frame: bytes, size: int, timeout: float) -> None:
        try:
            sent = sock.send(frame)
        except BlockingIOError:
            sent = 0
        if sent != size:
            self._short_writes += 1
            _finish_send(sock, frame, sent, timeout)

    def close(self) -> None:
        """Close every connection."""
        if self.compiled_loop is not None:
            self.compiled_loop.close()
        if self.epoll is not None:
            self.epoll.close()
        for sock in self.socks:
            hang_up(sock, self.websocket)


def open_idle(endpoint: Endpoint, count: int, batch: int = 100) -> list[socket.socket]:
    """Open ``count`` connections that complete the handshake, then stay idle.

    Requests go out ``batch`` at a time before their responses are read, so that thousands of
    connections open in about a second.
    """
    out: list[socket.socket] = []
    try:
        while len(out) < count:
            group = []
            for _ in range(min(batch, count - len(out))):
                sock = socket.create_connection(("127.0.0.1", endpoint.port))
                group.append(sock)
                out.append(sock)
                if endpoint.websocket:
                    sock.sendall(endpoint.request())
            if endpoint.websocket:
                for sock in group:
                    endpoint.read_response(sock)
    except BaseException:
        for sock in out:
            sock.close()
        raise
    return out
