"""Events a connection produces: what happened, in the order it happened.

The message events (:class:`TextMessage`, :class:`BinaryMessage`, :class:`Ping`, :class:`Pong`,
:class:`CloseReceived`) are the codec's own items, handed over without copying; they are
re-exported here from :mod:`turbows.codec`. The handshake and lifecycle events are defined here.

Every connection ends with exactly one :class:`ConnectionClosed`, which is its last event.
"""

from __future__ import annotations

import urllib.parse
from typing import Any, Dict, Final, Optional, Tuple

from ._http import ExtensionOffer, Headers
from .codec import BinaryMessage, CloseReceived, Ping, Pong, TextMessage

__all__ = [
    "LOCAL",
    "PEER",
    "Accepted",
    "BinaryMessage",
    "CloseReceived",
    "ConnectionClosed",
    "Ping",
    "PingAnswered",
    "Pong",
    "Rejected",
    "Request",
    "TextMessage",
]

#: :attr:`ConnectionClosed.initiator` when this endpoint started the close (or gave up).
LOCAL: Final = "local"
#: :attr:`ConnectionClosed.initiator` when the peer started the close (or dropped the TCP
#: connection).
PEER: Final = "peer"


class _Event:
    __slots__: Tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({fields})"


class Request(_Event):
    """Server side: a valid opening handshake arrived; answer with ``accept`` or ``reject``.

    Attributes:
        path: the request target as sent (path and query string), e.g. ``"/chat?room=1"``.
        headers: every header field of the request.
        subprotocols: the subprotocols the client offers, in its order of preference.
        extensions: the extensions the client offers, as ``(name, params)`` pairs.
        origin: the ``Origin`` header, or None when the client sent none.
        host: the ``Host`` header ("" for a plain HTTP/1.0 request that sends none).
        subprotocol: the subprotocol ``accept()`` picks when not told otherwise: the first of
            the server's ``subprotocols`` option that the client offers, or None.
        upgrade: True for an opening handshake. False for a plain HTTP request (a health
            check, a browser visiting the URL): a ``GET`` without ``Upgrade: websocket``, a
            ``HEAD`` or an ``OPTIONS``, over HTTP/1.1 or HTTP/1.0, which a server sees only
            when it asks for them (``http_requests=True``); answer it with ``reject`` and any
            status, 200 included (``accept`` cannot upgrade it).
        method: ``"GET"`` for a handshake; ``"GET"``, ``"HEAD"`` or ``"OPTIONS"`` for a plain
            request. ``reject`` answers a HEAD without the body (RFC 9110 9.3.2).
        remote_address: the peer's address, as the I/O layer knows it (``(host, port)`` for
            TCP in :mod:`turbows.asyncio`); None from a bare sans-I/O connection.
        tls: the :class:`ssl.SSLObject` of a TLS connection (``version()``, ``cipher()``,
            ``getpeercert()``), set by the I/O layer; None for plain TCP.
    """

    __slots__ = (
        "path",
        "headers",
        "subprotocols",
        "extensions",
        "origin",
        "host",
        "subprotocol",
        "upgrade",
        "method",
        "remote_address",
        "tls",
    )

    def __init__(
        self,
        path: str,
        headers: Headers,
        subprotocols: Tuple[str, ...] = (),
        extensions: Tuple[ExtensionOffer, ...] = (),
        origin: Optional[str] = None,
        host: str = "",
        subprotocol: Optional[str] = None,
        upgrade: bool = True,
        method: str = "GET",
    ) -> None:
        self.path = path
        self.headers = headers
        self.subprotocols = subprotocols
        self.extensions = extensions
        self.origin = origin
        self.host = host
        self.subprotocol = subprotocol
        self.upgrade = upgrade
        self.method = method
        self.remote_address: Any = None
        self.tls: Any = None

    @property
    def query(self) -> Dict[str, str]:
        """The parameters of the query string, as ``{"token": "abc"}`` for ``/feed?token=abc``.

        Percent-decoded, the first value of each name; ``urllib.parse.parse_qs`` on
        ``urllib.parse.urlsplit(request.path).query`` gives every value.
        """
        _, _, query = self.path.partition("?")
        params: Dict[str, str] = {}
        for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
            params.setdefault(name, value)
        return params


class Accepted(_Event):
    """Client side: the server answered 101 and the connection is OPEN.

    Attributes:
        subprotocol: the subprotocol the server selected, or None.
        extensions: the extensions in use, as ``(name, params)`` pairs.
        headers: every header field of the response.
    """

    __slots__ = ("subprotocol", "extensions", "headers")

    def __init__(
        self,
        subprotocol: Optional[str],
        extensions: Tuple[ExtensionOffer, ...],
        headers: Headers,
    ) -> None:
        self.subprotocol = subprotocol
        self.extensions = extensions
        self.headers = headers


class Rejected(_Event):
    """Client side: the server answered with another status than 101.

    Attributes:
        status: the HTTP status (401, 403, 404, 503, ...).
        headers: every header field of the response (``Retry-After``, ``WWW-Authenticate``).
        body: the response body, read up to ``Content-Length``, the end of a chunked body or
            the end of the connection, and cut at the connection's ``max_body_size``.
        reason_phrase: the reason phrase of the status line.
    """

    __slots__ = ("status", "headers", "body", "reason_phrase")

    def __init__(self, status: int, headers: Headers, body: bytes = b"", reason_phrase: str = ""):
        self.status = status
        self.headers = headers
        self.body = body
        self.reason_phrase = reason_phrase


class PingAnswered(_Event):
    """A pong answered a ping sent with ``ping()``; follows the :class:`Pong` event.

    Attributes:
        payload: the payload of the ping that was answered.
        rtt: the round-trip time in the caller's time unit, or None when either the ping or the
            data carrying the pong was given without ``now``.
    """

    __slots__ = ("payload", "rtt")

    def __init__(self, payload: bytes, rtt: Optional[float]) -> None:
        self.payload = payload
        self.rtt = rtt


class ConnectionClosed(_Event):
    """The connection is over (state CLOSED); always the last event.

    Attributes:
        code: the code of the close frame received (1005 if it had none); 1006 when none was
            received (RFC 6455 7.1.5), that is for every abnormal end.
        reason: the reason of the close frame received; for 1006, what happened instead
            (``"connection lost"``, ``"close timeout"``, ``"keepalive ping timeout"``, ...).
        clean: True when close frames were exchanged both ways (RFC 6455 7.1.4).
        initiator: :data:`LOCAL` or :data:`PEER`: who started the close, dropped the
            connection or gave up on it.
        sent_code: the code of the close frame this endpoint sent (1005 for an empty one), or
            None when it sent none.
        sent_reason: the reason of that close frame.
    """

    __slots__ = ("code", "reason", "clean", "initiator", "sent_code", "sent_reason")

    def __init__(
        self,
        code: int,
        reason: str = "",
        clean: bool = False,
        initiator: str = LOCAL,
        sent_code: Optional[int] = None,
        sent_reason: str = "",
    ) -> None:
        self.code = code
        self.reason = reason
        self.clean = clean
        self.initiator = initiator
        self.sent_code = sent_code
        self.sent_reason = sent_reason
