"""Pure-Python twin of the ``turbows._speedups`` codec.

Same API, same results and same errors as the Cython extension, for every input and every way
of splitting it into chunks. It is used when the extension is not built or when
``TURBOWS_NO_EXTENSIONS=1`` is set, and the test suite runs against both.
"""

from __future__ import annotations

import codecs
import os
from typing import Any, Iterable, List, Optional, Union

from ._enums import (
    MAX_CLOSE_REASON,
    MAX_CONTROL_PAYLOAD,
    CloseCode,
    close_code,
    is_valid_close_code,
)
from .exceptions import ConcurrentUseError, ProtocolError, _interrupted, _wrong_type

__all__ = [
    "apply_mask",
    "apply_mask_inplace",
    "validate_utf8",
    "Utf8Validator",
    "TextMessage",
    "BinaryMessage",
    "Ping",
    "Pong",
    "CloseReceived",
    "FrameParser",
    "FrameWriter",
    "build_frame",
    "encode_close",
    "kernel_isa",
]

BytesLike = Union[bytes, bytearray, memoryview]

_OP_CONT = 0
_OP_TEXT = 1
_OP_BINARY = 2
_OP_CLOSE = 8
_OP_PING = 9
_OP_PONG = 10

_utf8_decoder = codecs.getincrementaldecoder("utf-8")
_utf8_decode = codecs.utf_8_decode


def kernel_isa() -> str:
    """Name the instruction set the masking and UTF-8 kernels use (always ``"python"`` here)."""
    return "python"


def _as_bytes(data: Any) -> bytes:
    """Return the raw bytes of any C-contiguous buffer, or raise the codec's TypeError."""
    if type(data) is bytes:
        return data
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"a bytes-like object is required, not {type(data).__name__!r}") from None
    with view:
        if not view.c_contiguous:
            raise BufferError("the buffer must be C-contiguous")
        return view.tobytes()


def _check_mask(mask: Any) -> bytes:
    key = _as_bytes(mask)
    if len(key) != 4:
        raise ValueError(f"mask must be 4 bytes, got {len(key)}")
    return key


