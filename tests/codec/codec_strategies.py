"""Hypothesis strategies for the codec property tests.

``plans()`` draws a valid conversation (messages with random fragmentation, control frames
interleaved, maybe a final close) together with the items a parser must produce from it, in
whole-message mode and in fragments mode. ``frame_soups()`` draws streams of frames whose
header fields and payloads are often wrong, and ``mutated()`` damages a valid stream, to drive
both parsers down their error paths.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

from hypothesis import strategies as st

from turbows._enums import close_code

from codec_reference import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    raw_frame,
    split_at,
)

SENDABLE_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]
SENDABLE_CLOSE_CODES += [3000, 3999, 4000, 4999]

# Text that exercises every UTF-8 length: ASCII, 2, 3 and 4-byte characters.
texts = st.text(
    alphabet=st.one_of(
        st.characters(max_codepoint=0x7F),
        st.characters(min_codepoint=0x80, max_codepoint=0x7FF),
        st.characters(min_codepoint=0x800, max_codepoint=0xFFFF, exclude_categories=["Cs"]),
        st.characters(min_codepoint=0x10000),
    ),
    max_size=60,
)
control_payloads = st.binary(max_size=125)


@dataclass
class Plan:
    """Frames to send and the items a parser must give for them."""

    frames: List[Tuple[int, bytes, bool]] = field(default_factory=list)
    # describe()-style tuples (see codec_reference.describe), text data kept as bytes here.
    messages: List[Tuple[Any, ...]] = field(default_factory=list)
    fragments: List[Tuple[Any, ...]] = field(default_factory=list)

    def control(self, opcode: int, payload: bytes) -> None:
        self.frames.append((opcode, payload, True))
        item = ("Ping" if opcode == OP_PING else "Pong", "bytes", payload)
        self.messages.append(item)
        self.fragments.append(item)

    def expected(self, *, fragments: bool, text_as_bytes: bool) -> List[Tuple[Any, ...]]:
        """The items as ``describe`` shows them, for the given parser options."""
        out = []
        decoder = codecs.getincrementaldecoder("utf-8")()
        for item in self.fragments if fragments else self.messages:
            if item[0] == "TextMessage" and not text_as_bytes:
                raw, final = item[2], item[3]
                text = decoder.decode(raw, final) if fragments else raw.decode("utf-8")
                item = ("TextMessage", "str", text, final)
            out.append(item)
        return out


@st.composite
def plans(draw: Any, max_messages: int = 5) -> Plan:
    plan = Plan()
    for _ in range(draw(st.integers(0, max_messages))):
        if draw(st.integers(0, 3)) == 0:
            plan.control(draw(st.sampled_from([OP_PING, OP_PONG])), draw(control_payloads))
        is_text = draw(st.booleans())
        payload = draw(texts).encode("utf-8") if is_text else draw(st.binary(max_size=80))
        # Cut anywhere, inside characters too; equal cuts give empty fragments.
        cuts = draw(st.lists(st.integers(0, len(payload)), max_size=4))
        pieces = split_at(payload, cuts)
        name = "TextMessage" if is_text else "BinaryMessage"
        for i, piece in enumerate(pieces):
            final = i == len(pieces) - 1
            opcode = (OP_TEXT if is_text else OP_BINARY) if i == 0 else OP_CONT
            plan.frames.append((opcode, piece, final))
            plan.fragments.append((name, "bytes", piece, final))
            if not final and draw(st.integers(0, 2)) == 0:
                plan.control(draw(st.sampled_from([OP_PING, OP_PONG])), draw(control_payloads))
        plan.messages.append((name, "bytes", payload, True))
    if draw(st.booleans()):
        code = draw(st.sampled_from(SENDABLE_CLOSE_CODES))
        reason = draw(st.text(max_size=40).filter(lambda r: len(r.encode("utf-8")) <= 123))
        plan.frames.append((OP_CLOSE, code.to_bytes(2, "big") + reason.encode("utf-8"), True))
        item = ("CloseReceived", type(close_code(code)).__name__, code, reason)
        plan.messages.append(item)
        plan.fragments.append(item)
    return plan


def serialize(codec: Any, plan: Plan, keys: Optional[List[bytes]]) -> bytes:
    """Build the plan's frames with ``codec.build_frame`` (masked with ``keys`` if given)."""
    out = []
    for i, (opcode, payload, fin) in enumerate(plan.frames):
        mask = keys[i % len(keys)] if keys else None
        out.append(codec.build_frame(opcode, payload, fin=fin, mask=mask))
    return b"".join(out)


