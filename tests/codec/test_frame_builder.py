"""build_frame, FrameWriter and encode_close: the send side (RFC 6455 5.2, 5.3, 5.5.1)."""

from __future__ import annotations

import pytest

from turbows._enums import CloseCode

from codec_reference import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    naive_mask,
    raw_frame,
)

VALID_OPCODES = [OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG]


@pytest.mark.parametrize(
    ("length", "header_tail"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (125, b"\x7d"),
        (126, b"\x7e\x00\x7e"),
        (127, b"\x7e\x00\x7f"),
        (65535, b"\x7e\xff\xff"),
        (65536, b"\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
        (100000, b"\x7f\x00\x00\x00\x00\x00\x01\x86\xa0"),
    ],
)
def test_build_frame_uses_the_shortest_length_encoding(codec, length, header_tail):
    payload = b"\xab" * length
    frame = codec.build_frame(OP_BINARY, payload)
    assert type(frame) is bytes
    assert frame == b"\x82" + header_tail + payload


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536])
def test_build_frame_with_a_mask_sets_the_mask_bit_key_and_masked_payload(codec, length):
    payload = bytes(i & 0xFF for i in range(length))
    key = b"\x12\x34\x56\x78"
    frame = codec.build_frame(OP_BINARY, payload, mask=key)
    assert frame == raw_frame(OP_BINARY, payload, mask=key)
    header = codec.build_frame(OP_BINARY, payload)[: -length or None]
    assert frame[1] == header[1] | 0x80
    assert frame[len(header) : len(header) + 4] == key
    assert frame[len(header) + 4 :] == naive_mask(payload, key)


@pytest.mark.parametrize("opcode", VALID_OPCODES)
@pytest.mark.parametrize("fin", [True, False])
@pytest.mark.parametrize("rsv", [0, 0x40, 0x20, 0x10, 0x70])
def test_build_frame_first_byte_carries_fin_rsv_and_opcode(codec, opcode, fin, rsv):
    if opcode >= 8 and not fin:
        return  # control frames cannot be fragmented (tested below)
    frame = codec.build_frame(opcode, b"xy", fin=fin, rsv=rsv)
    assert frame[0] == (0x80 if fin else 0) | rsv | opcode
    assert frame[1:] == b"\x02xy"


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 125, 126, 65535, 65536, 70001])
def test_masked_frames_round_trip_through_a_server_side_parser(codec, length):
    payload = bytes((i * 13) & 0xFF for i in range(length))
    parser = codec.FrameParser(require_mask=True, max_message_size=None)
    (msg,) = parser.feed(codec.build_frame(OP_BINARY, payload, mask=b"\xde\xad\xbe\xef"))
    assert msg.data == payload


def test_unmasked_frames_round_trip_through_a_client_side_parser(codec):
    parser = codec.FrameParser(require_mask=False)
    stream = (
        codec.build_frame(OP_TEXT, "frag ", fin=False)
        + codec.build_frame(OP_PING, b"ping")
        + codec.build_frame(OP_CONT, "done")
        + codec.build_frame(OP_CLOSE, codec.encode_close(1000, "bye"))
    )
    items = parser.feed(stream)
    assert [type(i).__name__ for i in items] == ["Ping", "TextMessage", "CloseReceived"]
    assert items[1].data == "frag done"
    assert (items[2].code, items[2].reason) == (1000, "bye")


def test_build_frame_encodes_str_payloads_as_utf8(codec):
    text = "héllo, wörld ✓ 😀"
    frame = codec.build_frame(OP_TEXT, text)
    raw = text.encode("utf-8")
    assert frame == bytes((0x81, len(raw))) + raw


def test_build_frame_accepts_bytearray_and_memoryview_payloads(codec):
    expected = codec.build_frame(OP_BINARY, b"payload")
    assert codec.build_frame(OP_BINARY, bytearray(b"payload")) == expected
    assert codec.build_frame(OP_BINARY, memoryview(b"xpayloadx")[1:-1]) == expected
    key = bytearray(b"kkkk")
    assert codec.build_frame(OP_BINARY, b"p", mask=key) == raw_frame(OP_BINARY, b"p", mask=b"kkkk")


