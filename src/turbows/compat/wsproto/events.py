"""The events of wsproto's API (``wsproto.events``): what happened, or what to send.

The same frozen dataclasses as wsproto 1.3, with the same fields, defaults, equality and repr,
so that code written for wsproto builds, compares and prints them unchanged.
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, List, Optional, Sequence, TypeVar, Union

from .typing import Headers

if TYPE_CHECKING:
    from .extensions import Extension

__all__ = [
    "AcceptConnection",
    "BytesMessage",
    "CloseConnection",
    "Event",
    "Message",
    "Ping",
    "Pong",
    "RejectConnection",
    "RejectData",
    "Request",
    "TextMessage",
]


class Event(ABC):  # noqa: B024 - an abstract base without abstract methods, as in wsproto
    """Base class of every event."""


@dataclass(frozen=True)
class Request(Event):
    """A client's opening handshake (server side: received; client side: to send).

    Attributes:
        host: the ``Host`` header (required).
        target: the request target, path and query string (required).
        extensions: received: the offers as strings (``"permessage-deflate; ..."``); to send:
            the :class:`~turbows.compat.wsproto.extensions.Extension` objects to offer.
        extra_headers: the other header fields (received: without ``Host``,
            ``Sec-WebSocket-Extensions`` and ``Sec-WebSocket-Protocol``).
        subprotocols: the subprotocols offered, in order of preference.
    """

    host: str
    target: str
    extensions: Union[Sequence["Extension"], Sequence[str]] = field(default_factory=list)
    extra_headers: Headers = field(default_factory=list)
    subprotocols: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class AcceptConnection(Event):
    """The server accepts the handshake (server side: to send; client side: received).

    Attributes:
        subprotocol: the subprotocol selected, or None.
        extensions: the extensions in use.
        extra_headers: more headers for the 101 (received: those not about WebSocket).
    """

    subprotocol: Optional[str] = None
    extensions: List["Extension"] = field(default_factory=list)
    extra_headers: Headers = field(default_factory=list)


@dataclass(frozen=True)
class RejectConnection(Event):
    """The server refuses the handshake with an HTTP response.

    To send a body, set ``has_body`` and send :class:`RejectData` events after this one (the
    headers should then say how long it is). Received, ``has_body`` is True and
    :class:`RejectData` events follow, except after an informational (1xx) status other
    than 101.

    Attributes:
        status_code: the HTTP status.
        headers: the response's header fields.
        has_body: whether :class:`RejectData` events follow.
    """

    status_code: int = 400
    headers: Headers = field(default_factory=list)
    has_body: bool = False


@dataclass(frozen=True)
class RejectData(Event):
    """A piece of a rejection's body.

    Attributes:
        data: the bytes (required).
        body_finished: True on the last piece.
    """

    data: bytes
    body_finished: bool = True


@dataclass(frozen=True)
class CloseConnection(Event):
    """A close frame (received, or to send).

    Receiving one does not answer it: send :meth:`response` back while the state says the
    close came from the peer (``REMOTE_CLOSING``), as RFC 6455 5.5.1 requires.

    Attributes:
        code: the close code (required); a ``CloseReason`` member when it has one.
        reason: the close reason, or None.
    """

    code: int
    reason: Optional[str] = None

    def response(self) -> "CloseConnection":
        """The close event to send back: the same code and reason."""
        return CloseConnection(code=self.code, reason=self.reason)


T = TypeVar("T", Union[bytes, bytearray], str)


@dataclass(frozen=True)
class Message(Event, Generic[T]):
    """A piece of a data message.

    Attributes:
        data: the payload of this piece (required); pieces are not reassembled.
        frame_finished: True when this piece ends a frame.
        message_finished: True when this piece ends the message.
    """

    data: T
    frame_finished: bool = True
    message_finished: bool = True


@dataclass(frozen=True)
class TextMessage(Message[str]):
    """A piece of a text message (``data`` is ``str``)."""


@dataclass(frozen=True)
class BytesMessage(Message[Union[bytearray, bytes]]):
    """A piece of a binary message (``data`` is bytes-like)."""


@dataclass(frozen=True)
class Ping(Event):
    """A ping frame (received, or to send).

    Receiving one does not answer it: send :meth:`response` soon (RFC 6455 5.5.2).

    Attributes:
        payload: the application data, at most 125 bytes.
    """

    payload: bytes = b""

    def response(self) -> "Pong":
        """The pong that answers this ping: the same payload."""
        return Pong(payload=self.payload)


@dataclass(frozen=True)
class Pong(Event):
    """A pong frame (received, or to send).

    Attributes:
        payload: the application data, at most 125 bytes.
    """

    payload: bytes = b""
