"""The HTTP/1.1 opening handshake of wsproto's API (``wsproto.handshake``).

HTTP/1.1 itself is h11's, as in wsproto. What makes a request or a 101 response a valid
WebSocket handshake is decided by turbows's own checks (:func:`turbows.handshake.check_request`
and :func:`turbows.handshake.check_response`); their verdicts are reported with wsproto's
messages and ``event_hint`` rejections.
"""

from __future__ import annotations

from collections import deque
from typing import Deque, Iterable, Iterator, List, Optional, Sequence, Tuple, Union, cast

import h11

from ..._http import Headers as _TurboHeaders
from ...handshake import InvalidHandshake, check_request, check_response
from .connection import Connection, ConnectionState, ConnectionType
from .events import AcceptConnection, Event, RejectConnection, RejectData, Request
from .extensions import Extension
from .typing import Headers
from .utilities import (
    LocalProtocolError,
    RemoteProtocolError,
    generate_accept_token,
    generate_nonce,
    normed_header_dict,
    split_comma_header,
)

__all__ = ["H11Handshake", "client_extensions_handshake", "server_extensions_handshake"]

#: RFC 6455 4.2.1: the protocol version and the Upgrade token.
WEBSOCKET_VERSION = b"13"
WEBSOCKET_UPGRADE = b"websocket"

# turbows's reasons (by their start) and the message wsproto gives for the same failure.
_REQUEST_ERRORS = (
    ("method ", "Request method must be GET"),
    ("missing or invalid Connection", "Missing header, 'Connection: Upgrade'"),
    ("missing or invalid Upgrade", "Missing header, 'Upgrade: websocket'"),
    ("missing Host", "Missing header, 'Host'"),
    ("more than one Host", "Missing header, 'Host'"),
    ("missing Sec-WebSocket-Key", "Missing header, 'Sec-WebSocket-Key'"),
)
_RESPONSE_ERRORS = (
    ("missing or invalid Connection", "Missing header, 'Connection: Upgrade'"),
    ("missing or invalid Upgrade", "Missing header, 'Upgrade: websocket'"),
    ("missing Sec-WebSocket-Accept", "Bad accept token"),
    ("wrong Sec-WebSocket-Accept", "Bad accept token"),
    ("more than one Sec-WebSocket-Accept", "Bad accept token"),
)


def _turbo_headers(headers: Iterable[Tuple[bytes, bytes]]) -> _TurboHeaders:
    return _TurboHeaders(
        (bytes(n).decode("latin-1"), bytes(v).decode("latin-1")) for n, v in headers
    )


def _message_for(reason: str, table: Sequence[Tuple[str, str]]) -> Optional[str]:
    for start, message in table:
        if reason.startswith(start):
            return message
    return None