@pytest.mark.parametrize("text", ["\ud800", "ok\udfff", "\udc80 lone low surrogate"])
def test_a_str_payload_with_a_lone_surrogate_raises_unicode_encode_error(codec, text):
    with pytest.raises(UnicodeEncodeError):
        codec.build_frame(OP_TEXT, text)
    writer = codec.FrameWriter()
    with pytest.raises(UnicodeEncodeError):
        writer.frame(OP_TEXT, text)
    with pytest.raises(UnicodeEncodeError):
        writer.text(text)
    assert len(writer) == 0


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF, 16, 0x81, -1])
def test_build_frame_rejects_an_invalid_opcode(codec, opcode):
    with pytest.raises(ValueError):
        codec.build_frame(opcode, b"")
    with pytest.raises(ValueError):
        codec.FrameWriter().frame(opcode, b"")


@pytest.mark.parametrize("rsv", [0x80, 0x01, 0x08, 0x0F, 0x100, 0xF0, -1])
def test_build_frame_rejects_rsv_bits_outside_0x70(codec, rsv):
    with pytest.raises(ValueError):
        codec.build_frame(OP_BINARY, b"", rsv=rsv)
    with pytest.raises(ValueError):
        codec.FrameWriter().frame(OP_BINARY, b"", rsv=rsv)


@pytest.mark.parametrize("opcode", [OP_CLOSE, OP_PING, OP_PONG])
def test_build_frame_rejects_a_fragmented_control_frame(codec, opcode):
    with pytest.raises(ValueError):
        codec.build_frame(opcode, b"", fin=False)
    with pytest.raises(ValueError):
        codec.FrameWriter(mask=True).frame(opcode, b"", fin=False)


@pytest.mark.parametrize("opcode", [OP_CLOSE, OP_PING, OP_PONG])
def test_build_frame_rejects_a_control_payload_over_125_bytes(codec, opcode):
    with pytest.raises(ValueError):
        codec.build_frame(opcode, b"x" * 126)
    with pytest.raises(ValueError):
        codec.build_frame(opcode, "é" * 63)  # 126 bytes once encoded
    with pytest.raises(ValueError):
        codec.FrameWriter().frame(opcode, b"x" * 126)
    assert len(codec.build_frame(opcode, b"x" * 125)) == 127


@pytest.mark.parametrize("size", [0, 3, 5, 16])
def test_build_frame_rejects_a_mask_that_is_not_4_bytes(codec, size):
    with pytest.raises(ValueError):
        codec.build_frame(OP_BINARY, b"data", mask=b"k" * size)


@pytest.mark.parametrize("bad", [12, None, 1.5, ["a"]])
def test_build_frame_rejects_a_payload_that_is_neither_bytes_nor_str(codec, bad):
    with pytest.raises(TypeError):
        codec.build_frame(OP_BINARY, bad)
    with pytest.raises(TypeError):
        codec.FrameWriter().frame(OP_BINARY, bad)


def test_build_frame_rejects_a_mask_that_is_not_bytes_like(codec):
    with pytest.raises(TypeError):
        codec.build_frame(OP_BINARY, b"data", mask="abcd")


# --------------------------------------------------------------------------------------------
# FrameWriter


def test_unmasked_frame_writer_produces_the_same_bytes_as_build_frame(codec):
    writer = codec.FrameWriter()
    writer.frame(OP_TEXT, "part", fin=False)
    writer.frame(OP_CONT, b"more", rsv=0)
    writer.text("text ✓")
    writer.binary(b"\x00\xff")
    writer.frame(OP_BINARY, b"r", rsv=0x40)
    expected = (
        codec.build_frame(OP_TEXT, "part", fin=False)
        + codec.build_frame(OP_CONT, b"more")
        + codec.build_frame(OP_TEXT, "text ✓")
        + codec.build_frame(OP_BINARY, b"\x00\xff")
        + codec.build_frame(OP_BINARY, b"r", rsv=0x40)
    )
    assert len(writer) == len(expected)
    assert writer.take() == expected


def test_frame_writer_take_returns_bytes_and_empties_the_buffer(codec):
    writer = codec.FrameWriter()
    assert len(writer) == 0
    assert writer.take() == b""
    writer.binary(b"abc")
    out = writer.take()
    assert type(out) is bytes and out == b"\x82\x03abc"
    assert len(writer) == 0
    assert writer.take() == b""
    writer.text("x")
    assert writer.take() == b"\x81\x01x"


