"""Deterministic inputs for the benchmarks.

Every implementation of a benchmark gets the very same objects, generated once from a fixed
seed, so two runs on two machines compare the same bytes. The frame encoder here is a
deliberately small, independent implementation of RFC 6455 5.2 so that the receive-path
inputs do not depend on the codec under test.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from typing import Final, NamedTuple

__all__ = [
    "CHUNK_SIZE",
    "MASK_KEY",
    "SEED",
    "FrameStream",
    "ascii_text",
    "encode_frame",
    "human_size",
    "masked_text_stream",
    "mixed_text",
    "random_bytes",
]

SEED: Final = 0x6455
"""Seed of every generator: the same inputs on every run and every machine."""

CHUNK_SIZE: Final = 64 * 1024
"""Size of the socket reads the receive-path benchmarks replay."""

MASK_KEY: Final = bytes((0x37, 0xFA, 0x21, 0x3D))
"""The masking key of the masking benchmarks (the one from RFC 6455 5.7)."""

_OP_TEXT: Final = 0x1
_ASCII_ALPHABET: Final = string.ascii_letters + string.digits + " ,.:;{}[]\"'-_"

# Code point ranges of the mixed text, by encoded length, and how often each length is
# drawn. Surrogates (U+D800..U+DFFF) are excluded: they cannot be encoded in UTF-8.
_MIXED_RANGES: Final = (
    ((0x20, 0x7E),),  # 1 byte: printable ASCII
    ((0xA0, 0x7FF),),  # 2 bytes: Latin-1 supplement .. Arabic
    ((0x800, 0xD7FF), (0xE000, 0xFFFD)),  # 3 bytes: the rest of the BMP (CJK, ...)
    ((0x10000, 0x10FFFF),),  # 4 bytes: emoji and the supplementary planes
)
_MIXED_WEIGHTS: Final = (40, 25, 25, 10)


def _rng(salt: int) -> random.Random:
    return random.Random(SEED * 1_000_003 + salt)


def random_bytes(size: int, salt: int = 0) -> bytes:
    """Return ``size`` pseudo-random bytes, the same on every run.

    Args:
        size: number of bytes.
        salt: selects an independent sequence for the same size.
    """
    return _rng(size * 7 + salt).randbytes(size)


def ascii_text(size: int, salt: int = 0) -> str:
    """Return ``size`` characters of printable ASCII text (JSON-ish punctuation included)."""
    return "".join(_rng(size * 11 + salt).choices(_ASCII_ALPHABET, k=size))


def mixed_text(size: int, salt: int = 0) -> str:
    """Return text whose UTF-8 encoding is exactly ``size`` bytes and mixes 1-4 byte sequences.

    About 40% of the characters are ASCII, 25% two-byte, 25% three-byte and 10% four-byte
    sequences, drawn at random; the tail is padded with ASCII to reach the exact size.
    """
    rng = _rng(size * 13 + salt)
    chars: list[str] = []
    used = 0
    lengths = (1, 2, 3, 4)
    while size - used >= 4:
        nbytes = rng.choices(lengths, weights=_MIXED_WEIGHTS)[0]
        lo, hi = rng.choice(_MIXED_RANGES[nbytes - 1])
        chars.append(chr(rng.randint(lo, hi)))
        used += nbytes
    chars.append("x" * (size - used))
    text = "".join(chars)
    assert len(text.encode("utf-8")) == size
    return text


def _xor(data: bytes, key: bytes) -> bytes:
    n = len(data)
    if not n:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def encode_frame(opcode: int, payload: bytes, mask: bytes = b"") -> bytes:
    """Encode one final frame (RFC 6455 5.2), masked when ``mask`` (4 bytes) is given.

    Args:
        opcode: the frame opcode.
        payload: the application data.
        mask: the masking key, or empty for an unmasked (server) frame.

    Returns:
        The frame as it appears on the wire.
    """
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        header = bytes((0x80 | opcode, mbit | n))
    elif n < 1 << 16:
        header = bytes((0x80 | opcode, mbit | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, mbit | 127)) + n.to_bytes(8, "big")
    if mask:
        return header + mask + _xor(payload, mask)
    return header + payload


class FrameStream(NamedTuple):
    """A byte stream of whole frames, cut into socket-sized chunks.

    Attributes:
        chunks: the stream split every :data:`CHUNK_SIZE` bytes (frames straddle chunks).
        frames: how many frames (and messages) the stream holds.
        payload_size: the payload size of every frame.
        last_text: the text of the last message, to check that a parser got to the end.
        total_bytes: the stream's length.
    """

    chunks: Sequence[bytes]
    frames: int
    payload_size: int
    last_text: str
    total_bytes: int


def masked_text_stream(payload_size: int, stream_bytes: int) -> FrameStream:
    """Build the client-to-server stream of masked text frames the receive path parses.

    Frames carry ASCII text of ``payload_size`` bytes (drawn from a pool of 64 different
    payloads) and a fresh pseudo-random masking key each, as a client sends them. Frames are
    added until the stream holds at least ``stream_bytes`` bytes; it always ends on a frame
    boundary, so one parser can replay it again and again.

    Args:
        payload_size: payload bytes per frame.
        stream_bytes: minimum length of the stream.
    """
    rng = _rng(payload_size * 17)
    pool = [ascii_text(payload_size, salt=i) for i in range(64)]
    encoded = [text.encode("ascii") for text in pool]
    parts: list[bytes] = []
    total = 0
    count = 0
    text = ""
    while total < stream_bytes:
        text = pool[count % len(pool)]
        frame = encode_frame(_OP_TEXT, encoded[count % len(pool)], rng.randbytes(4))
        parts.append(frame)
        total += len(frame)
        count += 1
    stream = b"".join(parts)
    chunks = [stream[i : i + CHUNK_SIZE] for i in range(0, len(stream), CHUNK_SIZE)]
    return FrameStream(chunks, count, payload_size, text, len(stream))


def human_size(size: int) -> str:
    """Format a byte count the way the tables show it (``125 B``, ``16 KiB``, ``1 MiB``)."""
    for unit, shift in (("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} B"
