"""Socket helpers of the blocking layer: waiting with a timeout, and TLS on memory buffers.

TLS runs on an :class:`ssl.SSLObject` over two :class:`ssl.MemoryBIO` buffers rather than on
an :class:`ssl.SSLSocket`: the connection's background thread reads while application
threads send, and OpenSSL does not allow one ``SSL`` object to be used from two threads at
once. With the memory buffers every TLS call runs under the connection's lock, and the
threads share only the plain TCP socket, on which a concurrent ``recv`` and ``sendall`` are
safe.
"""

from __future__ import annotations

import select
import socket
import ssl as ssl_module
import time
from typing import List, Optional, Tuple

__all__ = ["READ_SIZE", "TLS", "recv_some", "wait_readable", "wait_writable"]

#: Bytes read from the socket at most per call.
READ_SIZE = 256 * 1024


def wait_readable(socks: List[socket.socket], timeout: Optional[float]) -> List[socket.socket]:
    """The sockets of ``socks`` that are readable (or at end of file, or in error) within
    ``timeout`` seconds (None: no limit); an empty list when the time ran out."""
    if timeout is not None and timeout < 0:
        timeout = 0.0
    if hasattr(select, "poll"):
        # poll, not select: select cannot wait for descriptors above FD_SETSIZE (1024).
        poller = select.poll()
        by_fd = {}
        for sock in socks:
            poller.register(sock, select.POLLIN | select.POLLPRI)
            by_fd[sock.fileno()] = sock
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
        return [by_fd[fd] for fd, _ in poller.poll(ms) if fd in by_fd]
    readable, _, errored = select.select(socks, [], socks, timeout)  # pragma: no cover
    return list(set(readable) | set(errored))  # pragma: no cover


def wait_writable(sock: socket.socket, timeout: Optional[float]) -> bool:
    """Whether ``sock`` can take more bytes within ``timeout`` seconds (None: no limit)."""
    if timeout is not None and timeout < 0:
        timeout = 0.0
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
        return bool(poller.poll(ms))
    _, writable, _ = select.select([], [sock], [], timeout)  # pragma: no cover
    return bool(writable)  # pragma: no cover


def recv_some(sock: socket.socket) -> bytes:
    """One ``recv`` of at most :data:`READ_SIZE` bytes; ``b""`` at end of file or when the
    connection failed (reset, aborted): either way nothing more will come."""
    try:
        return sock.recv(READ_SIZE)
    except OSError:
        return b""


class TLS:
    """One TLS session on memory buffers; see the module docstring.

    Not thread-safe by itself: the caller serializes every call (the connection's lock).
    """

    def __init__(
        self,
        context: ssl_module.SSLContext,
        server_side: bool,
        server_hostname: Optional[str] = None,
    ) -> None:
        self._incoming = ssl_module.MemoryBIO()
        self._outgoing = ssl_module.MemoryBIO()
        self.obj = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=None if server_side else server_hostname,
        )

    def handshake(self, sock: socket.socket, deadline: Optional[float]) -> None:
        """Run the TLS handshake on ``sock`` until done or ``deadline`` (monotonic time).

        Raises:
            TimeoutError: the deadline passed first.
            ConnectionError: the peer closed the connection during the handshake.
            ssl.SSLError: the handshake failed (certificate, protocol).
        """
        while True:
            try:
                self.obj.do_handshake()
            except ssl_module.SSLWantReadError:
                pass
            else:
                break
            out = self._outgoing.read()
            if out:
                sock.sendall(out)
            timeout = None if deadline is None else deadline - time.monotonic()
            if (timeout is not None and timeout <= 0) or not wait_readable([sock], timeout):
                raise TimeoutError("the TLS handshake did not complete in time")
            raw = recv_some(sock)
            if not raw:
                raise ConnectionError("connection closed during the TLS handshake")
            self._incoming.write(raw)
        out = self._outgoing.read()
        if out:
            sock.sendall(out)

    def encrypt(self, data: bytes) -> bytes:
        """The TLS records carrying ``data``, after any record TLS itself wants to send."""
        view = memoryview(data)
        while view:
            written = self.obj.write(view)
            view = view[written:]
        return self._outgoing.read()

    def pending(self) -> bytes:
        """TLS records waiting to go out without application data (a key update's answer)."""
        return self._outgoing.read()

    def buffered(self) -> bool:
        """Whether bytes already read wait to be decrypted (records that came with the end of
        the handshake): they must be decrypted before waiting for the socket again."""
        return self._incoming.pending > 0 or self.obj.pending() > 0

    def decrypt(self, raw: Optional[bytes]) -> Tuple[bytes, bool]:
        """Feed bytes read from the socket (``b""`` at end of file; None: nothing new, only
        what is :meth:`buffered`).

        Returns:
            The application data they complete (``b""`` when a record is still partial), and
            whether the TLS stream has ended (close_notify, end of file or a TLS error).
        """
        if raw:
            self._incoming.write(raw)
        elif raw is not None:
            self._incoming.write_eof()
        chunks = []
        eof = raw == b""
        while True:
            try:
                chunk = self.obj.read(READ_SIZE)
            except ssl_module.SSLWantReadError:
                break
            except ssl_module.SSLError:
                # close_notify (SSLZeroReturnError), a truncated stream (SSLEOFError) or a
                # corrupt record: the stream is over either way.
                eof = True
                break
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
        return b"".join(chunks), eof

    def close_notify(self) -> bytes:
        """The close_notify alert that ends the TLS stream (best effort)."""
        try:
            self.obj.unwrap()
        except (ssl_module.SSLError, ValueError):
            pass
        return self._outgoing.read()