@pytest.mark.parametrize(
    "sizes",
    [
        [70_000],
        [70_000, 3],
        [3, 70_000],
        [70_000, 70_000, 10],
        [8191, 8192, 8193],
        [0, 200_000, 0],
    ],
)
@pytest.mark.parametrize("take_after", [None, 0, 1])
def test_frame_writer_keeps_order_and_length_around_large_frames(codec, sizes, take_after):
    """Large frames (built apart when the writer is empty) and small ones, in any order, with
    or without a take() between them: the same bytes as build_frame, in order."""
    writer = codec.FrameWriter()
    payloads = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    out = b""
    expected = b""
    for i, payload in enumerate(payloads):
        if i % 2:
            writer.text(payload.decode("latin-1").encode("ascii", "replace").decode())
            expected += codec.build_frame(
                OP_TEXT, payload.decode("latin-1").encode("ascii", "replace")
            )
        else:
            writer.binary(payload)
            expected += codec.build_frame(OP_BINARY, payload)
        assert len(writer) + len(out) == len(expected)
        if take_after == i:
            out += writer.take()
            assert len(writer) == 0
    out += writer.take()
    assert out == expected
    assert len(writer) == 0 and writer.take() == b""


def _joined(parts):
    if type(parts) is bytes:
        return parts
    head, body = parts
    return head + (body.encode("ascii") if type(body) is str else body)


@pytest.mark.parametrize("mask", [False, True])
def test_take_parts_is_take_with_a_large_frame_left_unbuilt(codec, mask):
    """_take_parts gives what take() would, with a large unmasked bytes or str payload as it
    was given (after its header) instead of copied into a frame; order and length hold."""
    writer = codec.FrameWriter(mask=mask)
    parser = codec.FrameParser(require_mask=mask, max_message_size=None)
    big = bytes(range(256)) * 40
    payloads = [
        big,
        big.decode("latin-1").encode("ascii", "replace").decode(),
        "é" * 6000,
        bytearray(big),
        memoryview(big),
        b"small",
    ]
    for payload in payloads:
        kind = type(payload)
        (writer.text if kind is str else writer.binary)(payload)
        size = len(writer)
        parts = writer._take_parts()
        assert len(_joined(parts)) == size and len(writer) == 0
        (message,) = parser.feed(_joined(parts))
        assert message.data == (bytes(payload) if kind in (bytearray, memoryview) else payload)
        unbuilt = codec.__name__ == "turbows._speedups" and not mask and kind in (bytes, str)
        unbuilt = unbuilt and len(payload.encode() if kind is str else payload) >= 8192
        assert (type(parts) is tuple) is unbuilt, kind
        if unbuilt and payload.isascii():
            assert parts[1] is payload
    # A mutable payload is copied when appended: changing it later changes nothing.
    data = bytearray(b"a" * 10_000)
    writer.binary(data)
    data[:] = b"b" * 10_000
    assert [m.data for m in parser.feed(_joined(writer._take_parts()))] == [b"a" * 10_000]
    # Frames appended behind an unbuilt one follow it; take() joins.
    writer.binary(big)
    writer.text("after")
    writer.frame(OP_PING, b"p")
    parts = writer._take_parts()
    assert type(parts) is bytes
    items = parser.feed(parts)
    assert [items[0].data, items[1].data, items[2].payload] == [big, "after", b"p"]
    writer.text("x" * 9000)
    assert len(writer) == (8 if mask else 4) + 9000
    assert [m.data for m in parser.feed(writer.take())] == ["x" * 9000]
    assert writer._take_parts() == b"" and writer.take() == b""


def test_masking_frame_writer_masks_large_frames_alone_or_in_a_batch(codec):
    writer = codec.FrameWriter(mask=True)
    parser = codec.FrameParser(require_mask=True, max_message_size=None)
    big = bytes(range(256)) * 400
    writer.binary(big)  # alone in the writer
    assert [m.data for m in parser.feed(writer.take())] == [big]
    writer.binary(big)
    writer.text("after")  # appended behind a large frame
    writer.frame(OP_PING, b"p")
    items = parser.feed(writer.take())
    assert [items[0].data, items[1].data, items[2].payload] == [big, "after", b"p"]


def test_a_rejected_frame_leaves_a_large_frame_unchanged(codec):
    writer = codec.FrameWriter()
    writer.binary(b"z" * 10_000)
    before = len(writer)
    with pytest.raises(ValueError):
        writer.frame(OP_PING, b"x" * 126)
    assert len(writer) == before
    assert writer.take() == codec.build_frame(OP_BINARY, b"z" * 10_000)