masks = st.binary(min_size=4, max_size=4)


@st.composite
def chunkings(draw: Any, data: bytes) -> List[bytes]:
    """``data`` split at arbitrary points (possibly into empty chunks, possibly not at all)."""
    if not data:
        return [data]
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=8))
    return split_at(data, cuts)


# --------------------------------------------------------------------------------------------
# Adversarial streams for the differential tests.

parser_options = st.fixed_dictionaries(
    {
        "require_mask": st.booleans(),
        "max_message_size": st.sampled_from([None, 0, 1, 7, 64, 300, 1 << 20]),
        "fragments": st.booleans(),
        "text_as_bytes": st.booleans(),
    }
)

_opcodes = st.one_of(
    st.sampled_from([OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG]),
    st.integers(0, 15),
)
_bad_utf8 = st.sampled_from(
    [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xed\xa0", b"\xf4\x90", b"\xe2\x82", b"\x80", b"\xf0"]
)


@st.composite
def _soup_payload(draw: Any, opcode: int) -> bytes:
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return draw(st.binary(max_size=40))
    if choice == 1 or (choice == 2 and opcode != OP_CLOSE):
        raw = bytearray(draw(texts).encode("utf-8"))
        if draw(st.booleans()):
            pos = draw(st.integers(0, len(raw)))
            raw[pos:pos] = draw(_bad_utf8)
        return bytes(raw)
    if choice == 2 or choice == 3:
        # Close payloads, valid and invalid.
        code = draw(st.one_of(st.sampled_from(SENDABLE_CLOSE_CODES), st.integers(0, 0xFFFF)))
        reason = draw(st.one_of(texts.map(lambda t: t.encode("utf-8")), _bad_utf8))
        return code.to_bytes(2, "big") + reason[:123]
    if choice == 4:
        return draw(st.binary(min_size=120, max_size=130))
    return b""


@st.composite
def soup_frames(draw: Any, masked_by_default: bool) -> bytes:
    opcode = draw(_opcodes)
    fin = draw(st.integers(0, 3)) != 0
    rsv = draw(st.sampled_from([0] * 8 + [0x10, 0x20, 0x40]))
    masked = masked_by_default if draw(st.integers(0, 7)) else not masked_by_default
    payload = draw(_soup_payload(opcode))
    length = None
    length_bits = None
    pick = draw(st.integers(0, 15))
    if pick == 0:
        length = draw(st.sampled_from([126, 65535, 65536, (1 << 63) - 1, 1 << 63, (1 << 64) - 1]))
    elif pick == 1:
        length = len(payload) + draw(st.integers(1, 4))  # announces more than sent
    elif pick == 2:
        length_bits = draw(st.sampled_from([16, 64]))  # non-minimal encoding
    mask = draw(masks) if masked else None
    return raw_frame(
        opcode, payload, fin=fin, rsv=rsv, mask=mask, length=length, length_bits=length_bits
    )


@st.composite
def frame_soups(draw: Any, masked_by_default: bool) -> bytes:
    frames = draw(st.lists(soup_frames(masked_by_default), max_size=8))
    return b"".join(frames)


@st.composite
def mutated(draw: Any, data: bytes) -> bytes:
    """``data`` with a few bytes flipped, replaced, inserted or removed, or cut short."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 4))
        pos = draw(st.integers(0, len(buf)))
        if kind == 0 and pos < len(buf):
            buf[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == 1 and pos < len(buf):
            buf[pos] = draw(st.integers(0, 255))
        elif kind == 2:
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=3))
        elif kind == 3 and pos < len(buf):
            del buf[pos : pos + draw(st.integers(1, 3))]
        elif kind == 4:
            del buf[pos:]
    return bytes(buf)