class H11Handshake:
    """The opening handshake over HTTP/1.1, client or server side.

    Args:
        connection_type: ``CLIENT`` or ``SERVER``.
    """

    def __init__(self, connection_type: ConnectionType) -> None:
        self.client = connection_type is ConnectionType.CLIENT
        self._state = ConnectionState.CONNECTING
        self._h11_connection = h11.Connection(h11.CLIENT if self.client else h11.SERVER)
        self._connection: Optional[Connection] = None
        self._events: Deque[Event] = deque()
        self._initiating_request: Optional[Request] = None
        self._nonce: Optional[bytes] = None

    @property
    def state(self) -> ConnectionState:
        """The handshake's :class:`ConnectionState`."""
        return self._state

    @property
    def connection(self) -> Optional[Connection]:
        """The :class:`Connection` once the handshake succeeded, else None."""
        return self._connection

    def initiate_upgrade_connection(self, headers: Headers, path: Union[bytes, str]) -> None:
        """Server side: start from a request already received and parsed elsewhere.

        Args:
            headers: the request's header fields.
            path: the request target.

        Raises:
            LocalProtocolError: on the client side.
            RemoteProtocolError: the request is not a valid handshake.
        """
        if self.client:
            raise LocalProtocolError(
                "Cannot initiate an upgrade connection when acting as the client"
            )
        request = h11.Request(method=b"GET", target=path, headers=headers)
        self.receive_data(h11.Connection(h11.CLIENT).send(request))

    def send(self, event: Event) -> bytes:
        """Return the bytes for a handshake event.

        Args:
            event: ``Request`` (client), ``AcceptConnection``, ``RejectConnection`` or
                ``RejectData`` (server).

        Raises:
            LocalProtocolError: the event cannot be sent now.
        """
        if isinstance(event, Request):
            return self._initiate_connection(event)
        if isinstance(event, AcceptConnection):
            return self._accept(event)
        if isinstance(event, RejectConnection):
            return self._reject(event)
        if isinstance(event, RejectData):
            return self._send_reject_data(event)
        raise LocalProtocolError(f"Event {event} cannot be sent during the handshake")

    def receive_data(self, data: Optional[bytes]) -> None:
        """Feed bytes received from the peer (None or ``b""`` at the end of the stream).

        Raises:
            RemoteProtocolError: the peer's HTTP or handshake is invalid; ``event_hint`` is
                the rejection to send.
        """
        h11_conn = self._h11_connection
        h11_conn.receive_data(data or b"")
        while True:
            try:
                event = h11_conn.next_event()
            except h11.RemoteProtocolError:
                raise RemoteProtocolError(
                    "Bad HTTP message", event_hint=RejectConnection()
                ) from None
            if (
                event is h11.NEED_DATA
                or event is h11.PAUSED
                or isinstance(event, h11.ConnectionClosed)
            ):
                break
            if not self.client:
                if isinstance(event, h11.Request):
                    self._events.append(self._process_connection_request(event))
            elif isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    self._events.append(self._establish_client_connection(event))
                else:
                    self._events.append(
                        RejectConnection(
                            headers=list(event.headers),
                            status_code=event.status_code,
                            has_body=False,
                        )
                    )
                    self._state = ConnectionState.CLOSED
            elif isinstance(event, h11.Response):
                self._state = ConnectionState.REJECTING
                self._events.append(
                    RejectConnection(
                        headers=list(event.headers),
                        status_code=event.status_code,
                        has_body=True,
                    )
                )
            elif isinstance(event, h11.Data):
                self._events.append(RejectData(data=bytes(event.data), body_finished=False))
            elif isinstance(event, h11.EndOfMessage):
                self._events.append(RejectData(data=b"", body_finished=True))
                self._state = ConnectionState.CLOSED

    def events(self) -> Iterator[Event]:
        """Yield the handshake events received so far, in order."""
        while self._events:
            yield self._events.popleft()

    # Server side ------------------------------------------------------------------------------

    def _process_connection_request(self, event: h11.Request) -> Request:
        method = event.method.decode("ascii")
        target = event.target.decode("ascii")
        headers = _turbo_headers(event.headers)
        try:
            if event.http_version < b"1.1" and method == "GET":
                # RFC 6455 4.1: the handshake is an HTTP/1.1 (or later) request.
                raise InvalidHandshake("Request HTTP version must be 1.1 or later", 505)
            check_request(method, target, headers)
        except InvalidHandshake as exc:
            raise self._request_error(exc, headers) from None
        extensions: List[str] = []
        subprotocols: List[str] = []
        extra: Headers = []
        host = ""
        for name, value in event.headers:
            # h11 gives lower-case names.
            if name == b"host":
                host = value.decode("idna")
            elif name == b"sec-websocket-extensions":
                extensions.extend(split_comma_header(value))
            elif name == b"sec-websocket-protocol":
                subprotocols.extend(split_comma_header(value))
            else:
                extra.append((name, value))
        self._initiating_request = Request(
            host=host,
            target=target,
            extensions=extensions,
            extra_headers=extra,
            subprotocols=subprotocols,
        )
        return self._initiating_request

    @staticmethod
    def _request_error(exc: InvalidHandshake, headers: _TurboHeaders) -> RemoteProtocolError:
        if "Sec-WebSocket-Version" in exc.reason:
            # RFC 6455 4.4: tell the client which version to use.
            return RemoteProtocolError(
                "Missing header, 'Sec-WebSocket-Version'",
                event_hint=RejectConnection(
                    headers=[(b"Sec-WebSocket-Version", WEBSOCKET_VERSION)],
                    status_code=426 if headers.get("Sec-WebSocket-Version") else 400,
                ),
            )
        message = _message_for(exc.reason, _REQUEST_ERRORS)
        if message is not None:
            return RemoteProtocolError(message, event_hint=RejectConnection())
        hint = RejectConnection(
            status_code=exc.status or 400,
            headers=[(n.encode("latin-1"), v.encode("latin-1")) for n, v in exc.headers],
        )
        return RemoteProtocolError(exc.reason, event_hint=hint)

    def _accept(self, event: AcceptConnection) -> bytes:
        request = self._initiating_request
        if self.client or request is None or self._state is not ConnectionState.CONNECTING:
            raise LocalProtocolError(f"Connection cannot be accepted in state {self._state}")
        nonce = normed_header_dict(request.extra_headers)[b"sec-websocket-key"]
        headers: Headers = [
            (b"Upgrade", WEBSOCKET_UPGRADE),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Accept", generate_accept_token(nonce)),
        ]
        if event.subprotocol is not None:
            if event.subprotocol not in request.subprotocols:
                raise LocalProtocolError(f"unexpected subprotocol {event.subprotocol}")
            headers.append((b"Sec-WebSocket-Protocol", event.subprotocol.encode("ascii")))
        if event.extensions:
            accepts = server_extensions_handshake(
                cast(Sequence[str], request.extensions), event.extensions
            )
            if accepts:
                headers.append((b"Sec-WebSocket-Extensions", accepts))
        response = h11.InformationalResponse(
            status_code=101,
            headers=headers + list(event.extra_headers),
            reason=b"Switching Protocols",
        )
        data = self._h11_connection.send(response) or b""
        # Frames the client sent right behind its request (h11 keeps them for the upgrade).
        self._connection = Connection(
            ConnectionType.SERVER, event.extensions, self._h11_connection.trailing_data[0]
        )
        self._state = ConnectionState.OPEN
        return data

    def _reject(self, event: RejectConnection) -> bytes:
        if self._state is not ConnectionState.CONNECTING:
            raise LocalProtocolError(f"Connection cannot be rejected in state {self._state}")
        headers = list(event.headers)
        if not event.has_body:
            headers.append((b"content-length", b"0"))
        data = (
            self._h11_connection.send(h11.Response(status_code=event.status_code, headers=headers))
            or b""
        )
        self._state = ConnectionState.REJECTING
        if not event.has_body:
            data += self._h11_connection.send(h11.EndOfMessage()) or b""
            self._state = ConnectionState.CLOSED
        return data

    def _send_reject_data(self, event: RejectData) -> bytes:
        if self._state is not ConnectionState.REJECTING:
            raise LocalProtocolError(f"Cannot send rejection data in state {self._state}")
        data = self._h11_connection.send(h11.Data(data=event.data)) or b""
        if event.body_finished:
            data += self._h11_connection.send(h11.EndOfMessage()) or b""
            self._state = ConnectionState.CLOSED
        return data

    # Client side ------------------------------------------------------------------------------

    def _initiate_connection(self, request: Request) -> bytes:
        if not self.client or self._state is not ConnectionState.CONNECTING:
            raise LocalProtocolError(f"Cannot send a request in state {self._state}")
        self._initiating_request = request
        self._nonce = generate_nonce()
        headers: Headers = [
            (b"Host", request.host.encode("idna")),
            (b"Upgrade", WEBSOCKET_UPGRADE),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Key", self._nonce),
            (b"Sec-WebSocket-Version", WEBSOCKET_VERSION),
        ]
        if request.subprotocols:
            headers.append(
                (b"Sec-WebSocket-Protocol", ", ".join(request.subprotocols).encode("ascii"))
            )
        if request.extensions:
            offers = {}
            for ext in request.extensions:
                assert isinstance(ext, Extension)
                offers[ext.name] = ext.offer()
            elements = []
            for name, params in offers.items():
                if params is True:
                    elements.append(name.encode("ascii"))
                elif params and not isinstance(params, bool):
                    elements.append(f"{name}; {params}".encode("ascii"))
            if elements:
                headers.append((b"Sec-WebSocket-Extensions", b", ".join(elements)))
        upgrade = h11.Request(
            method=b"GET",
            target=request.target.encode("ascii"),
            headers=headers + list(request.extra_headers),
        )
        return self._h11_connection.send(upgrade) or b""

    def _establish_client_connection(self, event: h11.InformationalResponse) -> AcceptConnection:
        request = self._initiating_request
        assert request is not None and self._nonce is not None
        offered = [ext for ext in request.extensions if isinstance(ext, Extension)]
        try:
            subprotocol, chosen = check_response(
                101,
                _turbo_headers(event.headers),
                self._nonce.decode("ascii"),
                subprotocols=list(request.subprotocols),
                extensions=[(ext.name, ()) for ext in offered],
            )
        except InvalidHandshake as exc:
            raise self._response_error(exc, event.headers) from None
        accepts: List[str] = []
        extra: Headers = []
        for name, value in event.headers:
            if name == b"sec-websocket-extensions":
                accepts.extend(split_comma_header(value))
            elif name not in (
                b"connection",
                b"sec-websocket-accept",
                b"sec-websocket-protocol",
                b"upgrade",
            ):
                extra.append((name, value))
        extensions = client_extensions_handshake(accepts, offered)
        self._connection = Connection(
            ConnectionType.CLIENT, extensions, self._h11_connection.trailing_data[0]
        )
        self._state = ConnectionState.OPEN
        return AcceptConnection(extensions=extensions, extra_headers=extra, subprotocol=subprotocol)

    @staticmethod
    def _response_error(
        exc: InvalidHandshake, headers: Iterable[Tuple[bytes, bytes]]
    ) -> RemoteProtocolError:
        message = _message_for(exc.reason, _RESPONSE_ERRORS)
        if message is None:
            protocols = [
                bytes(v).decode("latin-1") for n, v in headers if n == b"sec-websocket-protocol"
            ]
            if "subprotocol" in exc.reason and protocols:
                message = f"unrecognized subprotocol {', '.join(protocols)}"
            elif exc.reason.startswith("server accepted extension"):
                name = exc.reason.split("'")[1] if "'" in exc.reason else exc.reason
                message = f"unrecognized extension {name}"
            else:
                message = exc.reason
        return RemoteProtocolError(message, event_hint=RejectConnection())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client={self.client}, state={self._state})"