def test_masking_frame_writer_output_parses_on_the_server_side(codec):
    writer = codec.FrameWriter(mask=True)
    payloads = [b"", b"a", b"abcd", b"x" * 125, b"y" * 126, bytes(range(256)) * 300]
    for p in payloads:
        writer.binary(p)
    writer.text("masked ✓")
    writer.frame(OP_PING, b"ping")
    writer.frame(OP_CLOSE, codec.encode_close(1001, "away"))
    parser = codec.FrameParser(require_mask=True, max_message_size=None)
    items = parser.feed(writer.take())
    assert [i.data for i in items[: len(payloads)]] == payloads
    assert items[len(payloads)].data == "masked ✓"
    assert items[-2].payload == b"ping"
    assert (items[-1].code, items[-1].reason) == (1001, "away")


def test_masking_frame_writer_uses_a_different_key_for_every_frame(codec):
    writer = codec.FrameWriter(mask=True)
    keys = []
    # Enough frames to draw keys from more than one 4096-byte pool refill.
    for _ in range(2500):
        writer.binary(b"\x00\x00\x00\x00")  # a zero payload shows the key
        frame = writer.take()
        assert frame[:2] == b"\x82\x84"
        key = frame[2:6]
        assert frame[6:] == key
        keys.append(key)
    # 2500 random 32-bit keys collide with probability ~0.1%; allow one collision.
    assert len(set(keys)) >= len(keys) - 1
    assert len(set(k[0] for k in keys)) > 200  # not a counter in the low bytes


def test_a_rejected_frame_leaves_the_writer_buffer_unchanged(codec):
    writer = codec.FrameWriter(mask=True)
    writer.binary(b"kept")
    before = len(writer)
    for bad in [
        lambda: writer.frame(5, b""),
        lambda: writer.frame(OP_PING, b"x" * 126),
        lambda: writer.frame(OP_PING, b"", fin=False),
        lambda: writer.frame(OP_TEXT, b"", rsv=0x80),
    ]:
        with pytest.raises(ValueError):
            bad()
    assert len(writer) == before
    parser = codec.FrameParser()
    assert [m.data for m in parser.feed(writer.take())] == [b"kept"]


# --------------------------------------------------------------------------------------------
# encode_close (RFC 6455 5.5.1, 7.4)


def test_encode_close_without_a_code_is_an_empty_payload(codec):
    assert codec.encode_close() == b""
    assert codec.encode_close(None) == b""
    assert codec.encode_close(None, "") == b""


def test_encode_close_rejects_a_reason_without_a_code(codec):
    with pytest.raises(ValueError):
        codec.encode_close(None, "reason")


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
)
def test_encode_close_accepts_every_code_that_may_be_sent(codec, code):
    assert codec.encode_close(code) == code.to_bytes(2, "big")
    assert codec.encode_close(code, "é") == code.to_bytes(2, "big") + "é".encode()


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65536, -1])
def test_encode_close_rejects_codes_that_may_not_be_sent(codec, code):
    with pytest.raises(ValueError):
        codec.encode_close(code)
    with pytest.raises(ValueError):
        codec.encode_close(code, "reason")


def test_encode_close_accepts_close_code_members(codec):
    assert codec.encode_close(CloseCode.GOING_AWAY, "bye") == b"\x03\xe9bye"


def test_encode_close_limits_the_reason_to_123_bytes_of_utf8(codec):
    assert len(codec.encode_close(1000, "r" * 123)) == 125
    assert len(codec.encode_close(1000, "€" * 41)) == 125  # 123 bytes
    with pytest.raises(ValueError):
        codec.encode_close(1000, "r" * 124)
    with pytest.raises(ValueError):
        codec.encode_close(1000, "€" * 41 + "r")  # 124 bytes, only 42 characters


def test_encode_close_rejects_a_reason_with_a_lone_surrogate(codec):
    with pytest.raises(UnicodeEncodeError):
        codec.encode_close(1000, "\ud800")


def test_encode_close_round_trips_through_the_parser(codec):
    for code, reason in [(1000, ""), (1011, "internal ✓"), (4000, "x" * 123)]:
        frame = codec.build_frame(OP_CLOSE, codec.encode_close(code, reason), mask=b"abcd")
        (item,) = codec.FrameParser().feed(frame)
        assert (item.code, item.reason) == (code, reason)
    (item,) = codec.FrameParser().feed(codec.build_frame(OP_CLOSE, b"", mask=b"abcd"))
    assert item.code == 1005


