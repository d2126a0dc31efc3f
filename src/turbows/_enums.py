"""Protocol vocabulary shared by every layer: opcodes, close codes, states."""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "Opcode",
    "CloseCode",
    "State",
    "MAX_CONTROL_PAYLOAD",
    "MAX_CLOSE_REASON",
    "is_valid_close_code",
    "close_code",
]


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 5.2)."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(enum.IntEnum):
    """Close status codes (RFC 6455 7.4.1 and the IANA registry)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


class State(enum.IntEnum):
    """Connection states (RFC 6455 4 and 7)."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


#: RFC 6455 5.5: control frames MUST have a payload length of 125 bytes or less.
MAX_CONTROL_PAYLOAD: Final = 125
#: A close payload is a 2-byte code plus the reason, so the reason gets 123 bytes.
MAX_CLOSE_REASON: Final = 123

# RFC 6455 7.4.1/7.4.2: 1004 is reserved, 1005, 1006 and 1015 are for reporting only and
# MUST NOT be sent in a close frame; codes below 1000 are unused and 1016-2999 are reserved
# for future revisions of the protocol (1012-1014 were registered with IANA later).
_RESERVED_CLOSE_CODES: Final = frozenset({1004, 1005, 1006, 1015})


def is_valid_close_code(code: int) -> bool:
    """Tell whether ``code`` may appear on the wire in a close frame.

    Args:
        code: the status code.

    Returns:
        True for 1000-1003, 1007-1014 and 3000-4999.
    """
    if 1000 <= code <= 1014:
        return code not in _RESERVED_CLOSE_CODES
    return 3000 <= code <= 4999


def close_code(code: int) -> int:
    """Return the :class:`CloseCode` member for ``code``, or ``code`` itself if it has none."""
    try:
        return CloseCode(code)
    except ValueError:
        return code
