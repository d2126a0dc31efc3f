"""The blocking WebSocket client: :func:`connect`."""

from __future__ import annotations

import socket
import ssl as ssl_module
import time
from typing import Any, Optional, Sequence

from .._http import HeadersLike
from ..asyncio._exceptions import HandshakeFailed, HandshakeRejected, OpenTimeout
from ..connection import DEFAULT_MAX_HEADER_SIZE, DEFAULT_MAX_HEADERS, ClientConnection
from ..handshake import parse_uri
from ._io import TLS
from ._websocket import DEFAULT_MAX_QUEUE, WebSocket

__all__ = ["ClientWebSocket", "connect"]


class ClientWebSocket(WebSocket):
    """The client side of a connection; see :class:`WebSocket`. ``response_headers`` holds
    the headers of the server's 101 response."""

    def _open(self, deadline: Optional[float], uri: str, open_timeout: Optional[float]) -> None:
        """Send the opening request and read until the server answered it."""
        try:
            self._flush(True)
            if not self._receive_until(lambda: self._accepted is not None, deadline):
                raise OpenTimeout(f"could not open {uri} within {open_timeout} seconds")
        except BaseException:
            self._shutdown()
            self._finish_without_thread()
            raise
        closed = self._closed
        if self._accepted is None:
            self._close_socket()
            rejected = self._rejected
            if rejected is not None:
                raise HandshakeRejected(rejected.status, rejected.headers, rejected.body)
            raise HandshakeFailed(closed.reason if closed is not None else "no answer")
        # Messages that came with the 101 are queued already; the rest is the thread's job.
        self._start()


def connect(
    uri: str,
    *,
    ssl: Optional[ssl_module.SSLContext] = None,
    sock: Optional[socket.socket] = None,
    server_hostname: Optional[str] = None,
    subprotocols: Sequence[str] = (),
    extensions: Optional[Sequence[Any]] = None,
    origin: Optional[str] = None,
    extra_headers: HeadersLike = (),
    open_timeout: Optional[float] = 10.0,
    ping_interval: Optional[float] = 20.0,
    ping_timeout: Optional[float] = 20.0,
    max_missed_pongs: int = 1,
    close_timeout: Optional[float] = 10.0,
    max_message_size: Optional[int] = 1 << 20,
    max_queue: int = DEFAULT_MAX_QUEUE,
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
    max_headers: int = DEFAULT_MAX_HEADERS,
    max_body_size: int = 1 << 16,
    text_as_bytes: bool = False,
) -> ClientWebSocket:
    """Open a WebSocket connection to ``uri`` (``ws://`` or ``wss://``) and return it, open.

    Use it as a context manager to close it (1000) at the end of the block::

        with turbows.sync.connect("ws://127.0.0.1:8765/") as ws:
            ws.send("hello")
            print(ws.recv(timeout=5))

    A background thread reads the socket, answers pings and runs the heartbeat; the methods
    of the connection may be called from any thread.

    Args:
        uri: the server URI; user info becomes a Basic ``Authorization`` header.
        ssl: an :class:`ssl.SSLContext` (``wss://`` uses a default one if not given).
        sock: a connected socket to use instead of connecting to the URI's host.
        server_hostname: the TLS server name, when it differs from the URI's host.
        subprotocols: subprotocols to offer, in order of preference.
        extensions: extension objects; default
            ``[PerMessageDeflate(client_max_window_bits=True)]`` (offered, used if the server
            accepts); ``()`` offers none.
        origin: the ``Origin`` header to send.
        extra_headers: more request headers (``Authorization``, ``Cookie``, ...).
        open_timeout: seconds for TCP connect, TLS and the opening handshake together.
        ping_interval, ping_timeout, max_missed_pongs: the heartbeat (None disables it).
        close_timeout: seconds the closing handshake may take before aborting.
        max_message_size: the largest incoming message (larger: close 1009).
        max_queue: messages kept for ``recv`` before the background thread stops reading.
        max_header_size, max_headers, max_body_size: limits on the server's response.
        text_as_bytes: deliver text messages as UTF-8 ``bytes`` instead of ``str``.

    Returns:
        The open :class:`ClientWebSocket`.

    Raises:
        HandshakeRejected: the server answered with another status than 101.
        HandshakeFailed: the answer was not a valid handshake, or the connection dropped.
        OpenTimeout: ``open_timeout`` ran out.
        OSError: the TCP connection failed (``ssl.SSLError`` for TLS).
        ValueError: the URI or an option is invalid.
    """
    parsed = parse_uri(uri)
    if max_queue < 1:
        raise ValueError("max_queue must be >= 1")
    if parsed.secure and ssl is None:
        ssl = ssl_module.create_default_context()
    elif not parsed.secure and ssl is not None:
        raise ValueError("ssl= is for wss:// URIs")
    if extensions is None:
        from ..extensions import PerMessageDeflate

        # Offer client_max_window_bits, as browsers do (as turbows.asyncio.connect does).
        extensions = (PerMessageDeflate(client_max_window_bits=True),)
    conn = ClientConnection(
        uri,
        subprotocols=subprotocols,
        extensions=extensions,
        origin=origin,
        extra_headers=extra_headers,
        max_message_size=max_message_size,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_missed_pongs=max_missed_pongs,
        close_timeout=close_timeout,
        max_header_size=max_header_size,
        max_headers=max_headers,
        max_body_size=max_body_size,
        text_as_bytes=text_as_bytes,
    )
    deadline = None if open_timeout is None else time.monotonic() + open_timeout
    if sock is None:
        try:
            sock = socket.create_connection((parsed.host, parsed.port), timeout=open_timeout)
        except socket.timeout:
            raise OpenTimeout(f"could not open {uri} within {open_timeout} seconds") from None
    try:
        sock.settimeout(None)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = None
        if ssl is not None:
            tls = TLS(ssl, False, server_hostname or parsed.host)
            try:
                tls.handshake(sock, deadline)
            except TimeoutError:
                raise OpenTimeout(f"could not open {uri} within {open_timeout} seconds") from None
        ws = ClientWebSocket(sock, conn, tls=tls, max_queue=max_queue)
    except BaseException:
        sock.close()
        raise
    ws._open(deadline, uri, open_timeout)
    return ws