# --------------------------------------------------------------------------------------------
# FrameWriter.messages: a batch of whole messages in one call


def _one_by_one(codec, messages, text, mask=False):
    """What messages() must produce: each message through text() or binary()."""
    writer = codec.FrameWriter(mask=mask)
    starts = []
    for message in messages:
        starts.append(len(writer))
        as_text = type(message) is str if text is None else text
        if as_text:
            writer.frame(OP_TEXT, message)
        else:
            writer.frame(OP_BINARY, message)
    return starts, writer.take()


MIXED = ["a", b"bb", bytearray(b"c" * 200), memoryview(b"d" * 70_000), "é✓", "", b""]


@pytest.mark.parametrize("text", [None, False])
def test_frame_writer_messages_frames_each_message_as_text_or_binary_would(codec, text):
    writer = codec.FrameWriter()
    starts = writer.messages(MIXED, text)
    assert (starts, writer.take()) == _one_by_one(codec, MIXED, text)


def test_frame_writer_messages_sends_utf8_bytes_as_text_with_text_true(codec):
    messages = ["a", b"caf\xc3\xa9", bytearray(b"x" * 300), memoryview(b"\xe2\x9c\x93")]
    writer = codec.FrameWriter()
    starts = writer.messages(messages, True)
    as_text = [bytes(m) if not isinstance(m, str) else m for m in messages]
    assert (starts, writer.take()) == _one_by_one(codec, as_text, True)


def test_frame_writer_messages_takes_any_iterable_and_counts_from_what_is_buffered(codec):
    writer = codec.FrameWriter()
    writer.binary(b"before")
    starts = writer.messages(m for m in ("x", "yy"))
    assert starts == [8, 11]
    assert writer.take() == b"\x82\x06before\x81\x01x\x81\x02yy"
    assert writer.messages([]) == [] and writer.take() == b""


@pytest.mark.parametrize("first", [None, b"s" * 10, b"L" * 70_000, "A" * 70_000])
@pytest.mark.parametrize(
    ("bad", "text", "error"),
    [
        (b"\xff", True, ValueError),
        (bytearray(b"\xc3"), True, ValueError),
        (12, None, TypeError),
        (None, True, TypeError),
        ("\ud800", None, UnicodeEncodeError),
        (memoryview(b"abcd")[::2], False, BufferError),
    ],
)
def test_frame_writer_messages_appends_nothing_when_a_message_is_refused(
    codec, first, bad, text, error
):
    """A bad message anywhere in the batch: the error, and the writer as it was (including a
    large frame it was holding apart), ready for more."""
    writer = codec.FrameWriter()
    if first is not None:
        writer.text(first.decode()) if type(first) is bytes else writer.text(first)
    before = len(writer)
    with pytest.raises(error):
        writer.messages(["ok", b"L" * 70_000, bad, "never"], text)
    assert len(writer) == before
    writer.binary(b"after")
    expected = b"" if first is None else codec.build_frame(OP_TEXT, first)
    assert writer.take() == expected + codec.build_frame(OP_BINARY, b"after")


def test_frame_writer_messages_names_the_message_that_is_not_utf8(codec):
    with pytest.raises(ValueError, match="message 2 is not valid UTF-8"):
        codec.FrameWriter().messages([b"a", b"b", b"\xed\xa0\x80"], True)
    with pytest.raises(TypeError, match="cannot send int as a message"):
        codec.FrameWriter().messages([b"a", 1])


def test_masked_frame_writer_messages_masks_each_frame_with_its_own_key(codec):
    writer = codec.FrameWriter(mask=True)
    messages = ["a" * 10, b"b" * 10, "c" * 10]
    starts = writer.messages(messages)
    out = writer.take()
    assert starts == [0, 16, 32] and len(out) == 48
    keys = {out[s + 2 : s + 6] for s in starts}
    assert len(keys) == 3
    parser = codec.FrameParser(require_mask=True, max_message_size=None)
    got = [(type(m).__name__, m.data) for m in parser.feed(out)]
    assert got == [
        ("TextMessage", "a" * 10),
        ("BinaryMessage", b"b" * 10),
        ("TextMessage", "c" * 10),
    ]