def server_extensions_handshake(
    requested: Iterable[str], supported: Sequence[Extension]
) -> Optional[bytes]:
    """Server side: let each supported extension answer the offers made for it.

    Args:
        requested: the client's offers, one string per element (name and parameters).
        supported: the server's extensions.

    Returns:
        The ``Sec-WebSocket-Extensions`` value of the response, or None if none accepted.
    """
    accepts = {}
    for offer in requested:
        name = offer.split(";", 1)[0].strip()
        for ext in supported:
            if ext.name != name:
                continue
            answer = ext.accept(offer)
            if answer is True:
                accepts[ext.name] = b""
            elif isinstance(answer, str):
                accepts[ext.name] = answer.encode("ascii")
    if not accepts:
        return None
    return b", ".join(
        name.encode("ascii") + (b"; " + params if params else b"")
        for name, params in accepts.items()
    )


def client_extensions_handshake(
    accepted: Iterable[str], supported: Sequence[Extension]
) -> List[Extension]:
    """Client side: hand each accepted element to the offered extension of that name.

    Returns:
        The extensions in use, finalized.

    Raises:
        RemoteProtocolError: the server accepted an extension that was not offered.
    """
    extensions = []
    for accept in accepted:
        name = accept.split(";", 1)[0].strip()
        for ext in supported:
            if ext.name == name:
                ext.finalize(accept)
                extensions.append(ext)
                break
        else:
            raise RemoteProtocolError(
                f"unrecognized extension {name}", event_hint=RejectConnection()
            )
    return extensions