def _xor(data: bytes, mask: bytes) -> bytes:
    n = len(data)
    if n == 0:
        return b""
    key = (mask * ((n >> 2) + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def apply_mask(data: BytesLike, mask: BytesLike) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (RFC 6455 5.3) and return new bytes.

    Args:
        data: any C-contiguous bytes-like object.
        mask: the 4-byte masking key.

    Returns:
        The masked (or, applied again, unmasked) bytes.

    Raises:
        TypeError: ``data`` or ``mask`` is not bytes-like.
        ValueError: ``mask`` is not 4 bytes long.
    """
    mask = _check_mask(mask)
    return _xor(_as_bytes(data), mask)


def apply_mask_inplace(buf: Union[bytearray, memoryview], mask: BytesLike) -> None:
    """XOR a writable buffer with the 4-byte ``mask`` in place.

    Raises:
        TypeError: ``buf`` is not a writable bytes-like object, or ``mask`` is not bytes-like.
        ValueError: ``mask`` is not 4 bytes long.
    """
    mask = _check_mask(mask)
    try:
        view = memoryview(buf)
    except TypeError:
        raise TypeError(f"a bytes-like object is required, not {type(buf).__name__!r}") from None
    with view:
        if view.readonly:
            raise TypeError("the buffer must be writable")
        if not view.c_contiguous:
            raise BufferError("the buffer must be C-contiguous")
        with view.cast("B") as flat:
            flat[:] = _xor(flat.tobytes(), mask)


def validate_utf8(data: BytesLike) -> bool:
    """Tell whether ``data`` is complete, valid UTF-8 (RFC 3629).

    Raises:
        TypeError: ``data`` is not bytes-like.
    """
    data = _as_bytes(data)
    try:
        _utf8_decode(data, "strict", True)
    except UnicodeDecodeError:
        return False
    return True


def _dead_prefix(pending: bytes) -> bool:
    # CPython's incremental decoder keeps b"\xed\xa0".."\xed\xbf" pending (they start a
    # surrogate, which no continuation can make valid); we fail on them at once.
    return len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0


class Utf8Validator:
    """Incremental UTF-8 validator for a message that arrives in pieces.

    ``feed`` returns False as soon as the bytes seen so far cannot be the start of valid UTF-8,
    even in the middle of a sequence; ``complete`` tells whether the message may end here.
    """

    __slots__ = ("_decoder", "_ok")

    def __init__(self) -> None:
        self._decoder = _utf8_decoder()
        self._ok = True

    def feed(self, data: BytesLike) -> bool:
        """Validate the next piece.

        Returns:
            True while everything fed so far is a valid UTF-8 prefix; False from the first
            piece that makes it invalid on (the validator stays failed until ``reset``).
        """
        data = _as_bytes(data)
        if self._ok:
            try:
                self._decoder.decode(data, False)
            except UnicodeDecodeError:
                self._ok = False
            else:
                if _dead_prefix(self._decoder.getstate()[0]):
                    self._ok = False
        return self._ok

    @property
    def complete(self) -> bool:
        """True if no invalid byte was seen and no sequence is left incomplete."""
        return self._ok and not self._decoder.getstate()[0]

    def reset(self) -> None:
        """Forget everything fed so far."""
        self._decoder.reset()
        self._ok = True


# --------------------------------------------------------------------------------------------
# Items produced by the parser. They are also the connection's message events. Their
# constructors accept what the C codec's accept: exact str/bytes/int, nothing that can be part
# of a reference cycle (the C codec keeps these objects out of the cyclic GC).


class _DataMessage:
    __slots__ = ("data", "final")

    def __init__(self, data: Union[bytes, str], final: bool = True) -> None:
        if type(data) is not bytes and type(data) is not str:
            raise _wrong_type("data", "bytes or str", data)
        self.data = data
        self.final = bool(final)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return bool(self.data == other.data and self.final == other.final)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self.final:
            return f"{type(self).__name__}(data={self.data!r})"
        return f"{type(self).__name__}(data={self.data!r}, final=False)"


class TextMessage(_DataMessage):
    """A text message (``data`` is ``str``, or UTF-8 ``bytes`` when text is kept as bytes).

    ``final`` is False for a fragment that more fragments of the same message follow.
    """

    __slots__ = ()


class BinaryMessage(_DataMessage):
    """A binary message (``data`` is ``bytes``); ``final`` as for :class:`TextMessage`."""

    __slots__ = ()


class _ControlMessage:
    __slots__ = ("payload",)

    def __init__(self, payload: bytes = b"") -> None:
        if type(payload) is not bytes:
            raise _wrong_type("payload", "bytes", payload)
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return bool(self.payload == other.payload)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(payload={self.payload!r})"


class Ping(_ControlMessage):
    """A ping frame was received; ``payload`` is its application data."""

    __slots__ = ()


class Pong(_ControlMessage):
    """A pong frame was received; ``payload`` is its application data."""

    __slots__ = ()


class CloseReceived:
    """A close frame was received.

    Attributes:
        code: the close code, 1005 (``NO_STATUS_RCVD``) when the frame carried none.
        reason: the close reason, possibly empty.
    """

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str = "") -> None:
        if type(code) is not int and type(code) is not CloseCode:
            raise _wrong_type("code", "int", code)
        if type(reason) is not str:
            raise _wrong_type("reason", "str", reason)
        self.code = code
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        if type(other) is not CloseReceived:
            return NotImplemented
        return self.code == other.code and self.reason == other.reason

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CloseReceived(code={int(self.code)}, reason={self.reason!r})"


def _parse_close(payload: bytes) -> CloseReceived:
    n = len(payload)
    if n == 0:
        return CloseReceived(close_code(1005), "")
    if n == 1:
        raise ProtocolError(1002, "close frame with a 1-byte payload")
    code = (payload[0] << 8) | payload[1]
    if not is_valid_close_code(code):
        raise ProtocolError(1002, f"invalid close code {code}")
    try:
        reason = _utf8_decode(payload[2:], "strict", True)[0]
    except UnicodeDecodeError:
        raise ProtocolError(1007, "invalid UTF-8 in close reason") from None
    return CloseReceived(close_code(code), reason)


def encode_close(code: Optional[int] = None, reason: str = "") -> bytes:
    """Build the payload of a close frame.

    Args:
        code: a close code that may be sent (see ``is_valid_close_code``), or None for an empty
            payload (then ``reason`` must be empty).
        reason: at most 123 bytes once encoded as UTF-8.

    Raises:
        ValueError: the code may not be sent, or the reason is too long or given without code.
    """
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    code = int(code)
    if not is_valid_close_code(code):
        raise ValueError(f"close code {code} may not be sent in a close frame")
    raw = reason.encode("utf-8")
    if len(raw) > MAX_CLOSE_REASON:
        raise ValueError(f"close reason is {len(raw)} bytes long; the limit is {MAX_CLOSE_REASON}")
    return code.to_bytes(2, "big") + raw


# --------------------------------------------------------------------------------------------
# Receive side.

_NEED_HEADER = 0
_IN_PAYLOAD = 1

_INTERRUPTED = _interrupted(MemoryError())


class FrameParser:
    """Incremental receive-side parser: bytes in, assembled messages and control frames out.

    One ``feed`` call per chunk of socket data parses every complete frame in it, unmasks the
    payloads, applies the RFC 6455 rules and the size limit, reassembles fragmented messages,
    validates text incrementally and returns the finished items in order.

    Args:
        require_mask: True on the server side (client frames MUST be masked, RFC 6455 5.1),
            False on the client side (server frames MUST NOT be masked).
        max_message_size: the largest message payload accepted, or None for no limit; a larger
            message fails with close code 1009 as soon as its header announces the excess.
        fragments: deliver each data frame as it arrives (``final`` tells the last one) instead
            of whole messages.
        text_as_bytes: deliver text as validated UTF-8 ``bytes`` instead of ``str``.
        inflater: the negotiated compression extension's receive side, or None. When set, RSV1
            marks a compressed message (RFC 7692 6.1) and each piece of its payload goes
            through ``inflater.feed(data, final, limit)``, which returns the inflated bytes
            and, with ``final``, ends the message. To keep memory bounded it returns at most
            ``limit + 1`` bytes (``limit`` is -1 when there is no limit); the parser fails the
            message with 1009 as soon as the inflated size passes ``max_message_size``.
    """

    def __init__(
        self,
        *,
        require_mask: bool = True,
        max_message_size: Optional[int] = 1 << 20,
        fragments: bool = False,
        text_as_bytes: bool = False,
        inflater: Any = None,
    ) -> None:
        if max_message_size is not None and max_message_size < 0:
            raise ValueError("max_message_size must be >= 0 or None")
        self._require_mask = bool(require_mask)
        # Capped at 2**62 as in the C parser (a long long there), so that a frame announcing
        # more than 2**62 bytes fails with 1009 in both.
        self._max = -1 if max_message_size is None else min(int(max_message_size), 1 << 62)
        self._fragments = bool(fragments)
        self._text_as_bytes = bool(text_as_bytes)
        self._buf = b""
        self._state = _NEED_HEADER
        # Current frame.
        self._opcode = 0
        self._fin = False
        self._mask = b""
        self._remaining = 0
        self._offset = 0
        self._payload: List[bytes] = []
        # Current data message (opcode 0 when none is in progress).
        self._msg_opcode = 0
        self._msg_size = 0
        self._msg_parts: List[Any] = []
        self._validator: Optional[Utf8Validator] = None
        self._decoder: Any = None
        self._inflater = inflater
        self._compressed = False
        self._plain_size = 0
        self._error: Optional[ProtocolError] = None
        self._closed = False
        self.controls = 0
        # Emptied by a running feed(): another thread's (or the inflater's) feed() is refused
        # with ConcurrentUseError, as in the C codec. (list.pop is atomic; a lock costs more.)
        self._idle = [True]

    @property
    def closed(self) -> bool:
        """True once a close frame was parsed; later bytes are ignored."""
        return self._closed

    @property
    def buffered(self) -> int:
        """Bytes of the unfinished data message received so far, plus a split frame header."""
        return len(self._buf) + self._msg_size

    def feed(self, data: BytesLike) -> List[Any]:
        """Parse a chunk of received bytes.

        Returns:
            The items completed by this chunk, in order: :class:`TextMessage`,
            :class:`BinaryMessage`, :class:`Ping`, :class:`Pong` and :class:`CloseReceived`.
            ``controls`` is then the number of control items among them.

        Raises:
            ProtocolError: the peer broke the protocol; ``code`` is the close code to send and
                ``items`` holds what was completed before the violation. The parser stays
                failed: every later call raises the same error. An exception other than a
                protocol error (MemoryError, KeyboardInterrupt, an error from the inflater)
                interrupting a call leaves the stream at an unknown point: it propagates, and
                every later call raises a ProtocolError with code 1011.
            ConcurrentUseError: another call is running (another thread, or the inflater
                calling back); that call is not disturbed.
        """
        try:
            self._idle.pop()
        except IndexError:
            raise ConcurrentUseError("FrameParser.feed()") from None
        try:
            self.controls = 0
            data = _as_bytes(data)
            if self._error is not None:
                raise ProtocolError(self._error.code, self._error.reason)
            out: List[Any] = []
            if self._closed:
                return out
            try:
                self._parse(self._buf + data if self._buf else data, out)
            except ProtocolError as exc:
                self._fail(exc)
                exc.items = out
                raise
            except BaseException as exc:
                # Part of the chunk was consumed, and the items it completed go with this
                # call: no later call can resume the stream correctly.
                self._fail(_INTERRUPTED)
                self._error = _interrupted(exc)
                raise
            return out
        finally:
            self._idle.append(True)

    def _fail(self, error: ProtocolError) -> None:
        """Stay failed with ``error``; nothing is buffered once failed (``buffered`` is 0)."""
        self._error = error
        self._buf = b""
        self._msg_size = 0
        self._payload = []
        self._msg_parts = []

    def _parse(self, buf: bytes, out: List[Any]) -> None:
        pos = 0
        end = len(buf)
        while True:
            if self._state == _NEED_HEADER:
                if end - pos < 2:
                    break
                b0 = buf[pos]
                b1 = buf[pos + 1]
                self._check_first_bytes(b0, b1)
                length = b1 & 0x7F
                masked = b1 & 0x80
                hlen = 2
                if length == 126:
                    hlen = 4
                elif length == 127:
                    hlen = 10
                if masked:
                    hlen += 4
                if end - pos < hlen:
                    break
                if length == 126:
                    length = (buf[pos + 2] << 8) | buf[pos + 3]
                elif length == 127:
                    length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                    if length >> 63:
                        raise ProtocolError(1002, "frame length has its most significant bit set")
                opcode = b0 & 0x0F
                # A compressed message is bounded by its inflated size instead (_inflate):
                # its frames are inflated as they arrive, never buffered whole.
                compressed = self._compressed if opcode == _OP_CONT else b0 & 0x40
                if (
                    opcode < 8
                    and not compressed
                    and self._max >= 0
                    and self._msg_size + length > self._max
                ):
                    raise ProtocolError(
                        1009,
                        f"message of {self._msg_size + length} bytes or more exceeds the"
                        f" limit of {self._max}",
                    )
                if (
                    b0 & 0x80
                    and (opcode == _OP_TEXT or opcode == _OP_BINARY)
                    and not compressed
                    and length <= end - pos - hlen
                ):
                    # Fast path, as in the C parser: a whole unfragmented message in this chunk.
                    start = pos + hlen
                    pos = start + length
                    payload = buf[start:pos]
                    if masked:
                        payload = _xor(payload, buf[start - 4 : start])
                    if opcode == _OP_BINARY:
                        out.append(BinaryMessage(payload))
                        continue
                    try:
                        text = payload.decode("utf-8")
                    except UnicodeDecodeError:
                        raise ProtocolError(1007, "invalid UTF-8 in text message") from None
                    out.append(TextMessage(payload if self._text_as_bytes else text))
                    continue
                self._opcode = opcode
                self._fin = bool(b0 & 0x80)
                self._mask = buf[pos + hlen - 4 : pos + hlen] if masked else b""
                self._remaining = length
                self._offset = 0
                self._payload = []
                pos += hlen
                if opcode == _OP_TEXT or opcode == _OP_BINARY:
                    self._msg_opcode = opcode
                    self._compressed = bool(b0 & 0x40)
                    if opcode == _OP_TEXT:
                        if self._validator is None:
                            self._validator = Utf8Validator()
                        else:
                            self._validator.reset()
                self._state = _IN_PAYLOAD
            # In payload.
            take = min(self._remaining, end - pos)
            piece = buf[pos : pos + take]
            pos += take
            if self._mask:
                mask = self._mask
                if self._offset & 3:
                    r = self._offset & 3
                    mask = mask[r:] + mask[:r]
                piece = _xor(piece, mask)
            self._offset += take
            self._remaining -= take
            if self._opcode < 8 and self._compressed:
                self._msg_size += take
                piece = self._inflate(piece)
            elif self._opcode < 8:
                self._msg_size += take
                if self._msg_opcode == _OP_TEXT and piece:
                    assert self._validator is not None
                    if not self._validator.feed(piece):
                        raise ProtocolError(1007, "invalid UTF-8 in text message")
            if piece:
                self._payload.append(piece)
            if self._remaining:
                break
            self._state = _NEED_HEADER
            self._frame_done(out)
            if self._closed:
                pos = end
                break
        self._buf = buf[pos:] if pos < end else b""

    def _inflate(self, piece: bytes) -> bytes:
        final = self._fin and not self._remaining
        if not piece and not final:
            return piece
        limit = -1 if self._max < 0 else self._max - self._plain_size
        plain = self._inflater.feed(piece, final, limit)
        if type(plain) is not bytes:
            raise TypeError(f"inflater.feed() returned {type(plain).__name__}, not bytes")
        size = len(plain)
        if self._max >= 0 and self._plain_size + size > self._max:
            raise ProtocolError(
                1009,
                f"message of {self._plain_size + size} bytes or more exceeds the"
                f" limit of {self._max}",
            )
        self._plain_size += size
        if self._msg_opcode == _OP_TEXT and plain:
            assert self._validator is not None
            if not self._validator.feed(plain):
                raise ProtocolError(1007, "invalid UTF-8 in text message")
        return plain

    def _check_first_bytes(self, b0: int, b1: int) -> None:
        opcode = b0 & 0x0F
        # RFC 6455 5.2: RSV1-3 MUST be 0 unless an extension defines them. RFC 7692 6.1:
        # permessage-deflate owns RSV1, set on the first frame of a compressed message only.
        if b0 & 0x70:
            if (b0 & 0x70) != 0x40 or self._inflater is None:
                raise ProtocolError(1002, f"reserved bits set: 0x{b0 & 0x70:02x}")
            if opcode != _OP_TEXT and opcode != _OP_BINARY:
                raise ProtocolError(1002, "RSV1 set on a frame that does not start a message")
        if opcode >= 8:
            if opcode > _OP_PONG:
                raise ProtocolError(1002, f"reserved opcode 0x{opcode:x}")
            # RFC 6455 5.5: control frames MUST NOT be fragmented and carry <= 125 bytes.
            if not b0 & 0x80:
                raise ProtocolError(1002, "fragmented control frame")
            if (b1 & 0x7F) > MAX_CONTROL_PAYLOAD:
                raise ProtocolError(1002, "control frame payload longer than 125 bytes")
        elif opcode == _OP_CONT:
            if not self._msg_opcode:
                raise ProtocolError(1002, "continuation frame without a message to continue")
        elif opcode <= _OP_BINARY:
            if self._msg_opcode:
                raise ProtocolError(1002, "new data frame while a fragmented message is unfinished")
        else:
            raise ProtocolError(1002, f"reserved opcode 0x{opcode:x}")
        # RFC 6455 5.1: clients mask every frame, servers never do.
        if b1 & 0x80:
            if not self._require_mask:
                raise ProtocolError(1002, "frame from the server is masked")
        elif self._require_mask:
            raise ProtocolError(1002, "frame from the client is not masked")

    def _frame_done(self, out: List[Any]) -> None:
        payload = b"".join(self._payload) if len(self._payload) != 1 else self._payload[0]
        self._payload = []
        opcode = self._opcode
        if opcode >= 8:
            self.controls += 1
            if opcode == _OP_PING:
                out.append(Ping(payload))
            elif opcode == _OP_PONG:
                out.append(Pong(payload))
            else:
                out.append(_parse_close(payload))
                self._closed = True
            return
        is_text = self._msg_opcode == _OP_TEXT
        if self._fin and is_text:
            assert self._validator is not None
            if not self._validator.complete:
                raise ProtocolError(1007, "invalid UTF-8 in text message")
        if self._fragments:
            if is_text and not self._text_as_bytes:
                if self._decoder is None:
                    self._decoder = _utf8_decoder()
                data: Any = self._decoder.decode(payload, self._fin)
            else:
                data = payload
            out.append((TextMessage if is_text else BinaryMessage)(data, self._fin))
        elif self._fin:
            if self._msg_parts:
                self._msg_parts.append(payload)
                payload = b"".join(self._msg_parts)
                self._msg_parts = []
            if is_text:
                out.append(TextMessage(payload if self._text_as_bytes else payload.decode("utf-8")))
            else:
                out.append(BinaryMessage(payload))
        else:
            self._msg_parts.append(payload)
        if self._fin:
            self._msg_opcode = 0
            self._msg_size = 0
            self._plain_size = 0
            self._compressed = False
            if self._decoder is not None:
                self._decoder.reset()


# --------------------------------------------------------------------------------------------
# Send side.

_POOL_SIZE = 4096


_urandom = os.urandom


class _MaskPool:
    """Masking keys from a buffered pool of ``os.urandom`` bytes (RFC 6455 10.3)."""

    __slots__ = ("_pool", "_pos")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the pooled keys. A child process starts with a copy of its parent's pool:
        both would mask their next frames with the same keys."""
        self._pool = b""
        self._pos = 0

    def key(self) -> bytes:
        if self._pos + 4 > len(self._pool):
            self._pool = _urandom(_POOL_SIZE)
            self._pos = 0
        key = self._pool[self._pos : self._pos + 4]
        self._pos += 4
        return key


_mask_pool = _MaskPool()
_reset_mask_pool = _mask_pool.reset
if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork()
    os.register_at_fork(after_in_child=_reset_mask_pool)


def _header(opcode: int, length: int, fin: bool, rsv: int, masked: bool) -> bytes:
    b0 = (0x80 if fin else 0) | rsv | opcode
    mbit = 0x80 if masked else 0
    if length < 126:
        return bytes((b0, mbit | length))
    if length < 0x10000:
        return bytes((b0, mbit | 126)) + length.to_bytes(2, "big")
    return bytes((b0, mbit | 127)) + length.to_bytes(8, "big")


def _payload_bytes(payload: Any) -> bytes:
    if type(payload) is str:
        return payload.encode("utf-8")
    return _as_bytes(payload)


def _check_frame(opcode: int, length: int, fin: bool, rsv: int) -> None:
    if opcode not in (0, 1, 2, 8, 9, 10):
        raise ValueError(f"invalid opcode {opcode}")
    if rsv & ~0x70:
        raise ValueError(f"rsv must only use bits 0x70, got 0x{rsv:x}")
    if opcode >= 8:
        if not fin:
            raise ValueError("control frames cannot be fragmented")
        if length > MAX_CONTROL_PAYLOAD:
            raise ValueError(f"control frame payload is {length} bytes long; the limit is 125")


def build_frame(
    opcode: int,
    payload: Union[BytesLike, str],
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: Optional[BytesLike] = None,
) -> bytes:
    """Build one frame.

    Args:
        opcode: the frame's opcode (0, 1, 2, 8, 9 or 10).
        payload: bytes-like, or ``str`` (sent as UTF-8).
        fin: False for every fragment but the last.
        rsv: RSV bits (0x40, 0x20, 0x10) owned by a negotiated extension.
        mask: a 4-byte masking key, or None for an unmasked frame.

    Raises:
        ValueError: bad opcode or rsv, a fragmented or oversized control frame, a bad mask.
        TypeError: the payload is neither bytes-like nor ``str``.
    """
    data = _payload_bytes(payload)
    _check_frame(opcode, len(data), fin, rsv)
    if mask is None:
        return _header(opcode, len(data), fin, rsv, False) + data
    key = _check_mask(mask)
    return _header(opcode, len(data), fin, rsv, True) + key + _xor(data, key)


_NOT_A_MESSAGE = "cannot send %s as a message: use str or bytes-like"
_NOT_UTF8 = "text=True needs UTF-8 bytes: message %d is not valid UTF-8"


class FrameWriter:
    """Send side: frames appended to one output buffer, taken out with ``take``.

    Args:
        mask: True on the client side: every frame is masked with a fresh key drawn from a
            buffered pool of ``os.urandom`` bytes (RFC 6455 5.3 and 10.3).
    """

    def __init__(self, *, mask: bool = False) -> None:
        self._mask = bool(mask)
        self._out = bytearray()
        # Emptied by a running call: another thread's call is refused with
        # ConcurrentUseError, as in the C codec.
        self._idle = [True]

    def frame(
        self, opcode: int, payload: Union[BytesLike, str], fin: bool = True, rsv: int = 0
    ) -> None:
        """Append one frame; arguments as for :func:`build_frame`.

        Raises:
            ConcurrentUseError: another call on this writer is running (another thread).
        """
        self._append("frame", opcode, payload, fin, rsv)

    def _append(
        self, call: str, opcode: int, payload: Union[BytesLike, str], fin: bool, rsv: int
    ) -> None:
        try:
            self._idle.pop()
        except IndexError:
            raise ConcurrentUseError(f"FrameWriter.{call}()") from None
        try:
            data = _payload_bytes(payload)
            _check_frame(opcode, len(data), fin, rsv)
            out = self._out
            size = len(out)
            try:
                self._put(out, opcode, fin, rsv, data)
            except BaseException:
                del out[size:]  # no partial frame left by an append interrupted
                raise
        finally:
            self._idle.append(True)

    def _put(self, out: bytearray, opcode: int, fin: bool, rsv: int, data: bytes) -> None:
        """Write one frame at the end of ``out``."""
        out += _header(opcode, len(data), fin, rsv, self._mask)
        if self._mask:
            key = _mask_pool.key()
            out += key
            data = _xor(data, key)
        out += data

    def text(self, payload: str) -> None:
        """Append a whole text message in one frame (ConcurrentUseError as for ``frame``)."""
        self._append("text", _OP_TEXT, payload, True, 0)

    def binary(self, payload: BytesLike) -> None:
        """Append a whole binary message in one frame (ConcurrentUseError as for ``frame``)."""
        self._append("binary", _OP_BINARY, payload, True, 0)

    def messages(
        self, messages: Iterable[Union[str, BytesLike]], text: Optional[bool] = None
    ) -> List[int]:
        """Append many whole messages, each in one frame, in one call.

        Args:
            messages: ``str`` or bytes-like (``bytes``, ``bytearray``, ``memoryview``)
                messages, in order (any iterable).
            text: None sends ``str`` as text and bytes-like as binary; True sends every
                message as text (bytes as they are, after UTF-8 validation: RFC 6455 5.6);
                False every one as binary (``str`` as UTF-8).

        Returns:
            Where each message's frame starts in the writer (``len(self)`` before it).

        Raises:
            TypeError: a message is neither ``str`` nor bytes-like.
            ValueError: ``text=True`` and a bytes message is not valid UTF-8.
            UnicodeEncodeError: a ``str`` holds a lone surrogate.
            BufferError: a bytes-like message is not C-contiguous.
            ConcurrentUseError: another call on this writer is running (another thread).

        On an error the writer is left as it was: none of the messages is appended.
        """
        try:
            self._idle.pop()
        except IndexError:
            raise ConcurrentUseError("FrameWriter.messages()") from None
        out = self._out
        saved = len(out)
        starts: List[int] = []
        try:
            for i, message in enumerate(list(messages)):
                starts.append(len(out))
                if type(message) is str:
                    data = message.encode("utf-8")
                    opcode = _OP_BINARY if text is False else _OP_TEXT
                elif isinstance(message, (bytes, bytearray, memoryview)):
                    data = _as_bytes(message)
                    opcode = _OP_TEXT if text else _OP_BINARY
                    if text and not validate_utf8(data):
                        raise ValueError(_NOT_UTF8 % i)
                else:
                    raise TypeError(_NOT_A_MESSAGE % type(message).__name__)
                self._put(out, opcode, True, 0, data)
        except BaseException:
            del out[saved:]
            raise
        finally:
            self._idle.append(True)
        return starts

    def take(self) -> bytes:
        """Return the bytes written so far and empty the buffer.

        Raises:
            ConcurrentUseError: another call on this writer is running (another thread).
        """
        try:
            self._idle.pop()
        except IndexError:
            raise ConcurrentUseError("FrameWriter.take()") from None
        try:
            out = bytes(self._out)
            self._out.clear()
            return out
        finally:
            self._idle.append(True)

    def _take_parts(self) -> bytes:
        """Like :meth:`take` (the compiled twin may return a large frame as its header and
        payload, for a transport's writev)."""
        return self.take()

    def __len__(self) -> int:
        return len(self._out)
