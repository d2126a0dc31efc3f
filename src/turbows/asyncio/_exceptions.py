"""Errors of the asyncio layer. Each derives from :class:`turbows.TurboWSError`."""

from __future__ import annotations

from typing import Optional

from .._http import Headers
from ..events import PEER, ConnectionClosed
from ..exceptions import TurboWSError

__all__ = [
    "WebSocketClosed",
    "ClosedOK",
    "ClosedError",
    "HandshakeError",
    "HandshakeRejected",
    "HandshakeFailed",
    "OpenTimeout",
]

#: Close codes that mean "the peer finished on purpose" (RFC 6455 7.4.1), and 1005: a close
#: frame without a code, which is what a browser's ``close()`` without arguments sends.
_OK_CODES = (1000, 1001, 1005)


class WebSocketClosed(TurboWSError):
    """The connection is closed: no message can be sent or received any more.

    Attributes:
        code: the close code received (1005 when the frame had none, 1006 for an abnormal end).
        reason: the close reason received, or what happened instead for 1006.
        clean: True when close frames went both ways (RFC 6455 7.1.4).
        event: the connection's final :class:`turbows.ConnectionClosed` event.
    """

    def __init__(self, event: ConnectionClosed) -> None:
        super().__init__(event.code, event.reason)
        self.event = event
        self.code: int = event.code
        self.reason: str = event.reason
        self.clean: bool = event.clean

    def __str__(self) -> str:
        event = self.event
        if self.code == 1006:
            # No close frame came: say what happened, and what this side sent, if anything
            # (the side that finds a dead peer sends 1011 and does not wait for an answer).
            if event.sent_code is None:
                return f"connection closed abnormally (1006): {self.reason}"
            sent = f"sent close {event.sent_code}" + (
                f" {event.sent_reason!r}" if event.sent_reason else ""
            )
            if event.sent_reason == self.reason:
                return f"connection closed abnormally (1006): {sent}, received no close frame"
            return (
                f"connection closed abnormally (1006): {self.reason}; {sent},"
                " received no close frame"
            )
        reason = f" {self.reason!r}" if self.reason else ""
        who = "the peer" if event.initiator == PEER else "this side"
        if isinstance(self, ClosedOK):
            return f"connection closed normally by {who} with code {self.code}{reason}"
        handshake = "" if self.clean else " (the closing handshake did not complete)"
        return f"connection closed by {who} with code {self.code}{reason}{handshake}"

    @staticmethod
    def from_event(event: ConnectionClosed) -> "WebSocketClosed":
        """The right subclass for ``event``: :class:`ClosedOK` or :class:`ClosedError`."""
        if event.clean and event.code in _OK_CODES:
            return ClosedOK(event)
        return ClosedError(event)


class ClosedOK(WebSocketClosed):
    """The connection was closed cleanly with 1000 (normal), 1001 (going away) or no code (1005).

    ``async for message in ws`` ends without raising it.
    """


class ClosedError(WebSocketClosed):
    """The connection ended with another code, or without a closing handshake (1006)."""


class HandshakeError(TurboWSError):
    """The opening handshake did not succeed (client side)."""


class HandshakeRejected(HandshakeError):
    """The server answered the opening handshake with an HTTP status other than 101.

    Attributes:
        status: the HTTP status (401, 403, 404, 503, ...).
        headers: the response headers (``Retry-After``, ``WWW-Authenticate``, ...).
        body: the response body, as read (bounded by ``max_body_size``).
    """

    def __init__(self, status: int, headers: Headers, body: bytes = b"") -> None:
        super().__init__(status, body)
        self.status = status
        self.headers = headers
        self.body = body

    def __str__(self) -> str:
        text = self.body[:200].decode("utf-8", "replace").strip()
        if self.status < 400:
            # A 200 page, a redirect: the URL is served, but not by a WebSocket server.
            return f"not a WebSocket server: it answered the handshake with HTTP {self.status}"
        return f"server rejected the WebSocket handshake with HTTP {self.status}" + (
            f": {text}" if text else ""
        )

    @property
    def retry_after(self) -> Optional[float]:
        """The ``Retry-After`` header in seconds (delay or HTTP date), or None."""
        from ._reconnect import parse_retry_after

        return parse_retry_after(self.headers.get("Retry-After"))


class HandshakeFailed(HandshakeError):
    """The server's answer was not a valid WebSocket handshake, or the connection ended
    before it completed. The message says what went wrong."""


class OpenTimeout(HandshakeError, TimeoutError):
    """The opening handshake did not complete within ``open_timeout``."""
