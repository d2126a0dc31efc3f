"""FrameParser: what a valid stream turns into (messages, control frames, close frames)."""

from __future__ import annotations

import pytest

from turbows._enums import CloseCode
from turbows.exceptions import ProtocolError

from codec_reference import (
    CLIENT_KEY,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    client_frame,
    messages_of,
    raw_frame,
    server_frame,
)


def kinds(items):
    return [type(i).__name__ for i in items]


# --------------------------------------------------------------------------------------------
# Single-frame messages and payload lengths.


def test_a_masked_text_frame_becomes_a_text_message_with_str_data(codec):
    parser = codec.FrameParser()
    (msg,) = parser.feed(client_frame(OP_TEXT, "héllo €".encode()))
    assert type(msg) is codec.TextMessage
    assert msg.data == "héllo €" and type(msg.data) is str
    assert msg.final is True


def test_a_binary_frame_becomes_a_binary_message_with_bytes_data(codec):
    parser = codec.FrameParser()
    (msg,) = parser.feed(client_frame(OP_BINARY, b"\x00\x01\xff"))
    assert type(msg) is codec.BinaryMessage
    assert msg.data == b"\x00\x01\xff" and type(msg.data) is bytes
    assert msg.final is True


def test_an_unmasked_frame_is_parsed_on_the_client_side(codec):
    parser = codec.FrameParser(require_mask=False)
    items = parser.feed(server_frame(OP_TEXT, b"hi") + server_frame(OP_BINARY, b"\x01"))
    assert [i.data for i in items] == ["hi", b"\x01"]


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70000])
@pytest.mark.parametrize("masked", [True, False])
def test_payloads_around_the_7_16_and_64_bit_length_encodings_are_parsed(codec, length, masked):
    payload = bytes((i * 31 + 7) & 0xFF for i in range(length))
    frame = raw_frame(OP_BINARY, payload, mask=CLIENT_KEY if masked else None)
    expected_header = 2 + (0 if length < 126 else 2 if length < 65536 else 8) + 4 * masked
    assert len(frame) == expected_header + length
    parser = codec.FrameParser(require_mask=masked)
    (msg,) = parser.feed(frame)
    assert msg.data == payload


@pytest.mark.parametrize("length", [125, 126, 65535, 65536])
def test_extended_length_headers_split_at_every_byte_are_parsed(codec, length):
    payload = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    frame = client_frame(OP_BINARY, payload)
    header_len = len(frame) - length
    for cut in range(1, header_len + 2):
        parser = codec.FrameParser()
        assert parser.feed(frame[:cut]) == []
        (msg,) = parser.feed(frame[cut:])
        assert msg.data == payload


def test_a_non_minimal_length_encoding_is_accepted(codec):
    # RFC 6455 5.2 asks senders for the minimal encoding but gives receivers no rule to fail.
    parser = codec.FrameParser()
    stream = client_frame(OP_TEXT, b"short", length_bits=16) + client_frame(
        OP_BINARY, b"tiny", length_bits=64
    )
    assert [m.data for m in parser.feed(stream)] == ["short", b"tiny"]


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING, OP_PONG])
def test_empty_frames_give_empty_items(codec, opcode):
    parser = codec.FrameParser()
    (item,) = parser.feed(client_frame(opcode, b""))
    if opcode == OP_TEXT:
        assert item.data == ""
    elif opcode == OP_BINARY:
        assert item.data == b""
    else:
        assert item.payload == b""


def test_a_message_of_empty_fragments_is_an_empty_message(codec):
    parser = codec.FrameParser()
    stream = (
        client_frame(OP_TEXT, b"", fin=False)
        + client_frame(OP_CONT, b"", fin=False)
        + client_frame(OP_CONT, b"")
    )
    (msg,) = parser.feed(stream)
    assert msg.data == "" and msg.final is True


def test_an_empty_frame_needs_only_its_header(codec):
    parser = codec.FrameParser()
    frame = client_frame(OP_BINARY, b"")
    assert len(frame) == 6
    assert parser.feed(frame[:5]) == []
    assert [m.data for m in parser.feed(frame[5:])] == [b""]


def test_many_frames_in_one_chunk_come_out_in_order(codec):
    parser = codec.FrameParser()
    stream = b"".join(client_frame(OP_TEXT, str(i).encode()) for i in range(300))
    assert [m.data for m in parser.feed(stream)] == [str(i) for i in range(300)]


