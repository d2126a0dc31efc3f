"""Reference helpers for the codec tests, written independently of the code under test.

- ``naive_mask``: RFC 6455 5.3 masking, one byte at a time.
- ``raw_frame``: a frame builder that can also build every kind of invalid frame.
- ``utf8_first_dead_byte``: where a byte string stops being the start of valid UTF-8, from the
  RFC 3629 table (CPython's incremental decoder does not fail on b"\\xed\\xa0", so it cannot
  serve as the reference for fail-fast behaviour).
- ``describe`` / ``feed_all``: implementation-neutral views of parser results, so that the
  Python and Cython codecs can be compared with ``==``.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Optional, Sequence, Tuple

# --------------------------------------------------------------------------------------------
# Masking and frames.


def naive_mask(data: bytes, mask: bytes) -> bytes:
    """RFC 6455 5.3: octet i of the output is octet i of the input XOR octet i % 4 of the key."""
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def raw_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: Optional[bytes] = None,
    length: Optional[int] = None,
    length_bits: Optional[int] = None,
) -> bytes:
    """Build one frame without any validity check.

    Args:
        opcode: any 4-bit value, including reserved ones.
        payload: the unmasked payload (masked here when ``mask`` is given).
        fin: the FIN bit.
        rsv: the RSV bits, already shifted (0x40, 0x20, 0x10).
        mask: the 4-byte masking key, or None for an unmasked frame.
        length: the length to announce, if it should differ from ``len(payload)``.
        length_bits: force the length encoding: 7, 16 or 64 (default: the shortest).
    """
    n = len(payload) if length is None else length
    if length_bits is None:
        length_bits = 7 if n < 126 else 16 if n < 0x10000 else 64
    b0 = (0x80 if fin else 0) | rsv | opcode
    mbit = 0x80 if mask is not None else 0
    if length_bits == 7:
        header = bytes((b0, mbit | n))
    elif length_bits == 16:
        header = bytes((b0, mbit | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((b0, mbit | 127)) + n.to_bytes(8, "big")
    if mask is None:
        return header + payload
    return header + mask + naive_mask(payload, mask)


def split_at(data: bytes, cuts: Iterable[int]) -> List[bytes]:
    """Cut ``data`` at the given offsets (clamped and sorted); empty chunks are kept."""
    points = sorted(min(max(c, 0), len(data)) for c in cuts)
    chunks = []
    start = 0
    for p in points:
        chunks.append(data[start:p])
        start = p
    chunks.append(data[start:])
    return chunks


# --------------------------------------------------------------------------------------------
# UTF-8 (RFC 3629 section 4).


def _lead_info(lead: int) -> Optional[Tuple[int, int, int]]:
    """(continuation bytes needed, low and high bound of the first continuation byte)."""
    if lead < 0x80:
        return (0, 0, 0)
    if 0xC2 <= lead <= 0xDF:
        return (1, 0x80, 0xBF)
    if lead == 0xE0:
        return (2, 0xA0, 0xBF)  # no overlong 3-byte forms
    if 0xE1 <= lead <= 0xEC or 0xEE <= lead <= 0xEF:
        return (2, 0x80, 0xBF)
    if lead == 0xED:
        return (2, 0x80, 0x9F)  # no surrogates U+D800..U+DFFF
    if lead == 0xF0:
        return (3, 0x90, 0xBF)  # no overlong 4-byte forms
    if 0xF1 <= lead <= 0xF3:
        return (3, 0x80, 0xBF)
    if lead == 0xF4:
        return (3, 0x80, 0x8F)  # nothing above U+10FFFF
    return None  # 0x80..0xC1 (continuation or overlong 2-byte lead) and 0xF5..0xFF


def utf8_scan(data: bytes) -> Tuple[Optional[int], int]:
    """Scan ``data`` as the start of a UTF-8 text.

    Returns:
        (index of the first byte after which no continuation can make the data valid, or None;
        number of bytes of the incomplete sequence left at the end when there is no such byte).
    """
    i = 0
    n = len(data)
    while i < n:
        info = _lead_info(data[i])
        if info is None:
            return i, 0
        need, lo, hi = info
        for k in range(1, need + 1):
            if i + k >= n:
                return None, n - i
            c = data[i + k]
            if k == 1:
                ok = lo <= c <= hi
            else:
                ok = 0x80 <= c <= 0xBF
            if not ok:
                return i + k, 0
        i += need + 1
    return None, 0


def utf8_first_dead_byte(data: bytes) -> Optional[int]:
    """Index of the byte at which ``data`` stops being a prefix of valid UTF-8, or None."""
    return utf8_scan(data)[0]


def utf8_is_valid(data: bytes) -> bool:
    """Complete, valid UTF-8 according to the RFC 3629 table."""
    dead, pending = utf8_scan(data)
    return dead is None and pending == 0


# --------------------------------------------------------------------------------------------
# Implementation-neutral views of parser results.


def describe(item: Any) -> Tuple[Any, ...]:
    """A comparable tuple for a parser item: the type name, then every field with its type."""
    name = type(item).__name__
    if name in ("TextMessage", "BinaryMessage"):
        return (name, type(item.data).__name__, item.data, item.final)
    if name in ("Ping", "Pong"):
        return (name, type(item.payload).__name__, item.payload)
    if name == "CloseReceived":
        return (name, type(item.code).__name__, int(item.code), item.reason)
    raise AssertionError(f"unexpected item {item!r}")


def describe_all(items: Sequence[Any]) -> List[Tuple[Any, ...]]:
    return [describe(item) for item in items]


def feed_all(parser: Any, chunks: Iterable[bytes], protocol_error: type) -> List[Tuple[Any, ...]]:
    """Feed every chunk, recording per call the items (or the error), ``controls``, ``closed``
    and ``buffered``.

    Feeding goes on after an error, since later calls must fail the same way.
    """
    results: List[Tuple[Any, ...]] = []
    for chunk in chunks:
        try:
            items = parser.feed(chunk)
        except protocol_error as exc:
            results.append(("error", exc.code, exc.reason, describe_all(exc.items)))
        else:
            results.append(
                ("ok", describe_all(items), parser.controls, parser.closed, parser.buffered)
            )
    return results


def messages_of(parser: Any, chunks: Iterable[bytes]) -> List[Any]:
    """Feed every chunk and return all items, raising on the first protocol error."""
    out: List[Any] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return out


# --------------------------------------------------------------------------------------------
# Shorthands for parser tests.

CLIENT_KEY = b"\x5a\xc3\x0f\x91"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def client_frame(opcode: int, payload: bytes = b"", **kwargs: Any) -> bytes:
    """A frame as a client sends it: masked (with a fixed key unless one is given)."""
    kwargs.setdefault("mask", CLIENT_KEY)
    return raw_frame(opcode, payload, **kwargs)


def server_frame(opcode: int, payload: bytes = b"", **kwargs: Any) -> bytes:
    """A frame as a server sends it: unmasked."""
    return raw_frame(opcode, payload, **kwargs)


def chunks_of(data: bytes, size: int) -> List[bytes]:
    """``data`` in pieces of ``size`` bytes (the last one shorter)."""
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]
