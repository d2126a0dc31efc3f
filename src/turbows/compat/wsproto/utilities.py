"""Errors and helpers of wsproto's API (``wsproto.utilities``)."""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Tuple

from ...handshake import GUID, accept_key

if TYPE_CHECKING:
    from .events import Event

__all__ = [
    "ACCEPT_GUID",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "generate_accept_token",
    "generate_nonce",
    "normed_header_dict",
    "split_comma_header",
]

#: RFC 6455 1.3: the GUID the accept token is computed with.
ACCEPT_GUID = GUID.encode("ascii")


class ProtocolError(Exception):
    """Base class of the protocol errors."""


class LocalProtocolError(ProtocolError):
    """This endpoint asked for something its state or RFC 6455 does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something RFC 6455 (or HTTP) does not allow.

    Attributes:
        event_hint: the event to send in answer (a ``RejectConnection`` during the
            handshake), or None.
    """

    def __init__(self, message: str, event_hint: Optional["Event"] = None) -> None:
        self.event_hint = event_hint
        super().__init__(message)


def normed_header_dict(headers: Iterable[Tuple[bytes, bytes]]) -> Dict[bytes, bytes]:
    """Join repeated header fields with ``", "`` into one value per name (RFC 9110 5.3).

    Names are kept as given (h11 lower-cases them). ``Set-Cookie`` is not a list and would be
    mangled; the handshake never needs it.
    """
    joined: Dict[bytes, List[bytes]] = {}
    for name, value in headers:
        joined.setdefault(name, []).append(value)
    return {name: b", ".join(values) for name, values in joined.items()}


def split_comma_header(value: bytes) -> List[str]:
    """Split a comma-separated header value into stripped ASCII strings."""
    return [piece.decode("ascii").strip() for piece in value.split(b",")]


def generate_nonce() -> bytes:
    """A fresh ``Sec-WebSocket-Key``: 16 random bytes, base64 (RFC 6455 4.1)."""
    return base64.b64encode(os.urandom(16))


def generate_accept_token(token: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key`` (RFC 6455 4.2.2)."""
    return accept_key(token.decode("latin-1")).encode("ascii")