def test_byte_by_byte_feeding_gives_the_same_items_as_one_chunk(codec):
    stream = (
        client_frame(OP_TEXT, "naïve café ☕".encode(), fin=False)
        + client_frame(OP_PING, b"ping!")
        + client_frame(OP_CONT, "😀 end".encode())
        + client_frame(OP_BINARY, bytes(range(200)))
        + client_frame(OP_PONG, b"")
        + client_frame(OP_CLOSE, b"\x03\xe8bye")
    )
    whole = codec.FrameParser().feed(stream)
    parser = codec.FrameParser()
    pieces = messages_of(parser, [stream[i : i + 1] for i in range(len(stream))])
    assert pieces == whole
    assert kinds(whole) == ["Ping", "TextMessage", "BinaryMessage", "Pong", "CloseReceived"]


def test_feed_accepts_bytearray_and_memoryview(codec):
    frame = client_frame(OP_TEXT, b"buffer")
    parser = codec.FrameParser()
    assert parser.feed(bytearray(frame[:3])) == []
    assert [m.data for m in parser.feed(memoryview(frame)[3:])] == ["buffer"]


def test_an_empty_feed_returns_nothing(codec):
    parser = codec.FrameParser()
    assert parser.feed(b"") == []
    frame = client_frame(OP_TEXT, b"x")
    assert parser.feed(frame[:4]) == []
    assert parser.feed(b"") == []
    assert [m.data for m in parser.feed(frame[4:])] == ["x"]


def test_feed_does_not_keep_a_reference_to_a_reused_buffer(codec):
    frame = client_frame(OP_BINARY, b"0123456789")
    buf = bytearray(frame[:8])
    parser = codec.FrameParser()
    assert parser.feed(buf) == []
    buf[:] = b"\x00" * len(buf)  # the caller reuses its receive buffer
    (msg,) = parser.feed(frame[8:])
    assert msg.data == b"0123456789"


# --------------------------------------------------------------------------------------------
# Fragmented messages.


def test_fragmented_text_is_reassembled_into_one_message(codec):
    parser = codec.FrameParser()
    raw = "Fragmenté: 😀€".encode()
    stream = (
        client_frame(OP_TEXT, raw[:5], fin=False)
        + client_frame(OP_CONT, raw[5:12], fin=False)  # splits "😀" in the middle
        + client_frame(OP_CONT, raw[12:])
    )
    (msg,) = parser.feed(stream)
    assert msg.data == "Fragmenté: 😀€"
    assert msg.final is True


def test_fragmented_binary_is_reassembled_across_feed_calls(codec):
    parser = codec.FrameParser()
    assert parser.feed(client_frame(OP_BINARY, b"ab", fin=False)) == []
    assert parser.feed(client_frame(OP_CONT, b"cd", fin=False)) == []
    (msg,) = parser.feed(client_frame(OP_CONT, b"ef"))
    assert msg.data == b"abcdef"


def test_control_frames_interleaved_in_a_fragmented_message_keep_their_order(codec):
    # RFC 6455 5.4: control frames MAY be injected in the middle of a fragmented message.
    parser = codec.FrameParser()
    stream = (
        client_frame(OP_TEXT, b"one ", fin=False)
        + client_frame(OP_PING, b"1")
        + client_frame(OP_CONT, b"two ", fin=False)
        + client_frame(OP_PONG, b"2")
        + client_frame(OP_PING, b"3")
        + client_frame(OP_CONT, b"three")
        + client_frame(OP_PING, b"4")
    )
    items = parser.feed(stream)
    assert kinds(items) == ["Ping", "Pong", "Ping", "TextMessage", "Ping"]
    assert [i.payload for i in items if not hasattr(i, "data")] == [b"1", b"2", b"3", b"4"]
    assert items[3].data == "one two three"


def test_control_frames_inside_a_fragmented_message_are_returned_by_their_own_feed(codec):
    parser = codec.FrameParser()
    assert parser.feed(client_frame(OP_BINARY, b"a", fin=False)) == []
    assert kinds(parser.feed(client_frame(OP_PING, b"x"))) == ["Ping"]
    assert kinds(parser.feed(client_frame(OP_PONG, b"y"))) == ["Pong"]
    (msg,) = parser.feed(client_frame(OP_CONT, b"b"))
    assert msg.data == b"ab"


def test_a_close_frame_inside_a_fragmented_message_is_returned(codec):
    parser = codec.FrameParser()
    stream = client_frame(OP_TEXT, b"half", fin=False) + client_frame(OP_CLOSE, b"\x03\xe9")
    (close,) = parser.feed(stream)
    assert close.code == 1001
    assert parser.closed is True


