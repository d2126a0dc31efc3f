"""Frame-level vocabulary of wsproto's API (``wsproto.frame_protocol``).

Only the public names live here: opcodes, close reasons, RSV bits, the frame tuples and the
constants of RFC 6455 5.2 and 7.4. The frames themselves are parsed and built by turbows's
codec (:mod:`turbows.codec`), through :mod:`turbows.compat.wsproto.connection`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, NamedTuple, Optional, Tuple, Union

from ..._enums import MAX_CONTROL_PAYLOAD
from ..._enums import Opcode as _Opcode

__all__ = [
    "CloseReason",
    "Frame",
    "Header",
    "LOCAL_ONLY_CLOSE_REASONS",
    "Opcode",
    "ParseFailed",
    "RsvBits",
]

# RFC 6455 5.2: the payload length field.
PAYLOAD_LENGTH_TWO_BYTE = 126
PAYLOAD_LENGTH_EIGHT_BYTE = 127
MAX_PAYLOAD_NORMAL = MAX_CONTROL_PAYLOAD
MAX_PAYLOAD_TWO_BYTE = 2**16 - 1
MAX_PAYLOAD_EIGHT_BYTE = 2**64 - 1
MAX_FRAME_PAYLOAD = MAX_PAYLOAD_EIGHT_BYTE

# RFC 6455 5.2: the bits of the first two header bytes.
MASK_MASK = 0x80
PAYLOAD_LEN_MASK = 0x7F
FIN_MASK = 0x80
RSV1_MASK = 0x40
RSV2_MASK = 0x20
RSV3_MASK = 0x10
OPCODE_MASK = 0x0F


def _iscontrol(self: "Opcode") -> bool:
    """True for control frames (close, ping, pong): opcodes with bit 0x8 set."""
    return bool(self & 0x08)


if TYPE_CHECKING:

    class Opcode(IntEnum):
        """Frame opcodes (RFC 6455 5.2)."""

        CONTINUATION = 0x0
        TEXT = 0x1
        BINARY = 0x2
        CLOSE = 0x8
        PING = 0x9
        PONG = 0xA

        def iscontrol(self) -> bool: ...

else:
    # The members of turbows's own Opcode, in wsproto's class (which has iscontrol()).
    Opcode = IntEnum("Opcode", [(m.name, m.value) for m in _Opcode], module=__name__)
    Opcode.__doc__ = "Frame opcodes (RFC 6455 5.2)."
    Opcode.iscontrol = _iscontrol


class CloseReason(IntEnum):
    """Close status codes (RFC 6455 7.4.1), the members wsproto defines."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_FRAME_PAYLOAD_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXT = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    TLS_HANDSHAKE_FAILED = 1015


#: RFC 6455 7.4.1: codes for reporting only, never sent in a close frame.
LOCAL_ONLY_CLOSE_REASONS = (
    CloseReason.NO_STATUS_RCVD,
    CloseReason.ABNORMAL_CLOSURE,
    CloseReason.TLS_HANDSHAKE_FAILED,
)

# RFC 6455 7.4.2: the ranges of close codes.
MIN_CLOSE_REASON = 1000
MIN_PROTOCOL_CLOSE_REASON = 1000
MAX_PROTOCOL_CLOSE_REASON = 2999
MIN_LIBRARY_CLOSE_REASON = 3000
MAX_LIBRARY_CLOSE_REASON = 3999
MIN_PRIVATE_CLOSE_REASON = 4000
MAX_PRIVATE_CLOSE_REASON = 4999
MAX_CLOSE_REASON = 4999

NULL_MASK = b"\x00\x00\x00\x00"


class ParseFailed(Exception):
    """Received bytes break RFC 6455.

    Attributes:
        code: the close code to answer with.
    """

    def __init__(self, msg: str, code: CloseReason = CloseReason.PROTOCOL_ERROR) -> None:
        super().__init__(msg)
        self.code = code


class RsvBits(NamedTuple):
    """The three reserved bits of a frame header."""

    rsv1: bool
    rsv2: bool
    rsv3: bool


class Header(NamedTuple):
    """A parsed frame header."""

    fin: bool
    rsv: RsvBits
    opcode: Opcode
    payload_len: int
    masking_key: Optional[bytes]


class Frame(NamedTuple):
    """A frame, or a piece of one."""

    opcode: Opcode
    payload: Union[bytes, str, Tuple[int, str]]
    frame_finished: bool
    message_finished: bool


def rsv_bits(value: int) -> RsvBits:
    """The :class:`RsvBits` of the codec's ``rsv`` integer (bits 0x40, 0x20, 0x10)."""
    return RsvBits(bool(value & RSV1_MASK), bool(value & RSV2_MASK), bool(value & RSV3_MASK))


def rsv_int(rsv: RsvBits) -> int:
    """The codec's ``rsv`` integer for :class:`RsvBits`."""
    return (
        (RSV1_MASK if rsv[0] else 0) | (RSV2_MASK if rsv[1] else 0) | (RSV3_MASK if rsv[2] else 0)
    )
