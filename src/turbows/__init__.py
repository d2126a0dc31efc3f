"""turbows: a fast, correct WebSocket (RFC 6455 + RFC 7692) protocol library."""

from __future__ import annotations

from ._enums import CloseCode, Opcode, State, is_valid_close_code
from .codec import (
    IMPLEMENTATION,
    BinaryMessage,
    CloseReceived,
    FrameParser,
    FrameWriter,
    Ping,
    Pong,
    TextMessage,
    Utf8Validator,
    apply_mask,
    apply_mask_inplace,
    build_frame,
    encode_close,
    validate_utf8,
)
from .connection import ClientConnection, ServerConnection
from .events import Accepted, ConnectionClosed, PingAnswered, Rejected, Request
from .exceptions import ConcurrentUseError, TurboWSError, InvalidStateError, ProtocolError
from .extensions import PerMessageDeflate
from .handshake import InvalidHandshake

__version__ = "0.1.0.dev0"

__all__ = [
    "__version__",
    "IMPLEMENTATION",
    "Opcode",
    "CloseCode",
    "State",
    "is_valid_close_code",
    "apply_mask",
    "apply_mask_inplace",
    "validate_utf8",
    "Utf8Validator",
    "FrameParser",
    "FrameWriter",
    "build_frame",
    "encode_close",
    "TextMessage",
    "BinaryMessage",
    "Ping",
    "Pong",
    "CloseReceived",
    "ServerConnection",
    "ClientConnection",
    "Request",
    "Accepted",
    "Rejected",
    "PingAnswered",
    "ConnectionClosed",
    "PerMessageDeflate",
    "TurboWSError",
    "ProtocolError",
    "InvalidStateError",
    "ConcurrentUseError",
    "InvalidHandshake",
]