def test_controls_counts_the_control_items_of_the_last_feed(codec):
    parser = codec.FrameParser()
    assert parser.controls == 0
    stream = (
        client_frame(OP_TEXT, b"t")
        + client_frame(OP_PING, b"")
        + client_frame(OP_BINARY, b"b", fin=False)
        + client_frame(OP_PONG, b"")
        + client_frame(OP_CONT, b"b")
        + client_frame(OP_PING, b"")
    )
    items = parser.feed(stream)
    assert len(items) == 5
    assert parser.controls == 3
    parser.feed(client_frame(OP_TEXT, b"no control"))
    assert parser.controls == 0
    parser.feed(client_frame(OP_PING, b"")[:3])
    assert parser.controls == 0
    parser.feed(client_frame(OP_PING, b"")[3:] + client_frame(OP_CLOSE, b""))
    assert parser.controls == 2


def test_controls_is_zero_for_a_feed_after_close(codec):
    parser = codec.FrameParser()
    parser.feed(client_frame(OP_CLOSE, b""))
    assert parser.controls == 1
    assert parser.feed(client_frame(OP_PING, b"")) == []
    assert parser.controls == 0


# --------------------------------------------------------------------------------------------
# fragments=True and text_as_bytes=True.


def test_fragments_mode_delivers_each_data_frame_with_its_final_flag(codec):
    parser = codec.FrameParser(fragments=True)
    stream = (
        client_frame(OP_BINARY, b"a", fin=False)
        + client_frame(OP_CONT, b"", fin=False)
        + client_frame(OP_PING, b"p")
        + client_frame(OP_CONT, b"bc")
        + client_frame(OP_BINARY, b"whole")
    )
    items = parser.feed(stream)
    assert kinds(items) == ["BinaryMessage"] * 2 + ["Ping"] + ["BinaryMessage"] * 2
    got = [(i.data, i.final) for i in items if type(i).__name__ == "BinaryMessage"]
    assert got == [(b"a", False), (b"", False), (b"bc", True), (b"whole", True)]


def test_fragments_mode_delivers_whole_characters_when_a_fragment_splits_one(codec):
    raw = "a😀b€c".encode()  # 61 F0 9F 98 80 62 E2 82 AC 63
    parser = codec.FrameParser(fragments=True)
    stream = (
        client_frame(OP_TEXT, raw[:2], fin=False)  # "a" + first byte of the emoji
        + client_frame(OP_CONT, raw[2:4], fin=False)  # two more emoji bytes: nothing whole
        + client_frame(OP_CONT, raw[4:7], fin=False)  # last emoji byte, "b", start of "€"
        + client_frame(OP_CONT, raw[7:])
    )
    items = parser.feed(stream)
    assert [(i.data, i.final) for i in items] == [
        ("a", False),
        ("", False),
        ("😀b", False),
        ("€c", True),
    ]
    assert all(type(i.data) is str for i in items)


def test_fragments_mode_starts_each_text_message_afresh(codec):
    parser = codec.FrameParser(fragments=True)
    first = parser.feed(client_frame(OP_TEXT, "é".encode()))
    second = parser.feed(client_frame(OP_TEXT, b"x", fin=False) + client_frame(OP_CONT, b"y"))
    assert [(i.data, i.final) for i in first + second] == [("é", True), ("x", False), ("y", True)]


def test_fragments_mode_with_text_as_bytes_delivers_the_raw_fragment_bytes(codec):
    raw = "😀".encode()
    parser = codec.FrameParser(fragments=True, text_as_bytes=True)
    items = parser.feed(
        client_frame(OP_TEXT, raw[:1], fin=False) + client_frame(OP_CONT, raw[1:])
    )
    assert [(i.data, i.final) for i in items] == [(raw[:1], False), (raw[1:], True)]
    assert kinds(items) == ["TextMessage", "TextMessage"]


def test_text_as_bytes_delivers_validated_text_as_bytes(codec):
    raw = "bytes, not str: ✓".encode()
    parser = codec.FrameParser(text_as_bytes=True)
    items = parser.feed(
        client_frame(OP_TEXT, raw)
        + client_frame(OP_TEXT, raw[:3], fin=False)
        + client_frame(OP_CONT, raw[3:])
    )
    assert kinds(items) == ["TextMessage", "TextMessage"]
    assert [i.data for i in items] == [raw, raw]
    assert all(type(i.data) is bytes for i in items)


def test_text_as_bytes_does_not_change_binary_messages(codec):
    parser = codec.FrameParser(text_as_bytes=True)
    (msg,) = parser.feed(client_frame(OP_BINARY, b"\xff"))
    assert type(msg) is codec.BinaryMessage and msg.data == b"\xff"


# --------------------------------------------------------------------------------------------
# Close frames (RFC 6455 5.5.1 and 7.4).


def close_of(codec, payload: bytes):
    parser = codec.FrameParser()
    (item,) = parser.feed(client_frame(OP_CLOSE, payload))
    assert type(item) is codec.CloseReceived
    return item


