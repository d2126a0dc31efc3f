"""The asyncio WebSocket client: :func:`connect`."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl as ssl_module
from typing import Any, AsyncIterator, Dict, Generator, Optional, Sequence, Tuple, Union

from .._http import HeadersLike
from ..connection import ClientConnection
from ..events import Accepted, ConnectionClosed, Rejected
from ..handshake import parse_uri
from ._exceptions import HandshakeFailed, HandshakeRejected, OpenTimeout
from ._protocol import (
    DEFAULT_MAX_QUEUE,
    DEFAULT_WRITE_LIMIT,
    WebSocket,
    _Options,
    protocol_for,
)

__all__ = ["ClientWebSocket", "Connect", "connect"]

logger = logging.getLogger("turbows.client")


class ClientWebSocket(WebSocket):
    """The client side of a connection; see :class:`WebSocket`. ``response_headers`` holds
    the headers of the server's 101 response."""

    __slots__ = ("_opening", "_rejected", "_reconnecting", "_closed_here", "_target")

    _logger = logger

    def __init__(
        self,
        uri: str,
        options: _Options,
        conn_kwargs: Dict[str, Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(options, loop)
        self._conn = ClientConnection(uri, **conn_kwargs)
        self._target = parse_uri(uri).resource
        self._opening: asyncio.Future[None] = loop.create_future()
        self._rejected: Optional[Rejected] = None
        # Set by the reconnecting iterator: ``async for message in ws`` then ends quietly
        # on any close, and the iterator decides whether to connect again.
        self._reconnecting = False
        # Whether the application called close(): the reconnecting iterator then stops.
        self._closed_here = False

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code`` and ``reason`` and wait until it is closed.

        In the ``async for ws in connect(..., reconnect=...)`` form, this also ends the
        reconnecting: the application is done with the server.
        """
        self._closed_here = True
        await super().close(code, reason)

    def _ends_quietly(self) -> bool:
        return self._reconnecting

    def _log_path(self) -> str:
        return self._target

    def _on_accepted(self, event: Accepted) -> None:
        self._log(logging.DEBUG, "connection open")
        self.response_headers = event.headers
        if not self._opening.done():
            self._opening.set_result(None)

    def _on_rejected(self, event: Rejected) -> None:
        self._rejected = event

    def _on_closed(self, event: ConnectionClosed) -> None:
        super()._on_closed(event)
        opening = self._opening
        if not opening.done():
            rejected = self._rejected
            if rejected is not None:
                exc: Exception = HandshakeRejected(rejected.status, rejected.headers, rejected.body)
            else:
                exc = HandshakeFailed(event.reason)
            opening.set_exception(exc)

    def _open_timed_out(self) -> None:
        if not self._opening.done():
            self._opening.set_exception(OpenTimeout("opening handshake timed out"))
        super()._open_timed_out()

    def _connection_lost(self, exc: Optional[BaseException]) -> None:
        super()._connection_lost(exc)
        opening = self._opening
        if not opening.done():  # pragma: no cover - _on_closed always ran before
            opening.set_exception(HandshakeFailed("connection lost during the handshake"))


class Connect:
    """What :func:`connect` returns: await it, use it as an async context manager, or
    iterate over it for a new connection after each drop (see :func:`connect`)."""

    def __init__(self, uri: str, **kwargs: Any) -> None:
        self.uri = uri
        reconnect = kwargs.pop("reconnect", None)
        self._reconnect = reconnect
        self._ssl = kwargs.pop("ssl", None)
        self._sock: Optional[socket.socket] = kwargs.pop("sock", None)
        self._unix: Optional[str] = kwargs.pop("unix", None)
        self._server_hostname: Optional[str] = kwargs.pop("server_hostname", None)
        self._open_timeout: Optional[float] = kwargs.pop("open_timeout", 10.0)
        self._options = _Options(
            kwargs.pop("max_queue", DEFAULT_MAX_QUEUE),
            kwargs.pop("write_limit", DEFAULT_WRITE_LIMIT),
            None,  # the whole connect() is bounded by open_timeout instead
        )
        if kwargs.get("extensions") is None:
            from ..extensions import PerMessageDeflate

            # Offer client_max_window_bits, as browsers do: a server may then give our
            # compressor a smaller window (less memory on both sides); we cap it at 12 anyway.
            kwargs["extensions"] = (PerMessageDeflate(client_max_window_bits=True),)
        self._conn_kwargs = kwargs
        self._ws: Optional[ClientWebSocket] = None
        ClientConnection(uri, **kwargs)  # fail now on a bad URI or option

    def __await__(self) -> Generator[Any, None, ClientWebSocket]:
        return self._open().__await__()

    async def __aenter__(self) -> ClientWebSocket:
        self._ws = await self._open()
        return self._ws

    async def __aexit__(self, *exc_info: Any) -> None:
        ws = self._ws
        self._ws = None
        if ws is not None:
            await ws.close()

    def __aiter__(self) -> AsyncIterator[ClientWebSocket]:
        from ._reconnect import RetryPolicy, _reconnecting

        policy = self._reconnect
        if policy is None or policy is True:
            policy = RetryPolicy()
        return _reconnecting(self, policy)

    async def _open(self) -> ClientWebSocket:
        loop = asyncio.get_running_loop()
        uri = parse_uri(self.uri)
        ssl = self._ssl
        if uri.secure and ssl is None:
            ssl = ssl_module.create_default_context()
        elif not uri.secure and ssl is not None:
            raise ValueError("ssl= is for wss:// URIs")
        ws = ClientWebSocket(self.uri, self._options, self._conn_kwargs, loop)
        protocol = protocol_for(ws, loop)
        kwargs: Dict[str, Any] = {"ssl": ssl}
        if ssl is not None:
            kwargs["server_hostname"] = self._server_hostname or (
                None if self._sock is not None or self._unix is not None else uri.host
            )
            if kwargs["server_hostname"] is None:
                kwargs["server_hostname"] = uri.host

        async def open_() -> None:
            if self._unix is not None:
                await loop.create_unix_connection(lambda: protocol, self._unix, **kwargs)
            elif self._sock is not None:
                await loop.create_connection(lambda: protocol, sock=self._sock, **kwargs)
            else:
                await loop.create_connection(lambda: protocol, uri.host, uri.port, **kwargs)
            await ws._opening

        try:
            if self._open_timeout is None:
                await open_()
            else:
                await asyncio.wait_for(open_(), self._open_timeout)
        except asyncio.TimeoutError:
            if not ws._opening.done():
                ws._opening.cancel()
            ws.abort()
            raise OpenTimeout(
                f"could not open {self.uri} within {self._open_timeout} seconds"
            ) from None
        except BaseException:
            if not ws._opening.done():
                ws._opening.cancel()
            if ws._transport is not None:
                ws.abort()
            raise
        return ws


def connect(
    uri: str,
    *,
    ssl: Optional[ssl_module.SSLContext] = None,
    sock: Optional[socket.socket] = None,
    unix: Optional[str] = None,
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
    write_limit: Union[int, Tuple[int, int]] = DEFAULT_WRITE_LIMIT,
    max_header_size: int = 16384,
    max_headers: int = 128,
    max_body_size: int = 1 << 16,
    text_as_bytes: bool = False,
    reconnect: Any = None,
) -> Connect:
    """Open a WebSocket connection to ``uri`` (``ws://`` or ``wss://``).

    Three ways to use it::

        ws = await connect(uri)                 # then: await ws.close()
        async with connect(uri) as ws: ...      # closed (1000) at the end of the block
        async for ws in connect(uri, reconnect=RetryPolicy(max_attempts=10)):
            ...                                 # a new connection after each drop

    The ``async for`` form connects again after each retryable failure or close (a killed
    server, a deploy's 1001 or 1012, a 503), waiting as the :class:`RetryPolicy` says; inside
    it, ``async for message in ws`` ends quietly on any close, so no ``try``/``except`` is
    needed. It ends when this side closed the connection or the server closed it with 1000,
    and raises when the policy gives up: the close error (1002, 1003, 1007-1010, 4000-4999),
    the :class:`HandshakeRejected` (401, 403, 404, ...), or :class:`RetriesExhausted` after
    ``max_attempts`` failed attempts in a row (see :func:`default_should_retry` for the whole
    table). For queued sends and state-restoring hooks, see :class:`ReconnectingClient`.

    Args:
        uri: the server URI; user info becomes a Basic ``Authorization`` header.
        ssl: an :class:`ssl.SSLContext` (``wss://`` uses a default one if not given).
        sock, unix: connect over this socket, or this Unix socket path, instead of TCP to the
            URI's host.
        server_hostname: the TLS server name, when it differs from the URI's host.
        subprotocols: subprotocols to offer, in order of preference.
        extensions: extension objects; default
            ``[PerMessageDeflate(client_max_window_bits=True)]`` (offered, used if the server
            accepts; the server may choose our compressor's window); ``()`` offers none.
        origin: the ``Origin`` header to send.
        extra_headers: more request headers (``Authorization``, ``Cookie``, ...).
        open_timeout: seconds for TCP connect, TLS and the opening handshake together.
        ping_interval, ping_timeout, max_missed_pongs: the heartbeat (None disables it).
        close_timeout: seconds the closing handshake may take before aborting.
        max_message_size: the largest incoming message (larger: close 1009).
        max_queue: messages buffered for ``recv`` before reading pauses.
        write_limit: the write buffer high-water mark, or a ``(high, low)`` pair.
        max_header_size, max_headers, max_body_size: limits on the server's response.
        text_as_bytes: deliver text messages as UTF-8 ``bytes`` instead of ``str``.
        reconnect: a :class:`RetryPolicy` for the ``async for`` form (default: ``RetryPolicy()``).

    Raises (when awaited):
        HandshakeRejected: the server answered with another status than 101.
        HandshakeFailed: the answer was not a valid handshake, or the connection dropped.
        OpenTimeout: ``open_timeout`` ran out.
        OSError: the TCP connection failed.
    """
    return Connect(
        uri,
        ssl=ssl,
        sock=sock,
        unix=unix,
        server_hostname=server_hostname,
        subprotocols=subprotocols,
        extensions=extensions,
        origin=origin,
        extra_headers=extra_headers,
        open_timeout=open_timeout,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_missed_pongs=max_missed_pongs,
        close_timeout=close_timeout,
        max_message_size=max_message_size,
        max_queue=max_queue,
        write_limit=write_limit,
        max_header_size=max_header_size,
        max_headers=max_headers,
        max_body_size=max_body_size,
        text_as_bytes=text_as_bytes,
        reconnect=reconnect,
    )