def close_error(codec, payload: bytes) -> ProtocolError:
    parser = codec.FrameParser()
    with pytest.raises(ProtocolError) as info:
        parser.feed(client_frame(OP_CLOSE, payload))
    return info.value


def test_an_empty_close_frame_reports_code_1005_and_no_reason(codec):
    item = close_of(codec, b"")
    assert item.code == 1005 and item.code is CloseCode.NO_STATUS_RCVD
    assert item.reason == ""


def test_a_close_frame_with_a_1_byte_payload_is_a_protocol_error(codec):
    assert close_error(codec, b"\x03").code == 1002


@pytest.mark.parametrize("code", [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
def test_close_frame_with_a_code_that_may_not_be_sent_is_a_protocol_error(codec, code):
    assert close_error(codec, code.to_bytes(2, "big")).code == 1002
    assert close_error(codec, code.to_bytes(2, "big") + b"reason").code == 1002


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
)
def test_close_frame_with_a_valid_code_is_reported(codec, code):
    item = close_of(codec, code.to_bytes(2, "big"))
    assert item.code == code and item.reason == ""
    item = close_of(codec, code.to_bytes(2, "big") + "bye ✓".encode())
    assert item.code == code and item.reason == "bye ✓"


def test_registered_close_codes_are_reported_as_close_code_members(codec):
    assert close_of(codec, b"\x03\xe8").code is CloseCode.NORMAL_CLOSURE
    assert close_of(codec, b"\x03\xf1").code is CloseCode.MESSAGE_TOO_BIG
    item = close_of(codec, (4321).to_bytes(2, "big"))
    assert item.code == 4321 and not isinstance(item.code, CloseCode)


@pytest.mark.parametrize("reason", [b"\xff", b"ok\xed\xa0\x80", b"cut \xe2\x82", b"\xc0\x80"])
def test_close_reason_with_invalid_utf8_fails_with_1007(codec, reason):
    assert close_error(codec, b"\x03\xe8" + reason).code == 1007


def test_close_reason_of_the_maximum_length_is_accepted(codec):
    item = close_of(codec, b"\x03\xe8" + b"r" * 123)
    assert item.reason == "r" * 123


def test_close_frame_error_keeps_the_items_before_it(codec):
    parser = codec.FrameParser()
    with pytest.raises(ProtocolError) as info:
        parser.feed(client_frame(OP_TEXT, b"last words") + client_frame(OP_CLOSE, b"\x03"))
    assert [i.data for i in info.value.items] == ["last words"]
    assert parser.closed is False


def test_bytes_after_a_close_frame_are_ignored(codec):
    parser = codec.FrameParser()
    assert parser.closed is False
    items = parser.feed(
        client_frame(OP_TEXT, b"before")
        + client_frame(OP_CLOSE, b"\x03\xe8")
        + client_frame(OP_TEXT, b"after")
        + b"\xff\xff garbage that would be a protocol error"
    )
    assert kinds(items) == ["TextMessage", "CloseReceived"]
    assert parser.closed is True
    assert parser.feed(client_frame(OP_TEXT, b"later")) == []
    assert parser.feed(b"\x70\x00 reserved bits, unmasked") == []
    assert parser.closed is True


def test_a_close_frame_split_across_feeds_closes_the_parser_when_complete(codec):
    frame = client_frame(OP_CLOSE, b"\x0f\xa0going")
    parser = codec.FrameParser()
    assert parser.feed(frame[:-1]) == []
    assert parser.closed is False
    (item,) = parser.feed(frame[-1:] + b"junk")
    assert (item.code, item.reason) == (4000, "going")
    assert parser.closed is True


def test_close_on_the_client_side_is_parsed_from_an_unmasked_frame(codec):
    parser = codec.FrameParser(require_mask=False)
    (item,) = parser.feed(server_frame(OP_CLOSE, b"\x03\xe9server going away"))
    assert (item.code, item.reason) == (1001, "server going away")


# --------------------------------------------------------------------------------------------
# buffered


def test_buffered_counts_a_partial_header_and_an_unfinished_message(codec):
    parser = codec.FrameParser()
    assert parser.buffered == 0
    frame = client_frame(OP_BINARY, b"0123456789")  # 6-byte header
    parser.feed(frame[:3])
    assert parser.buffered == 3
    parser.feed(frame[3:])
    assert parser.buffered == 0
    parser.feed(client_frame(OP_TEXT, b"x" * 10, fin=False))
    assert parser.buffered == 10
    parser.feed(client_frame(OP_CONT, b"y" * 5))
    assert parser.buffered == 0
